"""``satellites tenant``: one tenant's lifecycle (export its rows, purge them everywhere)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from satellites_repo.cli._common import console
from satellites_repo.cli.ops import RepositoriesOption, with_layer
from satellites_repo.ops import Operations
from satellites_repo.ops.tenants import PURGE_BATCH

__all__ = ["tenant_app"]

tenant_app = typer.Typer(help="One tenant's rows: export them, purge them and their projections.")

TenantArgument = Annotated[str, typer.Argument(help="The tenant's name (its tenant_id).")]


@tenant_app.command()
def purge(
    tenant: TenantArgument,
    repositories: RepositoriesOption,
    batch: Annotated[int, typer.Option(help="Rows deleted per transaction.")] = PURGE_BATCH,
) -> None:
    """Delete the tenant's rows and, through the outbox, every projection of them.

    Resumable: each batch commits on its own; run it again after an interruption.
    """

    async def delete(operations: Operations) -> None:
        deleted = await operations.purge_tenant(tenant, batch=batch)
        await operations.settled()
        for name, count in deleted.items():
            console.print(f"{name}: deleted {count} row(s) of tenant {tenant!r}")

    with_layer(repositories, delete, relay=True, follow=True)


@tenant_app.command()
def export(tenant: TenantArgument, repositories: RepositoriesOption) -> None:
    """Write the tenant's rows to stdout as JSON lines: {"repository": ..., "row": {...}}."""

    async def stream(operations: Operations) -> None:
        async for line in operations.export_tenant(tenant):
            sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()

    with_layer(repositories, stream)
