"""A table with nothing but a key, a tenant and a 384-d vector, for the vector benchmarks.

``engines.py`` (ready time) and ``_vector_figures.py`` (startup rebuild) each create it in
a schema of their own. Its ``MetaData`` is its own, with the library's outbox and meta
tables, so ``create_tables`` makes only these.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import asyncpg
import numpy as np
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from satellites_repo import Repository, Vector, VectorField, Versioned
from satellites_repo.orm.base import NAMING_CONVENTION
from satellites_repo.outbox.table import meta_table, outbox_table

__all__ = ["DIMENSION", "NAMESPACE", "Model", "Passage", "Passages", "copy_passages"]

DIMENSION = 384
NAMESPACE = "bench_passages"


class Model(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


for _table in (outbox_table, meta_table):
    _table.to_metadata(Model.metadata)


class Passage(Model, Versioned):
    __tablename__ = "bench_passages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str]
    embedding: Mapped[list[float]] = mapped_column(Vector(DIMENSION))


class Passages(Repository[Passage]):
    vectors = VectorField("embedding", namespace=NAMESPACE, metadata=("tenant_id",))


async def copy_passages(
    connection: asyncpg.Connection, schema: str, batches: Iterable[np.ndarray]
) -> int:
    """COPY one row per vector (tenants ``t0``..``t9`` in turn); the capture trigger gives
    each its version, as it would for any bulk load. Returns the rows written."""
    written = 0
    for vectors in batches:
        records = [
            (uuid.uuid4(), f"t{(written + n) % 10}", vector)
            for n, vector in enumerate(vectors.tolist())
        ]
        await connection.copy_records_to_table(
            Passage.__tablename__,
            schema_name=schema,
            columns=["id", "tenant_id", "embedding"],
            records=records,
        )
        written += len(records)
    return written
