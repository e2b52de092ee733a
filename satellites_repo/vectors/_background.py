"""Run one blocking call beside the current thread, to overlap FAISS with Python work.

FAISS releases the GIL while it copies a batch into its index, so a large
``upsert_many`` can build its id maps in Python while FAISS adds the vectors, instead
of one after the other. Small batches do not pay for a thread: they run inline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["BESIDE_THRESHOLD", "Beside"]

BESIDE_THRESHOLD = 4096
"""Batches with at least this many rows are added on a helper thread."""


class Beside:
    """A call started now (on a helper thread, or inline) and awaited with ``wait``.

    ``wait`` must be called exactly once; it re-raises whatever the call raised, so the
    caller can leave its own state untouched when the call failed.
    """

    def __init__(self, action: Callable[[], None], *, inline: bool) -> None:
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if inline:
            action()
            return
        self._thread = threading.Thread(
            target=self._run, args=(action,), name="vector-index-add", daemon=True
        )
        self._thread.start()

    def _run(self, action: Callable[[], None]) -> None:
        try:
            action()
        except BaseException as exc:  # handed to wait(), which re-raises it
            self._error = exc

    def wait(self) -> None:
        """Block until the call has finished; raise its error if it failed."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
