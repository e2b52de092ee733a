"""Change capture in the database: every write on a captured table lands in the outbox.

Three statement-level triggers per captured table (``AFTER INSERT/UPDATE/DELETE``, with
transition tables, so a bulk statement costs one set-based ``INSERT ... SELECT``) write
one outbox row per changed row in the writing transaction, whatever issued the change:
the ORM flush, ``session.execute(update(...))``, an ``ON DELETE CASCADE``, raw SQL on the
asyncpg pool, psql, another service. A ``BEFORE INSERT OR UPDATE`` row trigger gives every
written row a fresh ``version`` from one database sequence, so versions only grow for a
key, across delete and re-create and key changes too. A row whose key an UPDATE changed
is recorded as deleted under its old key. ``TRUNCATE`` is refused (its projections could
not follow it without a reindex).

An UPDATE's row also records which columns it changed (``changed``: the old and new row
compared, one join of the transition tables on the key; typed where the type's equality
is exact, as text otherwise), so a backend whose projection holds none of them is not sent
the change (``Change.affects``). The columns are read from the catalog per statement, so a
column added later counts.

Captured rows are owed to every shared target (``ALL_SHARED``: the delivery expands it to
the backends that cover the table) and to the events; their ``payload`` is the row as
``to_jsonb`` renders it, without the hidden (vector) columns. Delivery projects the row's
*current* state from Postgres, never this payload (``Rehydrator``), so a late replay
cannot resurrect a row.

The DDL is installed by ``create_tables`` and by the library's migrations; an application
revision calls ``satellites_repo.migrate.install_capture`` for each projected table.
"""

from __future__ import annotations

from collections.abc import Sequence

from satellites_repo.outbox.table import (
    NOTIFY_PAYLOAD,
    OUTBOX_CHANNEL,
    VERSION_SEQUENCE,
    outbox_table,
)

__all__ = [
    "ALL_SHARED",
    "CAPTURE_FUNCTION",
    "GRACE_SETTING",
    "capture_statements",
    "function_statements",
    "uncapture_statements",
]

ALL_SHARED = "*"
"""The target a captured row owes: every shared backend that covers its table."""

CAPTURE_FUNCTION = "satellites_capture"
VERSION_FUNCTION = "satellites_next_version"
REFUSE_FUNCTION = "satellites_refuse_truncate"

GRACE_SETTING = "satellites.capture_grace"
"""Session setting of the layer's own connections: their captured rows are left to the
fast path for that long (and count its attempt) before the relay takes them. Rows other
writers captured are due at once."""

_TRIGGERS = {
    "satellites_capture_insert": "AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows",
    "satellites_capture_update": (
        "AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    ),
    "satellites_capture_delete": "AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows",
}

# TG_ARGV: [0] the key column, [1] the hidden columns as a text[] literal.
_CAPTURE_BODY = f"""
CREATE OR REPLACE FUNCTION {CAPTURE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  grace text := coalesce(nullif(current_setting('{GRACE_SETTING}', true), ''), '0');
  head text := format(
    'INSERT INTO {outbox_table.name} (event_id, entity, key, operation, version, payload, '
    'pending, attempts, next_attempt_at, changed) '
    'SELECT gen_random_uuid()::text, %L, j ->> %L, %%L, %%s, j - %L::text[], '
    '''{{{ALL_SHARED},events}}'', %s, now() + %L::interval, %%s ',
    TG_TABLE_NAME, TG_ARGV[0], TG_ARGV[1],
    CASE WHEN grace::interval > interval '0' THEN 1 ELSE 0 END, grace);
  -- The row without its hidden (vector) columns, before it becomes JSON: rendering a
  -- vector's floats as JSON numbers only to drop them cost most of a bulk insert.
  shown text := (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
                   FROM pg_attribute
                  WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped
                    AND attname <> ALL (TG_ARGV[1]::text[]));
  live text := '(j ->> ''version'')::bigint';
  fresh text := 'nextval(''{VERSION_SEQUENCE}'')';
  changed text;
  shown_new text;
  written bigint := 0;
  gone bigint := 0;
BEGIN
  IF TG_OP = 'INSERT' THEN
    EXECUTE format(head, 'created', live, 'NULL')
      || format('FROM (SELECT to_jsonb(r) AS j FROM (SELECT %s FROM new_rows) r) AS s', shown);
    GET DIAGNOSTICS written = ROW_COUNT;
  ELSIF TG_OP = 'UPDATE' THEN
    -- The columns each row's UPDATE changed, compared typed where the type's equality is
    -- its value's (built-in booleans, numbers, strings, datetimes, uuids and arrays of
    -- them), else as text; NULL where the key changed (no old row to compare with).
    SELECT 'array_remove(ARRAY[' || string_agg(format(
             CASE WHEN c.typed THEN 'CASE WHEN n.%1$I IS DISTINCT FROM o.%1$I THEN %1$L END'
             ELSE 'CASE WHEN n.%1$I::text IS DISTINCT FROM o.%1$I::text THEN %1$L END' END,
             c.attname), ', ' ORDER BY c.attnum) || ']::text[], NULL)',
           string_agg('n.' || quote_ident(c.attname), ', ' ORDER BY c.attnum)
             FILTER (WHERE c.attname <> ALL (TG_ARGV[1]::text[]))
      INTO changed, shown_new
      FROM (SELECT a.attname, a.attnum,
                   coalesce(e.oid, t.oid) = 'uuid'::regtype OR (coalesce(e.oid, t.oid) < 10000
                   AND coalesce(e.typcategory, t.typcategory) IN ('B', 'N', 'S', 'D')) AS typed
              FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
              LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
             WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped) AS c;
    EXECUTE format(head, 'updated', live, 'changed')
      || format('FROM (SELECT to_jsonb(r) AS j, CASE WHEN o.%1$I IS NULL THEN NULL ELSE %2$s '
                'END AS changed FROM new_rows n LEFT JOIN old_rows o ON o.%1$I = n.%1$I '
                'CROSS JOIN LATERAL (SELECT %3$s) AS r) AS s', TG_ARGV[0], changed, shown_new);
    GET DIAGNOSTICS written = ROW_COUNT;
    -- Keys the statement changed: the old key's projections must go.
    EXECUTE format(head, 'deleted', fresh, 'NULL')
      || format('FROM (SELECT to_jsonb(r) AS j FROM (SELECT %s FROM old_rows o WHERE NOT EXISTS '
                '(SELECT 1 FROM new_rows n WHERE n.%I = o.%I)) r) AS s',
                shown, TG_ARGV[0], TG_ARGV[0]);
    GET DIAGNOSTICS gone = ROW_COUNT;
  ELSE
    EXECUTE format(head, 'deleted', fresh, 'NULL')
      || format('FROM (SELECT to_jsonb(r) AS j FROM (SELECT %s FROM old_rows) r) AS s', shown);
    GET DIAGNOSTICS written = ROW_COUNT;
  END IF;
  IF written + gone > 0 THEN
    PERFORM pg_notify('{OUTBOX_CHANNEL}', {NOTIFY_PAYLOAD});
  END IF;
  RETURN NULL;
END
$fn$
"""


def _trigger_function(name: str, body: str) -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
        f"BEGIN\n{body}\nEND\n$fn$"
    )


