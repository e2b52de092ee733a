"""A row a backend refuses is dead-lettered alone; its neighbours are applied; no instance
stops following and no start fails because of a row's content (finding 1 and 5)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import insert

from satellites_repo import DataLayer, DataLayerConfig, VectorIndex
from satellites_repo.migrate import create_tables
from satellites_repo.model import Change, Operation
from tests.integration.models import NOTE_REPOSITORIES, IntegrationModel, Note, Notes


def quiet(config: DataLayerConfig) -> DataLayerConfig:
    """No background relay or follower: the test decides when each runs."""
    return config.replace(outbox=config.outbox.replace(relay=False, follow_interval=3600))


@pytest.fixture
async def notes(config: DataLayerConfig) -> AsyncIterator[DataLayer]:
    await create_tables(config, IntegrationModel.metadata)
    async with DataLayer(quiet(config), repositories=NOTE_REPOSITORIES) as layer:
        yield layer


def note(key: str, n: int = 0, **values: Any) -> Note:
    fields = {"tenant_id": "acme", "body": f"body {n}", "embedding": [1.0, n + 1.0, 0, 0]}
    return Note(id=key, **{**fields, **values})


async def outbox_rows(layer: DataLayer) -> dict[str, Any]:
    rows = await layer.postgres.fetch(
        "SELECT key, pending, dead_at IS NOT NULL AS dead, last_error FROM satellites_outbox"
    )
    return {row["key"]: row for row in rows}


async def indexed(layer: DataLayer) -> set[str]:
    alias = f"{layer.config.elasticsearch.index_prefix}notes"
    await layer.elasticsearch.indices.refresh(index=alias)
    response = await layer.elasticsearch.search(index=alias, size=100, source=False)
    return {hit["_id"] for hit in response["hits"]["hits"]}


async def insert_raw(layer: DataLayer, rows: list[dict[str, Any]]) -> None:
    """Rows written past the ORM (raw SQL), owed to the backends as change capture owes them."""
    async with layer.engine.begin() as connection:
        await connection.execute(insert(Note), rows)
    spec = layer.operations.spec(Notes)
    changes = [
        Change("notes", row["id"], Operation.CREATED, 1, spec.codec.payload_of_values(row))
        for row in rows
    ]
    await layer.operations.outbox.enqueue([(c, ["redis", "elasticsearch"]) for c in changes])


def raw(key: str, n: int, **values: Any) -> dict[str, Any]:
    row = {"id": key, "tenant_id": "acme", "body": f"body {n}", "stamp": "2024-01-01"}
    return {**row, "version": 1, "embedding": [1.0, n + 1.0, 0, 0], **values}


async def test_a_poison_document_among_20_is_dead_lettered_alone(notes: DataLayer) -> None:
    """An item error (a value the strict mapping refuses) and a document too big to send:
    each is dead-lettered at once with its reason; the other 18 are indexed and settled."""
    async with notes.unit_of_work() as uow:
        rows = [note(f"n{n}", n) for n in range(18)]
        rows.append(note("bad-date", 18, stamp="not a date"))
        rows.append(note("huge", 19, body="x" * (20 * 1024 * 1024)))
        await uow.repository(Notes).add_many(rows)
        await uow.commit()
    await notes.operations.settled()
    assert await indexed(notes) == {f"n{n}" for n in range(18)}
    outbox = await outbox_rows(notes)
    assert all(outbox[f"n{n}"]["pending"] == [] for n in range(18))
    for key, reason in (("bad-date", "stamp"), ("huge", "over the")):
        assert outbox[key]["dead"], key
        assert outbox[key]["pending"] == ["elasticsearch"]
        assert reason in outbox[key]["last_error"]
    # Redis and FAISS hold every row: only Elasticsearch refused two.
    assert await notes.vectors.count("notes") == 20
    assert await notes.redis.exists(f"{notes.config.redis.key_prefix}notes:huge") == 1


async def test_a_request_level_rejection_is_bisected(notes: DataLayer) -> None:
    """A 600-byte id makes Elasticsearch refuse the whole bulk request (400): bisection
    finds it; the 19 rows around it are indexed, it alone is dead-lettered."""
    long_key = "k" * 600
    rows = [raw(f"r{n}", n) for n in range(10)] + [raw(long_key, 10)]
    rows += [raw(f"r{n}", n) for n in range(11, 20)]
    await insert_raw(notes, rows)
    await notes.operations.relay.drain()
    assert await indexed(notes) == {f"r{n}" for n in range(20) if n != 10}
    outbox = await outbox_rows(notes)
    assert outbox[long_key]["dead"]
    assert outbox[long_key]["pending"] == ["elasticsearch"]
    assert "400" in outbox[long_key]["last_error"]
    assert sum(1 for row in outbox.values() if row["pending"] == []) == 19


async def test_a_key_faiss_refuses_never_stops_following(config: DataLayerConfig) -> None:
    """A row with an empty key (Postgres accepts it): the follower passes over it and goes
    on following; a later start (snapshot or none) rebuilds without failing."""
    await create_tables(config, IntegrationModel.metadata)
    async with DataLayer(quiet(config), repositories=NOTE_REPOSITORIES) as layer:
        await insert_raw(layer, [raw("", 0), raw("a", 1)])
        await layer.operations.follow()
        await insert_raw(layer, [raw("b", 2)])
        await layer.operations.follow()
        assert await layer.vectors.count("notes") == 2
        await layer.operations.relay.drain()
        outbox = await outbox_rows(layer)
        assert outbox[""]["dead"]
        assert outbox[""]["pending"] == ["elasticsearch"]
        await layer.vectors.save()
    for _ in range(2):  # from the snapshot, then without one
        async with DataLayer(quiet(config), repositories=NOTE_REPOSITORIES) as again:
            assert await again.vectors.count("notes") == 2
            await again.vectors.drop("notes")
            again.vectors.checkpoint = None
            await again.vectors.save()


@pytest.mark.parametrize("key", ["", "é" * 300])
async def test_keys_no_backend_can_hold_are_refused_before_commit(
    notes: DataLayer, key: str
) -> None:
    async with notes.unit_of_work() as uow:
        await uow.repository(Notes).add(note(key))
        with pytest.raises(ValueError, match="primary key"):
            await uow.commit()
    assert await notes.postgres.fetchval("SELECT count(*) FROM notes") == 0
    assert await notes.postgres.fetchval("SELECT count(*) FROM satellites_outbox") == 0


async def restarted_vectors(config: DataLayerConfig) -> set[str]:
    async with DataLayer(quiet(config), repositories=NOTE_REPOSITORIES) as layer:
        return set(await layer.vectors.versions("notes"))


async def test_a_snapshot_of_another_database_is_rebuilt(config: DataLayerConfig) -> None:
    await create_tables(config, IntegrationModel.metadata)
    async with DataLayer(quiet(config), repositories=NOTE_REPOSITORIES) as layer:
        await insert_raw(layer, [raw("mine", 0)])
        await layer.operations.follow()
        await layer.vectors.upsert("notes", "foreign", [1.0, 2.0, 3.0, 4.0])
        layer.vectors.origin = "7000000000000000000/elsewhere/public"
        await layer.vectors.save()
    assert await restarted_vectors(config) == {"mine"}


async def test_a_snapshot_ahead_of_the_database_is_rebuilt(config: DataLayerConfig) -> None:
    """A database restored from a backup older than the snapshot: the rows the snapshot
    never saw would stay missing if it were trusted."""
    await create_tables(config, IntegrationModel.metadata)
    async with DataLayer(quiet(config), repositories=NOTE_REPOSITORIES) as layer:
        await insert_raw(layer, [raw("a", 0), raw("b", 1)])
        await layer.operations.follow()
        ahead = await layer.operations.outbox.current_position() + 1000
    snapshot = VectorIndex(config.faiss.index_path, 4)  # a snapshot that never saw b
    await snapshot.load()
    await snapshot.delete("notes", "b")
    snapshot.checkpoint = ahead
    await snapshot.save()
    assert await restarted_vectors(config) == {"a", "b"}


async def test_an_open_transaction_does_not_grow_the_followers_memory(notes: DataLayer) -> None:
    follower = notes._runtime.followers[0]  # type: ignore[union-attr]
    async with notes.postgres.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_current_xact_id()")  # holds the xmin back
        for n in range(40):
            async with notes.unit_of_work() as uow:
                await uow.repository(Notes).add(note(f"m{n}", n))
                await uow.commit()
            await notes.operations.follow()
        remembered = len(follower._applied) + len(follower._claimed)
    print(f"follower remembers {remembered} transaction(s) after 40 commits")
    assert remembered <= 2
    assert await notes.vectors.count("notes") == 40
