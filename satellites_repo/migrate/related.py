"""Installing the capture of related tables (``SearchIndex(related=...)``).

``create_tables(config, metadata, repositories=[...])`` installs it for the repositories
given; a revision calls ``install_related_capture(Tickets)`` in ``upgrade()`` (and
``remove_related_capture(Tickets)`` in ``downgrade()``) once a repository embeds related
fields, or when it embeds new ones. ``DataLayer.start()`` fails, naming the call, while
a relationship's triggers are missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alembic import op

from satellites_repo.model import Registry
from satellites_repo.outbox.related_capture import related_function_statements, related_triggers

__all__ = ["install_related_capture", "related_capture_ddl", "remove_related_capture"]


def related_capture_ddl(repositories: Sequence[type[Any]]) -> list[str]:
    """The statements that capture every table the repositories' documents embed."""
    specs = Registry(repositories).specs
    triggers = [trigger for spec in specs for trigger in related_triggers(spec)]
    if not triggers:
        return []
    return [*related_function_statements(), *(s for t in triggers for s in t.create)]


def install_related_capture(*repositories: type[Any]) -> None:
    """In a revision's ``upgrade()``: capture the tables the repositories' search documents
    embed (a change there re-projects the documents). Idempotent."""
    for statement in related_capture_ddl(repositories):
        op.execute(statement)


def remove_related_capture(*repositories: type[Any]) -> None:
    """In a revision's ``downgrade()``: drop those triggers."""
    for spec in Registry(repositories).specs:
        for trigger in related_triggers(spec):
            for statement in trigger.drop:
                op.execute(statement)
