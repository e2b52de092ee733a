"""Documents written with ``version_type=external`` and the entity's version, one bulk
request per batch, so Elasticsearch itself refuses a stale or replayed write (a 409 that is
expected and skipped). Each ``SearchIndex`` is reached through an alias that points at a
concrete, numbered index, so a reindex can build a new one and swap the alias atomically.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError, TransportError

from satellites_repo.backends._isolation import bisected, rejected_error
from satellites_repo.backends.elasticsearch._checks import check_capabilities
from satellites_repo.backends.elasticsearch._cursor import binding, read_cursor, write_cursor
from satellites_repo.backends.elasticsearch._document import document, document_version
from satellites_repo.backends.elasticsearch._evolve import Declared, evolve
from satellites_repo.backends.elasticsearch._mapping import recorded_mappings
from satellites_repo.backends.elasticsearch._query import (
    es_aggregations,
    es_knn,
    es_query,
    es_sort,
    facet_counts,
    similarity,
    suggestion,
)
from satellites_repo.backends.elasticsearch._reindex import Reindexed, reindex
from satellites_repo.errors import (
    ProjectionError,
    Rejection,
    RepositoryError,
    UnavailableError,
)
from satellites_repo.health import proven
from satellites_repo.model import (
    ROW_VERSION_FIELD,
    Change,
    DenseVector,
    Operation,
    RankedHit,
    RankedPage,
    SearchIndex,
    Suggestion,
)
from satellites_repo.model.codec import same_vector

if TYPE_CHECKING:
    from satellites_repo.config import ElasticsearchConfig
    from satellites_repo.model import (
        EntitySpec,
        Registry,
        SuggestQuery,
        TextQuery,
        VectorField,
        VectorQuery,
    )
    from satellites_repo.types import Held, Progress, RowSource

__all__ = ["ElasticsearchBackend"]

logger = logging.getLogger(__name__)

ERRORS = (ApiError, TransportError)
_SKIPPED_STATUSES = {409}  # a newer version is already indexed: the write is stale
_RETRYABLE = {429, 500, 502, 503, 504}  # the item may go through later: owed, not dead
_INDEX_CONDITIONS = {  # the index, not the row, is at fault: owed until it is fixed
    "index_not_found_exception",  # the alias is missing (require_alias)
    "index_closed_exception",
    "cluster_block_exception",  # e.g. read-only after the disk flood-stage watermark
}
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
"""A document's text beyond this is refused (dead-lettered) instead of sent: Elasticsearch
would take minutes over it or refuse the whole request, and never get the row."""
SCAN_BATCH = 1000
MAX_WINDOW = 10_000
"""Elasticsearch's ``index.max_result_window``: ``offset + limit`` must stay below it."""

Refresh = Literal["false", "true", "wait_for"]


