"""A small multi-tenant model used by the integration tests (4-d vectors keep them fast).

The models live on a ``MetaData`` of their own, which also holds the library's tables, so
an integration schema gets exactly these tables: never those of the examples or of the
unit tests, which register on ``Base.metadata`` or their own.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Interval, MetaData, Numeric, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from satellites_repo import (
    CachePolicy,
    Computed,
    Related,
    Repository,
    SearchIndex,
    SoftDelete,
    TenantScoped,
    Text,
    Vector,
    VectorField,
    Versioned,
)
from satellites_repo.orm.base import NAMING_CONVENTION
from satellites_repo.outbox.table import (
    delivery_table,
    meta_table,
    outbox_table,
    subscription_table,
)

DIMENSION = 4


class IntegrationModel(DeclarativeBase):
    """The integration tests' declarative base, with the library's tables beside theirs."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


LIBRARY_TABLES = (outbox_table, meta_table, subscription_table, delivery_table)
"""The library's own tables, copied into each test base's MetaData."""

for _table in LIBRARY_TABLES:
    _table.to_metadata(IntegrationModel.metadata)


class Article(IntegrationModel, Versioned):
    __tablename__ = "articles"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(index=True)
    title: Mapped[str]
    body: Mapped[str]
    views: Mapped[int] = mapped_column(default=0)
    embedding: Mapped[list[float] | None] = mapped_column(Vector(DIMENSION), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Articles(Repository[Article]):
    cache = CachePolicy(ttl=300, tombstone_ttl=60)
    search = SearchIndex(
        "articles", fields={"title": "text", "body": "text", "tenant_id": "keyword"}
    )
    vectors = VectorField("embedding", namespace="articles", metadata=("tenant_id",))


class Tag(IntegrationModel):
    """Not projected: events only."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Tags(Repository[Tag]):
    pass


class Customer(IntegrationModel):
    """Not projected: its tickets go with it by ``ON DELETE CASCADE``."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class SupportTicket(IntegrationModel, Versioned):
    """Cached and searched, with short tombstone lifetimes (Redis and Elasticsearch) so
    tests can outlive them."""

    __tablename__ = "support_tickets"

    id: Mapped[str] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    subject: Mapped[str]
    open: Mapped[bool] = mapped_column(default=True)


class SupportTickets(Repository[SupportTicket]):
    cache = CachePolicy(ttl=300, tombstone_ttl=1)
    search = SearchIndex(
        "support-tickets",
        fields={"subject": "text", "open": "boolean"},
        settings={"index.gc_deletes": "0s"},
    )


REPOSITORIES: list[type[Repository[Any]]] = [Articles, Tags]


class SearchModel(DeclarativeBase):
    """The search tests' base: a helpdesk's tickets, with the library's tables beside them."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


for _table in LIBRARY_TABLES:
    _table.to_metadata(SearchModel.metadata)


class Ticket(SearchModel, Versioned, SoftDelete):
    __tablename__ = "tickets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(index=True)
    subject: Mapped[str]
    body: Mapped[str] = mapped_column(default="")
    status: Mapped[str] = mapped_column(default="open")
    priority: Mapped[int] = mapped_column(default=1)
    urgent: Mapped[bool] = mapped_column(default=False)
    views: Mapped[int] = mapped_column(default=0)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    embedding: Mapped[list[float] | None] = mapped_column(Vector(DIMENSION), nullable=True)


class Tickets(Repository[Ticket]):
    cache = CachePolicy(ttl=300, tombstone_ttl=60)
    search = SearchIndex(
        "tickets",
        fields={
            "subject": Text(analyzer="standard", prefixes=True),
            "body": ("text", {"analyzer": "standard"}),
            "status": "keyword",
            "priority": "integer",
            "urgent": "boolean",
            "opened_at": "date",
            "tenant_id": "keyword",
        },
        computed={
            "words": Computed(lambda t: len(t.body.split()), type="integer", depends_on=("body",))
        },
        index_when=lambda t: t.status != "spam",
    )
    vectors = VectorField("embedding", namespace="tickets", metadata=("tenant_id",))


class Note(IntegrationModel, Versioned):
    """A text-keyed model (any key Postgres accepts) with a date-typed search field: what
    the fault tests need to send rows the backends refuse. Not in ``REPOSITORIES``."""

    __tablename__ = "notes"

    id: Mapped[str] = mapped_column(primary_key=True)
    tenant_id: Mapped[str]
    body: Mapped[str] = mapped_column(default="")
    stamp: Mapped[str] = mapped_column(default="2024-01-01")
    embedding: Mapped[list[float] | None] = mapped_column(Vector(DIMENSION), nullable=True)


class Notes(Repository[Note]):
    cache = CachePolicy(ttl=300, tombstone_ttl=60)
    search = SearchIndex("notes", fields={"body": "text", "tenant_id": "keyword", "stamp": "date"})
    vectors = VectorField("embedding", namespace="notes", metadata=("tenant_id",))


NOTE_REPOSITORIES: list[type[Repository[Any]]] = [Notes]


class Measure(IntegrationModel, Versioned):
    """Values JSON has no plain form for: NaN/inf floats, intervals, exact decimals."""

    __tablename__ = "measures"

    id: Mapped[int] = mapped_column(primary_key=True)
    ratio: Mapped[float] = mapped_column(Float)
    spent: Mapped[dt.timedelta] = mapped_column(Interval)
    price: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Measures(Repository[Measure]):
    cache = CachePolicy(ttl=300)
    search = SearchIndex("measures", fields={"ratio": "double", "at": "date"})


class EsArticle(IntegrationModel, Versioned):
    """``Article`` again, with its vectors in Elasticsearch instead of FAISS."""

    __tablename__ = "es_articles"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(index=True)
    title: Mapped[str]
    body: Mapped[str]
    embedding: Mapped[list[float] | None] = mapped_column(Vector(DIMENSION), nullable=True)


class EsArticles(Repository[EsArticle]):
    cache = CachePolicy(ttl=300, tombstone_ttl=60)
    search = SearchIndex(
        "es-articles", fields={"title": "text", "body": "text", "tenant_id": "keyword"}
    )
    vectors = VectorField(
        "embedding",
        engine="elasticsearch",
        metadata=("tenant_id",),
        index_options={"type": "int8_hnsw"},
    )


class Snippet(IntegrationModel, Versioned):
    """Vectors only: the Elasticsearch engine gives it a document index of its own."""

    __tablename__ = "snippets"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str]
    embedding: Mapped[list[float] | None] = mapped_column(Vector(DIMENSION), nullable=True)


class Snippets(Repository[Snippet]):
    vectors = VectorField("embedding", engine="elasticsearch", metadata=("tenant_id",))


ENGINE_REPOSITORIES: list[type[Repository[Any]]] = [Articles, EsArticles, Snippets]
"""Both vector engines side by side (the engine tests)."""

CAPTURE_REPOSITORIES: list[type[Repository[Any]]] = [Articles, Tags, SupportTickets]


class TenantModel(DeclarativeBase):
    """The tenancy tests' base: a helpdesk shared by tenants, with the library's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


for _table in LIBRARY_TABLES:
    _table.to_metadata(TenantModel.metadata)


class Case(TenantModel, Versioned, TenantScoped):
    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(primary_key=True)
    subject: Mapped[str]
    status: Mapped[str] = mapped_column(default="open")
    embedding: Mapped[list[float] | None] = mapped_column(Vector(DIMENSION), nullable=True)


class Cases(Repository[Case]):
    cache = CachePolicy(ttl=300)
    search = SearchIndex(
        "cases", fields={"subject": Text(prefixes=True), "status": "keyword"}
    )  # tenant_id is added as a keyword: every query of a tenant-scoped index filters on it
    vectors = VectorField("embedding", namespace="cases", metadata=("tenant_id",))


class CallModel(DeclarativeBase):
    """Schema evolution: the ``calls`` table as first migrated, with the library's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


for _table in LIBRARY_TABLES:
    _table.to_metadata(CallModel.metadata)


class Call(CallModel, Versioned):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str]
    priority: Mapped[int]


class Calls(Repository[Call]):
    search = SearchIndex("calls", fields={"subject": "text", "priority": "keyword"})


class RetypedCalls(Repository[Call]):
    """``Calls`` declared anew: what only a reindex can apply to the index."""

    search = SearchIndex(
        "calls", fields={"subject": Text(analyzer="whitespace"), "priority": "integer"}
    )


class ChannelCallModel(DeclarativeBase):
    """The ``calls`` table after a migration added a column (a second model of it)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ChannelCall(ChannelCallModel, Versioned):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str]
    priority: Mapped[int]
    channel: Mapped[str | None]


