"""Every table and index of the embedded store, its one schema version and its one upgrade path.

The modules that read and write the tables own no DDL: a store opened for writing is brought to
the current schema here, in one transaction, before anything else touches it. Files written by
every earlier schema open and upgrade (fixtures of each live in ``tests/local/stores``):

- the first one had the scheduler's tables only (``meta`` to ``lease``);
- the event log added ``events`` and ``handled_messages``, keyed first by (aggregate, message
  id), then by stream (``_rekey_handled_messages``);
- ``attachments`` recorded the schedulers' targets; the reactions added ``reactions`` and
  ``reaction_dead_letters``;
- ``schedules`` gained ``paused_at``, ``paused_by`` and ``pause_reason`` (who paused a schedule,
  when and why), added to an older file's table by ``ALTER TABLE`` (``_ADDED_COLUMNS``), and a
  trigger that clears them when the schedule becomes active (``_TRIGGERS``).
- ``reaction_operations`` recorded the operators' resets and resumes of reactions.

Each of those came as tables made on first use, with ``schema_version`` staying 1: they only
added, so a process of an older release still read and wrote an upgraded file. Version 2 drops
the change counter (``meta``'s ``seq`` and the index ``schedules_by_seq``): a create wrote six
B-tree pages, four now. Other processes' changes are found through the history instead, which
every change of a schedule writes in its transaction (``changed_since`` in ``_store``). A
release of version 1 would miss changes in such a file (it polls the counter), so it refuses it;
the ``seq`` column stays (0 in new rows) so that the table's statement is the same in an upgraded
file and a new one. The version moves only with such a change.

A file opened read-only is not upgraded: the tables it lacks are reported by ``check`` and read
as empty, and the added columns it lacks read as NULL (``check`` reports those it has as
``"table.column"``).
"""

from __future__ import annotations

import sqlite3

from reventless.errors import CorruptDataError, ValidationError

__all__ = ("SCHEMA_VERSION", "check", "is_ours", "upgrade")

SCHEMA_VERSION = 2
# Files of these versions are read (read-only, as they are) and upgraded (for writing).
_READABLE_VERSIONS = (1, SCHEMA_VERSION)

