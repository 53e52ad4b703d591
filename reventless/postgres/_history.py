"""The history and the dead letters of the PostgreSQL store: reading them, the repairs queued
from them (trigger, backfill, redrive: retry rows of attempt 0, which the engine delivers,
retries and dead-letters like any failed fire) and their retention (``prune``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

from reventless._fire_rows import FIRED_AND_COMPLETED, from_us, to_us
from reventless._repairs import (
    MAX_BACKFILL,
    backfill_instants,
    extra_fire_us,
    pruned_history_error,
    redrive_picks,
    redrive_wanted,
)
from reventless.errors import ScheduleNotFoundError
from reventless.postgres._schema import quote_schema
from reventless.postgres._tx import decode_schedule, insert_history, transaction, wake_channel
from reventless.scheduler_adapter import DeadLetter, HistoryEntry, HistoryKind, pause_detail
from reventless.target import fire_id

if TYPE_CHECKING:
    from reventless.postgres._engine import PostgresEngine

__all__ = ("MAX_BACKFILL", "HistoryOperations")

_PRUNED_KEY = "history_pruned_until"


class HistoryOperations:
    """The port's history, dead letters and repairs (the base of the publisher)."""

    def __init__(self, pool: asyncpg.Pool, schema: str, where: str, engine: PostgresEngine):
        self._pool = pool
        self._where = where
        self._engine = engine
        self._s = quote_schema(schema)
        self._wake = f"SELECT pg_notify('{wake_channel(schema)}', '')"

    async def history(self, scheduler: str, name: str, *, limit: int = 100) -> list[HistoryEntry]:
        async with transaction(self._pool, self._where) as conn:
            rows = await conn.fetch(
                f"SELECT kind, at, scheduled_time, detail FROM {self._s}.history"
                " WHERE scheduler = $1 AND name = $2 ORDER BY id DESC LIMIT $3",
                scheduler,
                name,
                limit,
            )
        entries: list[HistoryEntry] = []
        for kind, at_us, scheduled_us, detail in reversed(rows):
            at = from_us(at_us)
            scheduled = None if scheduled_us is None else from_us(scheduled_us)
            fire = None if scheduled is None else fire_id(name, scheduled)
            first = HistoryKind.FIRED if kind == FIRED_AND_COMPLETED else HistoryKind(kind)
            entries.append(
                HistoryEntry(
                    kind=first,
                    at=at,
                    schedule=name,
                    fire_id=fire,
                    scheduled_time=scheduled,
                    detail=detail,
                )
            )
            if kind == FIRED_AND_COMPLETED:
                entries.append(HistoryEntry(kind=HistoryKind.COMPLETED, at=at, schedule=name))
        return entries[-limit:]

    async def dead_letters(self, scheduler: str, *, limit: int = 100) -> list[DeadLetter]:
        async with transaction(self._pool, self._where) as conn:
            rows = await conn.fetch(
                f"SELECT name, scheduled_time, payload, attempts, reason, at"
                f" FROM {self._s}.dead_letters WHERE scheduler = $1 ORDER BY id DESC LIMIT $2",
                scheduler,
                limit,
            )
        return [
            DeadLetter(
                schedule=name,
                fire_id=fire_id(name, from_us(scheduled_us)),
                scheduled_time=from_us(scheduled_us),
                payload=payload,
                attempts=attempts,
                reason=reason,
                at=from_us(at_us),
            )
            for name, scheduled_us, payload, attempts, reason, at_us in reversed(rows)
        ]

    async def _queue(
        self,
        conn: Any,
        scheduler: str,
        items: Sequence[tuple[str, int, str]],
        kind: HistoryKind,
        at_us: int,
        detail: str | None,
    ) -> None:
        """Queue (name, scheduled_us, payload) fires for delivery now, recorded as ``kind``
        with ``detail``."""
        if not items:
            return
        names, instants, payloads = (list(column) for column in zip(*items, strict=True))
        await conn.execute(
            f"INSERT INTO {self._s}.retries (scheduler, name, scheduled_time, payload, attempts,"
            " next_attempt_at, last_error) SELECT $1, u.name, u.at, u.payload, 0, $5, $6"
            " FROM unnest($2::text[], $3::bigint[], $4::text[]) AS u(name, at, payload)",
            scheduler,
            names,
            instants,
            payloads,
            at_us,
            kind.value,
        )
        await insert_history(
            conn,
            self._s,
            [(scheduler, name, kind.value, at_us, us, detail) for name, us, _ in items],
        )
        await conn.execute(self._wake)

    async def _stored(self, conn: Any, scheduler: str, name: str) -> Any:
        """The schedule's row, locked: repairs of one schedule queue one after the other."""
        row = await conn.fetchrow(
            f"SELECT spec, created_at, paused, next_fire FROM {self._s}.schedules"
            " WHERE scheduler = $1 AND name = $2 FOR UPDATE",
            scheduler,
            name,
        )
        if row is None:
            raise ScheduleNotFoundError(name)
        return row

    async def trigger(
        self,
        scheduler: str,
        name: str,
        *,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> str:
        at_us = to_us(at)
        scheduled_us = extra_fire_us(at_us)
        async with transaction(self._pool, self._where) as conn:
            spec, *_ = await self._stored(conn, scheduler, name)
            schedule = decode_schedule(spec, scheduler, name)
            await self._queue(
                conn,
                scheduler,
                [(name, scheduled_us, schedule.payload)],
                HistoryKind.TRIGGERED,
                at_us,
                pause_detail(reason, by),
            )
        self._engine.poke()
        return fire_id(name, from_us(scheduled_us))

    async def backfill(
        self,
        scheduler: str,
        name: str,
        *,
        start: datetime,
        end: datetime,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> list[str]:
        async with transaction(self._pool, self._where) as conn:
            spec, created_us, paused, next_us = await self._stored(conn, scheduler, name)
            schedule = decode_schedule(spec, scheduler, name)
            stop = min(end, at)
            if not paused and next_us is not None:
                stop = min(stop, from_us(next_us) - timedelta(microseconds=1))
            instants = backfill_instants(schedule, from_us(created_us), start, stop, MAX_BACKFILL)
            if not instants:
                return []
            await self._check_not_pruned(conn, start, instants[0])
            # One statement, so one snapshot: an engine that delivers a queued fire deletes its
            # retry row and records it delivered in one commit, seen whole or not at all.
            known = {
                row[0]
                for row in await conn.fetch(
                    f"SELECT scheduled_time FROM {self._s}.history WHERE scheduler = $1"
                    " AND name = $2 AND scheduled_time BETWEEN $3 AND $4"
                    " AND kind IN ('fired', 'fired+completed') UNION ALL"
                    f" SELECT scheduled_time FROM {self._s}.retries WHERE scheduler = $1"
                    " AND name = $2 AND scheduled_time BETWEEN $3 AND $4",
                    scheduler,
                    name,
                    instants[0],
                    instants[-1],
                )
            }
            todo = [us for us in instants if us not in known]
            items = [(name, us, schedule.payload) for us in todo]
            detail = pause_detail(reason, by)
            await self._queue(conn, scheduler, items, HistoryKind.BACKFILLED, to_us(at), detail)
        self._engine.poke()
        return [fire_id(name, from_us(us)) for us in todo]

    async def _check_not_pruned(self, conn: Any, start: datetime, first_us: int) -> None:
        pruned = await conn.fetchval(
            f"SELECT value::bigint FROM {self._s}.meta WHERE key = $1", _PRUNED_KEY
        )
        if pruned is not None and first_us <= pruned:
            raise pruned_history_error(start, pruned)

    async def redrive(
        self,
        scheduler: str,
        *,
        schedule: str | None = None,
        fire_ids: Sequence[str] | None = None,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> list[str]:
        wanted = redrive_wanted(fire_ids)
        at_us = to_us(at)
        async with transaction(self._pool, self._where) as conn:
            # Quarantined rows (attempts 0: a damaged schedule, never a delivery) stay.
            rows, items = redrive_picks(
                await conn.fetch(
                    f"SELECT id, name, scheduled_time, payload FROM {self._s}.dead_letters"
                    " WHERE scheduler = $1 AND attempts > 0 AND ($2::text IS NULL OR name = $2)"
                    " ORDER BY id FOR UPDATE",
                    scheduler,
                    schedule,
                ),
                wanted,
            )
            await conn.execute(
                f"DELETE FROM {self._s}.dead_letters WHERE id = ANY($1::bigint[])",
                [row[0] for row in rows],
            )
            detail = pause_detail(reason, by)
            await self._queue(conn, scheduler, items, HistoryKind.REDRIVEN, at_us, detail)
        self._engine.poke()
        return [fire_id(name, from_us(us)) for name, us, _ in items]
