"""The capture of related tables: a change of a related row owes its dependents' documents.

For each relationship a ``SearchIndex`` embeds (``related=``), three statement-level
triggers on the *related* table (``AFTER INSERT/UPDATE/DELETE``, with transition tables)
write, in the writing transaction, one outbox row per document that embeds a changed row,
whatever issued the change (ORM, bulk DML, raw SQL, a cascade):

- many-to-one (``tickets.customer``): the rows of the indexed table whose foreign key
  points at a changed row (one set-based ``INSERT ... SELECT``; index the foreign key);
- one-to-many (``customers.tickets``): the parents a changed row points at, before and
  after the change (a child moved to another parent re-projects both).

An UPDATE counts only where an embedded column or the joining column changed, so a related
row's other columns (a counter, a timestamp) re-project nothing. The related table need
not be a repository's, nor ``Versioned``; ``TRUNCATE`` of it is refused, as for captured
tables.

The rows written are *re-projections*: their ``event_id`` starts with ``RELATED_PREFIX``
(a kind of repair: durable subscribers and the fast path leave them alone), they owe the
search index only, and are due at once, so the relay delivers them in its batches
(``OutboxConfig.batch_size``) and a customer with 10,000 tickets is 20 bulk requests of
500, each settled on its own: a crash resumes where it stopped. Each is projected from
Postgres' current state at a fresh document version (``outbox.related``).

``create_tables(..., repositories=[...])`` installs these triggers; a migration calls
``satellites_repo.migrate.install_related_capture(Repository)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from satellites_repo.outbox.capture import REFUSE_FUNCTION, function_statements
from satellites_repo.outbox.records import REPAIR_EVENT_PREFIX
from satellites_repo.outbox.table import OUTBOX_CHANNEL, outbox_table

if TYPE_CHECKING:
    from satellites_repo.model import EntitySpec
    from satellites_repo.model.related import RelatedJoin

__all__ = [
    "RELATED_PREFIX",
    "RELATED_TARGET",
    "RelatedCapture",
    "RelatedTrigger",
    "related_captures",
    "related_function_statements",
    "related_triggers",
]

RELATED_PREFIX = f"{REPAIR_EVENT_PREFIX}related:"
"""How the ``event_id`` of a re-projection row starts."""

RELATED_TARGET = "elasticsearch"
"""The backend that builds documents with related fields: what a re-projection owes."""

REPROJECT_FUNCTION = "satellites_reproject"

# TG_ARGV: [0] 'dependents' (many-to-one) or 'parents' (one-to-many), [1] the indexed
# table, [2] its key column, [3] the column of this table that joins, [4] the indexed
# table's joining column, [5] this table's key column, [6] the watched columns (text[]).
_REPROJECT_BODY = f"""
CREATE OR REPLACE FUNCTION {REPROJECT_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  watched text[] := TG_ARGV[6]::text[];
  changed text;
  owed text;
  written bigint := 0;
BEGIN
  IF TG_OP = 'INSERT' THEN
    changed := format('SELECT n.%I AS k FROM new_rows n', TG_ARGV[3]);
  ELSIF TG_OP = 'DELETE' THEN
    changed := format('SELECT o.%I AS k FROM old_rows o', TG_ARGV[3]);
  ELSE
    changed := format(
      'SELECT x.k FROM new_rows n FULL JOIN old_rows o ON n.%1$I = o.%1$I '
      'CROSS JOIN LATERAL (VALUES (n.%2$I), (o.%2$I)) AS x(k) '
      'WHERE ROW(%3$s) IS DISTINCT FROM ROW(%4$s)',
      TG_ARGV[5], TG_ARGV[3],
      (SELECT string_agg(format('n.%I', c), ', ') FROM unnest(watched) AS c),
      (SELECT string_agg(format('o.%I', c), ', ') FROM unnest(watched) AS c));
  END IF;
  IF TG_ARGV[0] = 'parents' THEN
    owed := format('SELECT DISTINCT c.k::text AS key FROM (%s) AS c WHERE c.k IS NOT NULL',
                   changed);
  ELSE
    owed := format('SELECT p.%I::text AS key FROM %I AS p '
                   'WHERE p.%I IN (SELECT c.k FROM (%s) AS c)',
                   TG_ARGV[2], TG_ARGV[1], TG_ARGV[4], changed);
  END IF;
  EXECUTE format(
    'INSERT INTO {outbox_table.name} (event_id, entity, key, operation, version, payload, '
    'pending, attempts) SELECT %L || gen_random_uuid()::text, %L, s.key, ''updated'', 0, '
    '''{{}}''::jsonb, ''{{{RELATED_TARGET}}}'', 0 FROM (%s) AS s',
    '{RELATED_PREFIX}', TG_ARGV[1], owed);
  GET DIAGNOSTICS written = ROW_COUNT;
  IF written > 0 THEN
    PERFORM pg_notify('{OUTBOX_CHANNEL}', '');
  END IF;
  RETURN NULL;
END
$fn$
"""

_TIMINGS = {
    "insert": "AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows",
    "update": "AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows",
}


@dataclass(frozen=True, slots=True)
class RelatedTrigger:
    """The triggers on ``table`` (a related table) for one relationship of one index."""

    table: str
    names: tuple[str, ...]
    create: tuple[str, ...]
    drop: tuple[str, ...]
    about: str
    """``"<indexed table>.<relationship>"``, for messages."""


@dataclass(frozen=True, slots=True)
class RelatedCapture:
    """One relationship's capture in plain names, as a migration freezes it.

    ``table`` is the related table, ``indexed`` the table whose documents embed it (key
    ``key``). ``many``: one-to-many (``column``, in ``table``, names the parent's key);
    else many-to-one (``indexed_column``, in ``indexed``, points at ``column``).
    ``watched``: the columns whose change re-projects (embedded, and joining).
    """

    indexed: str
    key: str
    relationship: str
    table: str
    table_key: str
    many: bool
    column: str
    indexed_column: str
    watched: tuple[str, ...]

    @classmethod
    def of(cls, spec: EntitySpec, join: RelatedJoin) -> RelatedCapture:
        return cls(
            indexed=spec.table,
            key=spec.model.__table__.c[spec.codec.primary_key].name,
            relationship=join.name,
            table=join.table,
            table_key=join.key_column,
            many=join.many,
            column=join.remote_column,
            indexed_column="" if join.many else join.local_column,
            watched=tuple(dict.fromkeys([*join.columns, join.remote_column])),
        )

    def trigger(self) -> RelatedTrigger:
        arguments = [
            "parents" if self.many else "dependents",
            self.indexed,
            self.key,
            self.column,
            self.indexed_column,
            self.table_key,
            "{" + ",".join(self.watched) + "}",
        ]
        literal = ", ".join(_literal(value) for value in arguments)
        base = f"satellites_related_{self.indexed}_{self.relationship}"
        names = tuple(f"{base}_{operation}" for operation in _TIMINGS)
        create = [
            f"CREATE OR REPLACE TRIGGER {name} {timing.format(table=self.table)} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {REPROJECT_FUNCTION}({literal})"
            for name, timing in zip(names, _TIMINGS.values(), strict=True)
        ]
        create.append(
            f"CREATE OR REPLACE TRIGGER satellites_refuse_truncate BEFORE TRUNCATE ON "
            f"{self.table} FOR EACH STATEMENT EXECUTE FUNCTION {REFUSE_FUNCTION}()"
        )
        drop = tuple(f"DROP TRIGGER IF EXISTS {name} ON {self.table}" for name in names)
        about = f"{self.indexed}.{self.relationship}"
        return RelatedTrigger(self.table, names, tuple(create), drop, about)


def related_function_statements() -> list[str]:
    """The capture functions (the TRUNCATE refusal) and the re-projection function."""
    return [*function_statements(), _REPROJECT_BODY]


def related_captures(spec: EntitySpec) -> list[RelatedCapture]:
    """The capture each relationship of ``spec``'s search document needs."""
    return [RelatedCapture.of(spec, join) for join in spec.related]


def related_triggers(spec: EntitySpec) -> list[RelatedTrigger]:
    """The triggers each relationship of ``spec``'s search document needs (idempotent)."""
    return [capture.trigger() for capture in related_captures(spec)]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