# Table name -> its CREATE statement and indexes; in creation order.
_TABLES: dict[str, tuple[str, ...]] = {
    "meta": ("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",),
    "schedules": (
        """CREATE TABLE IF NOT EXISTS schedules (
    id INTEGER PRIMARY KEY,
    scheduler TEXT NOT NULL,
    name TEXT NOT NULL,
    spec BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    next_fire INTEGER,
    version INTEGER NOT NULL DEFAULT 1,
    seq INTEGER NOT NULL,
    paused_at INTEGER,
    paused_by TEXT,
    pause_reason TEXT,
    UNIQUE (scheduler, name)
)""",
    ),
    "retries": (
        """CREATE TABLE IF NOT EXISTS retries (
    id INTEGER PRIMARY KEY,
    scheduler TEXT NOT NULL,
    name TEXT NOT NULL,
    scheduled_time INTEGER NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT NOT NULL
)""",
    ),
    "history": (
        """CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    scheduler TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    at INTEGER NOT NULL,
    scheduled_time INTEGER,
    detail TEXT
)""",
        "CREATE INDEX IF NOT EXISTS history_by_schedule ON history (scheduler, name, id)",
    ),
    "dead_letters": (
        """CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    scheduler TEXT NOT NULL,
    name TEXT NOT NULL,
    scheduled_time INTEGER NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
)""",
        "CREATE INDEX IF NOT EXISTS dead_letters_by_scheduler ON dead_letters (scheduler, id)",
    ),
    "lease": (
        """CREATE TABLE IF NOT EXISTS lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
)""",
    ),
    "attachments": (
        """CREATE TABLE IF NOT EXISTS attachments (
    scheduler TEXT NOT NULL,
    owner TEXT NOT NULL,
    target TEXT NOT NULL,
    payload_types TEXT,
    process TEXT NOT NULL,
    attached_at INTEGER NOT NULL,
    PRIMARY KEY (scheduler, owner)
)""",
    ),
    "events": (
        """CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    aggregate TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    data BLOB NOT NULL,
    message_id TEXT,
    recorded_at INTEGER NOT NULL,
    UNIQUE (aggregate, aggregate_id, version)
)""",
    ),
    # ``aggregate_id`` '' (never a valid id) marks a record from before the re-keying whose
    # stream is unknown: it still counts for every stream of its aggregate, as it did when it
    # was written. The default keeps a process of the older release working on the file.
    "handled_messages": (
        """CREATE TABLE IF NOT EXISTS handled_messages (
    aggregate TEXT NOT NULL,
    aggregate_id TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL,
    position INTEGER,
    PRIMARY KEY (aggregate, aggregate_id, message_id)
) WITHOUT ROWID""",
    ),
    "reactions": (
        """CREATE TABLE IF NOT EXISTS reactions (
    name TEXT PRIMARY KEY,
    follows TEXT NOT NULL,
    position INTEGER NOT NULL,
    state TEXT NOT NULL,
    last_error TEXT,
    owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
)""",
    ),
    "reaction_dead_letters": (
        """CREATE TABLE IF NOT EXISTS reaction_dead_letters (
    id INTEGER PRIMARY KEY,
    reaction TEXT NOT NULL,
    position INTEGER NOT NULL,
    aggregate TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    action TEXT NOT NULL,
    at INTEGER NOT NULL
)""",
        "CREATE INDEX IF NOT EXISTS reaction_dead_letters_by_reaction"
        " ON reaction_dead_letters (reaction, id)",
    ),
    # An operator's reset or resume of a reaction: when, who, what, why, between which
    # positions (``_reactions``).
    "reaction_operations": (
        """CREATE TABLE IF NOT EXISTS reaction_operations (
    id INTEGER PRIMARY KEY,
    reaction TEXT NOT NULL,
    action TEXT NOT NULL,
    at INTEGER NOT NULL,
    done_by TEXT,
    reason TEXT,
    from_position INTEGER NOT NULL,
    to_position INTEGER NOT NULL,
    from_state TEXT NOT NULL
)""",
        "CREATE INDEX IF NOT EXISTS reaction_operations_by_reaction"
        " ON reaction_operations (reaction, id)",
    ),
}
# Columns added to a table after it was first made, as ``ALTER TABLE ... ADD COLUMN`` takes them
# (each nullable, so that an older release's inserts, which do not name them, still work).
_ADDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "schedules": ("paused_at INTEGER", "paused_by TEXT", "pause_reason TEXT"),
}
# Made after the tables and their added columns. A schedule made active (resumed, replaced)
# forgets its pause's when, who and why: also when a release that does not know these columns
# writes the file, so that its next pause is not shown with an earlier one's reason.
_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS schedules_pause_forgotten
AFTER UPDATE OF paused ON schedules
WHEN NEW.paused = 0 AND (OLD.paused_at IS NOT NULL OR OLD.paused_by IS NOT NULL
    OR OLD.pause_reason IS NOT NULL)
BEGIN
    UPDATE schedules SET paused_at = NULL, paused_by = NULL, pause_reason = NULL
    WHERE id = NEW.id;
