"""An application's models: declared on ``satellites_repo.Base`` like any other."""

from __future__ import annotations

from sqlalchemy.orm import Mapped, mapped_column

from satellites_repo import Base, Vector, Versioned


class Note(Base, Versioned):
    __tablename__ = "app_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str]
    embedding: Mapped[list[float] | None] = mapped_column(Vector(8))
