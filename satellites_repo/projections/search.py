"""The Elasticsearch projection: one bulk request per commit, externally versioned.

Documents are written with ``version_type=external`` and the entity's version, so
Elasticsearch itself refuses a stale or replayed write (a 409 that is expected and
skipped). Each ``SearchIndex`` is reached through an alias that points at a concrete,
numbered index, so a reindex can build a new one and swap the alias atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from elasticsearch import ApiError, BadRequestError, TransportError

from satellites_repo.errors import ProjectionError
from satellites_repo.orm.changeset import Change, Operation

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

    from satellites_repo.config import ElasticsearchConfig
    from satellites_repo.orm.policies import SearchIndex
    from satellites_repo.orm.registry import Registry

__all__ = ["RawHit", "RawPage", "SearchProjection"]

logger = logging.getLogger(__name__)

SEARCH_ERRORS = (ApiError, TransportError)
_SKIPPED_STATUSES = {409}  # a newer version is already indexed: the write is stale


@dataclass(frozen=True, slots=True)
class RawHit:
    key: str
    score: float
    highlights: Mapping[str, list[str]]


@dataclass(frozen=True, slots=True)
class RawPage:
    hits: list[RawHit]
    total: int


class SearchProjection:
    """Indexes and searches the repositories that declare a ``SearchIndex``."""

    name = "elasticsearch"

    def __init__(
        self, client: AsyncElasticsearch, config: ElasticsearchConfig, registry: Registry
    ) -> None:
        self._client = client
        self._config = config
        self._registry = registry

    def alias(self, index: SearchIndex) -> str:
        return f"{self._config.index_prefix}{index.index}"

    def covers(self, change: Change) -> bool:
        spec = self._registry.spec_of_table(change.table)
        return spec is not None and spec.search is not None

    async def ensure_indices(self) -> None:
        """Create ``<alias>-000001`` behind each alias that does not exist yet."""
        for spec in self._registry.specs:
            if spec.search is not None:
                await self._ensure_index(spec.search)

    async def _ensure_index(self, index: SearchIndex) -> None:
        alias = self.alias(index)
        if await self._client.indices.exists_alias(name=alias):
            return
        try:
            await self.create_index(index, f"{alias}-000001", aliased=True)
        except BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
        logger.info("created search index %s-000001 behind alias %s", alias, alias)

    async def create_index(self, index: SearchIndex, name: str, *, aliased: bool) -> None:
        """Create the concrete index ``name`` with the declared mappings."""
        aliases = {self.alias(index): {"is_write_index": True}} if aliased else None
        await self._client.indices.create(
            index=name, mappings=index.mappings(), settings=dict(index.settings), aliases=aliases
        )

    async def indices_of(self, index: SearchIndex) -> tuple[list[str], list[str]]:
        """(indices behind the alias, other indices of this SearchIndex: leftovers)."""
        alias = self.alias(index)
        found = await self._client.indices.get(index=f"{alias}-*", allow_no_indices=True)
        behind = [name for name, info in found.items() if alias in info.get("aliases", {})]
        return behind, sorted(set(found) - set(behind))

    async def swap_alias(self, index: SearchIndex, new_name: str) -> list[str]:
        """Point the alias at ``new_name`` in one atomic step; returns the indices it left."""
        alias = self.alias(index)
        behind, _ = await self.indices_of(index)
        actions: list[Mapping[str, Any]] = [
            {"remove": {"index": name, "alias": alias}} for name in behind
        ]
        actions.append({"add": {"index": new_name, "alias": alias, "is_write_index": True}})
        await self._client.indices.update_aliases(actions=actions)
        return [name for name in behind if name != new_name]

    async def apply(self, changes: Sequence[Change]) -> None:
        await self.write(changes)

    async def write(
        self,
        changes: Sequence[Change],
        *,
        into: str | None = None,
        refresh: Literal["false", "true", "wait_for"] | None = None,
    ) -> None:
        """One bulk request; ``into`` names a concrete index to write (a reindex's new one).

        ``refresh`` overrides the configured refresh policy for this request.
        """
        operations: list[Mapping[str, Any]] = []
        for change in changes:
            spec = self._registry.spec_of_table(change.table)
            if spec is None or spec.search is None:
                continue
            operations.extend(self._operation(spec.search, change, into))
        if not operations:
            return
        try:
            response = await self._client.bulk(
                operations=operations, refresh=refresh or self._config.refresh
            )
        except SEARCH_ERRORS as exc:
            raise ProjectionError("elasticsearch", f"bulk request failed: {exc}") from exc
        if response["errors"]:
            self._raise_item_errors(response["items"])

    def _operation(
        self, index: SearchIndex, change: Change, into: str | None
    ) -> list[Mapping[str, Any]]:
        meta = {
            "_index": into or self.alias(index),
            "_id": change.key,
            "version": change.version,
            "version_type": "external",
        }
        if change.operation is Operation.DELETED:
            return [{"delete": meta}]
        document = {name: change.payload.get(name) for name in index.fields}
        return [{"index": meta}, document]

    @staticmethod
    def _raise_item_errors(items: Sequence[Mapping[str, Any]]) -> None:
        failed = []
        for item in items:
            ((action, result),) = item.items()
            status = result.get("status", 0)
            if status < 300 or status in _SKIPPED_STATUSES:
                continue
            if action == "delete" and status == 404:
                continue
            reason = result.get("error", {}).get("reason", "unknown")
            failed.append(f"{result.get('_id')} ({status} {reason})")
        if failed:
            raise ProjectionError(
                "elasticsearch", f"{len(failed)} document(s) rejected: {'; '.join(failed[:5])}"
            )

    async def search(
        self,
        index: SearchIndex,
        query: Mapping[str, Any],
        *,
        limit: int,
        offset: int,
        highlight: bool,
    ) -> RawPage:
        highlights: dict[str, Any] | None = None
        if highlight and index.text_fields:
            highlights = {"fields": {name: {} for name in index.text_fields}}
        response = await self._client.search(
            index=self.alias(index),
            query=query,
            size=limit,
            from_=offset,
            source=False,
            highlight=highlights,
            track_total_hits=True,
        )
        hits = [
            RawHit(hit["_id"], float(hit["_score"] or 0.0), hit.get("highlight", {}))
            for hit in response["hits"]["hits"]
        ]
        return RawPage(hits, int(response["hits"]["total"]["value"]))
