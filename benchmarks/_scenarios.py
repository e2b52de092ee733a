"""The benchmarks: each pairs a library call with its hand-written baseline.

Both sides get the same rows and the same inputs, in alternating order (odd calls run
the baseline first), after a warm-up whose timings are dropped. Per-call benchmarks time
only the call: the unit of work a read needs is opened before the clock starts and
closed after it stops (one fresh unit of work per call, so the session's identity map
never answers); the write benchmarks time the whole unit of work, commit included.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from _data import Row, RowFactory
from _environment import Bench
from _events import event_throughput
from _model import BenchArticle, BenchArticles, BenchTenantArticle, BenchTenantArticles
from _stats import Figure, Target, percentile, timed
from _vector_figures import vector_figures

from satellites_repo import ALL_TENANTS, DataLayer

__all__ = ["SCENARIOS", "Fixture", "Plan", "Scenario", "seed_fixture"]

T = TypeVar("T")
E = TypeVar("E", BenchArticle, BenchTenantArticle)
Samples = list[tuple[list[float], list[float]]]
"""Per repetition: the subject's and the baseline's per-call seconds."""

LAYER = "satellites"


@dataclass(frozen=True, slots=True)
class Plan:
    """How much each benchmark does; the defaults are the full run (about 2.5 to 6 minutes).

    ``calls``: per side and repetition, for get, get_many and commit benchmarks alike
    (``get_many_calls`` and ``searches`` are fewer because each call costs more).
    ``naive_entities``: the naive loop's share of each bulk repetition.
    """

    repetitions: int = 7
    seed_rows: int = 5_000
    calls: int = 300
    get_many_calls: int = 60
    searches: int = 100
    warmup: int = 30
    bulk_entities: int = 10_000
    naive_entities: int = 2_000
    batch_size: int = 500
    get_many_size: int = 100
    top_k: int = 10
    vector_query_size: int = 10_000
    vector_load_size: int = 100_000
    vector_memory_size: int = 500_000
    rebuild_rows: int = 100_000


def _entity(row: Row, model: type[E]) -> E:
    return model(
        id=row.id, tenant_id=row.tenant_id, title=row.title, body=row.body, embedding=row.embedding
    )


class Layer:
    """The library side: ``write`` writes; every other method returns the seconds it measured."""

    def __init__(self, bench: Bench) -> None:
        self._bench = bench
        self._data = bench.data

    async def write(self, rows: Sequence[Row]) -> None:
        async with self._data.unit_of_work() as uow:
            await uow.repository(BenchArticles).add_many(_entity(row, BenchArticle) for row in rows)
            await uow.commit()

    async def commit_one(self, row: Row) -> float:
        seconds = await timed(lambda: self.write([row]))
        await self.drain()
        return seconds

    async def drain(self) -> float:
        """Wait until this process's FAISS follower has read the outbox to its end.

        The follower re-reads every committed vector change from the outbox (each
        instance must); draining after the clock stops keeps that background work from
        landing inside the baseline's timing.
        """
        return await timed(self._data.operations.follow)

    async def get(self, key: uuid.UUID) -> float:
        async with self._data.unit_of_work() as uow:
            articles = uow.repository(BenchArticles)
            return await timed(lambda: _found(articles.get(key)))

    async def get_in_own_unit_of_work(self, key: uuid.UUID) -> float:
        async def request() -> None:
            async with self._data.unit_of_work() as uow:
                await _found(uow.repository(BenchArticles).get(key))

        return await timed(request)

    async def get_uncached(self, key: uuid.UUID) -> float:
        await self._data.redis.delete(self._bench.cache_key(key))
        return await self.get(key)

    async def get_many(self, keys: Sequence[uuid.UUID]) -> float:
        async with self._data.unit_of_work() as uow:
            articles = uow.repository(BenchArticles)
            return await timed(lambda: _all_found(articles.get_many(keys), len(keys)))

    async def search(self, query: tuple[str, str], limit: int) -> float:
        text, tenant = query
        async with self._data.unit_of_work() as uow:
            articles = uow.repository(BenchArticles)
            return await timed(
                lambda: articles.search(text, filters={"tenant_id": tenant}, limit=limit)
            )

    async def similar(self, vector: list[float], k: int, tenant: str | None = None) -> float:
        filters = None if tenant is None else {"tenant_id": tenant}
        async with self._data.unit_of_work() as uow:
            articles = uow.repository(BenchArticles)
            return await timed(lambda: articles.similar(vector, k=k, filters=filters))


class Scoped:
    """The tenant-scoped side: the fixture's rows again, in ``BenchTenantArticles``, each
    read in a unit of work of its tenant (the unscoped side passes the tenant as a filter,
    so both send the same queries and only the scoping differs).

    It is a second ``DataLayer`` on the run's schema, prefixes and servers: registering a
    ``TenantScoped`` model makes every unit of work set ``satellites.tenant``, which would
    change what the other benchmarks measure if the main layer had it.
    """

    def __init__(self, data: DataLayer) -> None:
        self._data = data

    async def seed(self, rows: Sequence[Row], batch_size: int) -> None:
        for start in range(0, len(rows), batch_size):
            async with self._data.unit_of_work(tenant=ALL_TENANTS) as uow:
                batch = rows[start : start + batch_size]
                articles = uow.repository(BenchTenantArticles)
                await articles.add_many(_entity(row, BenchTenantArticle) for row in batch)
                await uow.commit()
        await self._data.operations.follow()
        prefix = self._data.config.elasticsearch.index_prefix
        await self._data.elasticsearch.indices.refresh(
            index=prefix + BenchTenantArticles.search.index
        )

    async def get(self, row: Row) -> float:
        async with self._data.unit_of_work(tenant=row.tenant_id) as uow:
            articles = uow.repository(BenchTenantArticles)
            return await timed(lambda: _found(articles.get(row.id)))

    async def search(self, query: tuple[str, str], limit: int) -> float:
        text, tenant = query
        async with self._data.unit_of_work(tenant=tenant) as uow:
            articles = uow.repository(BenchTenantArticles)
            return await timed(lambda: articles.search(text, limit=limit))

    async def similar(self, query: tuple[list[float], str], k: int) -> float:
        vector, tenant = query
        async with self._data.unit_of_work(tenant=tenant) as uow:
            articles = uow.repository(BenchTenantArticles)
            return await timed(lambda: articles.similar(vector, k=k))


async def _found(call: Awaitable[object | None]) -> None:
    if await call is None:
        raise RuntimeError("a benchmark read found nothing: the fixture is not what it seems")


async def _all_found(call: Awaitable[Sequence[object]], expected: int) -> None:
    if len(await call) != expected:
        raise RuntimeError(f"a benchmark read found fewer than {expected} rows")


async def _paired(
    subject: Callable[[T], Awaitable[float]],
    baseline: Callable[[T], Awaitable[float]],
    inputs: Sequence[T],
) -> tuple[list[float], list[float]]:
    """Per-call seconds of both sides over ``inputs``, alternating which goes first."""
    ours: list[float] = []
    theirs: list[float] = []
    for position, item in enumerate(inputs):
        if position % 2:
            theirs.append(await baseline(item))
            ours.append(await subject(item))
        else:
            ours.append(await subject(item))
            theirs.append(await baseline(item))
    return ours, theirs


async def _repeated(
    plan: Plan,
    subject: Callable[[T], Awaitable[float]],
    baseline: Callable[[T], Awaitable[float]],
    inputs: Callable[[int], Sequence[T]],
    calls: int,
) -> Samples:
    await _paired(subject, baseline, inputs(plan.warmup))
    return [await _paired(subject, baseline, inputs(calls)) for _ in range(plan.repetitions)]


def _at(
    samples: Samples, fraction: float, *, name: str, baseline: str, target: Target | None
) -> Figure:
    """A figure from the ``fraction`` quantile of each repetition's per-call times (ms)."""
    label = "p50" if fraction == 0.5 else f"p{round(fraction * 100)}"
    return Figure(
        name=name,
        metric=f"{label} per call",
        unit="ms",
        subject=LAYER,
        baseline=baseline,
        subject_values=[percentile(ours, fraction) * 1e3 for ours, _ in samples],
        baseline_values=[percentile(theirs, fraction) * 1e3 for _, theirs in samples],
        target=target,
        notes={"calls_per_repetition": len(samples[0][0])},
    )


