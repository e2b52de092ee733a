"""Print the resident-set growth, in bytes, of building one FAISS index in this process.

``python benchmarks/_vector_memory.py ours|raw COUNT``: ``ours`` loads COUNT random 384-d
vectors into a ``VectorIndex`` with UUID ids, a tenant and a version each; ``raw`` adds
them to a bare ``IndexIDMap2(IndexFlatIP)``. Both in batches of 2,000 (as a rebuild
does), each from a fresh process so neither inherits the other's freed memory.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
import uuid
from pathlib import Path

import faiss
import numpy as np

from satellites_repo.vectors import VectorIndex

DIMENSION = 384
BATCH = 2_000


def resident() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def grown(side: str, count: int) -> int:
    rng = np.random.default_rng(1)
    gc.collect()
    before = resident()
    index = VectorIndex(Path(tempfile.gettempdir()) / "unused", DIMENSION)
    raw = faiss.IndexIDMap2(faiss.IndexFlatIP(DIMENSION))
    for start in range(0, count, BATCH):
        size = min(BATCH, count - start)
        vectors = rng.standard_normal((size, DIMENSION), dtype=np.float32)
        if side == "raw":
            faiss.normalize_L2(vectors)
            raw.add_with_ids(vectors, np.arange(start, start + size, dtype=np.int64))
            continue
        ids = [str(uuid.UUID(int=start + n)) for n in range(size)]
        tenants = [{"tenant_id": f"t{(start + n) % 10}"} for n in range(size)]
        versions = list(range(start + 1, start + size + 1))
        await index.upsert_many("bench", ids, vectors, tenants, versions=versions)
    del vectors
    gc.collect()
    return resident() - before


if __name__ == "__main__":
    print(asyncio.run(grown(sys.argv[1], int(sys.argv[2]))))