class ElasticsearchBackend:
    """Indexes and ranks the repositories that declare a ``SearchIndex``, and those whose
    ``VectorField`` uses this engine (``engine="elasticsearch"``: a ``dense_vector`` field
    in the same document, written by the same versioned bulk request)."""

    name = "elasticsearch"
    shared = True

    def __init__(self, config: ElasticsearchConfig, registry: Registry) -> None:
        self._config = config
        self._registry = registry
        self._client: AsyncElasticsearch | None = None
        self._indices = {spec.table: _document_index(spec) for spec in registry.specs}

    @property
    def client(self) -> AsyncElasticsearch:
        """The native ``AsyncElasticsearch`` client (open between ``open`` and ``close``)."""
        if self._client is None:
            raise UnavailableError(self.name, "not connected")
        return self._client

    def alias(self, index: SearchIndex) -> str:
        return f"{self._config.index_prefix}{index.index}"

    def index_of(self, spec: EntitySpec) -> SearchIndex | None:
        """The repository's document index: its ``SearchIndex``, plus its vector if any."""
        return self._indices.get(spec.table)

    def covers(self, spec: EntitySpec) -> bool:
        return self.index_of(spec) is not None

    def columns_held(self, spec: EntitySpec) -> frozenset[str] | None:
        """The document's columns, its computed fields' and ``index_when``'s inputs."""
        return self._index(spec).columns

    def holds_vectors(self, spec: EntitySpec) -> bool:
        return _engine_vectors(spec) is not None

    def _index(self, spec: EntitySpec) -> SearchIndex:
        index = self.index_of(spec)
        assert index is not None
        return index

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, bring each existing index up to its declaration (``_evolve``), then
        create ``<alias>-000001`` behind each alias that does not exist."""
        client = _client(self._config)
        self._client = await proven(client, _cluster_answers, client.close)
        # Not ``check()``: a cluster that is red for a moment (another index being created)
        # must not fail start; health reports it, and the relay retries what it refuses.
        indices = [index for index in self._indices.values() if index is not None]
        try:
            await check_capabilities(self.client, indices)
            await evolve(self.client, self._declared(), self._config.on_mapping_conflict)
            for index in indices:
                await self._ensure_index(index)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def check(self) -> None:
        health = await _cluster_answers(self.client)
        if health["status"] == "red":
            raise RuntimeError("cluster status is red")

    def _declared(self) -> list[Declared]:
        return [
            Declared(self.alias(index), index, spec.name)
            for spec in self._registry.specs
            if (index := self.index_of(spec)) is not None
        ]

    async def _ensure_index(self, index: SearchIndex) -> None:
        alias = self.alias(index)
        if await self.client.indices.exists_alias(name=alias):
            return
        try:
            await self.create_index(index, f"{alias}-000001", aliased=True)
        except BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
        logger.info("created search index %s-000001 behind alias %s", alias, alias)

    # -- indices behind aliases ----------------------------------------------------------

    async def create_index(self, index: SearchIndex, name: str, *, aliased: bool) -> None:
        """Create the concrete index ``name`` with the declared mappings, which it records."""
        aliases = {self.alias(index): {"is_write_index": True}} if aliased else None
        await self.client.indices.create(
            index=name,
            mappings=recorded_mappings(index),
            settings=dict(index.settings),
            aliases=aliases,
        )

    async def indices_of(self, index: SearchIndex) -> tuple[list[str], list[str]]:
        """(indices behind the alias, indices this library created for it: leftovers).

        Only names this library gives (``<alias>-000001``, ``<alias>-<20-digit stamp>``)
        are leftovers: ``<alias>-archive-000001`` belongs to someone else and is never
        touched. Whatever the alias points at counts as behind it, so a swap moves the
        alias off an index the library did not create.
        """
        alias = self.alias(index)
        ours = re.compile(re.escape(alias) + r"-(?:000001|\d{20})")
        found = await self.client.indices.get(index=f"{alias}-*", allow_no_indices=True)
        pointed = await self.client.options(ignore_status=404).indices.get_alias(name=alias)
        behind = sorted(pointed.body) if pointed.meta.status == 200 else []
        created = {name for name in found if ours.fullmatch(name)}
        return behind, sorted(created - set(behind))

    async def swap_alias(self, index: SearchIndex, new_name: str) -> list[str]:
        """Point the alias at ``new_name`` in one atomic step; returns the indices it left."""
        alias = self.alias(index)
        behind, _ = await self.indices_of(index)
        actions: list[Mapping[str, Any]] = [
            {"remove": {"index": name, "alias": alias}} for name in behind
        ]
        actions.append({"add": {"index": new_name, "alias": alias, "is_write_index": True}})
        await self.client.indices.update_aliases(actions=actions)
        return [name for name in behind if name != new_name]

    # -- writes --------------------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> None:
        await self.write(changes)

    async def write(
        self, changes: Sequence[Change], *, into: str | None = None, refresh: Refresh | None = None
    ) -> None:
        """Bulk requests; ``into`` names a concrete index to write (a reindex's new one).

        ``refresh`` overrides the configured refresh policy for this request. Rows are
        isolated: a document Elasticsearch refuses (an item error, a request-level 400 or
        413 found by bisection, a document over ``MAX_DOCUMENT_BYTES``) is reported alone
        in ``ProjectionError.rejected``; every other row of the batch is written.
        """
        writes: list[_Write] = []
        refused: list[tuple[_Write, Rejection]] = []
        for change in changes:
            spec = self._registry.spec_of_table(change.table)
            if spec is None or self.index_of(spec) is None:
                continue
            write = _Write(change, self._operation(spec, change, into))
            size = _document_bytes(write)
            too_many = change.related.refused if change.related is not None else None
            if too_many is not None and spec.indexed(change):
                refused.append((write, Rejection(too_many)))
            elif size > MAX_DOCUMENT_BYTES:
                reason = f"document of {size} bytes is over the {MAX_DOCUMENT_BYTES}-byte limit"
                refused.append((write, Rejection(reason)))
            else:
                writes.append(write)
        try:
            refused += await bisected(
                writes, lambda batch: self._bulk(batch, refresh, into is None), _request_refusal
            )
        except ERRORS as exc:
            raise ProjectionError(self.name, f"bulk request failed: {exc}") from exc
        error = rejected_error(self.name, "document(s)", ((w.change, r) for w, r in refused))
        if error is not None:
            raise error

    async def _bulk(
        self, writes: Sequence[_Write], refresh: Refresh | None, require_alias: bool
    ) -> list[tuple[_Write, Rejection]]:
        """One bulk request; the rows whose item failed, each with why (by position).

        ``require_alias``: a write through the alias never auto-creates an index with a
        dynamic mapping where the alias is missing; the row stays owed instead.
        """
        operations = [operation for write in writes for operation in write.operations]
        response = await self.client.bulk(
            operations=operations,
            refresh=refresh or self._config.refresh,
            require_alias=require_alias,
        )
        if not response["errors"]:
            return []
        refused = []
        for write, item in zip(writes, response["items"], strict=True):
            ((action, result),) = item.items()
            status = int(result.get("status", 0))
            if status < 300 or status in _SKIPPED_STATUSES:
                continue
            if action == "delete" and status == 404:
                continue
            error = result.get("error", {})
            reason = f"{status} {error.get('type', 'error')}: {error.get('reason', 'unknown')}"
            index_level = error.get("type") in _INDEX_CONDITIONS
            permanent = status not in _RETRYABLE and not index_level
            refused.append((write, Rejection(reason, permanent=permanent)))
        return refused

    def _operation(
        self, spec: EntitySpec, change: Change, into: str | None
    ) -> list[Mapping[str, Any]]:
        index = self._index(spec)
        meta = {
            "_index": into or self.alias(index),
            "_id": change.key,
            "version": document_version(spec, index, change),
            # A repair may replace a document at its own version (its content drifted).
            "version_type": "external_gte"
            if change.operation is Operation.REPAIRED
            else "external",
        }
        if not spec.indexed(change):  # deleted, or no longer matching ``index_when``
            return [{"delete": meta}]
        return [{"index": meta}, document(spec, index, change)]

    # -- TextRanker ----------------------------------------------------------------------

    async def rank(self, spec: EntitySpec, request: TextQuery) -> RankedPage:
        """One page; it asks for one hit more than ``limit`` to know whether more follow."""
        index = self._index(spec)
        if request.after is None and request.offset + request.limit >= MAX_WINDOW:
            raise ValueError(
                f"offset + limit must stay below {MAX_WINDOW}; page deeper with "
                "after=page.next_cursor"
            )
        if request.after is not None and request.offset:
            raise ValueError("give after= or offset=, not both")
        unset = None if request.include_deleted else spec.soft_delete
        query = es_query(index, request.query, request.filters, unset=unset)
        sort = es_sort(index, request.sort)
        bound_to = binding(index.index, query, sort)
        highlight: dict[str, Any] | None = None
        if request.highlight and index.text_fields:
            highlight = {"fields": {name: {} for name in index.text_fields}}
        response = await self._search(
            spec,
            query=query,
            sort=sort,
            search_after=None if request.after is None else read_cursor(request.after, bound_to),
            size=request.limit + 1,
            from_=request.offset,
            aggregations=es_aggregations(index, request.facets),
            highlight=highlight,
            source=False,
            track_scores=True,
            track_total_hits=True,
        )
        found = response["hits"]["hits"]
        shown = found[: request.limit]
        hits = [
            RankedHit(hit["_id"], float(hit["_score"] or 0.0), hit.get("highlight", {}))
            for hit in shown
        ]
        more = len(found) > request.limit
        return RankedPage(
            hits,
            int(response["hits"]["total"]["value"]),
            facet_counts(index, response.get("aggregations", {}), request.facets),
            write_cursor(shown[-1]["sort"], bound_to) if more else None,
        )

    async def suggest(self, spec: EntitySpec, request: SuggestQuery) -> list[Suggestion]:
        """Rows whose ``field`` has words starting as typed, best first (no hydration)."""
        index = self._index(spec)
        unset = None if request.include_deleted else spec.soft_delete
        match = suggestion(index, request.field, request.prefix)
        response = await self._search(
            spec,
            query=es_query(index, match, request.filters, unset=unset),
            size=request.limit,
            source=[request.field],
        )
        return [
            Suggestion(
                hit["_id"],
                str(hit.get("_source", {}).get(request.field) or ""),
                float(hit["_score"] or 0.0),
            )
            for hit in response["hits"]["hits"]
        ]

    async def _search(self, spec: EntitySpec, **request: Any) -> Mapping[str, Any]:
        """One search of ``spec``'s index, its failures as library errors."""
        index = self._index(spec)
        search = self.client.search(index=self.alias(index), **request)
        return dict((await self._searched(spec, index, search)).body)

    # -- VectorRanker and HybridRanker ---------------------------------------------------

    async def nearest(self, spec: EntitySpec, request: VectorQuery) -> list[tuple[str, float]]:
        """The ``k`` nearest documents by a filtered kNN search over the dense_vector field."""
        index, field = self._index(spec), _vectors_of(spec)
        response = await self._search(
            spec, knn=es_knn(index, field, request), size=request.k, source=False
        )
        return _neighbours(index, response)

    async def rank_both(
        self, spec: EntitySpec, text: TextQuery, vector: VectorQuery
    ) -> tuple[RankedPage, list[tuple[str, float]]]:
        """The text ranking and the kNN ranking in one ``msearch`` round trip."""
        index, field = self._index(spec), _vectors_of(spec)
        alias = self.alias(index)
        unset = None if text.include_deleted else spec.soft_delete
        searches: list[Mapping[str, Any]] = [
            {"index": alias},
            {
                "query": es_query(index, text.query, text.filters, unset=unset),
                "size": text.limit,
                "from": text.offset,
                "_source": False,
                "track_total_hits": True,
            },
            {"index": alias},
            {"knn": es_knn(index, field, vector), "size": vector.k, "_source": False},
        ]
        response = await self._searched(spec, index, self.client.msearch(searches=searches))
        text_result, vector_result = response["responses"]
        for result in (text_result, vector_result):
            if "error" in result:
                raise RepositoryError(
                    f"{spec.name}: Elasticsearch refused the query on {index.index!r}: "
                    f"{_error_reason(result['error'])}"
                )
        return _ranked_page(text_result), _neighbours(index, vector_result)

    async def _searched(self, spec: EntitySpec, index: SearchIndex, search: Awaitable[Any]) -> Any:
        """Await one search call within the deadline, its errors translated."""
        try:
            async with asyncio.timeout(self._config.call_timeout):
                return await search
        except TimeoutError as exc:
            raise UnavailableError(self.name, f"search of {index.index!r} timed out") from exc
        except ApiError as exc:
            if exc.status_code in (400, 404):
                raise RepositoryError(
                    f"{spec.name}: Elasticsearch refused the query on {index.index!r}: "
                    f"{_reason(exc)}"
                ) from exc
            raise UnavailableError(self.name, f"search of {index.index!r}: {exc}") from exc
        except TransportError as exc:
            raise UnavailableError(self.name, f"search of {index.index!r}: {exc}") from exc

    # -- operations ----------------------------------------------------------------------

    async def rebuild(self, spec: EntitySpec, source: RowSource, progress: Progress) -> int:
        return (await self.reindex(spec, source, progress)).rows

    async def reindex(self, spec: EntitySpec, source: RowSource, progress: Progress) -> Reindexed:
        """``rebuild``, reporting the new index, the replayed rows and the indices dropped."""
        return await reindex(self, spec, source, progress)

    def drift_probe(self, spec: EntitySpec) -> _SearchProbe:
        return _SearchProbe(self, spec)


class _SearchProbe:
    """Documents compared as ``RowCodec.digest`` of their ``_source`` and of the document
    the row makes (``document``, computed fields included)."""

    def __init__(self, backend: ElasticsearchBackend, spec: EntitySpec) -> None:
        self._client = backend.client
        self._spec = spec
        self._index = backend._index(spec)
        self._alias = backend.alias(self._index)

    def expected(self, row: Change) -> bytes | None:
        if not self._spec.indexed(row):
            return None
        try:
            return self._spec.codec.digest(document(self._spec, self._index, row))
        except ProjectionError:  # a computed field fails: the row cannot be indexed
            return None

    async def held(self, rows: Sequence[Change]) -> Mapping[str, Held | None]:
        # Elasticsearch 9 leaves dense vectors out of _source unless asked (the client
        # has no argument for it yet).
        params = {} if self._index.vector is None else {"_source_exclude_vectors": "false"}
        response = await self._client.perform_request(
            "POST",
            f"/{self._alias}/_mget",
            params=params,
            headers={"accept": "application/json", "content-type": "application/json"},
            body={"ids": [row.key for row in rows]},
        )
        by_key = {row.key: row for row in rows}
        return {
            doc["_id"]: (self._version(doc), self._digest(doc["_source"], by_key[doc["_id"]]))
            if doc.get("found")
            else None
            for doc in response["docs"]
        }

    def _version(self, document: Mapping[str, Any]) -> int:
        """The row version a document was built from: with related fields, the one it
        records (its own version was taken when it was built)."""
        if self._index.related:
            return int(document["_source"][ROW_VERSION_FIELD])
        return int(document["_version"])

    def _digest(self, source: dict[str, Any], row: Change) -> bytes:
        """The digest of a document. Elasticsearch leaves a null vector out of _source and
        rebuilds a cosine one from its unit vector: a vector equal to the row's up to
        float32 rounding counts as the row's."""
        vector = self._index.vector
        if vector is not None:
            held, expected = source.get(vector.column), row.payload.get(vector.column)
            if held is not None and expected is not None and same_vector(held, expected):
                held = expected
            source = {**source, vector.column: held}
        return self._spec.codec.digest(source)

    async def count(self) -> int:
        await self._client.indices.refresh(index=self._alias)
        return int((await self._client.count(index=self._alias))["count"])

    async def entries(
        self, sample: int | None, skip: Container[str]
    ) -> AsyncIterator[list[tuple[str, int]]]:
        """Every document in index order, or ``sample`` of them by a random score."""
        if sample is not None:
            response = await self._client.search(
                index=self._alias,
                query={"function_score": {"random_score": {}}},
                size=min(sample, MAX_WINDOW - 1),
                source=False,
                version=True,
            )
            yield _unskipped(response["hits"]["hits"], skip)
            return
        after: list[Any] | None = None
        while True:
            response = await self._client.search(
                index=self._alias,
                size=SCAN_BATCH,
                source=False,
                version=True,
                sort=["_doc"],
                search_after=after,
            )
            hits = response["hits"]["hits"]
            if not hits:
                return
            yield _unskipped(hits, skip)
            after = hits[-1]["sort"]


def _unskipped(hits: Sequence[Mapping[str, Any]], skip: Container[str]) -> list[tuple[str, int]]:
    return [(hit["_id"], int(hit["_version"])) for hit in hits if hit["_id"] not in skip]


@dataclass(frozen=True, slots=True)
class _Write:
    """One row's bulk actions (an index action and its document, or a delete)."""

    change: Change
    operations: list[Mapping[str, Any]]


def _document_bytes(write: _Write) -> int:
    """The UTF-8 size of the document's strings: what makes a document big."""
    document = write.operations[-1]
    return sum(len(value.encode()) for value in document.values() if isinstance(value, str))


def _request_refusal(exc: Exception) -> Rejection | None:
    """A bulk request refused as a whole for its content (bisected to find the rows)."""
    if isinstance(exc, ApiError) and exc.status_code in (400, 413):
        return Rejection(f"request refused ({exc.status_code} {_reason(exc)})")
    return None


def _engine_vectors(spec: EntitySpec) -> VectorField | None:
    vectors = spec.vectors
    return vectors if vectors is not None and vectors.engine == "elasticsearch" else None


def _vectors_of(spec: EntitySpec) -> VectorField:
    vectors = _engine_vectors(spec)
    if vectors is None:
        raise RepositoryError(f"{spec.name}: its vectors are not indexed in Elasticsearch")
    return vectors


def _document_index(spec: EntitySpec) -> SearchIndex | None:
    """The ``SearchIndex``, with the dense_vector field and keyword metadata when the
    repository's vectors use this engine (a new index for a repository without one)."""
    vectors = _engine_vectors(spec)
    if vectors is None:
        return spec.search
    dims = spec.vector_dimension
    assert dims is not None
    dense = DenseVector(vectors.column, dims, vectors.similarity, vectors.index_options)
    base = spec.search
    if base is None:
        fields: dict[str, Any] = {name: "keyword" for name in vectors.metadata}
        return SearchIndex(vectors.namespace or spec.table.lower(), fields, vector=dense)
    merged = dict(base.fields)
    for name in vectors.metadata:
        merged.setdefault(name, "keyword")
    return dataclasses.replace(base, fields=merged, vector=dense)


def _ranked_page(response: Mapping[str, Any]) -> RankedPage:
    hits = [
        RankedHit(hit["_id"], float(hit["_score"] or 0.0), hit.get("highlight", {}))
        for hit in response["hits"]["hits"]
    ]
    return RankedPage(hits, int(response["hits"]["total"]["value"]))


def _neighbours(index: SearchIndex, response: Mapping[str, Any]) -> list[tuple[str, float]]:
    return [
        (hit["_id"], similarity(index, float(hit["_score"] or 0.0)))
        for hit in response["hits"]["hits"]
    ]


def _client(config: ElasticsearchConfig) -> AsyncElasticsearch:
    auth: dict[str, Any] = {}
    password = config.password_value()
    if config.username and password:
        auth["basic_auth"] = (config.username, password)
    # No client retries: the deadlines (call_timeout, delivery_timeout) bound each call,
    # and the outbox relay (or a reindex's own backoff) is what tries again.
    return AsyncElasticsearch(
        hosts=config.hosts,
        request_timeout=config.timeout,
        retry_on_timeout=False,
        max_retries=0,
        **auth,
    )


async def _cluster_answers(client: AsyncElasticsearch) -> Mapping[str, Any]:
    # Cluster health rather than GET /: minimal distributions (the integ-test zip) lack the
    # root endpoint, and health is what a readiness check means anyway.
    response = await client.cluster.health()
    return dict(response.body)


def _reason(exc: ApiError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    return _error_reason(info.get("error", {})) or str(exc.message)


def _error_reason(error: object) -> str:
    """The reason (else the type) an Elasticsearch error body gives."""
    if not isinstance(error, dict):
        return str(error)
    return str(error.get("reason") or error.get("type") or "")