def _timing(call: Callable[[T], Awaitable[object]]) -> Callable[[T], Awaitable[float]]:
    async def measured(item: T) -> float:
        return await timed(lambda: call(item))

    return measured


@dataclass(frozen=True, slots=True)
class Fixture:
    """Rows written to both sides before the read benchmarks, and where to draw inputs."""

    rows: list[Row]
    factory: RowFactory

    def keys(self, count: int) -> list[uuid.UUID]:
        return [row.id for row in self.factory.sample(self.rows, count)]


async def seed_fixture(bench: Bench, plan: Plan, factory: RowFactory) -> Fixture:
    """Write the same rows to the layer and the baseline, then make them searchable."""
    layer = Layer(bench)
    rows = factory.rows(plan.seed_rows)
    for start in range(0, len(rows), plan.batch_size):
        batch = rows[start : start + plan.batch_size]
        await layer.write(batch)
        await bench.raw.write(batch)
    await layer.drain()
    await bench.refresh_indices()
    return Fixture(rows, factory)


async def reads(bench: Bench, plan: Plan, fixture: Fixture) -> list[Figure]:
    """Cached ``get``, ``get`` with its unit of work, ``get_many(100)``, uncached ``get``."""
    layer, raw = Layer(bench), bench.raw
    cached = await _repeated(plan, layer.get, _timing(raw.get), fixture.keys, plan.calls)
    whole = await _repeated(
        plan, layer.get_in_own_unit_of_work, _timing(raw.get), fixture.keys, plan.calls
    )

    def key_sets(count: int) -> list[list[uuid.UUID]]:
        return [fixture.keys(plan.get_many_size) for _ in range(count)]

    many = await _repeated(
        plan, layer.get_many, _timing(raw.get_many), key_sets, plan.get_many_calls
    )
    uncached = await _repeated(
        plan, layer.get_uncached, _timing(raw.select), fixture.keys, plan.calls
    )
    redis_get = "redis GET + orjson.loads"
    return [
        _at(cached, 0.5, name="get (cached)", baseline=redis_get, target=Target("<=", 1.5)),
        _at(
            whole,
            0.5,
            name="get (cached), unit of work open/close included",
            baseline=redis_get,
            target=None,
        ),
        _at(
            many,
            0.5,
            name=f"get_many({plan.get_many_size}) (cached)",
            baseline=f"redis MGET of {plan.get_many_size} + orjson.loads",
            target=Target("<=", 1.5),
        ),
        _at(
            uncached,
            0.5,
            name="get (uncached: miss, SELECT, cache fill)",
            baseline="asyncpg SELECT by primary key",
            target=Target("<=", 1.3),
        ),
    ]


