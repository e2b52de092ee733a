"""Documents written with ``version_type=external`` and the entity's version, one bulk
request per batch, so Elasticsearch itself refuses a stale or replayed write (a 409 that is
expected and skipped). Each ``SearchIndex`` is reached through an alias that points at a
concrete, numbered index, so a reindex can build a new one and swap the alias atomically.

The Elasticsearch vector engine (``VectorField(engine="elasticsearch")``) lives here, not
in a backend of its own: the vector is a ``dense_vector`` field of the same document, so
one versioned write carries the text fields and the vector together (two backends writing
one externally versioned document would refuse each other's writes as stale), and reindex,
verify and the version guards are the document's. A repository with such vectors and no
``SearchIndex`` gets a document index of its own (``VectorField.namespace``, else the table).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError, TransportError

from satellites_repo.backends.elasticsearch._query import es_knn, es_query, similarity
from satellites_repo.backends.elasticsearch._reindex import Reindexed, reindex
from satellites_repo.errors import ProjectionError, RepositoryError, UnavailableError
from satellites_repo.health import proven
from satellites_repo.model import (
    Change,
    DenseVector,
    Operation,
    RankedHit,
    RankedPage,
    SearchIndex,
)

if TYPE_CHECKING:
    from satellites_repo.config import ElasticsearchConfig
    from satellites_repo.model import EntitySpec, Registry, TextQuery, VectorField, VectorQuery
    from satellites_repo.types import AbsentKeys, Progress, RowSource

__all__ = ["ElasticsearchBackend"]

logger = logging.getLogger(__name__)

ERRORS = (ApiError, TransportError)
_SKIPPED_STATUSES = {409}  # a newer version is already indexed: the write is stale
SCAN_BATCH = 1000

Refresh = Literal["false", "true", "wait_for"]


class ElasticsearchBackend:
    """Indexes and ranks the repositories that declare a ``SearchIndex``, and the vectors
    of those whose ``VectorField`` names the ``elasticsearch`` engine."""

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

    def holds_vectors(self, spec: EntitySpec) -> bool:
        return _engine_vectors(spec) is not None

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, then create ``<alias>-000001`` behind each alias that does not exist."""
        client = _client(self._config)
        self._client = await proven(client, _cluster_answers, client.close)
        for index in self._indices.values():
            if index is not None:
                await self._ensure_index(index)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def check(self) -> None:
        await _cluster_answers(self.client)

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
        """Create the concrete index ``name`` with the declared mappings."""
        aliases = {self.alias(index): {"is_write_index": True}} if aliased else None
        await self.client.indices.create(
            index=name, mappings=index.mappings(), settings=dict(index.settings), aliases=aliases
        )

    async def indices_of(self, index: SearchIndex) -> tuple[list[str], list[str]]:
        """(indices behind the alias, other indices of this SearchIndex: leftovers)."""
        alias = self.alias(index)
        found = await self.client.indices.get(index=f"{alias}-*", allow_no_indices=True)
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
        await self.client.indices.update_aliases(actions=actions)
        return [name for name in behind if name != new_name]

    # -- writes --------------------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> None:
        await self.write(changes)

    async def write(
        self, changes: Sequence[Change], *, into: str | None = None, refresh: Refresh | None = None
    ) -> None:
        """One bulk request; ``into`` names a concrete index to write (a reindex's new one).

        ``refresh`` overrides the configured refresh policy for this request.
        """
        operations: list[Mapping[str, Any]] = []
        for change in changes:
            spec = self._registry.spec_of_table(change.table)
            index = None if spec is None else self.index_of(spec)
            if index is None:
                continue
            operations.extend(self._operation(index, change, into))
        if not operations:
            return
        try:
            response = await self.client.bulk(
                operations=operations, refresh=refresh or self._config.refresh
            )
        except ERRORS as exc:
            raise ProjectionError(self.name, f"bulk request failed: {exc}") from exc
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
        if index.vector is not None:
            document[index.vector.column] = change.payload.get(index.vector.column)
        return [{"index": meta}, document]

    def _raise_item_errors(self, items: Sequence[Mapping[str, Any]]) -> None:
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
                self.name, f"{len(failed)} document(s) rejected: {'; '.join(failed[:5])}"
            )

    # -- TextRanker ----------------------------------------------------------------------

    async def rank(self, spec: EntitySpec, request: TextQuery) -> RankedPage:
        index = self._index(spec)
        response = await self._searched(
            spec, index, self.client.search(**self._text_body(index, request))
        )
        return _ranked_page(response)

    def _text_body(self, index: SearchIndex, request: TextQuery) -> dict[str, Any]:
        body: dict[str, Any] = {
            "index": self.alias(index),
            "query": es_query(index, request.query, request.filters),
            "size": request.limit,
            "from_": request.offset,
            "source": False,
            "track_total_hits": True,
        }
        if isinstance(request.query, str) and index.text_fields:
            body["highlight"] = {"fields": {name: {} for name in index.text_fields}}
        return body

    # -- VectorRanker and HybridRanker ---------------------------------------------------

    async def nearest(self, spec: EntitySpec, request: VectorQuery) -> list[tuple[str, float]]:
        """The ``k`` nearest documents by a filtered kNN search over the dense_vector field."""
        index, field = self._index(spec), _vectors_of(spec)
        search = self.client.search(
            index=self.alias(index), knn=es_knn(index, field, request), size=request.k, source=False
        )
        return _neighbours(index, await self._searched(spec, index, search))

    async def rank_both(
        self, spec: EntitySpec, text: TextQuery, vector: VectorQuery
    ) -> tuple[RankedPage, list[tuple[str, float]]]:
        """The text ranking and the kNN ranking in one ``msearch`` round trip."""
        index, field = self._index(spec), _vectors_of(spec)
        alias = self.alias(index)
        text_body = self._text_body(index, text)
        searches: list[Mapping[str, Any]] = [
            {"index": alias},
            {
                "query": text_body["query"],
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

    def _index(self, spec: EntitySpec) -> SearchIndex:
        index = self.index_of(spec)
        assert index is not None
        return index

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
    def __init__(self, backend: ElasticsearchBackend, spec: EntitySpec) -> None:
        self._client = backend.client
        self._alias = backend.alias(backend._index(spec))

    async def held(self, keys: Sequence[str]) -> Mapping[str, int | None]:
        response = await self._client.mget(index=self._alias, ids=list(keys), source=False)
        return {
            doc["_id"]: (int(doc["_version"]) if doc.get("found") else None)
            for doc in response["docs"]
        }

    async def extras(self, expected: int, absent: AbsentKeys) -> dict[str, int]:
        """Counts first; the ids are listed only when the index holds more than expected."""
        await self._client.indices.refresh(index=self._alias)
        if int((await self._client.count(index=self._alias))["count"]) <= expected:
            return {}
        versions: dict[str, int] = {}
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
                break
            versions.update((hit["_id"], int(hit["_version"])) for hit in hits)
            after = hits[-1]["sort"]
        return {key: versions[key] for key in await absent(list(versions))}


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
    base = spec.search
    fields = dict(base.fields) if base is not None else {}
    for name in vectors.metadata:
        fields.setdefault(name, "keyword")
    return SearchIndex(
        base.index if base is not None else vectors.namespace or spec.table.lower(),
        fields,
        dict(base.settings) if base is not None else {},
        vector=DenseVector(vectors.column, dims, vectors.similarity, vectors.index_options),
    )


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
    return AsyncElasticsearch(
        hosts=config.hosts, request_timeout=config.timeout, retry_on_timeout=True, **auth
    )


async def _cluster_answers(client: AsyncElasticsearch) -> None:
    # Cluster health rather than GET /: minimal distributions (the integ-test zip) lack the
    # root endpoint, and health is what a readiness check means anyway.
    health = await client.cluster.health()
    if health["status"] == "red":
        raise RuntimeError("cluster status is red")


def _reason(exc: ApiError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    return _error_reason(info.get("error", {})) or str(exc.message)


def _error_reason(error: object) -> str:
    """The reason (else the type) an Elasticsearch error body gives."""
    if not isinstance(error, dict):
        return str(error)
    return str(error.get("reason") or error.get("type") or "")
