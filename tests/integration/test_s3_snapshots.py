"""FAISS snapshots in a real S3 API server (s3proxy), and instances that start from them.

Each test writes under a prefix of its own. The upload-cut test runs an s3proxy of its own
and SIGKILLs it (by the pid it started) while a snapshot is being uploaded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import obstore
import pytest
from obstore.store import S3Store

from satellites_repo import DataLayer, DataLayerConfig
from satellites_repo.backends.faiss import FaissBackend
from satellites_repo.backends.s3_snapshots import S3Snapshots
from satellites_repo.migrate import create_tables
from tests.integration.models import REPOSITORIES, Article, Articles, IntegrationModel
from tests.integration.s3proxy import ACCESS_KEY, BUCKET, SECRET_KEY, S3Proxy, free_port

KILL_DEADLINE = 60.0
BULK = 300_000


class Store:
    """Where one test's snapshots go: an endpoint, a bucket, credentials and a prefix."""

    def __init__(self, endpoint: str, bucket: str, access: str, secret: str) -> None:
        self.endpoint, self.bucket, self.access, self.secret = endpoint, bucket, access, secret
        self.prefix = f"test-{uuid.uuid4().hex[:12]}"

    def config(self, config: DataLayerConfig, index_path: Path) -> DataLayerConfig:
        faiss = config.faiss.replace(
            index_path=index_path,
            snapshot_url=f"s3://{self.bucket}/{self.prefix}",
            s3_endpoint_url=self.endpoint,
            s3_access_key_id=self.access,
            s3_secret_access_key=self.secret,
            s3_timeout=5.0,
            snapshot_retention=2,
        )
        return config.replace(faiss=faiss)

    def layer(self, config: DataLayerConfig, index_path: Path) -> DataLayer:
        """A layer of the test's repositories, snapshotting here, with its own folder."""
        return DataLayer(self.config(config, index_path), repositories=REPOSITORIES)

    def client(self) -> S3Store:
        return S3Store(
            self.bucket,
            prefix=self.prefix,
            endpoint=self.endpoint,
            access_key_id=self.access,
            secret_access_key=self.secret,
            region="us-east-1",
            virtual_hosted_style_request=False,
            client_options={"allow_http": True, "timeout": dt.timedelta(seconds=10)},
        )


@pytest.fixture
async def tables(config: DataLayerConfig) -> None:
    await create_tables(config, IntegrationModel.metadata)
    return None


@pytest.fixture
def shared_store() -> Store:
    names = (
        "SATELLITES_S3_ENDPOINT_URL",
        "SATELLITES_S3_BUCKET",
        "SATELLITES_S3_ACCESS_KEY",
        "SATELLITES_S3_SECRET_KEY",
    )
    values = [os.environ.get(name) for name in names]
    if not all(values):
        pytest.fail(
            'no S3 server: run `scripts/services up s3` and `eval "$(scripts/services env)"`'
        )
    endpoint, bucket, access, secret = (value or "" for value in values)
    return Store(endpoint, bucket, access, secret)


def remote_of(layer: DataLayer) -> S3Snapshots:
    backend = layer.operations.backend("faiss")
    assert isinstance(backend, FaissBackend)
    assert backend.remote is not None
    return backend.remote


async def add_articles(layer: DataLayer, count: int) -> None:
    async with layer.unit_of_work() as uow:
        await uow.repository(Articles).add_many(
            [
                Article(tenant_id="acme", title=f"t{n}", body="b", embedding=[1.0, n, 0.0, 1.0])
                for n in range(count)
            ]
        )
        await uow.commit()
    await layer.operations.settled()


async def snapshot(layer: DataLayer) -> str:
    """Persist (local, then S3) and return the newest committed snapshot's name."""
    await layer.operations.backend("faiss").persist()  # type: ignore[attr-defined]
    committed, cut = await remote_of(layer).folders()
    assert cut == []
    return committed[-1]


async def test_a_new_instance_starts_from_the_snapshot_and_tails_later_commits(
    config: DataLayerConfig, tables: None, shared_store: Store, tmp_path: Path
) -> None:
    async with shared_store.layer(config, tmp_path / "a") as first:
        await add_articles(first, 3)
        stored = await snapshot(first)
        await add_articles(first, 2)
        async with shared_store.layer(config, tmp_path / "b") as second:
            assert remote_of(second).restored == stored
            assert await second.vectors.count("articles") == 5
            await add_articles(first, 1)
            await second.operations.follow()
            assert await second.vectors.count("articles") == 6
            assert all(drift.clean for drift in await second.operations.verify(Articles))


