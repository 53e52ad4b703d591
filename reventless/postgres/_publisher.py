"""The ScheduledPublisher adapter over PostgreSQL (contract: ``scheduler_adapter``).

Every operation is one transaction. A change that moves a schedule's due time (create,
update, resume, a repair queued) notifies the schema's channel in that transaction (delivered
at commit), which wakes the engines of every process, and pokes this process's engine
directly. History, dead letters and the repairs are in ``_history``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from reventless._attachments import duplicate_scheduler
from reventless._fire_rows import from_us, to_us
from reventless.errors import ScheduleExistsError
from reventless.errors import ScheduleNotFoundError as NotFound
from reventless.fire_times import first_fire, next_fire_after
from reventless.local import StoreStatus
from reventless.postgres._engine import PostgresEngine
from reventless.postgres._history import HistoryOperations
from reventless.postgres._schema import quote_schema
from reventless.postgres._tx import (
    decode_schedule,
    due_us,
    insert_history,
    transaction,
    wake_channel,
)
from reventless.schedule import Schedule, Single, rate_text
from reventless.scheduler_adapter import (
    HistoryKind,
    IfExists,
    PublisherOverview,
    PutOutcome,
    SchedulePage,
    ScheduleState,
    page_of_rows,
    pause_detail,
)
from reventless.target import Target

__all__ = ("PostgresScheduledPublisher",)

_COLUMNS = "name, spec, created_at, paused, next_fire, version, paused_at, paused_by, pause_reason"


def _state(scheduler: str, row: Any) -> ScheduleState:
    name, spec, created_us, paused, next_us, version, paused_at, paused_by, reason = row
    return ScheduleState(
        schedule=decode_schedule(spec, scheduler, name),
        created_at=from_us(created_us),
        paused=paused,
        next_fire=None if paused or next_us is None else from_us(next_us),
        version=version,
        paused_at=None if not paused or paused_at is None else from_us(paused_at),
        paused_by=paused_by if paused else None,
        pause_reason=reason if paused else None,
    )


def _detail(schedule: Schedule) -> str:
    return f"{rate_text(schedule.rate)} in {schedule.timezone}"


def _updated_next(schedule: Schedule, at: datetime, created_at: datetime) -> int | None:
    """The next fire of a schedule updated in place at ``at``, created at ``created_at``."""
    if isinstance(schedule.rate, Single):
        nxt = first_fire(schedule, at)
    else:
        nxt = next_fire_after(schedule, at, created_at=created_at)
    return None if nxt is None else to_us(nxt)


class PostgresScheduledPublisher(HistoryOperations):
    """Schedules in ``schema``; fires by the provider's engine (``_engine``)."""

    def __init__(self, pool: asyncpg.Pool, schema: str, where: str, engine: PostgresEngine):
        super().__init__(pool, schema, where, engine)
        s = quote_schema(schema)
        self._names: set[str] = set()
        self._notify = f"SELECT pg_notify('{wake_channel(schema)}', '')"
        self._upsert = (
            f"INSERT INTO {s}.schedules AS t (scheduler, name, spec, created_at, next_fire,"
            " due_at) SELECT $1, u.name, u.spec, $2, u.next, u.due FROM unnest($3::text[],"
            " $4::bytea[], $5::bigint[], $6::bigint[]) AS u(name, spec, next, due)"
        )
        self._replace = (
            self._upsert + " ON CONFLICT (scheduler, name) DO UPDATE SET spec = excluded.spec,"
            " created_at = excluded.created_at, paused = false, next_fire = excluded.next_fire,"
            " due_at = excluded.due_at, version = t.version + 1, paused_at = NULL,"
            " paused_by = NULL, pause_reason = NULL RETURNING t.name, (t.xmax = 0)"
        )
        self._insert_new = self._upsert + " ON CONFLICT (scheduler, name) DO NOTHING RETURNING name"
        self._select = f"SELECT {_COLUMNS} FROM {s}.schedules WHERE scheduler = $1 AND name = $2"
        self._list = (
            f"SELECT {_COLUMNS} FROM {s}.schedules WHERE scheduler = $1 AND name >= $2"
            " AND name < $3 AND name != $4 ORDER BY name LIMIT $5"
        )
        self._s = s

    async def attach(self, scheduler: str, target: Target) -> None:
        if scheduler in self._names:
            raise duplicate_scheduler(scheduler, self._engine.targets.get(scheduler))
        self._names.add(scheduler)  # before the await: two concurrent makes cannot both pass
        try:
            await self._engine.records.attached(scheduler, target)
        except BaseException:
            self._names.discard(scheduler)
            raise
        self._engine.targets[scheduler] = target
        self._engine.poke()

    async def store_status(self) -> StoreStatus:
        """Every scheduler of the store, the targets attached to each by every process, and
        the engines running (``_engines``)."""
        return await self._engine.records.store_status()

    async def overview(self) -> PublisherOverview:
        return await self._engine.records.overview()

    async def put(
        self,
        scheduler: str,
        schedule: Schedule,
        *,
        created_at: datetime,
        if_exists: IfExists = IfExists.REPLACE,
    ) -> PutOutcome:
        return (
            await self.put_many(scheduler, [schedule], created_at=created_at, if_exists=if_exists)
        )[0]

    async def put_many(
        self,
        scheduler: str,
        schedules: Sequence[Schedule],
        *,
        created_at: datetime,
        if_exists: IfExists = IfExists.REPLACE,
    ) -> list[PutOutcome]:
        if not schedules:
            return []
        async with transaction(self._pool, self._where) as conn:
            if if_exists is IfExists.UPDATE:
                outcomes = await self._update_in(conn, scheduler, schedules, created_at)
            else:
                outcomes = await self._put_in(conn, scheduler, schedules, created_at, if_exists)
            await conn.execute(self._notify)
        self._engine.poke()
        return outcomes

    async def _put_in(
        self,
        conn: Any,
        scheduler: str,
        schedules: Sequence[Schedule],
        created_at: datetime,
        if_exists: IfExists,
    ) -> list[PutOutcome]:
        nexts = []
        for schedule in schedules:
            nxt = first_fire(schedule, created_at)
            nexts.append(None if nxt is None else to_us(nxt))
        created_us = to_us(created_at)
        values = (
            scheduler,
            created_us,
            [schedule.name for schedule in schedules],
            [schedule.to_json() for schedule in schedules],
            nexts,
            [due_us(s.name, s.jitter_minutes, n) for s, n in zip(schedules, nexts, strict=True)],
        )
        if if_exists is IfExists.REPLACE:
            created = dict(await conn.fetch(self._replace, *values))
            outcomes = [
                PutOutcome.CREATED if created[s.name] else PutOutcome.REPLACED for s in schedules
            ]
        else:
            written = {row[0] for row in await conn.fetch(self._insert_new, *values)}
            stored = [s.name for s in schedules if s.name not in written]
            if stored and if_exists is IfExists.ERROR:
                raise ScheduleExistsError(stored)  # the transaction is rolled back
            outcomes = [
                PutOutcome.CREATED if s.name in written else PutOutcome.KEPT for s in schedules
            ]
        await insert_history(
            conn,
            self._s,
            [
                (scheduler, s.name, outcome.value, created_us, None, _detail(s))
                for s, outcome in zip(schedules, outcomes, strict=True)
                if outcome is not PutOutcome.KEPT
            ],
        )
        return outcomes

    async def _update_in(
        self, conn: Any, scheduler: str, schedules: Sequence[Schedule], at: datetime
    ) -> list[PutOutcome]:
        """``IfExists.UPDATE``: each stored schedule changed in place (its creation instant
        and pause kept); one not stored is created."""
        at_us = to_us(at)
        outcomes, history = [], []
        for schedule in schedules:
            row = await conn.fetchrow(
                f"SELECT created_at, paused FROM {self._s}.schedules"
                " WHERE scheduler = $1 AND name = $2 FOR UPDATE",
                scheduler,
                schedule.name,
            )
            if row is None:
                outcomes += await self._put_in(conn, scheduler, [schedule], at, IfExists.KEEP)
                continue
            created_us, paused = row
            next_us = None if paused else _updated_next(schedule, at, from_us(created_us))
            await conn.execute(
                f"UPDATE {self._s}.schedules SET spec = $3, next_fire = $4, due_at = $5,"
                " version = version + 1 WHERE scheduler = $1 AND name = $2",
                scheduler,
                schedule.name,
                schedule.to_json(),
                next_us,
                due_us(schedule.name, schedule.jitter_minutes, next_us),
            )
            outcomes.append(PutOutcome.UPDATED)
            history.append((scheduler, schedule.name, "updated", at_us, None, _detail(schedule)))
        await insert_history(conn, self._s, history)
        return outcomes

    async def delete(self, scheduler: str, name: str, *, at: datetime) -> bool:
        async with transaction(self._pool, self._where) as conn:
            gone = await conn.fetchval(
                f"DELETE FROM {self._s}.schedules WHERE scheduler = $1 AND name = $2 RETURNING id",
                scheduler,
                name,
            )
            if gone is None:
                return False
            await insert_history(
                conn, self._s, [(scheduler, name, "deleted", to_us(at), None, None)]
            )
        return True

    async def get(self, scheduler: str, name: str) -> ScheduleState:
        async with transaction(self._pool, self._where) as conn:
            row = await conn.fetchrow(self._select, scheduler, name)
        if row is None:
            raise NotFound(name)
        return _state(scheduler, row)

    async def list_schedules(
        self, scheduler: str, *, prefix: str = "", limit: int = 100, after: str | None = None
    ) -> SchedulePage:
        low = prefix if after is None or after < prefix else after
        async with transaction(self._pool, self._where) as conn:
            # Names are ASCII below DEL, so prefix + DEL bounds every name with that prefix.
            rows = await conn.fetch(
                self._list, scheduler, low, prefix + "\x7f", after or "", limit + 1
            )
        return page_of_rows(rows, limit, lambda row: _state(scheduler, row))

    async def pause(
        self,
        scheduler: str,
        name: str,
        *,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> ScheduleState:
        async with transaction(self._pool, self._where) as conn:
            paused = await conn.fetchval(
                f"SELECT paused FROM {self._s}.schedules WHERE scheduler = $1 AND name = $2"
                " FOR UPDATE",
                scheduler,
                name,
            )
            if paused is None:
                raise NotFound(name)
            if not paused:
                at_us = to_us(at)
                await conn.execute(
                    f"UPDATE {self._s}.schedules SET paused = true, due_at = NULL,"
                    " version = version + 1, paused_at = $3, paused_by = $4, pause_reason = $5"
                    " WHERE scheduler = $1 AND name = $2",
                    scheduler,
                    name,
                    at_us,
                    by,
                    reason,
                )
                detail = pause_detail(reason, by)
                await insert_history(
                    conn, self._s, [(scheduler, name, "paused", at_us, None, detail)]
                )
        return await self.get(scheduler, name)

    async def resume(
        self,
        scheduler: str,
        name: str,
        *,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> ScheduleState | None:
        async with transaction(self._pool, self._where) as conn:
            row = await conn.fetchrow(
                f"SELECT id, spec, created_at, paused FROM {self._s}.schedules"
                " WHERE scheduler = $1 AND name = $2 FOR UPDATE",
                scheduler,
                name,
            )
            if row is None:
                raise NotFound(name)
            paused = row[3]
            if paused and not await self._resume_in(conn, scheduler, name, row, at, reason, by):
                return None
            if paused:
                await conn.execute(self._notify)
        self._engine.poke()
        return await self.get(scheduler, name)

    async def _resume_in(
        self,
        conn: Any,
        scheduler: str,
        name: str,
        row: Any,
        at: datetime,
        reason: str | None,
        by: str | None,
    ) -> bool:
        """Resume a paused row; False when it completed instead (a Single whose instant
        passed while paused)."""
        row_id, spec, created_us, _ = row
        schedule = decode_schedule(spec, scheduler, name)
        nxt = next_fire_after(schedule, at, created_at=from_us(created_us))
        at_us = to_us(at)
        history = [
            (scheduler, name, HistoryKind.RESUMED.value, at_us, None, pause_detail(reason, by))
        ]
        if nxt is None:
            await conn.execute(f"DELETE FROM {self._s}.schedules WHERE id = $1", row_id)
            history.append((scheduler, name, "completed", at_us, None, "no fire left after resume"))
            await insert_history(conn, self._s, history)
            return False
        next_us = to_us(nxt)
        await conn.execute(
            f"UPDATE {self._s}.schedules SET paused = false, next_fire = $2, due_at = $3,"
            " version = version + 1, paused_at = NULL, paused_by = NULL, pause_reason = NULL"
            " WHERE id = $1",
            row_id,
            next_us,
            due_us(name, schedule.jitter_minutes, next_us),
        )
        await insert_history(conn, self._s, history)
        return True
