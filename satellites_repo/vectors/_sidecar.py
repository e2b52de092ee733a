"""The sidecar file: everything about a namespace that the FAISS index file does not hold.

FAISS stores vectors under int64 labels. The sidecar maps labels back to string ids and
keeps metadata, versions, tombstones, HNSW dead labels and the next label to hand out.
It is column-oriented JSON (orjson) so a namespace of 100k ids encodes in milliseconds.
``decode`` trusts nothing: a sidecar that is malformed raises ``VectorIndexError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from satellites_repo.errors import VectorIndexError
from satellites_repo.vectors._documents import parse_document
from satellites_repo.vectors._types import StoredMetadata
from satellites_repo.vectors._validation import check_metadata_list, check_version

__all__ = ["FORMAT", "SidecarState", "decode", "encode"]

FORMAT = 1

_T = TypeVar("_T")


@dataclass(frozen=True)
class SidecarState:
    """One namespace's id maps and per-id data; the lists are aligned by position."""

    next_label: int
    ids: list[str]
    labels: list[int]
    metadata: list[StoredMetadata | None]
    versions: list[int | None]
    tombstones: dict[str, int]
    dead: list[int]


def encode(state: SidecarState) -> bytes:
    """Serialise ``state`` to JSON bytes."""
    return orjson.dumps(
        {
            "format": FORMAT,
            "next_label": state.next_label,
            "ids": state.ids,
            "labels": state.labels,
            "metadata": state.metadata,
            "versions": state.versions,
            "tombstones": state.tombstones,
            "dead": state.dead,
        }
    )


def decode(data: bytes, where: str) -> SidecarState:
    """Parse and check sidecar bytes; raise ``VectorIndexError`` naming ``where`` if bad."""
    raw = parse_document(data, expected_format=FORMAT, what=f"{where}: the sidecar")
    try:
        state = _state(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise VectorIndexError(f"{where}: sidecar is malformed ({exc})") from exc
    _check_consistent(state, where)
    return state


def _state(raw: dict[str, Any]) -> SidecarState:
    next_label = _label(raw["next_label"])
    ids = _column(raw["ids"], _text)
    return SidecarState(
        next_label=next_label,
        ids=ids,
        labels=_column(raw["labels"], _label),
        metadata=_shared_metadata(raw["metadata"]),
        versions=_column(raw["versions"], check_version),
        tombstones={_text(k): _required_version(v) for k, v in _mapping(raw["tombstones"])},
        dead=_column(raw["dead"], _label),
    )


def _check_consistent(state: SidecarState, where: str) -> None:
    count = len(state.ids)
    if not len(state.labels) == len(state.metadata) == len(state.versions) == count:
        raise VectorIndexError(f"{where}: sidecar columns have different lengths")
    if len(set(state.ids)) != count:
        raise VectorIndexError(f"{where}: sidecar repeats an id")
    every_label = state.labels + state.dead
    if len(set(every_label)) != len(every_label):
        raise VectorIndexError(f"{where}: sidecar repeats a label")
    if every_label and max(every_label) >= state.next_label:
        raise VectorIndexError(f"{where}: a label is not below next_label {state.next_label}")


def _column(values: object, convert: Callable[[Any], _T]) -> list[_T]:
    if not isinstance(values, list):
        raise TypeError(f"expected a list, got {type(values).__name__}")
    return [convert(value) for value in values]


def _shared_metadata(values: object) -> list[StoredMetadata | None]:
    """The metadata column, checked, equal mappings sharing one copy as after a rebuild."""
    rows = _column(values, lambda value: value)
    return check_metadata_list(rows, len(rows))


def _mapping(values: object) -> list[tuple[Any, Any]]:
    if not isinstance(values, dict):
        raise TypeError(f"expected an object, got {type(values).__name__}")
    return list(values.items())


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, got {value!r}")
    return value


def _label(value: object) -> int:
    if type(value) is not int or value < 0:
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    return value


def _required_version(value: object) -> int:
    version = check_version(value)
    if version is None:
        raise TypeError("a tombstone needs a version")
    return version
