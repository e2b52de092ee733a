"""A follower wakes for other transactions' NOTIFY, not for those its own fast path applies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from satellites_repo.model.spec import Registry
from satellites_repo.outbox.follower import Follower
from satellites_repo.outbox.store import FollowPoint
from satellites_repo.retry import wait_until
from satellites_repo.testing.fakes import FakeBackend
from tests.unit.models import Notes

Wake = Callable[[object, int, str, object], None]


class CountingStore:
    """The part of ``OutboxStore`` a follower reads with: counts each follow."""

    def __init__(self) -> None:
        self.follows = 0
        self.followed = asyncio.Event()

    async def follow(self, start: object, entities: object, apply: object, **_: Any) -> FollowPoint:
        self.follows += 1
        self.followed.set()
        return FollowPoint.at(0)


class Listener:
    """The part of an asyncpg connection ``Follower.run`` listens on."""

    def __init__(self) -> None:
        self.wake: Wake | None = None
        self.listening = asyncio.Event()

    async def add_listener(self, channel: str, callback: Wake) -> None:
        self.wake = callback
        self.listening.set()

    async def remove_listener(self, channel: str, callback: Wake) -> None:
        self.wake = None


@contextlib.asynccontextmanager
async def _running(store: CountingStore) -> AsyncIterator[tuple[Follower, Wake]]:
    """A follower running on a listener; yields it and the listener's NOTIFY callback."""
    follower = Follower(
        store=store,  # type: ignore[arg-type]
        backend=FakeBackend("faiss", shared=False),
        rehydrator=None,  # type: ignore[arg-type]
        registry=Registry([Notes], dimension=3),
        source=None,  # type: ignore[arg-type]
        page_size=100,
        poll_interval=3600,  # never, in a test: only a NOTIFY (or a release) wakes it
    )
    listener = Listener()
    task = asyncio.create_task(follower.run(listener))  # type: ignore[arg-type]
    await listener.listening.wait()
    assert listener.wake is not None
    try:
        yield follower, listener.wake
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_own_transactions_do_not_wake_the_follower_but_others_do() -> None:
    store = CountingStore()
    async with _running(store) as (follower, wake):
        follower.claim(41)
        wake(None, 1, "satellites_outbox", "41")  # committed, being applied here
        follower.applied(41)
        wake(None, 1, "satellites_outbox", "41")  # a late copy of the same NOTIFY
        await _settle()
        assert store.follows == 0

        wake(None, 2, "satellites_outbox", "42")  # another process's commit
        assert await wait_until(store.followed, 10)
        assert store.follows == 1

        store.followed.clear()
        wake(None, 2, "satellites_outbox", "")  # a repair's NOTIFY names none
        assert await wait_until(store.followed, 10)
        assert store.follows == 2


async def test_a_transaction_given_back_wakes_the_follower() -> None:
    store = CountingStore()
    async with _running(store) as (follower, wake):
        follower.claim(7)
        wake(None, 1, "satellites_outbox", "7")
        await _settle()
        assert store.follows == 0
        follower.release(7)  # the fast path failed: the follower must read it after all
        assert await wait_until(store.followed, 10)
        assert store.follows == 1