async def queries(bench: Bench, plan: Plan, fixture: Fixture) -> list[Figure]:
    """Hydrated ``search`` and ``similar``, against the raw query plus one fetch."""
    layer, raw, factory, k = Layer(bench), bench.raw, fixture.factory, plan.top_k

    def texts(count: int) -> list[tuple[str, str]]:
        return [(factory.word(), factory.tenant()) for _ in range(count)]

    def vectors(count: int) -> list[list[float]]:
        return [factory.vector() for _ in range(count)]

    async def search(query: tuple[str, str]) -> float:
        return await layer.search(query, k)

    async def raw_search(query: tuple[str, str]) -> float:
        return await timed(lambda: raw.search(*query, limit=k))

    async def similar(vector: list[float]) -> float:
        return await layer.similar(vector, k)

    async def raw_similar(vector: list[float]) -> float:
        return await timed(lambda: raw.similar(vector, k=k))

    searched = await _repeated(plan, search, raw_search, texts, plan.searches)
    similar_samples = await _repeated(plan, similar, raw_similar, vectors, plan.searches)
    return [
        _at(
            searched,
            0.5,
            name=f"search (text + tenant filter, top {k}, hydrated)",
            baseline="ES search (same body) + redis MGET",
            target=None,
        ),
        _at(
            similar_samples,
            0.5,
            name=f"similar (top {k} of {len(fixture.rows):,}, hydrated)",
            baseline="faiss search + asyncpg SELECT = ANY",
            target=None,
        ),
    ]