class ChannelCalls(Repository[ChannelCall]):
    """``Calls`` with the new column indexed too: an additive change."""

    search = SearchIndex(
        "calls", fields={"subject": "text", "priority": "keyword", "channel": "keyword"}
    )


class RelatedModel(DeclarativeBase):
    """The related-fields tests' base: tickets that embed their account, teams that embed
    their members; neither related table is a repository's nor ``Versioned``."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


for _table in LIBRARY_TABLES:
    _table.to_metadata(RelatedModel.metadata)


class Account(RelatedModel):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    tier: Mapped[str] = mapped_column(default="free")
    visits: Mapped[int] = mapped_column(default=0)


class HelpTicket(RelatedModel, Versioned):
    __tablename__ = "help_tickets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    subject: Mapped[str]
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    account: Mapped[Account] = relationship(lazy="raise")


class HelpTickets(Repository[HelpTicket]):
    cache = CachePolicy(ttl=300)
    search = SearchIndex(
        "help-tickets", fields={"subject": "text"}, related={"account": ("name", "tier")}
    )


class Team(RelatedModel, Versioned):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    members: Mapped[list[Member]] = relationship(lazy="raise", order_by="Member.id")


class Member(RelatedModel):
    __tablename__ = "members"

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="SET NULL"), index=True
    )
    handle: Mapped[str]


MAX_MEMBERS = 3


class Teams(Repository[Team]):
    search = SearchIndex(
        "teams",
        fields={"name": "text"},
        related={"members": Related(("handle",), max_fanout=MAX_MEMBERS)},
    )


RELATED_REPOSITORIES: list[type[Repository[Any]]] = [HelpTickets, Teams]
