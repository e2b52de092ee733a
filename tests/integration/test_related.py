"""Related fields against the real servers: a document embeds its related rows, and a change
of a related row by any path (ORM, bulk UPDATE, raw SQL, a cascade) re-projects every
document that embeds it, through the outbox, in bounded batches.

Neither related table (``accounts``, ``members``) is a repository's or ``Versioned``: the
capture of related tables (``create_tables(..., repositories=...)``) covers them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from satellites_repo import DataLayer, DataLayerConfig, StartupError
from satellites_repo.migrate import create_tables
from satellites_repo.outbox.related_capture import RELATED_PREFIX
from tests.integration.models import (
    MAX_MEMBERS,
    RELATED_REPOSITORIES,
    Account,
    HelpTicket,
    HelpTickets,
    Member,
    RelatedModel,
    Team,
)


@pytest.fixture
async def desk(config: DataLayerConfig) -> AsyncIterator[DataLayer]:
    """Relay off: each test delivers what is owed when it means to (``deliver``)."""
    await create_tables(config, RelatedModel.metadata, repositories=RELATED_REPOSITORIES)
    quiet = config.replace(outbox=config.outbox.replace(relay=False))
    async with DataLayer(quiet, repositories=RELATED_REPOSITORIES) as started:
        yield started


async def deliver(layer: DataLayer) -> int:
    """What the fast path left (re-projections are the relay's), then the index refreshed."""
    await layer.operations.settled()
    delivered = await layer.operations.relay.drain()
    await layer.elasticsearch.indices.refresh(index=f"{layer.config.elasticsearch.index_prefix}*")
    return delivered


async def source(layer: DataLayer, index: str, key: object) -> dict[str, Any] | None:
    alias = f"{layer.config.elasticsearch.index_prefix}{index}"
    found = await layer.elasticsearch.options(ignore_status=404).get(index=alias, id=str(key))
    return dict(found["_source"]) if found.get("found") else None


async def accounts_and_tickets(layer: DataLayer, tickets: int = 3) -> list[HelpTicket]:
    """Accounts 1 (gold) and 2 (free); ``tickets`` tickets on account 1, one on account 2."""
    async with layer.unit_of_work() as uow:
        uow.session.add_all([Account(id=1, name="Acme", tier="gold"), Account(id=2, name="Bolt")])
        await uow.session.flush()
        repository = uow.repository(HelpTickets)
        added = await repository.add_many(
            [HelpTicket(subject=f"printer {n}", account_id=1) for n in range(tickets)]
            + [HelpTicket(subject="printer spare", account_id=2)]
        )
        await uow.commit()
    await deliver(layer)
    return added


async def reprojections(layer: DataLayer) -> int:
    """Re-projection rows the capture of related tables wrote, delivered or not."""
    count = await layer.postgres.fetchval(
        "SELECT count(*) FROM satellites_outbox WHERE event_id LIKE $1", f"{RELATED_PREFIX}%"
    )
    return int(count)


async def test_a_document_embeds_its_related_row(desk: DataLayer) -> None:
    first, *_, spare = await accounts_and_tickets(desk)
    document = await source(desk, "help-tickets", first.id) or {}
    assert (document["subject"], document["@version"]) == ("printer 0", first.version)
    assert (_related(document, "account", "name"), _related(document, "account", "tier")) == (
        "Acme",
        "gold",
    )
    document = await source(desk, "help-tickets", spare.id) or {}
    assert _related(document, "account", "name") == "Bolt"
    assert _related(document, "account", "tier") == "free"


def _related(document: dict[str, Any], relationship: str, column: str) -> Any:
    """A related field, however the document spells it (dotted or as an object)."""
    if f"{relationship}.{column}" in document:
        return document[f"{relationship}.{column}"]
    return (document.get(relationship) or {}).get(column)


async def names(layer: DataLayer, tickets: list[HelpTicket]) -> list[Any]:
    return [
        _related(await source(layer, "help-tickets", ticket.id) or {}, "account", "name")
        for ticket in tickets
    ]


async def test_a_rename_by_the_orm_and_by_a_bulk_update_reaches_every_ticket(
    desk: DataLayer,
) -> None:
    tickets = await accounts_and_tickets(desk, tickets=5)
    on_acme, spare = tickets[:-1], tickets[-1]
    async with desk.unit_of_work() as uow:
        account = await uow.session.get(Account, 1)
        assert account is not None
        account.name = "Acme Corp"
        await uow.commit()
    await deliver(desk)
    assert await names(desk, on_acme) == ["Acme Corp"] * 5
    assert await names(desk, [spare]) == ["Bolt"]

    async with desk.unit_of_work() as uow:
        await uow.session.execute(update(Account).values(name=Account.name + " Ltd"))
        await uow.commit()
    await deliver(desk)
    assert await names(desk, on_acme) == ["Acme Corp Ltd"] * 5
    assert await names(desk, [spare]) == ["Bolt Ltd"]

    await desk.postgres.execute("UPDATE accounts SET tier = 'platinum' WHERE id = 1")
    await deliver(desk)
    document = await source(desk, "help-tickets", on_acme[0].id) or {}
    assert _related(document, "account", "tier") == "platinum"


async def test_a_column_no_document_embeds_reprojects_nothing(desk: DataLayer) -> None:
    await accounts_and_tickets(desk)
    before = await reprojections(desk)
    await desk.postgres.execute("UPDATE accounts SET visits = visits + 1")
    assert await reprojections(desk) == before
    await desk.postgres.execute("UPDATE accounts SET name = name WHERE id = 1")  # unchanged
    assert await reprojections(desk) == before


async def test_a_rolled_back_rename_owes_nothing(desk: DataLayer) -> None:
    await accounts_and_tickets(desk)
    before = await reprojections(desk)
    async with desk.unit_of_work() as uow:
        await uow.session.execute(update(Account).where(Account.id == 1).values(name="Nope"))
        await uow.rollback()
    assert await reprojections(desk) == before


async def test_a_ticket_moved_to_another_account(desk: DataLayer) -> None:
    first, *_ = await accounts_and_tickets(desk)
    async with desk.unit_of_work() as uow:
        loaded = await uow.repository(HelpTickets).get(first.id)
        assert loaded is not None
        loaded.account_id = 2
        await uow.commit()
    await deliver(desk)
    document = await source(desk, "help-tickets", first.id) or {}
    assert _related(document, "account", "name") == "Bolt"
    assert _related(document, "account", "tier") == "free"


async def test_an_account_deleted_takes_its_tickets_out_of_the_index(desk: DataLayer) -> None:
    tickets = await accounts_and_tickets(desk)
    async with desk.unit_of_work() as uow:
        await uow.session.execute(delete(Account).where(Account.id == 1))  # ON DELETE CASCADE
        await uow.commit()
    await deliver(desk)
    assert [await source(desk, "help-tickets", t.id) for t in tickets[:-1]] == [None] * 3
    assert await names(desk, tickets[-1:]) == ["Bolt"]


async def test_filters_and_facets_on_a_related_keyword(desk: DataLayer) -> None:
    tickets = await accounts_and_tickets(desk, tickets=4)
    async with desk.unit_of_work() as uow:
        repository = uow.repository(HelpTickets)
        gold = await repository.search(
            "printer", filters={"account.tier": "gold"}, facets=["account.tier"], limit=10
        )
        assert sorted(str(hit.entity.id) for hit in gold) == sorted(
            str(ticket.id) for ticket in tickets[:-1]
        )
        everyone = await repository.search("printer", facets=["account.tier", "account.name"])
        assert everyone.facets["account.tier"] == {"gold": 4, "free": 1}
        assert everyone.facets["account.name"] == {"Acme": 4, "Bolt": 1}
        assert gold.facets["account.tier"] == {"gold": 4}
        sorted_page = await repository.search("printer", sort=["account.name"], limit=10)
        assert [hit.entity.account_id for hit in sorted_page] == [1, 1, 1, 1, 2]


async def members(layer: DataLayer, team: int) -> list[str] | None:
    document = await source(layer, "teams", team)
    if document is None:
        return None
    found = _related(document, "members", "handle")
    return sorted(found if isinstance(found, list) else [found] if found else [])


async def test_a_one_to_many_field_follows_members_added_moved_and_removed(
    desk: DataLayer,
) -> None:
    async with desk.unit_of_work() as uow:
        uow.session.add_all([Team(id=1, name="Red"), Team(id=2, name="Blue")])
        await uow.session.flush()
        uow.session.add_all(
            [Member(id=1, team_id=1, handle="ann"), Member(id=2, team_id=1, handle="bob")]
        )
        await uow.commit()
    await deliver(desk)
    assert await members(desk, 1) == ["ann", "bob"]
    assert await members(desk, 2) == []

    await desk.postgres.execute("UPDATE members SET team_id = 2 WHERE id = 2")  # moved
    await deliver(desk)
    assert (await members(desk, 1), await members(desk, 2)) == (["ann"], ["bob"])

    async with desk.unit_of_work() as uow:
        uow.session.add(Member(id=3, team_id=2, handle="cy"))
        await uow.session.execute(delete(Member).where(Member.id == 1))
        await uow.commit()
    await deliver(desk)
    assert (await members(desk, 1), await members(desk, 2)) == ([], ["bob", "cy"])

    await desk.postgres.execute("UPDATE members SET handle = 'bobby' WHERE id = 2")
    await deliver(desk)
    assert await members(desk, 2) == ["bobby", "cy"]


async def test_more_members_than_max_fanout_is_refused_with_the_reason(desk: DataLayer) -> None:
    async with desk.unit_of_work() as uow:
        uow.session.add_all([Team(id=1, name="Red"), Team(id=2, name="Blue")])
        await uow.commit()
    await deliver(desk)
    await desk.postgres.execute(
        "INSERT INTO members (id, team_id, handle) "
        "SELECT n, CASE WHEN n = 1 THEN 2 ELSE 1 END, 'm' || n FROM generate_series(1, $1) AS n",
        MAX_MEMBERS + 2,
    )
    await deliver(desk)
    dead = await desk.postgres.fetch(
        "SELECT entity, key, last_error FROM satellites_outbox WHERE dead_at IS NOT NULL"
    )
    assert [(row["entity"], row["key"]) for row in dead] == [("teams", "1")]
    assert f"max_fanout={MAX_MEMBERS}" in dead[0]["last_error"]
    assert await members(desk, 1) == []  # as it was: never cut short
    assert await members(desk, 2) == ["m1"]  # its neighbour is applied


async def test_a_reindex_and_verify_agree_with_related_fields(desk: DataLayer) -> None:
    tickets = await accounts_and_tickets(desk)
    await desk.postgres.execute("UPDATE accounts SET name = 'Acme 2' WHERE id = 1")
    await deliver(desk)
    await desk.operations.reindex(HelpTickets, ["elasticsearch"])
    assert await names(desk, tickets) == ["Acme 2", "Acme 2", "Acme 2", "Bolt"]
    drifts = await desk.operations.verify(HelpTickets)
    assert all(not drift.missing and not drift.stale and not drift.extra for drift in drifts)


async def test_start_fails_naming_the_missing_related_capture(config: DataLayerConfig) -> None:
    await create_tables(config, RelatedModel.metadata)  # no repositories: no related capture
    with pytest.raises(StartupError, match=r"install_related_capture.*") as caught:
        await DataLayer(config, repositories=RELATED_REPOSITORIES).start()
    assert "help_tickets.account" in str(caught.value)
    assert "teams.members" in str(caught.value)


async def test_a_crash_half_way_through_a_reprojection_resumes(
    config: DataLayerConfig, desk: DataLayer
) -> None:
    """The re-projections are outbox rows, settled batch by batch: a process that stops
    after some batches leaves the rest owed, and any relay delivers them later."""
    await _many_tickets(desk, 1200)
    await desk.postgres.execute("UPDATE accounts SET name = 'Renamed' WHERE id = 1")
    assert await desk.operations.relay.run_once() > 0  # one batch, then the "crash"
    owed = await desk.postgres.fetchval(
        "SELECT count(*) FROM satellites_outbox WHERE cardinality(pending) > 0 "
        "AND event_id LIKE $1",
        f"{RELATED_PREFIX}%",
    )
    assert 0 < owed < 1200
    quiet = config.replace(outbox=config.outbox.replace(relay=False))
    async with DataLayer(quiet, repositories=RELATED_REPOSITORIES) as restarted:
        await deliver(restarted)
        renamed = await _count_named(restarted, "Renamed")
    assert renamed == 1200


async def _many_tickets(layer: DataLayer, count: int) -> None:
    await layer.postgres.execute(
        "INSERT INTO accounts (id, name, tier, visits) VALUES (1, 'Acme', 'gold', 0)"
    )
    await layer.postgres.execute(
        "INSERT INTO help_tickets (id, subject, account_id, version) "
        "SELECT gen_random_uuid(), 'ticket ' || n, 1, 0 FROM generate_series(1, $1) AS n",
        count,
    )
    await deliver(layer)


async def _count_named(layer: DataLayer, name: str) -> int:
    alias = f"{layer.config.elasticsearch.index_prefix}help-tickets"
    found = await layer.elasticsearch.count(index=alias, query={"term": {"account.name": name}})
    return int(found["count"])


async def test_a_rename_reprojects_10000_tickets_in_bounded_batches(
    desk: DataLayer, caplog: pytest.LogCaptureFixture
) -> None:
    """Prints the re-projection rate (a figure to read, never asserted on time)."""
    await _many_tickets(desk, 10_000)
    assert await _count_named(desk, "Acme") == 10_000
    caplog.set_level(logging.INFO, logger="satellites_repo.outbox.relay")
    started = time.perf_counter()
    async with desk.unit_of_work() as uow:
        await uow.session.execute(update(Account).where(Account.id == 1).values(name="Acme Corp"))
        await uow.commit()
    committed = time.perf_counter()
    await deliver(desk)
    seconds = time.perf_counter() - started
    assert await _count_named(desk, "Acme Corp") == 10_000
    batches = [
        int(match.group(1))
        for record in caplog.records
        if (match := re.match(r"relay delivered (\d+) row", record.getMessage()))
    ]
    assert sum(batches) >= 10_000
    assert max(batches) <= desk.config.outbox.batch_size
    print(
        f"\nrename of an account with 10,000 tickets: commit {committed - started:.3f}s, "
        f"all 10,000 documents renamed after {seconds:.2f}s "
        f"({10_000 / seconds:.0f} rows/s, {len(batches)} batches of <= "
        f"{desk.config.outbox.batch_size})"
    )


async def test_the_orm_relationship_is_what_the_document_follows(desk: DataLayer) -> None:
    """The declaration names the model's relationship; the rows it reaches are the ones
    SQLAlchemy would load."""
    tickets = await accounts_and_tickets(desk)
    async with desk.unit_of_work() as uow:
        rows = await uow.session.execute(
            select(HelpTicket.id, Account.name).join(HelpTicket.account).order_by(Account.name)
        )
        expected = {str(key): name for key, name in rows}
    assert {
        str(t.id): n for t, n in zip(tickets, await names(desk, tickets), strict=True)
    } == expected


async def test_a_rename_committed_after_a_newer_ticket_change_still_wins(desk: DataLayer) -> None:
    """Versions are taken when a transaction writes, not when it commits: the rename takes
    the older one, and the ticket's newer change is delivered first (reading the old name).
    The rename's re-projection is built at a version taken after it committed, so it is
    not refused as stale, as it would be at the ticket's own version."""
    first, *_ = await accounts_and_tickets(desk)
    async with desk.postgres.acquire() as renaming:
        transaction = renaming.transaction()
        await transaction.start()
        await renaming.execute("UPDATE accounts SET name = 'Acme late' WHERE id = 1")
        async with desk.unit_of_work() as uow:
            loaded = await uow.repository(HelpTickets).get(first.id)
            assert loaded is not None
            loaded.subject = "printer fixed"
            await uow.commit()
        await deliver(desk)
        document = await source(desk, "help-tickets", first.id) or {}
        assert (document["subject"], _related(document, "account", "name")) == (
            "printer fixed",
            "Acme",
        )
        await transaction.commit()
    await deliver(desk)
    document = await source(desk, "help-tickets", first.id) or {}
    assert (document["subject"], _related(document, "account", "name")) == (
        "printer fixed",
        "Acme late",
    )
