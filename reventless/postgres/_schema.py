"""Every table of the PostgreSQL store, in a schema the user names, its one schema version and
its one upgrade path.

The provider brings the schema to the current version when it opens, in one transaction under
an advisory lock, so several processes opening one new database at once make it once. A schema
that holds tables reventless did not make is refused (ValidationError), as is one written by a
newer release (CorruptDataError); nothing is written to either.

``events.tx`` is the id of the transaction that appended the row (``pg_current_xact_id()``);
``read_all`` reads only rows of transactions older than every transaction still running (see
``_event_log``).
"""

from __future__ import annotations

import re

from reventless.errors import ValidationError

__all__ = ("SCHEMA_VERSION", "ddl", "quote_schema", "upgrade_lock_key")

SCHEMA_VERSION = 1
APPLICATION = "reventless"

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# Table name -> its statements; ``{s}`` is the quoted schema name. In creation order.
_TABLES: dict[str, tuple[str, ...]] = {
    "meta": ("CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL)",),
    "events": (
        """CREATE TABLE {s}.events (
    position bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
    aggregate text NOT NULL,
    aggregate_id text NOT NULL,
    version integer NOT NULL CHECK (version > 0),
    type text NOT NULL,
    data bytea NOT NULL,
    message_id text,
    recorded_at timestamptz NOT NULL,
    UNIQUE (aggregate, aggregate_id, version)
)""",
        "CREATE INDEX events_by_message ON {s}.events (aggregate, aggregate_id, message_id)"
        " WHERE message_id IS NOT NULL",
    ),
    # One row per reaction: its checkpoint (the position of the last event handled), its state,
    # its last error and its lease (judged by the database's clock). ``_reactions``.
    "reactions": (
        """CREATE TABLE {s}.reactions (
    name text PRIMARY KEY,
    follows text[] NOT NULL,
    position bigint NOT NULL CHECK (position >= 0),
    state text NOT NULL CHECK (state IN ('running', 'stopped')),
    last_error text,
    owner text,
    lease_until timestamptz,
    updated_at timestamptz NOT NULL
)""",
    ),
    "reaction_dead_letters": (
        """CREATE TABLE {s}.reaction_dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reaction text NOT NULL REFERENCES {s}.reactions (name),
    position bigint NOT NULL,
    aggregate text NOT NULL,
    aggregate_id text NOT NULL,
    version integer NOT NULL,
    type text NOT NULL,
    attempts integer NOT NULL,
    reason text NOT NULL,
    action text NOT NULL CHECK (action IN ('stopped', 'skipped')),
    at timestamptz NOT NULL
)""",
        "CREATE INDEX reaction_dead_letters_by_reaction ON {s}.reaction_dead_letters"
        " (reaction, id)",
    ),
    # An operator's reset or resume of a reaction: when, who, what, why, between which
    # positions; written in the transaction that makes the change (``_reaction_rows``).
    "reaction_operations": (
        """CREATE TABLE {s}.reaction_operations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reaction text NOT NULL REFERENCES {s}.reactions (name),
    action text NOT NULL CHECK (action IN ('reset', 'resume', 'skip')),
    at timestamptz NOT NULL,
    done_by text,
    reason text,
    from_position bigint NOT NULL,
    to_position bigint NOT NULL,
    from_state text NOT NULL CHECK (from_state IN ('running', 'stopped'))
)""",
        "CREATE INDEX reaction_operations_by_reaction ON {s}.reaction_operations (reaction, id)",
    ),
    "handled_messages": (
        """CREATE TABLE {s}.handled_messages (
    aggregate text NOT NULL,
    aggregate_id text NOT NULL,
    message_id text NOT NULL,
    PRIMARY KEY (aggregate, aggregate_id, message_id)
)""",
    ),
    # -- the schedules and their engine (``_publisher``, ``_engine``). Times are integer
    # microseconds since the epoch (UTC), as the bookkeeping's rows (``_fire_rows``) hold them.
    # ``due_at`` is ``next_fire`` moved by the schedule's jitter: the engine claims by it.
    "schedules": (
        """CREATE TABLE {s}.schedules (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scheduler text NOT NULL,
    name text COLLATE "C" NOT NULL,
    spec bytea NOT NULL,
    created_at bigint NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    next_fire bigint,
    due_at bigint,
    version integer NOT NULL DEFAULT 1,
    paused_at bigint,
    paused_by text,
    pause_reason text,
    UNIQUE (scheduler, name)
)""",
        "CREATE INDEX schedules_due ON {s}.schedules (due_at) WHERE due_at IS NOT NULL",
    ),
    # Fires to deliver again: failed ones (attempts >= 1) and repairs (trigger, backfill,
    # redrive: attempts 0).
    "retries": (
        """CREATE TABLE {s}.retries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scheduler text NOT NULL,
    name text NOT NULL,
    scheduled_time bigint NOT NULL,
    payload text NOT NULL,
    attempts integer NOT NULL,
    next_attempt_at bigint NOT NULL,
    last_error text
)""",
        "CREATE INDEX retries_due ON {s}.retries (next_attempt_at)",
        "CREATE INDEX retries_by_fire ON {s}.retries (scheduler, name, scheduled_time)",
    ),
    # A fire is recorded delivered once: its fire id (schedule and instant) is unique among
    # the 'fired' entries.
    "history": (
        """CREATE TABLE {s}.history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scheduler text NOT NULL,
    name text NOT NULL,
    kind text NOT NULL,
    at bigint NOT NULL,
    scheduled_time bigint,
    detail text
)""",
        "CREATE INDEX history_by_schedule ON {s}.history (scheduler, name, id)",
        "CREATE INDEX history_by_age ON {s}.history (at)",
        "CREATE UNIQUE INDEX history_fired_once ON {s}.history (scheduler, name, scheduled_time)"
        " WHERE kind IN ('fired', 'fired+completed')",
    ),
    # The engines that run (each says it lives every few seconds, by the database's clock) and
    # the targets each process attached to its schedulers: what ``reventless schedulers`` shows.
    "engines": (
        """CREATE TABLE {s}.engines (
    id text PRIMARY KEY,
    process text NOT NULL,
    started_at bigint NOT NULL,
    last_seen bigint NOT NULL
)""",
    ),
    "attachments": (
        """CREATE TABLE {s}.attachments (
    owner text NOT NULL,
    scheduler text NOT NULL,
    target text NOT NULL,
    payload_types text,
    process text NOT NULL,
    attached_at bigint NOT NULL,
    PRIMARY KEY (owner, scheduler)
)""",
    ),
    "dead_letters": (
        """CREATE TABLE {s}.dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scheduler text NOT NULL,
    name text NOT NULL,
    scheduled_time bigint NOT NULL,
    payload text NOT NULL,
    attempts integer NOT NULL,
    reason text NOT NULL,
    at bigint NOT NULL
)""",
        "CREATE INDEX dead_letters_by_scheduler ON {s}.dead_letters (scheduler, id)",
        "CREATE INDEX dead_letters_by_age ON {s}.dead_letters (at)",
    ),
}

TABLES = frozenset(_TABLES)


def quote_schema(schema: object) -> str:
    """The schema name, checked and quoted for SQL."""
    if not isinstance(schema, str) or not _NAME.fullmatch(schema) or schema.startswith("pg_"):
        raise ValidationError(
            "schema",
            schema,
            "a PostgreSQL schema name of 1 to 63 lower-case letters, digits and underscores, "
            "not starting with a digit or 'pg_'",
        )
    return f'"{schema}"'


def ddl(schema: str) -> list[str]:
    """The statements that make every table of the current version in ``schema``."""
    quoted = quote_schema(schema)
    statements = [f"CREATE SCHEMA IF NOT EXISTS {quoted}"]
    for table in _TABLES.values():
        statements += [statement.format(s=quoted) for statement in table]
    statements.append(
        f"INSERT INTO {quoted}.meta (key, value) VALUES ('application', '{APPLICATION}'),"
        f" ('schema_version', '{SCHEMA_VERSION}')"
    )
    return statements


def upgrade_lock_key(schema: str) -> str:
    """The text whose hash keys the advisory lock that serialises upgrades of ``schema``."""
    return f"reventless.schema:{schema}"
