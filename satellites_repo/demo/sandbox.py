"""The demo's sandbox: its own names in the shared Postgres, Redis and Elasticsearch.

A schema, a Redis key prefix (``prefix:``), an Elasticsearch index prefix (``prefix-``)
and a FAISS folder. ``recreate`` empties them at the start of a run; nothing removes them
at the end, so the data can be explored after the demo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from satellites_repo import DataLayer, DataLayerConfig
from satellites_repo.demo.embedding import DIM

__all__ = ["Sandbox"]


@dataclass(frozen=True, slots=True)
class Sandbox:
    """The tour's own names in the shared backends: schema, ``prefix:*`` keys, ``prefix-*``."""

    schema: str
    prefix: str
    faiss_dir: Path

    @property
    def key_prefix(self) -> str:
        return f"{self.prefix}:"

    @property
    def index_prefix(self) -> str:
        return f"{self.prefix}-"

    def config(self, base: DataLayerConfig) -> DataLayerConfig:
        """``base`` moved into the sandbox.

        Every bulk write refreshes the index (``refresh="true"``), so a step can search
        what the step before committed; for the demo's handful of bulk requests that is
        cheaper than ``"wait_for"``, which waits up to a second for the next refresh.
        """
        return base.replace(
            postgres=base.postgres.replace(schema_name=self.schema),
            redis=base.redis.replace(key_prefix=self.key_prefix),
            elasticsearch=base.elasticsearch.replace(
                index_prefix=self.index_prefix, refresh="true"
            ),
            faiss=base.faiss.replace(index_path=self.faiss_dir, dimension=DIM),
        )

    async def recreate(self, config: DataLayerConfig) -> None:
        """Drop what an earlier run left and create an empty schema.

        A layer without repositories opens the clients but creates no search index.
        """
        async with DataLayer(config) as bare:
            await bare.postgres.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            await bare.postgres.execute(f'CREATE SCHEMA "{self.schema}"')
            stale = [key async for key in bare.redis.scan_iter(match=f"{self.key_prefix}*")]
            if stale:
                await bare.redis.unlink(*stale)
            # Elasticsearch refuses wildcard deletes: list by prefix, delete by name.
            indices = await bare.elasticsearch.indices.get(
                index=f"{self.index_prefix}*", allow_no_indices=True, expand_wildcards="all"
            )
            if indices:
                await bare.elasticsearch.indices.delete(index=",".join(indices))
