"""The reactions' rows on PostgreSQL (tables ``reactions``, ``reaction_dead_letters`` and
``reaction_operations`` of ``_schema``): checkpoints, states, leases, dead letters and operators'
operations, every statement in one place. The
events themselves are read through the EventLog port (``read_all``, ``head_position``,
``count``), never here.

A checkpoint moves by compare-and-set on (position, lease owner), so a reset by an operator or a
lease taken over makes the write fail and the runner read again. Leases and times are the
database's clock (``clock_timestamp()``): processes whose clocks disagree agree on who holds a
lease and when it lapses.
"""

from __future__ import annotations

from typing import Any

from reventless.aggregate_adapter import EventLog, StoredEvent
from reventless.errors import ReactionNotFoundError
from reventless.postgres._event_log import events_channel, translating
from reventless.postgres._schema import quote_schema
from reventless.reaction import (
    OnFailure,
    ReactionDeadLetter,
    ReactionOperation,
    ReactionStatus,
    check_reset_within_head,
    dead_letter_columns,
    dead_letter_of_row,
    operation_of_row,
    stopped_error,
)

__all__ = ("ReactionRows",)

_RUNNING, _STOPPED = "running", "stopped"


class ReactionRows:
    """The statements on one schema's reaction tables, run on the pool (or, for a checkpoint
    that commits with a reaction's effects, on the reaction transaction's connection)."""

    def __init__(self, pool: Any, schema: str, where: str, log: EventLog) -> None:
        s = quote_schema(schema)
        self.pool = pool
        self.where = where
        self.log = log
        self._notify = f"pg_notify('{events_channel(schema)}', 'reactions')"
        self._register = (
            f"INSERT INTO {s}.reactions (name, follows, position, state, updated_at)"
            " VALUES ($1, $2, $3, 'running', clock_timestamp())"
            " ON CONFLICT (name) DO UPDATE SET follows = excluded.follows"
        )
        self._checkpoint = f"SELECT position, state FROM {s}.reactions WHERE name = $1"
        self.advance = (
            f"UPDATE {s}.reactions SET position = $3, last_error = NULL,"
            " updated_at = clock_timestamp() WHERE name = $1 AND position = $2 AND owner = $4"
            " RETURNING true"
        )
        self._note_failure = (
            f"UPDATE {s}.reactions SET last_error = $3, updated_at = clock_timestamp()"
            " WHERE name = $1 AND owner = $2"
        )
        self._stop = (
            f"UPDATE {s}.reactions SET state = 'stopped', last_error = $3,"
            " updated_at = clock_timestamp() WHERE name = $1 AND position = $2 AND owner = $4"
            " RETURNING true"
        )
        self._dead_letter = (
            f"INSERT INTO {s}.reaction_dead_letters (reaction, position, aggregate,"
            " aggregate_id, version, type, attempts, reason, action, at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, clock_timestamp())"
        )
        self._take = (
            f"WITH taken AS (UPDATE {s}.reactions SET owner = $2,"
            " lease_until = clock_timestamp() + make_interval(secs => $3)"
            " WHERE name = $1 AND (owner IS NULL OR owner = $2 OR lease_until < clock_timestamp())"
            " RETURNING 1) SELECT EXISTS (SELECT 1 FROM taken),"
            " (SELECT extract(epoch FROM lease_until - clock_timestamp())::float8"
            f" FROM {s}.reactions WHERE name = $1)"
        )
        self._give_back = (
            f"UPDATE {s}.reactions SET owner = NULL, lease_until = NULL"
            " WHERE name = $1 AND owner = $2"
        )
        self._statuses = (
            "SELECT name, follows, position, state, last_error,"
            " CASE WHEN lease_until >= clock_timestamp() THEN owner END,"
            " CASE WHEN lease_until >= clock_timestamp() THEN lease_until END,"
            f" updated_at FROM {s}.reactions ORDER BY name"
        )
        self._dead_letters = (
            "SELECT id, reaction, position, aggregate, aggregate_id, version, type, attempts,"
            f" reason, action, at FROM {s}.reaction_dead_letters WHERE reaction = $1"
            " ORDER BY id DESC LIMIT $2"
        )
        self._lock_row = f"SELECT position, state FROM {s}.reactions WHERE name = $1 FOR UPDATE"
        self._set = (
            f"UPDATE {s}.reactions SET position = $2, state = 'running', last_error = NULL,"
            " updated_at = clock_timestamp() WHERE name = $1"
        )
        self._record = (
            f"INSERT INTO {s}.reaction_operations (reaction, action, at, done_by, reason,"
            " from_position, to_position, from_state)"
            " VALUES ($1, $2, clock_timestamp(), $3, $4, $5, $6, $7)"
        )
        self._operations = (
            "SELECT id, reaction, action, at, done_by, reason, from_position, to_position,"
            f" from_state FROM {s}.reaction_operations WHERE reaction = $1"
            " ORDER BY id DESC LIMIT $2"
        )
        self._stopped_at = (
            f"SELECT max(position) FROM {s}.reaction_dead_letters WHERE reaction = $1"
            " AND action = 'stopped'"
        )

    async def register(self, name: str, follows: list[str], start: int) -> None:
        """Make the reaction's row, at ``start``, when it has none; record what it follows
        now."""
        async with translating(self.where), self.pool.acquire() as conn:
            await conn.execute(self._register, name, follows, start)

    async def checkpoint(self, name: str) -> tuple[int, str]:
        async with translating(self.where), self.pool.acquire() as conn:
            row = await conn.fetchrow(self._checkpoint, name)
        if row is None:
            raise ReactionNotFoundError(name)
        return int(row[0]), str(row[1])

    async def advance_alone(self, name: str, owner: str, expected: int, position: int) -> bool:
        """Move the checkpoint from ``expected`` to ``position`` while ``owner`` holds the
        lease and nobody reset it; False (nothing written) otherwise."""
        async with translating(self.where), self.pool.acquire() as conn:
            return bool(await conn.fetchval(self.advance, name, expected, position, owner))

    async def note_failure(self, name: str, owner: str, error: str) -> None:
        async with translating(self.where), self.pool.acquire() as conn:
            await conn.execute(self._note_failure, name, owner, error)

    async def dead_letter(
        self,
        name: str,
        owner: str,
        expected: int,
        event: StoredEvent,
        attempts: int,
        reason: str,
        action: OnFailure,
    ) -> bool:
        """Record the dead letter and stop before the event or skip it, in one transaction;
        False (nothing written) when the row moved or the lease went elsewhere."""
        async with translating(self.where), self.pool.acquire() as conn, conn.transaction():
            if action is OnFailure.SKIP:
                moved = await conn.fetchval(self.advance, name, expected, event.position, owner)
            else:
                error = stopped_error(event, reason)
                moved = await conn.fetchval(self._stop, name, expected, error, owner)
            if not moved:
                return False
            await conn.execute(
                self._dead_letter, *dead_letter_columns(name, event, attempts, reason, action)
            )
            return True

    async def take(self, name: str, owner: str, hold_s: float) -> tuple[bool, float]:
        """Take or renew the lease when it is free, lapsed or ``owner``'s: (held, seconds until
        the other holder's lease lapses, by the database's clock)."""
        async with translating(self.where), self.pool.acquire() as conn:
            held, lapses_in = await conn.fetchrow(self._take, name, owner, hold_s)
        return bool(held), float(lapses_in or 0.0)

    async def give_back(self, name: str, owner: str) -> None:
        async with translating(self.where), self.pool.acquire() as conn:
            await conn.execute(self._give_back, name, owner)

    async def statuses(self) -> list[ReactionStatus]:
        async with translating(self.where), self.pool.acquire() as conn:
            rows = await conn.fetch(self._statuses)
        head = await self.log.head_position()  # after the rows: never behind a checkpoint
        return [
            ReactionStatus(
                name=row[0],
                follows=tuple(row[1]),
                position=row[2],
                head=head,
                pending=await self.log.count(after_position=row[2], aggregates=row[1]),
                state=row[3],
                last_error=row[4],
                holder=row[5],
                lease_until=row[6],
                updated_at=row[7],
            )
            for row in rows
        ]

    async def dead_letters(self, name: str, limit: int) -> list[ReactionDeadLetter]:
        async with translating(self.where), self.pool.acquire() as conn:
            if await conn.fetchrow(self._checkpoint, name) is None:
                raise ReactionNotFoundError(name)
            rows = await conn.fetch(self._dead_letters, name, limit)
        return [dead_letter_of_row(row, row[10]) for row in rows]

    async def operations(self, name: str, limit: int) -> list[ReactionOperation]:
        async with translating(self.where), self.pool.acquire() as conn:
            if await conn.fetchrow(self._checkpoint, name) is None:
                raise ReactionNotFoundError(name)
            rows = await conn.fetch(self._operations, name, limit)
        return [operation_of_row(row, row[3]) for row in rows]

    async def reset(self, name: str, position: int, note: tuple[str | None, str | None]) -> None:
        """Set the checkpoint and record the operation (``note``: reason, by) in one
        transaction."""
        head = await self.log.head_position()
        async with translating(self.where), self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(self._lock_row, name)
            if row is None:
                raise ReactionNotFoundError(name)
            check_reset_within_head(position, head)
            await conn.execute(self._set, name, position)
            await conn.execute(
                self._record, name, "reset", note[1], note[0], row[0], position, row[1]
            )
            await conn.execute(f"SELECT {self._notify}")

    async def resume(self, name: str, skip: bool, note: tuple[str | None, str | None]) -> int:
        """Clear a stop; with ``skip`` also step over the event it stopped at; record the
        operation (``note``: reason, by). The position after."""
        async with translating(self.where), self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(self._lock_row, name)
            if row is None:
                raise ReactionNotFoundError(name)
            before, state = int(row[0]), str(row[1])
            position = before
            if skip and state == _STOPPED:
                position = max(position, int(await conn.fetchval(self._stopped_at, name) or 0))
            await conn.execute(self._set, name, position)
            action = "skip" if skip else "resume"
            await conn.execute(
                self._record, name, action, note[1], note[0], before, position, state
            )
            await conn.execute(f"SELECT {self._notify}")
            return position
