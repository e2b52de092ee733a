"""Per-label values in one numpy array, instead of a dict entry (and an int) per id.

A namespace hands out labels from a counter (0, 1, 2...), so a label is a position: a
version costs 8 bytes in an ``int64`` array where a dict entry with its int costs about
75, and a metadata reference 8 bytes in an object array. The price: a label that is no
longer live keeps its slot, so the arrays grow with every write ever applied (8 bytes per
column per replaced or deleted vector) rather than with the live count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["LabelColumn"]


class LabelColumn:
    """Values by label; ``empty`` where none was put (or it was cleared)."""

    def __init__(self, dtype: type[Any], empty: Any) -> None:
        self._empty = empty
        self._values: np.ndarray[Any, Any] = np.full(0, empty, dtype=dtype)

    def put(self, labels: Sequence[int], values: Sequence[Any]) -> None:
        """Set ``values[i]`` at ``labels[i]``."""
        if not labels:
            return
        self._reserve(max(labels) + 1)
        positions = np.fromiter(labels, dtype=np.int64, count=len(labels))
        if self._values.dtype == object:
            column = np.empty(len(values), dtype=object)
            column[:] = values  # element-wise: a dict or list stays one object
            self._values[positions] = column
        else:
            self._values[positions] = values

    def get(self, label: int) -> Any:
        """The value at ``label``, or ``empty``."""
        if label >= len(self._values):
            return self._empty
        return self._values[label].item() if self._values.dtype != object else self._values[label]

    def take(self, labels: Iterable[int]) -> list[Any]:
        """The values at ``labels``, in order, as Python objects."""
        positions = np.fromiter(labels, dtype=np.int64)
        inside = positions < len(self._values)
        found = np.full(len(positions), self._empty, dtype=self._values.dtype)
        found[inside] = self._values[positions[inside]]
        values: list[Any] = found.tolist()
        return values

    def clear(self, label: int) -> None:
        """Forget the value at ``label`` (releasing an object it held)."""
        if label < len(self._values):
            self._values[label] = self._empty

    def _reserve(self, size: int) -> None:
        if size <= len(self._values):
            return
        grown = np.full(max(size, 2 * len(self._values), 1024), self._empty, self._values.dtype)
        grown[: len(self._values)] = self._values
        self._values = grown
