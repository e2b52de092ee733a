"""The FAISS rebuild reads vectors in Postgres's binary array form (``model.packed``):
each row is loaded exactly as Postgres holds it, or left out alone, whatever it holds."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from satellites_repo import DataLayer, DataLayerConfig
from satellites_repo.migrate import create_tables
from tests.integration.models import NOTE_REPOSITORIES, IntegrationModel, Notes

ROWS = """
INSERT INTO notes (id, tenant_id, body, stamp, embedding) VALUES
  ('exact', 'acme', '', '2024-01-01', '{0.1,-2.5,3e-30,4}'),
  ('null-element', 'acme', '', '2024-01-01', '{1,NULL,3,4}'),
  ('short', 'acme', '', '2024-01-01', '{1,2,3}'),
  ('matrix', 'acme', '', '2024-01-01', '{{1,2,3,4}}'),
  ('zeros', 'acme', '', '2024-01-01', '{0,0,0,0}'),
  ('no-vector', 'acme', '', '2024-01-01', NULL),
  ('other', 'globex', '', '2024-01-01', '{1,1,1,1}')
"""


async def test_a_rebuild_loads_vectors_exactly_and_leaves_out_what_faiss_cannot_hold(
    config: DataLayerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    await create_tables(config, IntegrationModel.metadata)
    quiet = config.replace(outbox=config.outbox.replace(relay=False, follow_interval=3600))
    async with DataLayer(quiet, repositories=NOTE_REPOSITORIES) as layer:
        await layer.postgres.execute(ROWS)
        with caplog.at_level(logging.ERROR, logger="satellites_repo.backends.faiss"):
            [report] = await layer.operations.reindex(Notes, ["faiss"])
        assert report.rows == 2
        assert set(await layer.vectors.versions("notes")) == {"exact", "other"}
        left_out = {record.getMessage().split()[1] for record in caplog.records}
        assert left_out == {"'null-element'", "'short'", "'matrix'", "'zeros'"}
        stored = await layer.vectors.get("notes", "exact")
        assert stored is not None
        expected = np.array([0.1, -2.5, 3e-30, 4], dtype=np.float32)
        assert np.allclose(stored.vector, expected / np.linalg.norm(expected), rtol=1e-6)
        assert stored.metadata == {"tenant_id": "acme"}
        version = await layer.postgres.fetchval("SELECT version FROM notes WHERE id = 'exact'")
        assert stored.version == version
        [hit] = await layer.vectors.query("notes", [1, 1, 1, 1], 1, filter={"tenant_id": "globex"})
        assert hit.id == "other"
