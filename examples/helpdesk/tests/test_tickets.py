"""The helpdesk's own tests: real servers, a migrated schema per test (satellites plugin)."""

from __future__ import annotations

from helpdesk.models import REPOSITORIES, Comment, Comments, Ticket, Tickets

from satellites_repo import DataEvent, DataLayerConfig
from satellites_repo.testing import DataLayerFactory


async def test_a_ticket_is_searchable_and_cached_once_committed(
    satellites_migrated: DataLayerConfig, satellites_layer_factory: DataLayerFactory
) -> None:
    data = await satellites_layer_factory(REPOSITORIES)
    events: list[DataEvent] = []

    async def record(event: DataEvent) -> None:
        events.append(event)

    data.events.subscribe_all(record)
    ticket = Ticket(tenant_id="acme", title="Printer on fire", body="Help")
    async with data.unit_of_work() as uow:
        await uow.repository(Tickets).add(ticket)
        await uow.repository(Comments).add(Comment(ticket=ticket, text="On my way"))
        await uow.commit()

    async with data.unit_of_work() as uow:
        page = await uow.repository(Tickets).search("printer", filters={"tenant_id": "acme"})
    cached = [key async for key in data.redis.scan_iter(match=f"{data.config.redis.key_prefix}*")]
    assert [hit.entity.id for hit in page] == [ticket.id]
    assert len(cached) == 1  # the ticket; comments have no cache policy
    assert sorted(event.type for event in events) == [
        "helpdesk_comments.created",
        "helpdesk_tickets.created",
    ]


async def test_a_rolled_back_ticket_leaves_no_trace(
    satellites_migrated: DataLayerConfig, satellites_layer_factory: DataLayerFactory
) -> None:
    data = await satellites_layer_factory(REPOSITORIES)
    async with data.unit_of_work() as uow:
        await uow.repository(Tickets).add(Ticket(tenant_id="acme", title="Draft", body="-"))
    async with data.unit_of_work() as uow:
        assert await uow.repository(Tickets).count() == 0
        assert (await uow.repository(Tickets).search("draft")).total == 0
