"""Tickets (cached and searched) and their comments (events only), per tenant."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column, relationship

from satellites_repo import Base, CachePolicy, Repository, SearchIndex, Versioned


class Ticket(Base, Versioned):
    __tablename__ = "helpdesk_tickets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(index=True)
    title: Mapped[str]
    body: Mapped[str]


class Comment(Base, Versioned):
    __tablename__ = "helpdesk_comments"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("helpdesk_tickets.id"), index=True)
    text: Mapped[str]
    # Tells the unit of work to insert the ticket before its comments.
    ticket: Mapped[Ticket] = relationship()


class Tickets(Repository[Ticket]):
    cache = CachePolicy(ttl=300)
    search = SearchIndex(
        "helpdesk-tickets", fields={"title": "text", "body": "text", "tenant_id": "keyword"}
    )


class Comments(Repository[Comment]):
    pass


REPOSITORIES: list[type[Repository[Any]]] = [Tickets, Comments]
