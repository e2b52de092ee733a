"""How a search index's mapping differs from what its ``SearchIndex`` declares now.

Elasticsearch rewrites a mapping as it stores it: it drops options equal to their defaults
(``"index": true``), adds some (``"analyzer": "default"`` beside a ``search_analyzer``, a
``dense_vector``'s ``index_options``) and fills nested ones in (``m``, ``ef_construction``).
The live mapping alone cannot say what was declared, so every index this library creates
carries the declaration it was built from, in the library's own terms, in its mapping's
``_meta`` (under ``RECORD``), and the diff compares that record with today's declaration
exactly. A field the record lacks (an index created before records existed, or one whose
record a concurrent start overwrote) is read from the live mapping instead, keeping only
the options the declaration sets; an option Elasticsearch left out counts as declared,
since it drops only options equal to their defaults.

Each declared name ends in one of three states: *added* (declared, not in the index:
``put_mapping`` adds it), *changed* (its type or an option differs; or a mapping-level
option such as ``dynamic``, or the analysis settings: only a new index can take those), or
the same. A field in the index that is no longer declared is *dropped*: tolerated, since
the strict mapping still accepts every document the declaration makes; a reindex removes it.
``@key`` is never added in place: every document must hold it (the sort tiebreaker).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from satellites_repo.model import KEY_FIELD

if TYPE_CHECKING:
    from satellites_repo.model import SearchIndex

__all__ = ["RECORD", "Changed", "MappingDiff", "declaration", "diff", "recorded_mappings"]

RECORD = "satellites"
"""The key of the index's ``_meta`` that holds the declaration it was built from."""


@dataclass(frozen=True, slots=True)
class Changed:
    """One declared thing the index holds otherwise; ``held`` is None when it lacks it."""

    what: str
    held: object
    declared: object

    def __str__(self) -> str:
        if self.held is None:
            return f"{self.what} is missing from the index, declared {self.declared}"
        return f"{self.what} is {self.held} in the index, declared {self.declared}"


@dataclass(frozen=True, slots=True)
class MappingDiff:
    """``record``: the declaration the index holds once ``added`` is put (for its ``_meta``);
    ``record_stale``: the index's ``_meta`` does not say that yet."""

    added: dict[str, Any]
    changed: tuple[Changed, ...]
    dropped: tuple[str, ...]
    record: dict[str, Any]
    record_stale: bool


def declaration(index: SearchIndex) -> dict[str, Any]:
    """What an index built for ``index`` records: its mappings and analysis settings."""
    return {"mappings": index.mappings(), "analysis": dict(index.settings.get("analysis", {}))}


def recorded_mappings(index: SearchIndex) -> dict[str, Any]:
    """The mappings to create an index with: the declared ones, recording themselves."""
    return {**index.mappings(), "_meta": {RECORD: declaration(index)}}


def diff(live: Mapping[str, Any], index: SearchIndex) -> MappingDiff:
    """Compare an index's live ``mappings`` (as ``GET _mapping`` gives them) with ``index``."""
    declared = declaration(index)
    wanted: dict[str, Any] = declared["mappings"]
    record = _record_of(live)
    held_level = _held_options(live, wanted, record)
    held = _held_fields(live.get("properties", {}), wanted["properties"], record)
    changed = [
        Changed(f"mapping option {name!r}", held_level.get(name), value)
        for name, value in wanted.items()
        if name != "properties" and _normal(held_level.get(name)) != _normal(value)
    ]
    changed += [
        Changed(f"field {name!r}", held[name], mapping)
        for name, mapping in wanted["properties"].items()
        if name in held and _normal(held[name]) != _normal(mapping)
    ]
    added = {name: m for name, m in wanted["properties"].items() if name not in held}
    if KEY_FIELD in added:
        changed.append(Changed(f"field {KEY_FIELD!r}", None, added.pop(KEY_FIELD)))
    analysis = declared["analysis"] if record is None else record.get("analysis", {})
    if _normal(analysis) != _normal(declared["analysis"]):
        changed.append(Changed("settings 'analysis'", analysis, declared["analysis"]))
    now = {"mappings": {**held_level, "properties": {**held, **added}}, "analysis": analysis}
    return MappingDiff(
        added=added,
        changed=tuple(changed),
        dropped=tuple(sorted(name for name in held if name not in wanted["properties"])),
        record=now,
        record_stale=record is None or _normal(record) != _normal(now),
    )


def _record_of(live: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The declaration the index records, or None (none, or not one this library wrote)."""
    meta = live.get("_meta")
    record = meta.get(RECORD) if isinstance(meta, Mapping) else None
    if not isinstance(record, Mapping):
        return None
    mappings = record.get("mappings")
    if not isinstance(mappings, Mapping) or not isinstance(mappings.get("properties"), Mapping):
        return None
    return record


def _held_options(
    live: Mapping[str, Any], wanted: Mapping[str, Any], record: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The mapping-level options (``dynamic``...) the index holds. Read from the live
    mapping, they are taken as they are: Elasticsearch always shows a non-default one."""
    source = live if record is None else record["mappings"]
    return {name: source[name] for name in wanted if name != "properties" and name in source}


def _held_fields(
    live: Mapping[str, Any], wanted: Mapping[str, Any], record: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Each field the index holds, in the declaration's terms where the record has it."""
    recorded = record["mappings"]["properties"] if record is not None else {}
    held: dict[str, Any] = {}
    for name, mapping in live.items():
        if name in recorded:
            held[name] = recorded[name]
        elif name in wanted and isinstance(mapping, Mapping):
            held[name] = _as_declared(mapping, wanted[name])
        else:
            held[name] = mapping
    return held


def _as_declared(live: Mapping[str, Any], declared: Mapping[str, Any]) -> dict[str, Any]:
    """``live`` restricted to the options ``declared`` sets; one Elasticsearch left out
    was equal to its default, so it counts as declared."""
    seen: dict[str, Any] = {}
    for name, value in declared.items():
        if name not in live:
            seen[name] = value
        elif isinstance(value, Mapping) and isinstance(live[name], Mapping):
            seen[name] = _as_declared(live[name], value)
        else:
            seen[name] = live[name]
    return seen


def _normal(value: object) -> object:
    """One spelling per value: Elasticsearch answers ``true`` for ``"true"``, ``256`` for
    ``"256"``, ``["a"]`` for ``"a"``."""
    if isinstance(value, Mapping):
        return {str(key): _normal(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [_normal(item) for item in value]
        return items[0] if len(items) == 1 else items
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return value
