"""The guided tour behind ``satellites demo``: each step shows one thing and checks it.

A step prints what it did (a cache miss and hit, a search, a similarity query, an update
reaching every projection, a rollback leaving no trace) and then checks what it printed;
the first check that fails raises ``TourFailure`` naming the step and the expectation.

The tour works in a ``Sandbox`` (its own schema, key and index prefixes), recreated when
the tour starts and kept when it ends; ``StoreView`` reads each store directly to show
what a commit (or a rollback) did to it.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from satellites_repo import DataEvent, DataLayer, DataLayerConfig, Health, SearchPage
from satellites_repo.demo.data import ArticleSeed, generate_articles, to_articles, to_tenants
from satellites_repo.demo.embedding import HashingEmbedder
from satellites_repo.demo.models import (
    SEARCH_INDEX,
    VECTOR_NAMESPACE,
    Article,
    Articles,
    Tenants,
    article_text,
)
from satellites_repo.demo.sandbox import Sandbox
from satellites_repo.demo.stores import TABLE, Stored, StoreView
from satellites_repo.migrate import create_tables

__all__ = ["BATCH", "EventLog", "Tour", "TourFailure"]

BATCH = 100
"""Articles per unit of work while loading: one commit, one bulk write per backend."""

T = TypeVar("T")


class TourFailure(Exception):
    """A step showed something other than what it promised."""


@dataclass
class EventLog:
    """An event handler that prints each DataEvent as it arrives and keeps it."""

    console: Console
    events: list[DataEvent] = field(default_factory=list)

    async def __call__(self, event: DataEvent) -> None:
        self.events.append(event)
        self.console.print(
            f"  [magenta]event[/magenta] {event.type} key={event.key} "
            f"version={event.version} id={event.id[:8]}…"
        )


class _Abandon(Exception):
    """Raised inside a unit of work to leave it the way a failing request would."""


class Tour:
    """The steps, in order, over one started ``DataLayer``."""

    def __init__(
        self,
        config: DataLayerConfig,
        sandbox: Sandbox,
        console: Console,
        *,
        articles: int = 1000,
        health_table: Callable[[Health], Table],
    ) -> None:
        self.config = sandbox.config(config)
        self.sandbox = sandbox
        self.console = console
        self.seeds = generate_articles(articles)
        self.health_table = health_table
        self.embedder = HashingEmbedder()
        self.checks = 0
        self.step = ""
        self._layer: DataLayer | None = None
        self._stores: StoreView | None = None

    @property
    def layer(self) -> DataLayer:
        if self._layer is None:
            raise RuntimeError("the tour's DataLayer is open only inside Tour.run()")
        return self._layer

    @property
    def stores(self) -> StoreView:
        if self._stores is None:
            raise RuntimeError("the tour's DataLayer is open only inside Tour.run()")
        return self._stores

    @property
    def target(self) -> uuid.UUID:
        """The first generated article (an acme one), the same in every run."""
        return self.seeds[0].id

    def check(self, condition: bool, expected: str) -> None:
        """Count a check; a failed one ends the tour, naming the step and the expectation."""
        self.checks += 1
        if not condition:
            raise TourFailure(f"step {self.step!r}: expected {expected}")

    def present(self, value: T | None, expected: str) -> T:
        """``value``, checked not to be ``None``."""
        self.check(value is not None, expected)
        assert value is not None  # for the type checker: check() raised otherwise
        return value

    def heading(self, title: str, why: str) -> None:
        self.step = title
        self.console.rule(f"[bold]{title}")
        self.console.print(why)

    async def run(self) -> float:
        """Every step; returns the seconds it took."""
        started = time.perf_counter()
        sandbox = self.sandbox
        self.console.rule("[bold]satellites demo: a multi-tenant knowledge base")
        self.console.print(
            f"Sandbox: Postgres schema [cyan]{sandbox.schema}[/cyan], Redis keys "
            f"[cyan]{sandbox.key_prefix}*[/cyan], Elasticsearch indices "
            f"[cyan]{sandbox.index_prefix}*[/cyan], FAISS in a temporary folder. "
            "Recreated now and kept at the end, so you can look at the data."
        )
        await sandbox.recreate(self.config)
        await create_tables(self.config)
        async with DataLayer(self.config, repositories=[Articles, Tenants]) as layer:
            self._layer, self._stores = layer, StoreView(layer)
            try:
                for step in self._steps():
                    await step()
            finally:
                self._layer = self._stores = None
        elapsed = time.perf_counter() - started
        self.console.rule("[bold green]done")
        self.console.print(
            f"[green]All {self.checks} checks passed[/green] in {elapsed:.1f} s.\n"
            f"The data is kept: Postgres schema {sandbox.schema} (tables kb_tenants, "
            f"kb_articles), Redis keys {sandbox.key_prefix}*, Elasticsearch alias "
            f"{sandbox.index_prefix}{SEARCH_INDEX}. The next run recreates them; the FAISS "
            "folder was temporary (Postgres holds every vector)."
        )
        return elapsed

    def _steps(self) -> Sequence[Callable[[], Awaitable[None]]]:
        return (
            self.load,
            self.cache_miss_then_hit,
            self.full_text_search,
            self.similar_articles,
            self.hybrid_query,
            self.tenant_isolation,
            self.update_reaches_every_projection,
            self.rollback_leaves_no_trace,
            self.health,
        )

    # -- the steps --------------------------------------------------------------------------

    async def load(self) -> None:
        self.heading(
            "1. Load",
            f"{len(self.seeds)} articles over 3 tenants, {BATCH} per unit of work "
            "(add_many, one commit each).",
        )
        async with self.layer.unit_of_work() as uow:
            await uow.repository(Tenants).add_many(to_tenants())
            await uow.commit()
        with self._progress() as progress:
            task = progress.add_task("articles", total=len(self.seeds))
            for start in range(0, len(self.seeds), BATCH):
                batch = self.seeds[start : start + BATCH]
                async with self.layer.unit_of_work() as uow:
                    await uow.repository(Articles).add_many(to_articles(batch, self.embedder))
                    await uow.commit()
                progress.advance(task, len(batch))
        counts = await self.stores.counts()
        table = _table("Articles per store", "store", "articles")
        for store, count in counts.items():
            table.add_row(store, str(count))
        self.console.print(table)
        for store, count in counts.items():
            self.check(count == len(self.seeds), f"{len(self.seeds)} in {store}, found {count}")
        outbox = await self.layer.operations.outbox.status()
        self.check(
            outbox.pending == 0 and outbox.dead == 0,
            f"nothing left owed in the outbox, got {outbox.pending} pending, {outbox.dead} dead",
        )

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("loading {task.description}"),
            BarColumn(bar_width=40),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )

    async def cache_miss_then_hit(self) -> None:
        self.heading("2. Cache", "One article read twice: the miss fills Redis, the hit reads it.")
        target = self.target
        await self.layer.redis.delete(self.stores.cache_key(target))
        table = _table(f"get({str(target)[:8]}…)", "read", "served by", "ms")
        for label, source in (("first", "miss: Postgres, then cached"), ("second", "hit: Redis")):
            began = time.perf_counter()
            async with self.layer.unit_of_work() as uow:
                found = await uow.repository(Articles).get(target)
            table.add_row(label, source, f"{(time.perf_counter() - began) * 1000:.2f}")
            self.check(found is not None, f"the article found by the {label} read")
            cached = await self.layer.redis.exists(self.stores.cache_key(target))
            self.check(cached == 1, f"the article in Redis after the {label} read")
        self.console.print(table)

    async def full_text_search(self) -> None:
        self.heading("3. Full-text search", "Elasticsearch ranks; rows come from Redis/Postgres.")
        query, tenant = "refund invoice", "acme"
        async with self.layer.unit_of_work() as uow:
            page = await uow.repository(Articles).search(
                query, filters={"tenant_id": tenant}, limit=5
            )
        table = _table(f"search({query!r}, tenant={tenant}): {page.total} matches", "score")
        table.add_column("title", max_width=38, no_wrap=True, overflow="ellipsis")
        table.add_column("highlight", ratio=1)
        for hit in page:
            table.add_row(f"{hit.score:.2f}", escape(hit.entity.title), _highlight(hit.highlights))
        self.console.print(table)
        self._check_ranked(page, tenant)
        self.check(all(hit.highlights for hit in page), "a highlighted fragment in every hit")
        self.check(page.hits[0].entity.tags[0] == "billing", "a billing article first")

    def _check_ranked(self, page: SearchPage[Article], tenant: str) -> None:
        scores = [hit.score for hit in page]
        self.check(len(page.hits) > 0, "at least one hit")
        self.check(all(hit.entity.tenant_id == tenant for hit in page), f"only {tenant} articles")
        self.check(scores == sorted(scores, reverse=True), "hits best first")

    async def similar_articles(self) -> None:
        self.heading("4. Similar articles", "FAISS cosine similarity over the embeddings.")
        tenant = "acme"
        async with self.layer.unit_of_work() as uow:
            articles = uow.repository(Articles)
            source = self.present(await articles.get(self.target), "the article to start from")
            hits = await articles.similar(source, k=5, filters={"tenant_id": tenant})
        topic = source.tags[0]
        self.console.print(f"Articles like [bold]{escape(source.title)}[/bold] ({topic}):")
        table = _table("similar(article, k=5, tenant=acme)", "score", "topic")
        table.add_column("title", ratio=1, no_wrap=True, overflow="ellipsis")
        for hit in hits:
            table.add_row(f"{hit.score:.3f}", hit.entity.tags[0], escape(hit.entity.title))
        self.console.print(table)
        scores = [hit.score for hit in hits]
        self.check(len(hits) == 5, f"5 similar articles, got {len(hits)}")
        self.check(all(hit.entity.id != source.id for hit in hits), "the article itself left out")
        self.check(all(hit.entity.tenant_id == tenant for hit in hits), f"only {tenant} articles")
        self.check(scores == sorted(scores, reverse=True), "hits best first")
        same_topic = sum(hit.entity.tags[0] == topic for hit in hits)
        self.check(same_topic >= 4, f"neighbours about {topic}, got {same_topic} of 5")

    async def hybrid_query(self) -> None:
        self.heading("5. Hybrid query", "Text and vector rankings fused by reciprocal rank.")
        text, tenant = "slow query in the Postgres database", "globex"
        async with self.layer.unit_of_work() as uow:
            hits = await uow.repository(Articles).hybrid(
                text, self.embedder.embed_one(text), k=5, filters={"tenant_id": tenant}
            )
        table = _table(f"hybrid({text!r}, tenant={tenant})", "rrf", "text #", "vector #")
        table.add_column("title", ratio=1, no_wrap=True, overflow="ellipsis")
        for hit in hits:
            ranks = (_rank(hit.text_rank), _rank(hit.vector_rank))
            table.add_row(f"{hit.score:.4f}", *ranks, escape(hit.entity.title))
        self.console.print(table)
        scores = [hit.score for hit in hits]
        self.check(len(hits) == 5, f"5 fused hits, got {len(hits)}")
        self.check(all(hit.entity.tenant_id == tenant for hit in hits), f"only {tenant} articles")
        self.check(scores == sorted(scores, reverse=True), "hits best first")
        both = [hit for hit in hits if hit.text_rank is not None and hit.vector_rank is not None]
        self.check(bool(both), "a hit ranked by both Elasticsearch and FAISS")
        on_topic = sum(hit.entity.tags[0] == "databases" for hit in hits)
        self.check(on_topic >= 4, f"databases articles, got {on_topic} of 5")

    async def tenant_isolation(self) -> None:
        self.heading("6. Tenant isolation", "The same query for two tenants: disjoint answers.")
        query = "password reset"
        table = _table(f"search({query!r}), top 3 per tenant", "tenant", "score")
        table.add_column("title", ratio=1, no_wrap=True, overflow="ellipsis")
        answers: dict[str, set[uuid.UUID]] = {}
        async with self.layer.unit_of_work() as uow:
            for tenant in ("acme", "initech"):
                page = await uow.repository(Articles).search(
                    query, filters={"tenant_id": tenant}, limit=3
                )
                self._check_ranked(page, tenant)
                answers[tenant] = {hit.entity.id for hit in page}
                for hit in page:
                    table.add_row(tenant, f"{hit.score:.2f}", escape(hit.entity.title))
        self.console.print(table)
        self.check(answers["acme"].isdisjoint(answers["initech"]), "no article in both answers")

    async def update_reaches_every_projection(self) -> None:
        self.heading(
            "7. Update",
            "One commit reaches Postgres, Redis, Elasticsearch and FAISS; then its DataEvent "
            "is published, printed here by a subscribed handler as it arrives:",
        )
        log = EventLog(self.console)
        self.layer.events.subscribe_all(log)
        try:
            async with self.layer.unit_of_work() as uow:
                found = await uow.repository(Articles).get(self.target)
                article = self.present(found, "the article to update")
                title = article.title = f"{article.title} (revised)"
                article.embedding = self.embedder.embed_one(article_text(title, article.body))
                await uow.commit()
                version = article.version  # the database's: one sequence for every write
        finally:
            self.layer.events.unsubscribe("*", log)
        stored = await self.stores.stored(self.target)
        self._show_stored(f"after the update of {str(self.target)[:8]}…", stored)
        for store, (held, stored_title) in stored.items():
            self.check(held == version, f"version {version} in {store}, got {held}")
            self.check(stored_title in (title, None), f"the new title in {store}")
        record = self.present(
            await self.layer.vectors.get(VECTOR_NAMESPACE, str(self.target)), "a FAISS vector"
        )
        cosine = sum(a * b for a, b in zip(record.vector, article.embedding, strict=True))
        self.check(cosine > 0.999, f"the new embedding in FAISS, cosine {cosine:.4f}")
        seen = [(event.type, event.key, event.version) for event in log.events]
        wanted = [(f"{TABLE}.updated", str(self.target), version)]
        self.check(seen == wanted, f"events {wanted}, got {seen}")

    def _show_stored(self, title: str, stored: Mapping[str, Stored]) -> None:
        table = _table(title, "store", "version", "title")
        for store, (version, stored_title) in stored.items():
            table.add_row(store, str(version), escape(stored_title or "(vector only)"))
        self.console.print(table)

    async def rollback_leaves_no_trace(self) -> None:
        self.heading(
            "8. Rollback",
            "A unit of work adds an article and edits another, flushes, then raises: no "
            "store changes and no event is published.",
        )
        before = await self.stores.stored(self.target)
        draft_seed = ArticleSeed(
            id=uuid.uuid4(),
            tenant_id="acme",
            title="Never committed",
            body="A draft that is rolled back.",
            tags=("billing", "how-to"),
            created_at=dt.datetime.now(dt.UTC),
        )
        (draft,) = to_articles([draft_seed], self.embedder)
        log = EventLog(self.console)
        self.layer.events.subscribe_all(log)
        try:
            inside = await self._abandoned_write(draft)
        finally:
            self.layer.events.unsubscribe("*", log)
        after = await self.stores.stored(self.target)
        traces = await self.stores.traces(draft.id)
        rows_after = await self.stores.row_count()
        table = _table("after the rollback", "check", "result")
        table.add_row("rows seen inside the transaction, after flush", str(inside))
        table.add_row("rows after the rollback", str(rows_after))
        for store, found in traces.items():
            table.add_row(f"new article in {store}", "FOUND" if found else "absent")
        table.add_row(
            "edited article in every store", "unchanged" if after == before else "CHANGED"
        )
        table.add_row("events published", str(len(log.events)))
        self.console.print(table)
        self.check(inside == len(self.seeds) + 1, "the new article visible inside the transaction")
        self.check(rows_after == len(self.seeds), f"{len(self.seeds)} rows, got {rows_after}")
        for store, found in traces.items():
            self.check(not found, f"no trace of the new article in {store}")
        self.check(after == before, f"the edited article unchanged everywhere, got {after}")
        self.check(not log.events, f"no events, got {[event.type for event in log.events]}")

    async def _abandoned_write(self, draft: Article) -> int:
        """Write, flush, then fail; returns the row count the transaction saw."""
        inside = 0
        try:
            async with self.layer.unit_of_work() as uow:
                articles = uow.repository(Articles)
                await articles.add(draft)
                edited = self.present(await articles.get(self.target), "the article to edit")
                edited.title = "An edit that is rolled back"
                await uow.flush()
                inside = await articles.count()
                raise _Abandon
        except _Abandon:
            pass
        return inside

    async def health(self) -> None:
        self.heading("9. Health", "Every backend probed concurrently, each under a timeout.")
        report = await self.layer.health()
        self.console.print(self.health_table(report))
        self.check(report.ok, f"every backend ok, got {dict(report.details)}")


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    return table


def _rank(rank: int | None) -> str:
    return "-" if rank is None else str(rank)


def _highlight(highlights: Mapping[str, list[str]]) -> str:
    """The first highlighted fragment, Elasticsearch's <em> shown in bold."""
    for fragments in highlights.values():
        if fragments:
            text = escape(fragments[0])
            return text.replace("<em>", "[bold yellow]").replace("</em>", "[/bold yellow]")
    return ""
