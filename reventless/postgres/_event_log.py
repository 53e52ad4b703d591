"""The EventLog adapter over PostgreSQL (contract: ``aggregate_adapter``).

Positions are an identity column, handed out before the appending transaction commits, so a
later position can become visible before an earlier one. ``read_all`` therefore reads by a
transaction-id watermark: every event row records its transaction (``tx``,
``pg_current_xact_id()``), and a read returns only rows whose transaction is older than the
oldest one still running in the reader's snapshot (``pg_snapshot_xmin(pg_current_snapshot())``).

That cut is a prefix of the position order because appends keep one rule: a transaction gets
its transaction id and draws all its positions inside one critical section (a session advisory
lock per schema, taken and given back within the append's transaction: the INSERT of the
events is the transaction's first write). Critical sections do not overlap, so of two
appending transactions the one with the smaller id has every position smaller too. A reader
that returned position p2 (transaction T2 < xmin) can then never later find an event at
p1 < p2: its transaction T1 < T2 < xmin had ended when the reader looked, so the event was
either visible then, and returned before p2, or rolled back. Only the short INSERT is
serialised; the commit is not. Before it, an append takes a transaction lock of its stream,
so writers of one stream queue before reading its version and none waits for another inside.

Every append notifies ``events_channel(schema)`` from its transaction (delivered at the commit),
so reaction runners listening there wake at once (``_reactions``). Inside a reaction's handler,
appends join the reaction's transaction instead (``_reaction_tx``).

A scheduled fire delivered to a command topic of this store joins the engine's transaction
(``joining``): the command's events commit with the fire's record, or neither does. That
transaction took its id when it claimed its fires, so to keep the rule above the engine holds
the append lock from before its claim until just before its commit (``_engine``).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, NamedTuple

import anyio
import asyncpg

from reventless.aggregate_adapter import AppendResult, NewEvent, StoredEvent, check_read
from reventless.errors import (
    BackendUnavailableError,
    ConflictError,
    ReventlessError,
    ValidationError,
)
from reventless.postgres._errors import translate_sqlstate
from reventless.postgres._reaction_tx import ReactionTransaction, current_for
from reventless.postgres._schema import quote_schema

__all__ = (
    "PostgresEventLog",
    "append_lock_key",
    "close_lost",
    "events_channel",
    "joining",
    "translating",
)


class _Joined(NamedTuple):
    """An engine's transaction that the event log of ``pool`` works in (one statement at a
    time: ``lock``)."""

    pool: Any
    conn: Any
    lock: anyio.Lock


_joined: ContextVar[_Joined | None] = ContextVar("reventless_pg_fire_transaction", default=None)


@contextmanager
def joining(pool: Any, conn: Any) -> Iterator[None]:
    """Inside, the event log of ``pool`` reads and appends in ``conn``'s open transaction
    (each append in a savepoint), also in tasks started inside."""
    token = _joined.set(_Joined(pool, conn, anyio.Lock()))
    try:
        yield
    finally:
        _joined.reset(token)


_COLUMNS = "position, aggregate, aggregate_id, version, type, data, message_id, recorded_at"


def append_lock_key(schema: str) -> int:
    """The advisory lock (a signed 64-bit key) of the appends' critical section in ``schema``."""
    digest = hashlib.sha256(f"reventless.events:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def events_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel told of every append in ``schema`` (a channel name is at most
    63 bytes: the schema's is hashed)."""
    return "reventless." + hashlib.sha256(f"events:{schema}".encode()).hexdigest()[:20]


def _stream_lock_key(schema: str, aggregate: str, aggregate_id: str) -> tuple[int, int]:
    """The advisory lock (two signed 32-bit keys: the schema's, the stream's) that writers of
    one stream take for their transaction; two streams sharing a key only queue together."""
    digest = hashlib.sha256(f"{schema}\x00{aggregate}\x00{aggregate_id}".encode()).digest()
    space = hashlib.sha256(f"reventless.streams:{schema}".encode()).digest()
    return (
        int.from_bytes(space[:4], "big", signed=True),
        int.from_bytes(digest[:4], "big", signed=True),
    )


@asynccontextmanager
async def translating(where: str) -> AsyncIterator[None]:
    """Driver and network errors raised inside become ReventlessErrors, chained."""
    try:
        yield
    except ReventlessError:
        raise
    except asyncpg.PostgresError as exc:
        raise translate_sqlstate(getattr(exc, "sqlstate", None), str(exc), where) from exc
    except (asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError) as exc:
        # InternalClientError: asyncpg's state of a connection cut mid-operation.
        raise translate_sqlstate("08000", f"{type(exc).__name__}: {exc}", where) from exc


def _check_text(field: str, value: object) -> None:
    if not isinstance(value, str):
        raise ValidationError(field, value, "a string")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValidationError(field, value, "text that encodes as UTF-8") from None
    if "\x00" in value:
        raise ValidationError(field, value, "text without NUL characters (PostgreSQL stores none)")


async def _abandon(conn: Any) -> None:
    """Roll back an append that failed or was cancelled; a connection that cannot even do that
    is closed (the server then rolls back, and gives back any lock it held)."""
    try:
        await conn.execute("ROLLBACK")
    except BaseException:  # the error on its way out is the one to report
        close_lost(conn)


def close_lost(conn: Any) -> None:
    """Close a connection that failed; one that was lost may already have left the pool
    (asyncpg releases it), and closing it then raises: that must not replace the error on
    its way out."""
    with contextlib.suppress(Exception):
        conn.terminate()


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(
        position=row[0],
        aggregate=row[1],
        aggregate_id=row[2],
        version=row[3],
        type=row[4],
        data=bytes(row[5]),
        message_id=row[6],
        recorded_at=row[7],
    )


class PostgresEventLog:
    """Events in ``schema`` of the pool's database; one transaction per append."""

    def __init__(self, pool: asyncpg.Pool, schema: str, where: str) -> None:
        s = quote_schema(schema)
        self._pool = pool
        self._schema = schema
        self._where = where
        self._lock = append_lock_key(schema)
        self._notify = f"pg_notify('{events_channel(schema)}', '')"
        self._state = (
            f"SELECT (SELECT coalesce(max(version), 0) FROM {s}.events"
            "  WHERE aggregate = $1 AND aggregate_id = $2),"
            f" EXISTS (SELECT 1 FROM {s}.handled_messages"
            "  WHERE aggregate = $1 AND aggregate_id = $2 AND message_id = $3)"
        )
        self._insert = (
            f"INSERT INTO {s}.events (aggregate, aggregate_id, version, type, data, message_id,"
            " recorded_at) SELECT $1, $2, u.version, u.type, u.data, $6, $7"
            " FROM unnest($3::integer[], $4::text[], $5::bytea[]) WITH ORDINALITY"
            " AS u(version, type, data, n) ORDER BY u.n"
            " ON CONFLICT (aggregate, aggregate_id, version) DO NOTHING RETURNING position, version"
        )
        self._handled = (
            f"INSERT INTO {s}.handled_messages (aggregate, aggregate_id, message_id)"
            " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING true"
        )
        self._load = (
            f"SELECT {_COLUMNS} FROM {s}.events WHERE aggregate = $1 AND aggregate_id = $2"
            " AND version > $3 ORDER BY version"
        )
        self._was_handled = (
            f"SELECT EXISTS (SELECT 1 FROM {s}.handled_messages"
            " WHERE aggregate = $1 AND aggregate_id = $2 AND message_id = $3)"
        )
        # Whether the message was handled, and its events (one row of NULLs if none).
        self._handled_events = (
            "SELECT h.handled, e.position, e.aggregate, e.aggregate_id, e.version, e.type,"
            " e.data, e.message_id, e.recorded_at FROM (SELECT EXISTS (SELECT 1 FROM"
            f" {s}.handled_messages WHERE aggregate = $1 AND aggregate_id = $2"
            f" AND message_id = $3) AS handled) h LEFT JOIN {s}.events e ON h.handled"
            " AND e.aggregate = $1 AND e.aggregate_id = $2 AND e.message_id = $3"
            " ORDER BY e.version"
        )
        visible = "tx < pg_snapshot_xmin(pg_current_snapshot())"  # the watermark
        self._read_all = (
            f"SELECT {_COLUMNS} FROM {s}.events WHERE position > $1 AND {visible}"
            " ORDER BY position LIMIT $2"
        )
        self._read_of = (
            f"SELECT {_COLUMNS} FROM {s}.events WHERE position > $1 AND {visible}"
            " AND aggregate = ANY($3::text[]) ORDER BY position LIMIT $2"
        )
        self._head = f"SELECT coalesce(max(position), 0) FROM {s}.events WHERE {visible}"
        self._count = f"SELECT count(*) FROM {s}.events WHERE position > $1 AND {visible}"
        self._count_of = f"{self._count} AND aggregate = ANY($2::text[])"

    async def load(
        self, aggregate: str, aggregate_id: str, *, after_version: int = 0
    ) -> list[StoredEvent]:
        async with self._reading() as conn:
            rows = await conn.fetch(self._load, aggregate, aggregate_id, after_version)
        return [_stored(row) for row in rows]

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[Any]:
        """A connection to read on: inside a reaction's transaction that has appended, its
        own (it sees what it appended); inside an engine's transaction (``joining``), that
        one; else one of the pool."""
        tx = current_for(self._pool, self._schema)
        if tx is not None and tx.conn is not None:
            async with translating(self._where), tx.lock:
                yield tx.conn
            return
        joined = _joined.get()
        if joined is not None and joined.pool is self._pool:
            async with translating(self._where), joined.lock:
                yield joined.conn
            return
        async with translating(self._where), self._pool.acquire() as conn:
            yield conn

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
        _check_text("aggregate", aggregate)
        _check_text("aggregate_id", aggregate_id)
        if message_id is not None:
            _check_text("message_id", message_id)
        for index, event in enumerate(events):
            _check_text(f"events[{index}].type", event.type)
        if recorded_at.tzinfo is None:
            raise ValidationError("recorded_at", recorded_at, "an aware datetime")
        tx = current_for(self._pool, self._schema)
        if tx is not None:
            return await self._append_in_reaction(
                tx, aggregate, aggregate_id, expected_version, events, message_id, recorded_at
            )
        joined = _joined.get()
        if joined is not None and joined.pool is self._pool:
            return await self._append_joined(
                joined, aggregate, aggregate_id, expected_version, events, message_id, recorded_at
            )
        async with translating(self._where), self._pool.acquire() as conn:
            # BEGIN and COMMIT by hand: a transaction context manager would, after a
            # cancellation closed the connection, raise over the cancellation.
            # Writers of one stream queue here, before reading its version, so that the
            # critical section below never waits for another writer of the stream.
            high, low = _stream_lock_key(self._schema, aggregate, aggregate_id)
            try:
                await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({high}, {low})")
                result = await self._append_in(
                    conn, aggregate, aggregate_id, expected_version, events, message_id, recorded_at
                )
            except BaseException:
                await _abandon(conn)
                raise
            await conn.execute("COMMIT")
        return result

    async def _append_in_reaction(
        self,
        tx: ReactionTransaction,
        aggregate: str,
        aggregate_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        message_id: str | None,
        recorded_at: datetime,
    ) -> AppendResult:
        """An append inside a reaction's transaction (``_reaction_tx``): the stream's lock, then
        the append lock, both kept until the reaction's transaction ends; the append itself in a
        savepoint, so a conflict leaves the transaction usable."""
        high, low = _stream_lock_key(self._schema, aggregate, aggregate_id)
        async with translating(self._where), tx.lock:
            conn = await tx.connection()
            if tx.holds_append_lock:
                if not await conn.fetchval(f"SELECT pg_try_advisory_xact_lock({high}, {low})"):
                    tx.busy = True
                    raise BackendUnavailableError(
                        f"stream {aggregate}/{aggregate_id} is being written by another "
                        "transaction; the reaction rolls back and handles the event again"
                    )
                await conn.execute("SAVEPOINT reventless_append")
            else:
                # The transaction's first statements: it begins here.
                await conn.execute(
                    "BEGIN; SET LOCAL idle_in_transaction_session_timeout ="
                    f" {tx.idle_limit_ms}; SELECT pg_advisory_xact_lock({high}, {low});"
                    f" SELECT pg_advisory_xact_lock({self._lock}), {self._notify};"
                    " SAVEPOINT reventless_append"
                )
                tx.holds_append_lock = True
            try:
                result = await self._append_in(
                    conn,
                    aggregate,
                    aggregate_id,
                    expected_version,
                    events,
                    message_id,
                    recorded_at,
                    locked=True,
                )
            except BaseException:
                # Should this fail too, the reaction's rollback closes the connection.
                with contextlib.suppress(BaseException):
                    await conn.execute("ROLLBACK TO SAVEPOINT reventless_append")
                raise
            # The savepoint is not released (a round trip): it ends with the transaction.
            tx.appended.add((aggregate, aggregate_id))
        return result

    async def _append_joined(
        self,
        joined: _Joined,
        aggregate: str,
        aggregate_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        message_id: str | None,
        recorded_at: datetime,
    ) -> AppendResult:
        """The append in the engine's transaction, in a savepoint: a refused append leaves
        the engine's transaction as it was. (The engine holds the append lock already; taking
        it again in the same session only counts up.)"""
        high, low = _stream_lock_key(self._schema, aggregate, aggregate_id)
        async with translating(self._where), joined.lock:
            conn = joined.conn
            await conn.execute(
                f"SAVEPOINT reventless_fire_append; SELECT pg_advisory_xact_lock({high}, {low})"
            )
            try:
                result = await self._append_in(
                    conn, aggregate, aggregate_id, expected_version, events, message_id, recorded_at
                )
            except BaseException:
                with contextlib.suppress(BaseException):  # then the engine's rollback fails too
                    await conn.execute("ROLLBACK TO SAVEPOINT reventless_fire_append")
                raise
            await conn.execute("RELEASE SAVEPOINT reventless_fire_append")
        return result

    async def _append_in(
        self,
        conn: Any,
        aggregate: str,
        aggregate_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        message_id: str | None,
        recorded_at: datetime,
        *,
        locked: bool = False,
    ) -> AppendResult:
        current, handled = await conn.fetchrow(
            self._state, aggregate, aggregate_id, message_id or ""
        )
        if message_id is not None and handled:
            return AppendResult(duplicate=True, version=current)
        if current != expected_version:
            raise ConflictError(
                f"stream {aggregate}/{aggregate_id} is at version {current}, "
                f"not {expected_version}: another writer came first"
            )
        positions: tuple[int, ...] = ()
        if events:
            positions = await self._insert_events(
                conn,
                aggregate,
                aggregate_id,
                expected_version,
                events,
                message_id,
                recorded_at,
                locked=locked,
            )
        if message_id is not None and not await conn.fetchval(
            self._handled, aggregate, aggregate_id, message_id
        ):
            # A concurrent append with this id committed first; a retry finds it handled.
            raise ConflictError(
                f"stream {aggregate}/{aggregate_id}: message {message_id!r} was recorded by "
                "a concurrent append"
            )
        return AppendResult(
            duplicate=False, version=expected_version + len(events), positions=positions
        )

    async def _insert_events(
        self,
        conn: Any,
        aggregate: str,
        aggregate_id: str,
        expected: int,
        events: Sequence[NewEvent],
        message_id: str | None,
        recorded_at: datetime,
        *,
        locked: bool = False,
    ) -> tuple[int, ...]:
        """The critical section (see the module's docstring): the transaction's id is assigned
        and its positions drawn under the schema's append lock, given back before the commit
        (``locked``: the caller holds it until its transaction ends, and has notified).
        On any failure inside, the savepoint is rolled back and the lock given back in the same
        transaction (so a transaction-mode pooler sees it all on one server connection); when
        even that fails (a cancellation), the append's rollback fails too and closes the
        connection, which gives the lock back."""
        if locked:
            rows = await self._insert_rows(
                conn, aggregate, aggregate_id, expected, events, message_id, recorded_at
            )
        else:
            rows = await self._insert_locked(
                conn, aggregate, aggregate_id, expected, events, message_id, recorded_at
            )
        if len(rows) != len(events):
            raise ConflictError(
                f"stream {aggregate}/{aggregate_id} moved past version {expected}: "
                "another writer came first"
            )
        return tuple(position for position, _ in sorted(rows, key=lambda row: row[1]))

    async def _insert_rows(
        self,
        conn: Any,
        aggregate: str,
        aggregate_id: str,
        expected: int,
        events: Sequence[NewEvent],
        message_id: str | None,
        recorded_at: datetime,
    ) -> list[Any]:
        rows: list[Any] = await conn.fetch(
            self._insert,
            aggregate,
            aggregate_id,
            list(range(expected + 1, expected + len(events) + 1)),
            [event.type for event in events],
            [event.data for event in events],
            message_id,
            recorded_at,
        )
        return rows

    async def _insert_locked(
        self,
        conn: Any,
        aggregate: str,
        aggregate_id: str,
        expected: int,
        events: Sequence[NewEvent],
        message_id: str | None,
        recorded_at: datetime,
    ) -> list[Any]:
        """The insert under the append lock, given back (and the append notified) after it."""
        await conn.execute(f"SELECT pg_advisory_lock({self._lock}); SAVEPOINT reventless_append")
        try:
            rows = await self._insert_rows(
                conn, aggregate, aggregate_id, expected, events, message_id, recorded_at
            )
        except BaseException:
            # Should this fail too, the append's rollback fails and closes the connection.
            with contextlib.suppress(BaseException):
                await conn.execute(
                    "ROLLBACK TO SAVEPOINT reventless_append;"
                    f" SELECT pg_advisory_unlock({self._lock})"
                )
            raise
        await conn.execute(f"SELECT pg_advisory_unlock({self._lock}), {self._notify}")
        return rows

    async def was_handled(self, aggregate: str, aggregate_id: str, message_id: str) -> bool:
        async with self._reading() as conn:
            return bool(await conn.fetchval(self._was_handled, aggregate, aggregate_id, message_id))

    async def handled_events(
        self, aggregate: str, aggregate_id: str, message_id: str
    ) -> list[StoredEvent] | None:
        async with self._reading() as conn:
            # One statement: a consistent answer without a transaction of its own (inside a
            # reaction's transaction, asyncpg allows none).
            rows = await conn.fetch(self._handled_events, aggregate, aggregate_id, message_id)
        if not rows[0][0]:
            return None
        return [_stored(row[1:]) for row in rows if row[1] is not None]

    async def read_all(
        self,
        *,
        after_position: int = 0,
        limit: int = 1000,
        aggregates: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        names = check_read(after_position, limit, aggregates)
        async with translating(self._where), self._pool.acquire() as conn:
            if names is None:
                rows = await conn.fetch(self._read_all, after_position, limit)
            else:
                rows = await conn.fetch(self._read_of, after_position, limit, list(names))
        return [_stored(row) for row in rows]

    async def head_position(self) -> int:
        async with translating(self._where), self._pool.acquire() as conn:
            return int(await conn.fetchval(self._head))

    async def count(
        self, *, after_position: int = 0, aggregates: Sequence[str] | None = None
    ) -> int:
        names = check_read(after_position, None, aggregates)
        async with translating(self._where), self._pool.acquire() as conn:
            if names is None:
                return int(await conn.fetchval(self._count, after_position))
            return int(await conn.fetchval(self._count_of, after_position, list(names)))
