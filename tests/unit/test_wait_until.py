"""``wait_until``: the wait every background loop uses between passes."""

from __future__ import annotations

import asyncio

import pytest

from satellites_repo.retry import wait_until


async def test_it_says_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await wait_until(event, 0.01) is False
    event.set()
    assert await wait_until(event, 5) is True


async def test_a_cancel_racing_the_event_still_cancels() -> None:
    """The race ``asyncio.wait_for`` loses on 3.11: the event set as the cancel arrives."""
    for _ in range(200):
        event = asyncio.Event()
        waiting = asyncio.create_task(wait_until(event, 5))
        await asyncio.sleep(0)
        event.set()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