_VERSION_BODY = _trigger_function(
    VERSION_FUNCTION, f"  NEW.version := nextval('{VERSION_SEQUENCE}');\n  RETURN NEW;"
)

_REFUSE_BODY = _trigger_function(
    REFUSE_FUNCTION,
    "  RAISE EXCEPTION 'TRUNCATE of % is refused: its Redis, Elasticsearch and FAISS "
    "projections would not see it. DELETE FROM % instead (captured), or drop the satellites "
    "triggers, truncate, and run `satellites reindex`', TG_TABLE_NAME, TG_TABLE_NAME\n"
    "    USING ERRCODE = 'feature_not_supported';",
)


def function_statements() -> list[str]:
    """The version sequence and the trigger functions (idempotent; once per schema)."""
    return [
        f"CREATE SEQUENCE IF NOT EXISTS {VERSION_SEQUENCE} AS bigint",
        _CAPTURE_BODY,
        _VERSION_BODY,
        _REFUSE_BODY,
    ]


def capture_statements(table: str, key: str, hidden: Sequence[str] = ()) -> list[str]:
    """The triggers that capture ``table`` (primary key column ``key``; ``hidden``: vector
    columns left out of the stored payload). Idempotent; needs ``function_statements``."""
    hidden_literal = "{" + ",".join(hidden) + "}"
    arguments = f"{_literal(key)}, {_literal(hidden_literal)}"
    statements = [
        f"CREATE OR REPLACE TRIGGER satellites_version BEFORE INSERT OR UPDATE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {VERSION_FUNCTION}()",
        f"CREATE OR REPLACE TRIGGER satellites_refuse_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {REFUSE_FUNCTION}()",
    ]
    statements.extend(
        f"CREATE OR REPLACE TRIGGER {name} {timing.format(table=table)} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {CAPTURE_FUNCTION}({arguments})"
        for name, timing in _TRIGGERS.items()
    )
    return statements


def uncapture_statements(table: str) -> list[str]:
    """Drop the capture of ``table`` (a migration's downgrade)."""
    names = ["satellites_version", "satellites_refuse_truncate", *_TRIGGERS]
    return [f"DROP TRIGGER IF EXISTS {name} ON {table}" for name in names]


CAPTURE_TRIGGER_NAMES = ("satellites_version", *_TRIGGERS)

MISSING_CAPTURE_SQL = """
SELECT t.name FROM unnest($1::text[]) AS t(name)
 WHERE (SELECT count(*) FROM pg_trigger g
         WHERE g.tgrelid = to_regclass(t.name) AND g.tgname = ANY($2::text[])) < $3
"""
"""Which of the tables named in $1 lack one of the capture triggers $2 ($3 of them)."""


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
