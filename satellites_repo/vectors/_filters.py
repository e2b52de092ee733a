"""Inverted index over metadata, so a filtered query knows its candidates up front.

FAISS ranks vectors; it knows nothing about metadata. Filtering the top-k after the
search would return fewer than ``top_k`` hits whenever the nearest vectors do not
match. Instead the namespace asks this index for the labels that match the filter and
hands them to FAISS as an ``IDSelectorBatch``, so only matching vectors are ranked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set

import numpy as np

from satellites_repo.vectors._types import JsonScalar, StoredMetadata

__all__ = ["MetadataIndex"]

_ValueKey = tuple[str, JsonScalar]


def _value_key(value: JsonScalar) -> _ValueKey:
    # bool is a subclass of int and True == 1 in Python; tag values so a filter on
    # True does not match 1. Ints and floats share a tag: JSON does not tell 1 from 1.0.
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if value is None:
        return ("null", None)
    return ("text", value)


def _stored_values(value: JsonScalar | list[JsonScalar]) -> Iterable[JsonScalar]:
    return value if isinstance(value, list) else (value,)


class MetadataIndex:
    """Field -> value -> set of FAISS labels, kept in step with the stored metadata.

    A list value is indexed under each of its elements, so a filter matches a stored
    list when any element matches. Not thread-safe: the owning namespace's lock guards it.
    """

    def __init__(self) -> None:
        self._postings: dict[str, dict[_ValueKey, set[int]]] = {}

    def add_many(self, labels: Sequence[int], metadata: Sequence[StoredMetadata]) -> None:
        """Index each label under every field and value of its metadata.

        Rows that share one metadata object (``check_metadata_list`` shares equal ones)
        are indexed together: the rows are grouped by object in numpy, then one set
        update per group, field and value instead of one per row.
        """
        if not labels:
            return
        objects = np.fromiter(map(id, metadata), dtype=np.uint64, count=len(metadata))
        order = np.argsort(objects, kind="stable")
        starts = np.concatenate(([0], np.flatnonzero(np.diff(objects[order])) + 1)).tolist()
        positions = order.tolist()
        # The label objects themselves (not new ints): the id maps hold the same ones.
        grouped = [labels[p] for p in positions]
        for start, stop in zip(starts, [*starts[1:], len(positions)], strict=True):
            stored, group = metadata[positions[start]], grouped[start:stop]
            for field, value in stored.items():
                by_value = self._postings.setdefault(field, {})
                for item in _stored_values(value):
                    by_value.setdefault(_value_key(item), set()).update(group)

    def remove(self, label: int, metadata: StoredMetadata) -> None:
        """Forget ``label``; ``metadata`` must be what it was added with."""
        for field, value in metadata.items():
            by_value = self._postings.get(field)
            if by_value is None:
                continue
            for item in _stored_values(value):
                key = _value_key(item)
                labels = by_value.get(key)
                if labels is None:
                    continue
                labels.discard(label)
                if not labels:
                    del by_value[key]
            if not by_value:
                del self._postings[field]

    def matching(self, filter: dict[str, list[JsonScalar]]) -> Set[int]:
        """Return the labels whose metadata satisfies every field of ``filter``.

        Within one field the values are OR-ed, across fields AND-ed. Cost: one set union
        per field plus an intersection starting from the smallest set, so roughly the
        size of the smallest field's matches. The result may be internal state: read it,
        do not keep or change it.
        """
        per_field: list[Set[int]] = []
        for field, wanted in filter.items():
            by_value = self._postings.get(field, {})
            found = [by_value[k] for k in map(_value_key, wanted) if k in by_value]
            if not found:
                return frozenset()
            per_field.append(found[0] if len(found) == 1 else set().union(*found))
        per_field.sort(key=len)
        smallest = per_field[0]
        if len(per_field) == 1:
            return smallest
        return {label for label in smallest if all(label in other for other in per_field[1:])}
