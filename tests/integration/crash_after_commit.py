"""Run as a subprocess: commit articles (``add``, the default) or a bulk UPDATE of every
article's title (``bulk-update``), then die by SIGKILL before anything is projected.

Configuration comes from SATELLITES_* variables set by the test. Prints the committed ids
(one per line) before dying, so the test knows what must reach every projection.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from sqlalchemy import update

from satellites_repo import DataLayer, DataLayerConfig
from satellites_repo.outbox import CommitTicket, OutboxHooks
from tests.integration.models import REPOSITORIES, Article, Articles


async def die_after_commit(self: OutboxHooks, ticket: CommitTicket) -> None:
    sys.stdout.write("".join(f"{record.key}\n" for record in ticket.records))
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


async def main(count: int, mode: str) -> None:
    OutboxHooks.after_commit = die_after_commit  # type: ignore[method-assign]
    layer = DataLayer(DataLayerConfig.from_env(), repositories=REPOSITORIES)
    async with layer, layer.unit_of_work() as uow:
        if mode == "bulk-update":
            await uow.session.execute(update(Article).values(title="bulk"))
            await uow.commit()
            return
        articles = [
            Article(tenant_id="acme", title=f"crash {n}", body="b", embedding=[1.0, n, 0, 0])
            for n in range(count)
        ]
        await uow.repository(Articles).add_many(articles)
        await uow.commit()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "add"))
