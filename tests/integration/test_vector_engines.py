"""The same repository tests against both vector engines: FAISS and Elasticsearch kNN.

``Articles`` keeps its vectors in FAISS, ``EsArticles`` (same columns) as a dense_vector
field of its search document; every test runs against each and expects the same answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from satellites_repo import AnyOf, DataLayer, DataLayerConfig, Repository
from satellites_repo.backends.elasticsearch import ElasticsearchBackend
from satellites_repo.backends.faiss import FaissBackend
from satellites_repo.bootstrap import BackendReaders
from satellites_repo.migrate import create_tables
from tests.integration.models import (
    ENGINE_REPOSITORIES,
    Article,
    Articles,
    EsArticle,
    EsArticles,
    IntegrationModel,
    Snippet,
    Snippets,
)

V1 = [1.0, 0.0, 0.0, 0.0]
V3 = [0.0, 0.0, 1.0, 0.0]

Engine = tuple[type[Any], type[Repository[Any]]]
ENGINES: dict[str, Engine] = {
    "faiss": (Article, Articles),
    "elasticsearch": (EsArticle, EsArticles),
}


@pytest.fixture
async def engines(config: DataLayerConfig) -> AsyncIterator[DataLayer]:
    await create_tables(config, IntegrationModel.metadata)
    async with DataLayer(config, repositories=ENGINE_REPOSITORIES) as started:
        yield started


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> Engine:
    return ENGINES[request.param]


async def _create(layer: DataLayer, repository: type[Repository[Any]], *rows: Any) -> list[Any]:
    async with layer.unit_of_work() as uow:
        await uow.repository(repository).add_many(rows)
        await uow.commit()
    await layer.operations.settled()
    return list(rows)


def _row(model: type[Any], tenant: str, title: str, embedding: list[float], **fields: Any) -> Any:
    fields.setdefault("body", "a body of text")
    return model(tenant_id=tenant, title=title, embedding=embedding, **fields)


async def _similar_titles(
    layer: DataLayer, repository: type[Repository[Any]], **filters: Any
) -> list[str]:
    async with layer.unit_of_work() as uow:
        hits = await uow.repository(repository).similar(V1, k=5, filters=filters or None)
    return [hit.entity.title for hit in hits]


def test_each_repository_reads_vectors_from_its_engine(engines: DataLayer) -> None:
    operations = engines.operations
    readers = BackendReaders(operations.backends)
    faiss, es = (
        readers.vectors(operations.spec(Articles)),
        readers.vectors(operations.spec(EsArticles)),
    )
    assert isinstance(faiss, FaissBackend)
    assert isinstance(es, ElasticsearchBackend)
    assert readers.hybrid(operations.spec(EsArticles)) is es
    assert readers.hybrid(operations.spec(Articles)) is None


async def test_similar_filters_by_tenant_and_excludes_the_entity_itself(
    engines: DataLayer, engine: Engine
) -> None:
    model, repository = engine
    near, _, other = await _create(
        engines,
        repository,
        _row(model, "acme", "near", [1.0, 0.1, 0.0, 0.0]),
        _row(model, "acme", "far", V3),
        _row(model, "globex", "other", V1),
    )
    async with engines.unit_of_work() as uow:
        repo = uow.repository(repository)
        hits = await repo.similar(V1, k=5, filters={"tenant_id": "acme"})
        assert [hit.entity.title for hit in hits] == ["near", "far"]
        assert hits[0].score > hits[1].score
        assert hits[0].score == pytest.approx(0.995, abs=0.02)  # cosine, as FAISS reports it
        like_near = await repo.similar(near, k=5)
        assert near.id not in [hit.entity.id for hit in like_near]
        assert like_near[0].entity.id == other.id
        any_of = await repo.similar(V1, k=5, filters={"tenant_id": AnyOf("globex", "nobody")})
        assert [hit.entity.title for hit in any_of] == ["other"]


async def test_hybrid_fuses_text_and_vector_rankings(engines: DataLayer, engine: Engine) -> None:
    model, repository = engine
    await _create(
        engines,
        repository,
        _row(model, "acme", "Gardening tips", V3, body="roses"),
        _row(model, "acme", "Rose care", V1, body="roses and thorns"),
        _row(model, "acme", "Cars", [0.9, 0.1, 0.0, 0.0], body="engines"),
        _row(model, "globex", "Rose care", V1, body="roses"),
    )
    async with engines.unit_of_work() as uow:
        hits = await uow.repository(repository).hybrid(
            "roses", V1, k=3, filters={"tenant_id": "acme"}
        )
    titles = [hit.entity.title for hit in hits]
    assert titles[0] == "Rose care"
    assert hits[0].text_rank is not None
    assert hits[0].vector_rank == 1
    assert set(titles) == {"Rose care", "Gardening tips", "Cars"}


async def test_unknown_filters_are_refused_alike(engines: DataLayer, engine: Engine) -> None:
    _, repository = engine
    async with engines.unit_of_work() as uow:
        with pytest.raises(ValueError, match="filterable metadata is \\['tenant_id'\\]"):
            await uow.repository(repository).similar(V1, filters={"title": "y"})


async def test_delete_and_recreate_with_the_same_key(engines: DataLayer, engine: Engine) -> None:
    model, repository = engine
    (entity,) = await _create(engines, repository, _row(model, "acme", "once", V1))
    key = entity.id
    async with engines.unit_of_work() as uow:
        await uow.repository(repository).delete(key)
        await uow.commit()
    await engines.operations.settled()
    assert await _similar_titles(engines, repository) == []
    # The re-created row starts again at version 1, below the delete's 2: both engines
    # refuse it as stale until its version passes the tombstone's (carrying versions
    # across a delete is issue 14's), then show it.
    await _create(engines, repository, _row(model, "acme", "again", V1, id=key))
    for embedding in ([1.0, 0.5, 0.0, 0.0], V3):
        async with engines.unit_of_work() as uow:
            (again,) = await uow.repository(repository).get_many([key])
            again.embedding = embedding
            await uow.commit()
        await engines.operations.settled()
    async with engines.unit_of_work() as uow:
        hits = await uow.repository(repository).similar(V3, k=1)
    assert [(hit.entity.title, round(hit.score, 2)) for hit in hits] == [("again", 1.0)]


async def test_reindex_and_verify(engines: DataLayer, engine: Engine) -> None:
    model, repository = engine
    rows = [_row(model, "acme", f"row {n}", [1.0, n / 10, 0.0, 0.0]) for n in range(12)]
    await _create(engines, repository, *rows)
    target = "elasticsearch" if repository is EsArticles else "faiss"
    assert all(drift.clean for drift in await engines.operations.verify(repository))
    (report,) = await engines.operations.reindex(repository, [target])
    assert report.rows == 12
    assert all(drift.clean for drift in await engines.operations.verify(repository))
    assert (await _similar_titles(engines, repository))[:2] == ["row 0", "row 1"]


async def test_a_vector_only_repository_gets_a_document_index(engines: DataLayer) -> None:
    await _create(
        engines,
        Snippets,
        Snippet(id=1, tenant_id="acme", embedding=V1),
        Snippet(id=2, tenant_id="acme", embedding=V3),
        Snippet(id=3, tenant_id="globex", embedding=V1),
        Snippet(id=4, tenant_id="acme", embedding=None),
    )
    async with engines.unit_of_work() as uow:
        hits = await uow.repository(Snippets).similar(V1, k=5, filters={"tenant_id": "acme"})
    assert [hit.entity.id for hit in hits] == [1, 2]
    assert all(drift.clean for drift in await engines.operations.verify(Snippets))