END""",
)
# Indexes of earlier schemas, dropped on upgrade: ``schedules_by_seq`` served the change counter
# of version 1 (see the module's docstring).
_DROPPED_INDEXES = ("schedules_by_seq",)
# Tables the first schema had: a file without one of them is not a store of ours.
_FIRST = ("meta", "schedules", "retries", "history", "dead_letters", "lease")
# Marks a handled message recorded before the re-keying (see ``handled_messages`` above).
ANY_STREAM = ""


def is_ours(conn: sqlite3.Connection, path: str) -> bool:
    """Whether the file is a reventless store (False: a new, empty database).

    Raises ValidationError for a database that holds something else (another application's
    tables): a store is never made beside them, and nothing is written.
    """
    tables = [
        str(row[0])
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name"
        )
    ]
    if not tables:
        return False
    if "meta" in tables and {"key", "value"} <= _columns(conn, "meta"):
        row = conn.execute("SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None:
            return True
    shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    raise ValidationError(
        "path",
        path,
        "a reventless store, or a new or empty file",
        message=(
            f"{path!r} is not a reventless store: it is a SQLite database of something else "
            f"(tables: {shown}); give the path of a new file or of a reventless store"
        ),
    )


def upgrade(conn: sqlite3.Connection, path: str) -> None:
    """Bring a file opened for writing to the current schema, in one transaction: a crash
    leaves it as it was. A new file gets every table; an older one, what it lacks; another
    application's database is refused (ValidationError) and left as it was."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if is_ours(conn, path) and _version(conn) not in _READABLE_VERSIONS:
            conn.execute("ROLLBACK")  # a newer release's file: ``check`` refuses it, untouched
            return
        handled = _columns(conn, "handled_messages")
        if handled and "aggregate_id" not in handled:
            _rekey_handled_messages(conn)
        for statements in _TABLES.values():
            for statement in statements:
                conn.execute(statement)
        for table, added in _ADDED_COLUMNS.items():
            have = _columns(conn, table)
            for column in added:
                if column.split()[0] not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        for trigger in _TRIGGERS:
            conn.execute(trigger)
        _to_version_2(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _to_version_2(conn: sqlite3.Connection) -> None:
    """Drop version 1's change counter (a new file never had it) and say version 2."""
    for index in _DROPPED_INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {index}")
    conn.execute("DELETE FROM meta WHERE key = 'seq'")
    conn.execute(
        "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key)"
        " DO UPDATE SET value = excluded.value",
        (SCHEMA_VERSION,),
    )


def _rekey_handled_messages(conn: sqlite3.Connection) -> None:
    """Message ids recorded per aggregate type, re-keyed per stream. A record that caused
    events takes the stream of its last event; one that caused none names no stream, so it is
    kept for every stream of its aggregate (``ANY_STREAM``): a repeat of it is still a repeat."""
    conn.execute(
        _TABLES["handled_messages"][0].replace("handled_messages", "handled_messages_by_stream", 1)
    )
    conn.execute(
        "INSERT INTO handled_messages_by_stream (aggregate, aggregate_id, message_id, position)"
        " SELECT h.aggregate, COALESCE(e.aggregate_id, ?), h.message_id, h.position"
        " FROM handled_messages AS h LEFT JOIN events AS e"
        " ON e.position = h.position AND e.aggregate = h.aggregate",
        (ANY_STREAM,),
    )
    conn.execute("DROP TABLE handled_messages")
    conn.execute("ALTER TABLE handled_messages_by_stream RENAME TO handled_messages")


def _version(conn: sqlite3.Connection) -> object:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else row[0]


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _wanted_columns(table: str) -> set[str]:
    """The columns of ``table``'s CREATE statement, read from the statement itself."""
    with sqlite3.connect(":memory:") as scratch:
        scratch.execute(_TABLES[table][0])
        return _columns(scratch, table)


_WANTED: dict[str, frozenset[str]] = {table: frozenset(_wanted_columns(table)) for table in _TABLES}


def check(conn: sqlite3.Connection, path: str) -> frozenset[str]:
    """The tables the file has, after checking each has every column and the version is ours;
    with them, ``"table.column"`` for each column of ``_ADDED_COLUMNS`` the file has.

    Raises ValidationError for an empty database (opened read-only: no store to read) or one
    that holds something else; CorruptDataError for a file of another schema version, one
    without the first schema's tables, or a table missing a column (damaged). Only a file
    opened read-only can lack the later tables; they are then read as empty.
    """
    if not is_ours(conn, path):
        raise ValidationError(
            "path",
            path,
            "a reventless store",
            message=f"{path!r} is an empty database: no reventless store was written there yet",
        )
    present: set[str] = set()
    for table, wanted in _WANTED.items():
        columns = _columns(conn, table)
        if not columns and table not in _FIRST:
            continue
        if table == "handled_messages" and "aggregate_id" not in columns:
            continue  # keyed per aggregate (read-only, not re-keyed): read as absent
        added = {column.split()[0] for column in _ADDED_COLUMNS.get(table, ())}
        present.update(f"{table}.{column}" for column in added & columns)
        # Only a file opened read-only can lack an added column: it is read as NULL.
        missing = sorted(wanted - columns - added)
        if missing:
            raise CorruptDataError(
                f"store {path!r}: table {table!r} lacks column(s) {', '.join(missing)}; "
                "the file was damaged or written by something other than reventless"
            )
        present.add(table)
    version = _version(conn)
    # Only a file opened read-only can be of version 1 here (opened for writing, it was upgraded).
    if version not in _READABLE_VERSIONS:
        raise CorruptDataError(
            f"store {path!r} has schema version {version!r}; this reventless reads "
            f"versions {' and '.join(map(str, _READABLE_VERSIONS))}"
        )
    return frozenset(present)
