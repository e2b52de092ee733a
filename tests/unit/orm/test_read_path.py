"""The read path without servers: the cache first, rankers for order, Postgres for misses.

The engine points at a port nothing listens on, so any read that reaches Postgres fails
with ``UnavailableError("postgres")``: a test that passes proves no SQL was needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from satellites_repo import RepositoryError, UnavailableError
from satellites_repo.model import Registry, VectorQuery
from satellites_repo.orm import UnitOfWork, UnitOfWorkContext
from satellites_repo.orm.unit_of_work import TrackedSession
from satellites_repo.testing.fakes import (
    FakeCache,
    FakeReaders,
    FakeTextRanker,
    FakeVectorRanker,
)
from tests.unit.models import Notes

REGISTRY = Registry([Notes])
NOWHERE = "postgresql+asyncpg://nobody@127.0.0.1:1/none"


class NoHooks:
    """Read-only tests never commit."""

    async def before_commit(self, *_: Any) -> None:
        raise AssertionError("no commit expected")

    async def commit_failed(self, ticket: None) -> None:
        raise AssertionError("no commit expected")

    async def after_commit(self, ticket: None) -> None:
        raise AssertionError("no commit expected")


def body(key: str, title: str) -> bytes:
    row = {"id": key, "tenant_id": "acme", "title": title, "embedding": [1.0, 0.0, 0.0]}
    return orjson.dumps({**row, "version": 1})


@pytest.fixture
def cache() -> FakeCache:
    return FakeCache({("unit_notes", key): body(key, f"note {key}") for key in ("a", "b", "c")})


@pytest.fixture
async def readers(cache: FakeCache) -> FakeReaders:
    return FakeReaders(cache, FakeTextRanker(["c", "a"]), FakeVectorRanker(["b", "c"]))


@pytest.fixture
async def uow(readers: FakeReaders) -> AsyncIterator[UnitOfWork]:
    engine = create_async_engine(NOWHERE, connect_args={"timeout": 2})
    sessions = async_sessionmaker(engine, expire_on_commit=False, sync_session_class=TrackedSession)
    async with UnitOfWork(UnitOfWorkContext(sessions, REGISTRY, readers, NoHooks())) as opened:
        yield opened
    await engine.dispose()


async def test_get_many_serves_cached_rows_in_the_order_asked(
    uow: UnitOfWork, cache: FakeCache
) -> None:
    notes = await uow.repository(Notes).get_many(["c", "a", "c"])
    assert [note.title for note in notes] == ["note c", "note a", "note c"]
    assert cache.reads == 1


async def test_a_second_read_comes_from_the_identity_map(uow: UnitOfWork, cache: FakeCache) -> None:
    first = await uow.repository(Notes).get("a")
    again = await uow.repository(Notes).get("a")
    assert first is again
    assert cache.reads == 1


async def test_a_cache_miss_reads_postgres_and_names_it_when_it_is_away(uow: UnitOfWork) -> None:
    with pytest.raises(UnavailableError, match="postgres"):
        await uow.repository(Notes).get("missing")


async def test_a_cache_that_is_down_falls_back_to_postgres(
    uow: UnitOfWork, cache: FakeCache
) -> None:
    cache.down = True
    with pytest.raises(UnavailableError, match="postgres"):
        await uow.repository(Notes).get("a")


async def test_search_ranks_with_the_ranker_and_hydrates_from_the_cache(uow: UnitOfWork) -> None:
    page = await uow.repository(Notes).search("anything", limit=10)
    assert [hit.entity.id for hit in page] == ["c", "a"]
    assert page.total == 2


async def test_similar_ranks_with_the_vector_ranker(uow: UnitOfWork, readers: FakeReaders) -> None:
    hits = await uow.repository(Notes).similar([0.0, 1.0, 0.0], k=2)
    assert [hit.entity.id for hit in hits] == ["b", "c"]
    assert isinstance(readers.vector_ranker, FakeVectorRanker)
    assert readers.vector_ranker.queries == [VectorQuery([0.0, 1.0, 0.0], 2, None)]


async def test_hybrid_fuses_both_rankings(uow: UnitOfWork) -> None:
    hits = await uow.repository(Notes).hybrid("anything", [0.0, 1.0, 0.0], k=3)
    assert [hit.entity.id for hit in hits] == ["c", "b", "a"]
    assert [(hit.text_rank, hit.vector_rank) for hit in hits] == [(1, 2), (None, 1), (2, None)]


@pytest.mark.parametrize("k", [0, -1, None, "3", 2.5, True])
async def test_a_bad_k_is_refused_naming_it(uow: UnitOfWork, k: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="k must"):
        await uow.repository(Notes).similar([0.0, 1.0, 0.0], k=k)


async def test_a_query_vector_of_the_wrong_dimension_is_refused(uow: UnitOfWork) -> None:
    with pytest.raises(ValueError, match="3 numbers"):
        await uow.repository(Notes).similar([1.0, 0.0], k=2)


async def test_without_a_ranker_search_says_what_to_declare(readers: FakeReaders) -> None:
    readers.text_ranker = None
    engine = create_async_engine(NOWHERE)
    sessions = async_sessionmaker(engine, sync_session_class=TrackedSession)
    async with UnitOfWork(UnitOfWorkContext(sessions, REGISTRY, readers, NoHooks())) as uow:
        with pytest.raises(RepositoryError, match="SearchIndex"):
            await uow.repository(Notes).search("x")
    await engine.dispose()