async def tenancy(bench: Bench, plan: Plan, fixture: Fixture) -> list[Figure]:
    """The cost of scoping: ``get``, ``search``, ``similar`` of a ``TenantScoped`` repository
    in its tenant's unit of work, against an unscoped one given the tenant as a filter."""
    config = bench.data.config
    folder = Path(config.faiss.index_path).parent / "tenancy"
    tenancy_config = config.replace(faiss=config.faiss.replace(index_path=folder))
    async with DataLayer(tenancy_config, repositories=[BenchTenantArticles]) as data:
        scoped = Scoped(data)
        await scoped.seed(fixture.rows, plan.batch_size)
        return await _scoping_costs(Layer(bench), scoped, plan, fixture)


async def _scoping_costs(
    layer: Layer, scoped: Scoped, plan: Plan, fixture: Fixture
) -> list[Figure]:
    factory, k = fixture.factory, plan.top_k

    def rows(count: int) -> list[Row]:
        return factory.sample(fixture.rows, count)

    def texts(count: int) -> list[tuple[str, str]]:
        return [(factory.word(), factory.tenant()) for _ in range(count)]

    def vectors(count: int) -> list[tuple[list[float], str]]:
        return [(factory.vector(), factory.tenant()) for _ in range(count)]

    async def get(row: Row) -> float:
        return await layer.get(row.id)

    async def scoped_search(query: tuple[str, str]) -> float:
        return await scoped.search(query, k)

    async def search(query: tuple[str, str]) -> float:
        return await layer.search(query, k)

    async def scoped_similar(query: tuple[list[float], str]) -> float:
        return await scoped.similar(query, k)

    async def similar(query: tuple[list[float], str]) -> float:
        vector, tenant = query
        return await layer.similar(vector, k, tenant)

    got = await _repeated(plan, scoped.get, get, rows, plan.calls)
    searched = await _repeated(plan, scoped_search, search, texts, plan.searches)
    near = await _repeated(plan, scoped_similar, similar, vectors, plan.searches)
    unscoped = "unscoped repository (no TenantScoped model), tenant_id as a filter"
    return [
        _at(
            got,
            0.5,
            name="get (cached), TenantScoped",
            baseline="get (cached), unscoped",
            target=None,
        ),
        _at(
            searched,
            0.5,
            name=f"search (text, top {k}, hydrated), TenantScoped",
            baseline=f"search, {unscoped}",
            target=None,
        ),
        _at(
            near,
            0.5,
            name=f"similar (top {k} of one tenant, hydrated), TenantScoped",
            baseline=f"similar, {unscoped}",
            target=None,
        ),
    ]


async def commits(bench: Bench, plan: Plan, fixture: Fixture) -> list[Figure]:
    """One-entity commit latency: unit of work + add + commit against four raw writes."""
    layer, factory = Layer(bench), fixture.factory

    async def raw_write(row: Row) -> float:
        return await timed(lambda: bench.raw.write([row]))

    samples = await _repeated(plan, layer.commit_one, raw_write, factory.rows, plan.calls)
    baseline = "INSERT + SET + ES index + faiss add"
    name = "commit of one entity"
    return [
        _at(samples, 0.5, name=name, baseline=baseline, target=Target("<=", 1.3)),
        _at(samples, 0.99, name=name, baseline=baseline, target=Target("<=", 1.3)),
    ]


