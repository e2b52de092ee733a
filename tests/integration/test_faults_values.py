"""Values come back from every projection as Postgres holds them (finding 8)."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest

from satellites_repo import AnyOf, DataEvent, DataLayer, DataLayerConfig
from satellites_repo.migrate import create_tables
from tests.integration.models import Articles, IntegrationModel, Measure, Measures
from tests.integration.stores import article, commit_articles

AT = dt.datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))


@pytest.mark.parametrize("ratio", [math.nan, math.inf, -math.inf])
async def test_nan_inf_intervals_and_decimals_round_trip(
    config: DataLayerConfig, ratio: float
) -> None:
    await create_tables(config, IntegrationModel.metadata)
    async with DataLayer(config, repositories=[Measures]) as layer:
        events: list[DataEvent] = []

        async def record(event: DataEvent) -> None:
            events.append(event)

        layer.events.subscribe_all(record)
        spent = dt.timedelta(days=-3, seconds=5, microseconds=7)
        async with layer.unit_of_work() as uow:
            measure = Measure(id=1, ratio=ratio, spent=spent, price=Decimal("12.3400"), at=AT)
            await uow.repository(Measures).add(measure)
            await uow.commit()
        await layer.operations.settled()
        cached = await layer.redis.get(f"{layer.config.redis.key_prefix}measures:1")
        assert cached is not None
        async with layer.unit_of_work() as uow:
            found = await uow.repository(Measures).get(1)  # from the cache
        assert found is not None
        assert found.ratio == ratio or (math.isnan(ratio) and math.isnan(found.ratio))
        assert found.spent == spent
        assert found.price == Decimal("12.3400")
        assert found.at == AT
        assert events[0].payload["ratio"] in ("NaN", "Infinity", "-Infinity")
        alias = f"{layer.config.elasticsearch.index_prefix}measures"
        await layer.elasticsearch.indices.refresh(index=alias)
        assert (await layer.elasticsearch.count(index=alias))["count"] == 1
        assert (await layer.operations.outbox.status()).pending == 0


@pytest.mark.parametrize("widening", [["acme", "evil"], ("acme", "evil"), {"acme", "evil"}])
async def test_a_list_filter_value_never_widens_a_tenant_filter(
    layer: DataLayer, widening: object
) -> None:
    await commit_articles(layer, 2)
    await commit_articles_of(layer, "evil")
    async with layer.unit_of_work() as uow:
        articles = uow.repository(Articles)
        with pytest.raises(ValueError, match=r"tenant_id.*AnyOf"):
            await articles.search("title", filters={"tenant_id": widening})
        with pytest.raises(ValueError, match=r"tenant_id.*AnyOf"):
            await articles.similar([1.0, 2.0, 0, 0], k=5, filters={"tenant_id": widening})
        both = AnyOf("acme", "evil")
        page = await articles.search("title", filters={"tenant_id": both})
        assert page.total == 3
        near = await articles.similar([1.0, 2.0, 0, 0], k=5, filters={"tenant_id": both})
        assert len(near) == 3


async def commit_articles_of(layer: DataLayer, tenant: str) -> None:
    async with layer.unit_of_work() as uow:
        await uow.repository(Articles).add(article(7, tenant=tenant))
        await uow.commit()
    await layer.operations.settled()
    await layer.elasticsearch.indices.refresh(index=f"{layer.config.elasticsearch.index_prefix}*")
