"""The EventLog adapter over the local SQLite store (contract: ``aggregate_adapter``).

Message ids are recorded per stream: ``handled_messages`` is keyed by (aggregate, aggregate_id,
message_id); stores that keyed it per aggregate are re-keyed when opened (``_schema``). A file
of an older schema opened read-only may have no event tables: it reads as holding no events.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from reventless.aggregate_adapter import AppendResult, NewEvent, StoredEvent, check_read
from reventless.errors import ConflictError
from reventless.local._group_commit import GroupCommit
from reventless.local._rows import from_us, to_us
from reventless.local._schema import ANY_STREAM
from reventless.local._store import SqliteStore
from reventless.local._store_runner import StoreRunner

__all__ = ("SqliteEventLog",)

_IS_HANDLED = (
    "SELECT 1 FROM handled_messages WHERE aggregate = ? AND aggregate_id IN (?, ?)"
    " AND message_id = ?"
)

_Append = tuple[str, str, int, Sequence[NewEvent], str | None, int]
_Outcome = AppendResult | ConflictError


def _is_handled(
    conn: sqlite3.Connection, aggregate: str, aggregate_id: str, message_id: str
) -> bool:
    row = conn.execute(_IS_HANDLED, (aggregate, aggregate_id, ANY_STREAM, message_id))
    return row.fetchone() is not None


def _current_version(conn: sqlite3.Connection, aggregate: str, aggregate_id: str) -> int:
    row = conn.execute(
        "SELECT MAX(version) FROM events WHERE aggregate = ? AND aggregate_id = ?",
        (aggregate, aggregate_id),
    ).fetchone()
    return int(row[0] or 0)


def _append_many(store: SqliteStore, batch: list[_Append]) -> list[_Outcome]:
    """Each append in its own savepoint inside one transaction: one commit for the batch, and a
    conflict or duplicate in one append leaves the others untouched."""
    conn = store.conn
    outcomes: list[_Outcome] = []
    with store.transaction():
        for aggregate, aggregate_id, expected, events, message_id, recorded_us in batch:
            if message_id is not None and _is_handled(conn, aggregate, aggregate_id, message_id):
                outcomes.append(
                    AppendResult(
                        duplicate=True, version=_current_version(conn, aggregate, aggregate_id)
                    )
                )
                continue
            current = _current_version(conn, aggregate, aggregate_id)
            if current != expected:
                outcomes.append(
                    ConflictError(
                        f"stream {aggregate}/{aggregate_id} is at version {current}, "
                        f"not {expected}: another writer came first"
                    )
                )
                continue
            positions = []
            for offset, event in enumerate(events, 1):
                cursor = conn.execute(
                    "INSERT INTO events (aggregate, aggregate_id, version, type, data,"
                    " message_id, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        aggregate,
                        aggregate_id,
                        expected + offset,
                        event.type,
                        event.data,
                        message_id,
                        recorded_us,
                    ),
                )
                positions.append(int(cursor.lastrowid or 0))
            if message_id is not None:
                conn.execute(
                    "INSERT INTO handled_messages (aggregate, aggregate_id, message_id, position)"
                    " VALUES (?, ?, ?, ?)",
                    (aggregate, aggregate_id, message_id, positions[-1] if positions else None),
                )
            outcomes.append(
                AppendResult(
                    duplicate=False, version=expected + len(events), positions=tuple(positions)
                )
            )
    return outcomes


def _rows_to_events(rows: list[tuple[object, ...]]) -> list[StoredEvent]:
    return [
        StoredEvent(
            position=int(position),  # type: ignore[call-overload]
            aggregate=str(aggregate),
            aggregate_id=str(aggregate_id),
            version=int(version),  # type: ignore[call-overload]
            type=str(kind),
            data=bytes(data),  # type: ignore[call-overload]
            message_id=None if message_id is None else str(message_id),
            recorded_at=from_us(int(recorded)),  # type: ignore[call-overload]
        )
        for position, aggregate, aggregate_id, version, kind, data, message_id, recorded in rows
    ]


_COLUMNS = "position, aggregate, aggregate_id, version, type, data, message_id, recorded_at"


def _load(store: SqliteStore, aggregate: str, aggregate_id: str, after: int) -> list[StoredEvent]:
    if not store.has_table("events"):
        return []
    rows = store.conn.execute(
        f"SELECT {_COLUMNS} FROM events WHERE aggregate = ? AND aggregate_id = ? AND version > ?"
        " ORDER BY version",
        (aggregate, aggregate_id, after),
    ).fetchall()
    return _rows_to_events(rows)


def _of_aggregates(aggregates: tuple[str, ...] | None) -> str:
    """The condition on ``aggregate`` that ``aggregates`` (None: every one) asks for."""
    return "" if aggregates is None else f" AND aggregate IN ({', '.join('?' * len(aggregates))})"


def _read_all(
    store: SqliteStore, after: int, limit: int, aggregates: tuple[str, ...] | None
) -> list[StoredEvent]:
    if not store.has_table("events") or aggregates == ():
        return []
    rows = store.conn.execute(
        f"SELECT {_COLUMNS} FROM events WHERE position > ?{_of_aggregates(aggregates)}"
        " ORDER BY position LIMIT ?",
        (after, *(aggregates or ()), limit),
    ).fetchall()
    return _rows_to_events(rows)


def _head_position(store: SqliteStore) -> int:
    if not store.has_table("events"):
        return 0
    return int(store.conn.execute("SELECT MAX(position) FROM events").fetchone()[0] or 0)


def _count(store: SqliteStore, after: int, aggregates: tuple[str, ...] | None) -> int:
    if not store.has_table("events") or aggregates == ():
        return 0
    row = store.conn.execute(
        f"SELECT COUNT(*) FROM events WHERE position > ?{_of_aggregates(aggregates)}",
        (after, *(aggregates or ())),
    ).fetchone()
    return int(row[0])


def _was_handled(store: SqliteStore, aggregate: str, aggregate_id: str, message_id: str) -> bool:
    if not store.has_table("handled_messages"):
        return False
    return _is_handled(store.conn, aggregate, aggregate_id, message_id)


def _handled_events(
    store: SqliteStore, aggregate: str, aggregate_id: str, message_id: str
) -> list[StoredEvent] | None:
    if not store.has_table("handled_messages"):
        return None
    if not _is_handled(store.conn, aggregate, aggregate_id, message_id):
        return None
    rows = store.conn.execute(
        f"SELECT {_COLUMNS} FROM events WHERE aggregate = ? AND aggregate_id = ?"
        " AND message_id = ? ORDER BY version",
        (aggregate, aggregate_id, message_id),
    ).fetchall()
    return _rows_to_events(rows)


class SqliteEventLog:
    """Events in the provider's SQLite file, written through its store thread, group-committed."""

    def __init__(self, runner: StoreRunner) -> None:
        self._runner = runner
        self._committer: GroupCommit[_Append, _Outcome] = GroupCommit(
            self._flush, shield=False
        )  # one store call

    async def _flush(self, batch: list[_Append]) -> list[_Outcome]:
        return await self._runner.call(_append_many, self._runner.store, batch)

    async def load(
        self, aggregate: str, aggregate_id: str, *, after_version: int = 0
    ) -> list[StoredEvent]:
        return await self._runner.call(
            _load, self._runner.store, aggregate, aggregate_id, after_version
        )

    async def append(
        self,
        aggregate: str,
        aggregate_id: str,
        *,
        expected_version: int,
        events: Sequence[NewEvent],
        message_id: str | None,
        recorded_at: datetime,
    ) -> AppendResult:
        outcome = await self._committer.submit(
            (aggregate, aggregate_id, expected_version, events, message_id, to_us(recorded_at))
        )
        if isinstance(outcome, ConflictError):
            raise outcome
        return outcome

    async def was_handled(self, aggregate: str, aggregate_id: str, message_id: str) -> bool:
        return await self._runner.call(
            _was_handled, self._runner.store, aggregate, aggregate_id, message_id
        )

    async def handled_events(
        self, aggregate: str, aggregate_id: str, message_id: str
    ) -> list[StoredEvent] | None:
        return await self._runner.call(
            _handled_events, self._runner.store, aggregate, aggregate_id, message_id
        )

    async def read_all(
        self,
        *,
        after_position: int = 0,
        limit: int = 1000,
        aggregates: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        names = check_read(after_position, limit, aggregates)
        return await self._runner.call(_read_all, self._runner.store, after_position, limit, names)

    async def head_position(self) -> int:
        return await self._runner.call(_head_position, self._runner.store)

    async def count(
        self, *, after_position: int = 0, aggregates: Sequence[str] | None = None
    ) -> int:
        names = check_read(after_position, None, aggregates)
        return await self._runner.call(_count, self._runner.store, after_position, names)
