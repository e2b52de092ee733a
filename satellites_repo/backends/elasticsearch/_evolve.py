"""Bringing each existing search index up to its declaration, once, at start.

A field added to a ``SearchIndex`` is put into the live index (``put_mapping``) before
anything is written, so the strict mapping accepts the new documents at once. A field whose
type or options changed cannot change in place: start fails naming it and the command
that builds a new index with the declared mapping (``satellites reindex``, which starts
despite the conflict: it is the fix). Every changed field is found before anything is put,
so a start that fails for one leaves every index as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from elasticsearch import ApiError, AsyncElasticsearch

from satellites_repo.backends.elasticsearch._mapping import RECORD, MappingDiff, diff
from satellites_repo.errors import ConfigurationError

if TYPE_CHECKING:
    from satellites_repo.config import MappingConflict
    from satellites_repo.model import SearchIndex

__all__ = ["Declared", "evolve"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Declared:
    """One search index as the application declares it, and the repository declaring it."""

    alias: str
    index: SearchIndex
    repository: str

    @property
    def fix(self) -> str:
        return f"satellites reindex --repository {self.repository} --target elasticsearch"


@dataclass(frozen=True, slots=True)
class _Plan:
    declared: Declared
    name: str  # the concrete index behind the alias
    meta: Mapping[str, Any]  # its ``_meta``, kept beside the record
    diff: MappingDiff


async def evolve(
    client: AsyncElasticsearch, declared: Sequence[Declared], on_conflict: MappingConflict
) -> None:
    """Put the added fields into every index behind an existing alias; a changed field
    raises ``ConfigurationError`` naming it (``on_conflict="warn"``: logs it instead)."""
    plans = [plan for item in declared for plan in await _plans(client, item)]
    conflicts = [_conflict(plan) for plan in plans if plan.diff.changed]
    if conflicts and on_conflict == "fail":
        raise ConfigurationError(
            "; ".join(conflicts) + " (or set SATELLITES_ELASTICSEARCH__ON_MAPPING_CONFLICT=warn "
            "to run on the index as it is)"
        )
    for conflict in conflicts:
        logger.warning("%s; running on the index as it is", conflict)
    for plan in plans:
        await _apply(client, plan)


async def _plans(client: AsyncElasticsearch, declared: Declared) -> list[_Plan]:
    found = await client.options(ignore_status=404).indices.get_mapping(index=declared.alias)
    if found.meta.status == 404:
        return []  # created by ``open`` with the declared mapping
    plans = []
    for name, body in sorted(found.body.items()):
        live: Mapping[str, Any] = body.get("mappings", {})
        meta = live.get("_meta")
        plans.append(
            _Plan(
                declared,
                name,
                meta if isinstance(meta, Mapping) else {},
                diff(live, declared.index),
            )
        )
    return plans


def _conflict(plan: _Plan) -> str:
    index = plan.declared.index.index
    changes = "; ".join(str(change) for change in plan.diff.changed)
    return (
        f"SearchIndex {index!r} ({plan.name}) no longer matches its declaration: {changes}. "
        f"An existing field cannot change in place: run `{plan.declared.fix}`, which starts "
        "despite this, builds a new index with the declared mapping and moves the alias to it"
    )


async def _apply(client: AsyncElasticsearch, plan: _Plan) -> None:
    added, index = plan.diff.added, plan.declared.index.index
    if plan.diff.dropped:
        logger.warning(
            "search index %s (SearchIndex %r) holds %s, no longer declared: left in place "
            "(documents need not have them); `%s` builds the index without them",
            plan.name,
            index,
            ", ".join(plan.diff.dropped),
            plan.declared.fix,
        )
    if not added and not plan.diff.record_stale:
        return
    try:
        await client.indices.put_mapping(
            index=plan.name, properties=added, meta={**plan.meta, RECORD: plan.diff.record}
        )
    except ApiError as exc:
        if exc.status_code != 400:
            raise
        raise ConfigurationError(
            f"SearchIndex {index!r} ({plan.name}): Elasticsearch refused to add "
            f"{', '.join(added) or 'the record of its declaration'}: {exc}. Fix the "
            "declaration if a new index would refuse it too; otherwise the index holds "
            f"something in the way, and `{plan.declared.fix}` builds it anew"
        ) from exc
    if added:
        logger.info(
            "added %s to search index %s (SearchIndex %r); documents indexed before hold no "
            "value for them until their rows are written again or `%s` runs",
            ", ".join(added),
            plan.name,
            index,
            plan.declared.fix,
        )
