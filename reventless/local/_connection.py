"""The embedded store's connection: opening a file (WAL, the schema made or checked, a
read-only open), its transactions, and the translation of SQLite's errors into the
ReventlessError tree (one table, walked by a test)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from reventless.errors import (
    BackendUnavailableError,
    CorruptDataError,
    PermissionDeniedError,
    ReventlessError,
    ScheduleNotFoundError,
    ValidationError,
)
from reventless.local._rows import HistoryRow, Row
from reventless.local._schema import check, is_ours, upgrade

__all__ = (
    "ERROR_TABLE",
    "LeaseLostError",
    "StoreConnection",
    "translate_sqlite_error",
)

# sqlite3 error names (extended codes start with these) -> the error to raise. One table, walked by
# a test; anything not listed is a BackendUnavailableError.
ERROR_TABLE: tuple[tuple[str, type[ReventlessError], str], ...] = (
    ("SQLITE_BUSY", BackendUnavailableError, "the database is locked by another connection"),
    ("SQLITE_LOCKED", BackendUnavailableError, "a table is locked"),
    ("SQLITE_READONLY", PermissionDeniedError, "the database file is read-only"),
    ("SQLITE_PERM", PermissionDeniedError, "access to the database file was denied"),
    ("SQLITE_AUTH", PermissionDeniedError, "access to the database file was denied"),
    ("SQLITE_CANTOPEN", BackendUnavailableError, "the database file cannot be opened"),
    ("SQLITE_FULL", BackendUnavailableError, "the disk is full"),
    ("SQLITE_IOERR", BackendUnavailableError, "a disk I/O error occurred"),
    ("SQLITE_CORRUPT", CorruptDataError, "the database file is damaged"),
    ("SQLITE_NOTADB", CorruptDataError, "the file is not a SQLite database"),
)


def _error_name(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def translate_sqlite_error(exc: sqlite3.Error, path: str) -> ReventlessError:
    """Map a sqlite3 exception to the ReventlessError tree (use with ``raise ... from exc``)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    for prefix, error_type, meaning in ERROR_TABLE:
        if name.startswith(prefix):
            return error_type(f"store {path!r}: {meaning} ({name}: {exc})")
    return BackendUnavailableError(f"store {path!r}: {type(exc).__name__}: {exc}")


def _table_exists(conn: sqlite3.Connection, table: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    return row.fetchone() is not None


class LeaseLostError(BackendUnavailableError):
    """Another process holds the lease now; this one must stop firing."""


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


class StoreConnection:
    """One connection to one SQLite file (or ``:memory:``), used from one thread at a time: opened,
    its schema made or checked, its transactions. The tables' operations build on it."""

    def __init__(
        self, path: str | Path, lock_timeout: float = 5.0, *, read_only: bool = False
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        if "\x00" in self.path:  # sqlite3 would raise a bare ValueError
            raise ValidationError("path", self.path, "a file path without NUL characters")
        self.tables: frozenset[str] = frozenset()  # the tables this file has (see has_table)
        try:
            self.conn = self._open(lock_timeout, immutable=False)
        except sqlite3.Error as exc:
            if not (read_only and _error_name(exc) == "SQLITE_CANTOPEN"):
                raise translate_sqlite_error(exc, self.path) from exc
            # A WAL store in a folder this process cannot write has no shared-memory file to
            # open; nobody can write it either, so it is read as an immutable file.
            try:
                self.conn = self._open(lock_timeout, immutable=True)
            except sqlite3.Error as again:
                raise translate_sqlite_error(again, self.path) from again

    def _open(self, lock_timeout: float, *, immutable: bool) -> sqlite3.Connection:
        """A connection ready for use (schema made or checked); closed again if that fails."""
        if self.read_only:
            # Reads a store it may not write (a read-only file or folder); nothing is created.
            flags = "mode=ro&immutable=1" if immutable else "mode=ro"
            uri = f"{Path(self.path).resolve().as_uri()}?{flags}"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
        self.conn = conn
        try:
            # SQLite waits out another connection's lock for this long, then the call fails.
            self.busy_timeout_ms = int(lock_timeout * 1000)
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            if not self.read_only:
                self._prepare(lock_timeout)
            self._check_schema()
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, lock_timeout: float) -> None:
        # Another application's database is refused before anything is written to it, the
        # switch to WAL (a change of the file's header) included.
        is_ours(self.conn, self.path)
        if self.path != ":memory:":
            mode = self._switch_to_wal(lock_timeout)
            if mode != "wal":
                raise BackendUnavailableError(
                    f"store {self.path!r}: could not switch to WAL mode (got {mode!r})"
                )
        # WAL + NORMAL: a committed transaction survives a process crash; only a power loss
        # can take back the last few.
        self.conn.execute("PRAGMA synchronous = NORMAL")
        upgrade(self.conn, self.path)

    def _switch_to_wal(self, lock_timeout: float) -> str:
        """Switch a new file to WAL. SQLite answers BUSY at once, without its busy handler,
        while another connection opens the same new file, so the wait is done here."""
        deadline = time.monotonic() + lock_timeout
        pause = 0.002
        while True:
            try:
                return str(self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if not _error_name(exc).startswith("SQLITE_BUSY") or time.monotonic() > deadline:
                    raise
            time.sleep(pause)  # a worker thread: the event loop is not blocked
            pause = min(pause * 2, 0.05)

    def _check_schema(self) -> None:
        self.tables = check(self.conn, self.path)

    def has_table(self, table: str) -> bool:
        """Whether the file has ``table``: always, once opened for writing; a file opened
        read-only may be of an older schema, and gains the table when a writer opens it."""
        if table not in self.tables and _table_exists(self.conn, table):
            self.tables = check(self.conn, self.path)
        return table in self.tables

    def has_column(self, table: str, column: str) -> bool:
        """Whether the file has a column added to ``table`` after it was first made
        (``_schema._ADDED_COLUMNS``): always, once opened for writing; a file opened read-only
        may lack it, and then reads it as NULL."""
        return f"{table}.{column}" in self.tables

    def close(self) -> None:
        self.conn.close()

    def transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    def _history(self, rows: Iterable[HistoryRow]) -> None:
        self.conn.executemany(
            "INSERT INTO history (scheduler, name, kind, at, scheduled_time, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    def _by_name(self, columns: str, scheduler: str, name: str) -> Row:
        row = self.conn.execute(
            f"SELECT {columns} FROM schedules WHERE scheduler = ? AND name = ?", (scheduler, name)
        ).fetchone()
        if row is None:
            raise ScheduleNotFoundError(name)
        return tuple(row)
