"""Run as a subprocess: a DataLayer whose one subscriber prints every event it handles.

``python -m tests.integration.event_consumer durable NAME ok|hang`` or ``... plain - ok``.
Configuration (the bus included) comes from SATELLITES_* variables set by the test. The
handler subscribes to ``probe.*`` and prints ``handled <event id>``; with ``hang`` it
prints ``started <event id>`` and never returns (the test kills the process there).
Prints ``ready`` once the layer has started; runs until it is killed.
"""

from __future__ import annotations

import asyncio
import sys

from satellites_repo import DataEvent, DataLayer, DataLayerConfig
from tests.integration.models import REPOSITORIES


def say(line: str) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


async def main(mode: str, name: str, behaviour: str) -> None:
    layer = DataLayer(DataLayerConfig.from_env(), repositories=REPOSITORIES)

    async def handler(event: DataEvent) -> None:
        if behaviour == "hang":
            say(f"started {event.id}")
            await asyncio.Event().wait()
        say(f"handled {event.id}")

    layer.events.subscribe("probe.*", handler, durable=name if mode == "durable" else None)
    async with layer:
        say("ready")
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