async def tracing(bench: Bench, plan: Plan, fixture: Fixture) -> list[Figure]:
    """The cost of OpenTelemetry on one commit: SDK installed, sampling off, metrics on.

    The baseline is the same commit with the library's OpenTelemetry switch off, which is
    the code path without the ``otel`` extra (each helper returns a shared no-op at once).
    Installs global providers, so it runs last.
    """
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from satellites_repo.observe import _otel

    trace.set_tracer_provider(TracerProvider(sampler=ALWAYS_OFF))
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    layer, factory = Layer(bench), fixture.factory

    async def with_otel(rows: tuple[Row, Row]) -> float:
        _otel.AVAILABLE = True
        return await layer.commit_one(rows[0])

    async def without_otel(rows: tuple[Row, Row]) -> float:
        _otel.AVAILABLE = False
        try:
            return await layer.commit_one(rows[1])
        finally:
            _otel.AVAILABLE = True

    def pairs(count: int) -> list[tuple[Row, Row]]:  # both sides write, so each its own row
        return list(zip(factory.rows(count), factory.rows(count), strict=True))

    samples = await _repeated(plan, with_otel, without_otel, pairs, plan.calls)
    return [
        _at(
            samples,
            0.5,
            name="commit of one entity, OpenTelemetry SDK on, sampling off",
            baseline="the same commit without the otel extra",
            target=Target("<=", 1.05),
        )
    ]


async def bulk(bench: Bench, plan: Plan, fixture: Fixture) -> list[Figure]:
    """Bulk write-through in batches, and the same rate against the naive per-entity loop."""
    layer, factory, size = Layer(bench), fixture.factory, plan.batch_size

    async def batched(write: Callable[[Sequence[Row]], Awaitable[None]], rows: list[Row]) -> None:
        for start in range(0, len(rows), size):
            await write(rows[start : start + size])

    async def one_repetition(rotation: int, entities: int, naive_entities: int) -> list[float]:
        """Seconds of the layer, the baseline and the naive loop, then the follower's drain."""
        rows = factory.rows(entities)
        sides = [
            lambda: batched(layer.write, rows),
            lambda: batched(bench.raw.write, rows),
            lambda: bench.naive.write(rows[:naive_entities]),
        ]
        seconds = [0.0, 0.0, 0.0, 0.0]
        # Rotate the order, so that no side always runs first or right after another.
        for offset in range(len(sides)):
            side = (offset + rotation) % len(sides)
            seconds[side] = await timed(sides[side])
            if side == 0:
                seconds[3] = await layer.drain()
        return seconds

    await one_repetition(0, 2 * size, plan.warmup)
    timings = [
        await one_repetition(rotation, plan.bulk_entities, plan.naive_entities)
        for rotation in range(plan.repetitions)
    ]
    ours = [t[0] for t in timings]
    per_entity_ours = [t[0] / plan.bulk_entities * 1e3 for t in timings]
    per_entity_naive = [t[2] / plan.naive_entities * 1e3 for t in timings]
    bulk_name = f"bulk write-through ({plan.bulk_entities:,} in batches of {size})"
    return [
        Figure(
            name=bulk_name,
            metric="seconds for all batches",
            unit="s",
            subject=LAYER,
            baseline="executemany + redis pipeline + ES bulk + faiss add_with_ids",
            subject_values=ours,
            baseline_values=[t[1] for t in timings],
            target=Target("<=", 1.3),
            notes={
                "entities_per_second": [plan.bulk_entities / s for s in ours],
                "follower_drain_seconds_after_last_commit": [t[3] for t in timings],
            },
        ),
        Figure(
            name="bulk write, speedup over the naive per-entity loop",
            metric="ms per entity",
            unit="ms",
            subject=LAYER,
            baseline=f"naive: INSERT, SET, ES index, seed upsert ({plan.naive_entities:,})",
            subject_values=per_entity_ours,
            baseline_values=per_entity_naive,
            target=Target(">=", 5.0),
            speedup=True,
            notes={"naive_entities": plan.naive_entities},
        ),
    ]


async def events(bench: Bench, plan: Plan, fixture: Fixture) -> list[Figure]:
    """Events published with confirms and consumed by one durable subscriber (RabbitMQ)."""
    return await event_throughput(bench, plan.repetitions, plan.calls * 10)


Scenario = Callable[[Bench, Plan, Fixture], Awaitable[list[Figure]]]

SCENARIOS: dict[str, Scenario] = {
    "reads": reads,
    "queries": queries,
    "tenancy": tenancy,
    "commit": commits,
    "bulk": bulk,
    "tracing": tracing,
    "events": events,
    "vectors": vector_figures,
}
"""In run order: reads and queries see only the fixture; writes add to it afterwards."""
