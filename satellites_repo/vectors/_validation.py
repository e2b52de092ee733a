"""Argument checks: each turns caller input into the form the index stores, or raises.

Every function here either returns a validated private copy or raises ``ValueError``
naming the argument and the problem. They run before any state is touched, so a bad
item anywhere in a batch rejects the whole batch and changes nothing. Vectors are
checked in ``_rows``, which also decides where they are normalised.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping, Sequence, Sized
from numbers import Integral, Real
from typing import Any, cast

from satellites_repo.vectors._types import JsonScalar, MetadataValue, StoredMetadata

__all__ = [
    "check_filter",
    "check_id",
    "check_ids",
    "check_length",
    "check_metadata",
    "check_metadata_list",
    "check_namespace",
    "check_top_k",
    "check_version",
    "check_versions",
]

# A namespace becomes a file name inside the snapshot folder: no separators, no leading
# dot (".", "..", hidden files), nothing a shell or another OS would trip over.
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)
_SHAREABLE = frozenset({str, int, bool, type(None)})
"""Metadata value types whose equal values are interchangeable (floats: -0.0 == 0.0)."""


def check_namespace(namespace: object) -> str:
    """Return ``namespace`` if it is a safe name (``^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$``)."""
    if not isinstance(namespace, str) or _NAMESPACE.fullmatch(namespace) is None:
        raise ValueError(
            f"namespace {namespace!r} is invalid: use 1 to 128 letters, digits, '_', '.' "
            "or '-', starting with a letter or digit"
        )
    return namespace


def check_id(vector_id: object, where: str = "vector_id") -> str:
    """Return ``vector_id`` if it is a non-empty string that can be written as UTF-8."""
    if not isinstance(vector_id, str) or not vector_id:
        raise ValueError(f"{where} must be a non-empty string, got {vector_id!r}")
    _check_text(vector_id, where)
    return vector_id


def check_ids(ids: Sequence[str]) -> list[str]:
    """Return the ids as a list, each checked like ``check_id``."""
    if isinstance(ids, str | bytes):
        raise ValueError("ids must be a sequence of strings, not a single string")
    out = list(ids)
    # The common case (non-empty ASCII strings) is decided in C, without a Python-level
    # step per id; anything else takes the slow path, which names the bad id.
    with contextlib.suppress(TypeError):
        if all(out) and all(map(str.isascii, out)):
            return out
    for position, key in enumerate(out):
        check_id(key, f"ids[{position}]")
    return out


def check_length(name: str, values: Sized, expected: int) -> None:
    """Reject a batch argument whose length differs from the number of ids."""
    if len(values) != expected:
        raise ValueError(f"{name} has {len(values)} items but ids has {expected}")


def check_top_k(top_k: object) -> int:
    """Return ``top_k`` if it is a positive integer."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    return top_k


def check_version(version: object, where: str = "version") -> int | None:
    """Return ``version`` if it is ``None`` or an integer in ``[0, 2**63)``."""
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, Integral):
        raise ValueError(f"{where} must be an integer or None, got {version!r}")
    value = int(version)
    if not 0 <= value <= _INT64_MAX:
        raise ValueError(f"{where} must be between 0 and 2**63 - 1, got {value}")
    return value


def check_versions(versions: Sequence[int | None] | None, expected: int) -> list[int | None]:
    """Return one checked version per id (all ``None`` when ``versions`` is ``None``)."""
    if versions is None:
        return [None] * expected
    check_length("versions", versions, expected)
    out = list(versions)
    # Plain ints in range (the common case) are decided in C, without a call per item.
    if set(map(type, out)) == {int}:
        plain = cast(list[int], out)
        if min(plain) >= 0 and max(plain) <= _INT64_MAX:
            return out
    return [check_version(v, f"versions[{i}]") for i, v in enumerate(out)]


def check_metadata(metadata: object, where: str = "metadata") -> StoredMetadata | None:
    """Return a private copy of ``metadata`` if it holds only JSON-safe values.

    Keys are strings; values are ``str``, ``int`` (64-bit), finite ``float``, ``bool``,
    ``None`` or a list of those. ``None`` stays ``None`` and ``{}`` stays ``{}``.
    """
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise ValueError(f"{where} must be a mapping or None, got {type(metadata).__name__}")
    out: StoredMetadata = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ValueError(f"{where} keys must be strings, got {key!r}")
        _check_text(key, f"{where} key")
        out[key] = _check_value(value, f"{where}[{key!r}]")
    return out


def check_metadata_list(
    metadata: Sequence[Mapping[str, Any] | None] | None, expected: int
) -> list[StoredMetadata | None]:
    """Return one checked metadata copy per id (all ``None`` when ``metadata`` is ``None``)."""
    if metadata is None:
        return [None] * expected
    check_length("metadata", metadata, expected)
    shared: dict[tuple[Any, ...], StoredMetadata] = {}
    return [_checked_shared(m, f"metadata[{i}]", shared) for i, m in enumerate(metadata)]


def _checked_shared(
    metadata: object, where: str, shared: dict[tuple[Any, ...], StoredMetadata]
) -> StoredMetadata | None:
    """``check_metadata``, but equal mappings of plain scalars share one checked copy.

    Metadata such as a tenant repeats across a batch: checking each distinct value once
    is faster, and the index holding one dict for all of them is far smaller. The key
    carries each value's type, so ``True``, ``1`` and ``1.0`` stay apart (floats, lists
    and other values are checked and stored one by one).
    """
    if type(metadata) is not dict:
        return check_metadata(metadata, where)
    types = tuple(map(type, metadata.values()))
    if not _SHAREABLE.issuperset(types):
        return check_metadata(metadata, where)
    key = (tuple(metadata.items()), types)
    found = shared.get(key)
    if found is None:
        found = shared[key] = check_metadata(metadata, where) or {}
    return found


def check_filter(filter: Mapping[str, Any] | None) -> dict[str, list[JsonScalar]]:
    """Return the filter as field -> accepted values (empty when there is no filter).

    A scalar means equality, a list, tuple or set means "any of these".
    """
    if filter is None:
        return {}
    if not isinstance(filter, Mapping):
        raise ValueError(f"filter must be a mapping or None, got {type(filter).__name__}")
    out: dict[str, list[JsonScalar]] = {}
    for key, wanted in filter.items():
        if not isinstance(key, str):
            raise ValueError(f"filter keys must be strings, got {key!r}")
        where = f"filter[{key!r}]"
        if isinstance(wanted, list | tuple | set | frozenset):
            out[key] = [_check_scalar(v, where) for v in wanted]
        else:
            out[key] = [_check_scalar(wanted, where)]
    return out


def _check_value(value: object, where: str) -> MetadataValue:
    if isinstance(value, list | tuple):
        return [_check_scalar(item, where) for item in value]
    return _check_scalar(value, where)


def _check_scalar(value: object, where: str) -> JsonScalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        _check_text(value, where)
        return value
    if isinstance(value, Integral):
        number = int(value)
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise ValueError(f"{where} must fit in a signed 64-bit integer, got {number}")
        return number
    if isinstance(value, Real):
        real = float(value)
        if not math.isfinite(real):
            raise ValueError(f"{where} must be a finite number, got {real}")
        return real
    raise ValueError(
        f"{where} must be a JSON-safe scalar (str, int, float, bool, None) or a list of "
        f"them, got {type(value).__name__}"
    )


def _check_text(text: str, where: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{where} is not valid UTF-8 text ({exc.reason})") from exc
