"""The JSON documents of a snapshot (manifest, sidecars): parsed strictly or rejected."""

from __future__ import annotations

from typing import Any

import orjson

from satellites_repo.errors import VectorIndexError

__all__ = ["parse_document"]


def parse_document(data: bytes, *, expected_format: int, what: str) -> dict[str, Any]:
    """Return the JSON object in ``data`` if its ``format`` is ``expected_format``.

    Anything else (not JSON, not an object, another format) raises ``VectorIndexError``
    naming ``what``, so a reader never guesses at a document it does not understand.
    """
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise VectorIndexError(f"{what} is not valid JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != expected_format:
        raise VectorIndexError(f"{what} is not a format {expected_format} document")
    return document