async def test_an_upload_cut_half_way_leaves_the_previous_snapshot_in_use(
    config: DataLayerConfig, tables: None, tmp_path: Path
) -> None:
    proxy = S3Proxy(tmp_path / "s3")
    proxy.start()
    try:
        store = Store(proxy.endpoint, BUCKET, ACCESS_KEY, SECRET_KEY)
        async with store.layer(config, tmp_path / "a") as first:
            await add_articles(first, 3)
            previous = await snapshot(first)
            # A big namespace makes the next upload take long enough to be cut.
            vectors = np.random.default_rng(7).random((BULK, 4), dtype=np.float32) + 0.1
            await first.vectors.upsert_many("bulk", [f"b{n}" for n in range(BULK)], vectors)
            await add_articles(first, 2)
            folder = proxy.bucket_folder / store.prefix
            known = set(os.listdir(folder))
            killed = threading.Event()

            def kill_when_the_upload_begins() -> None:
                deadline = time.monotonic() + KILL_DEADLINE
                while time.monotonic() < deadline:
                    if set(os.listdir(folder)) - known:
                        proxy.kill()
                        killed.set()
                        return
                    time.sleep(0.001)

            watcher = asyncio.create_task(asyncio.to_thread(kill_when_the_upload_begins))
            outcome = await asyncio.gather(
                first.operations.backend("faiss").persist(),  # type: ignore[attr-defined]
                return_exceptions=True,
            )
            await watcher
            assert killed.is_set()
            print(f"upload cut: {outcome[0]!r}")
            assert isinstance(outcome[0], Exception)
            (cut,) = set(os.listdir(folder)) - known
            assert not (folder / cut / "CURRENT").exists()
        proxy.start()  # the same data, on a new port
        store.endpoint = proxy.endpoint
        async with store.layer(config, tmp_path / "b") as second:
            assert remote_of(second).restored == previous
            assert await second.vectors.count("articles") == 5
            assert await second.vectors.count("bulk") == 0
    finally:
        proxy.kill()


async def test_a_tampered_snapshot_is_rejected_for_the_previous_then_for_postgres(
    config: DataLayerConfig, tables: None, shared_store: Store, tmp_path: Path
) -> None:
    async with shared_store.layer(config, tmp_path / "a") as first:
        await add_articles(first, 3)
        await snapshot(first)
        await add_articles(first, 2)
    # `first` stored one more at stop; retention keeps the newest two.
    store = remote_of_config(shared_store.config(config, tmp_path / "c"))
    previous, newest = (await store.folders())[0]
    client = shared_store.client()
    await _tamper(client, newest, ".faiss")
    async with shared_store.layer(config, tmp_path / "b") as second:
        assert remote_of(second).restored == previous
        assert await second.vectors.count("articles") == 5
    # Every snapshot now fails its checks (`second` stored one more at stop).
    committed, _ = await store.folders()
    for name in committed:
        await _tamper(client, name, "manifest.json")
    async with shared_store.layer(config, tmp_path / "c") as third:
        assert remote_of(third).restored is None  # rebuilt from Postgres
        assert await third.vectors.count("articles") == 5


def remote_of_config(config: DataLayerConfig) -> S3Snapshots:
    return S3Snapshots(config.faiss, config.postgres)


async def _tamper(client: S3Store, snapshot: str, suffix: str) -> None:
    """Flip one byte of the snapshot's file ending in ``suffix`` (same size)."""
    paths = [
        meta["path"]
        async for batch in obstore.list(client, f"{snapshot}/")
        for meta in batch
        if meta["path"].endswith(suffix)
    ]
    assert paths, f"{snapshot} has no file ending in {suffix}"
    for path in paths:
        data = bytearray(bytes(await (await obstore.get_async(client, path)).bytes_async()))
        data[len(data) // 2] ^= 0xFF
        await obstore.put_async(client, path, bytes(data))


async def test_two_instances_snapshotting_at_once_leave_one_consistent_newest(
    config: DataLayerConfig, tables: None, shared_store: Store, tmp_path: Path
) -> None:
    async with (
        shared_store.layer(config, tmp_path / "a") as first,
        shared_store.layer(config, tmp_path / "b") as second,
    ):
        await add_articles(first, 4)
        await second.operations.follow()
        backends = [layer.operations.backend("faiss") for layer in (first, second)]
        for _ in range(3):
            await asyncio.gather(*(backend.persist() for backend in backends))  # type: ignore[attr-defined]
        committed, cut = await remote_of(first).folders()
        print(f"committed after 3 concurrent rounds: {committed}")
        assert cut == []
        assert 1 <= len(committed) <= 2  # retention keeps the newest two
    async with shared_store.layer(config, tmp_path / "c") as third:
        newest, _ = await remote_of(third).folders()
        assert remote_of(third).restored in newest
        assert await third.vectors.count("articles") == 4
        assert all(drift.clean for drift in await third.operations.verify(Articles))


async def test_an_unreachable_store_falls_back_to_postgres(
    config: DataLayerConfig, tables: None, tmp_path: Path
) -> None:
    nobody = Store(f"http://127.0.0.1:{free_port()}", BUCKET, ACCESS_KEY, SECRET_KEY)
    async with nobody.layer(config, tmp_path / "a") as layer:
        assert remote_of(layer).restored is None
        await add_articles(layer, 2)
        assert await layer.vectors.count("articles") == 2
