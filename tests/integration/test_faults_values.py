"""Values come back from every projection as Postgres holds them (finding 8)."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest

from satellites_repo import DataEvent, DataLayer, DataLayerConfig
from satellites_repo.migrate import create_tables
from tests.integration.models import IntegrationModel, Measure, Measures

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
