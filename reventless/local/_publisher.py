"""The ScheduledPublisher adapter over the SQLite store (contract: ``scheduler_adapter``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from reventless.errors import CorruptDataError
from reventless.local._engine import Engine
from reventless.local._group_commit import GroupCommit
from reventless.local._store import PutGroup, ScheduleRow, check_row, decode_spec, from_us
from reventless.local._store_runner import StoreRunner
from reventless.schedule import Schedule
from reventless.scheduler_adapter import (
    DamagedSchedule,
    DeadLetter,
    HistoryEntry,
    HistoryKind,
    PutOutcome,
    SchedulePage,
    ScheduleState,
)
from reventless.target import Target, fire_id

__all__ = ("LocalScheduledPublisher",)


class LocalScheduledPublisher:
    """Stores schedules in SQLite and tells the engine when the earliest fire may have changed."""

    def __init__(self, runner: StoreRunner, engine: Engine) -> None:
        self._runner = runner
        self._store = runner.store
        self._engine = engine
        # Creates of concurrent callers share one transaction.
        self._puts: GroupCommit[PutGroup, list[tuple[int, int | None, bool]]] = GroupCommit(
            self._put_groups, sticky=False
        )

    async def attach(self, scheduler: str, target: Target) -> None:
        self._engine.targets[scheduler] = target
        self._engine.target_attached(scheduler)

    async def put(self, scheduler: str, schedule: Schedule, *, created_at: datetime) -> PutOutcome:
        return (await self.put_many(scheduler, [schedule], created_at=created_at))[0]

    async def put_many(
        self, scheduler: str, schedules: Sequence[Schedule], *, created_at: datetime
    ) -> list[PutOutcome]:
        results = await self._puts.submit(PutGroup(scheduler, schedules, created_at))
        outcomes = []
        for row_id, next_us, created in results:
            self._engine.schedule_changed(row_id, next_us)
            outcomes.append(PutOutcome.CREATED if created else PutOutcome.REPLACED)
        return outcomes

    async def _put_groups(self, groups: list[PutGroup]) -> list[list[tuple[int, int | None, bool]]]:
        return await self._runner.call(self._store.put_groups, groups)

    async def delete(self, scheduler: str, name: str, *, at: datetime) -> bool:
        # The engine's heap entry goes stale and is dropped when it comes up.
        return await self._runner.call(self._store.delete, scheduler, name, at)

    async def get(self, scheduler: str, name: str) -> ScheduleState:
        _, spec, created_us, paused, next_us, version = await self._runner.call(
            self._store.get, scheduler, name
        )
        return _state(scheduler, name, spec, created_us, paused, next_us, version)

    async def list_schedules(
        self, scheduler: str, *, prefix: str = "", limit: int = 100, after: str | None = None
    ) -> SchedulePage:
        rows = await self._runner.call(self._store.list_rows, scheduler, prefix, limit, after)
        states, damaged = [], []
        for row in rows[:limit]:
            try:
                states.append(_state(scheduler, *row))
            except CorruptDataError as exc:
                damaged.append(DamagedSchedule(name=str(row[0]), reason=str(exc)))
        next_token = str(rows[limit - 1][0]) if len(rows) > limit else None
        return SchedulePage(schedules=states, next_token=next_token, damaged=damaged)

    async def pause(self, scheduler: str, name: str, *, at: datetime) -> ScheduleState:
        await self._runner.call(self._store.pause, scheduler, name, at)
        return await self.get(scheduler, name)

    async def resume(self, scheduler: str, name: str, *, at: datetime) -> ScheduleState | None:
        resumed = await self._runner.call(self._store.resume, scheduler, name, at)
        if resumed is None:
            return None  # a Single whose instant passed while paused: completed
        self._engine.schedule_changed(*resumed)
        return await self.get(scheduler, name)

    async def history(self, scheduler: str, name: str, *, limit: int = 100) -> list[HistoryEntry]:
        rows = await self._runner.call(self._store.history, scheduler, name, limit)
        entries = []
        for kind, at_us, scheduled_us, detail in rows:
            scheduled = None if scheduled_us is None else from_us(scheduled_us)
            entries.append(
                HistoryEntry(
                    kind=HistoryKind(kind),
                    at=from_us(at_us),
                    schedule=name,
                    fire_id=None if scheduled is None else fire_id(name, scheduled),
                    scheduled_time=scheduled,
                    detail=detail,
                )
            )
        return entries

    async def dead_letters(self, scheduler: str, *, limit: int = 100) -> list[DeadLetter]:
        rows = await self._runner.call(self._store.dead_letters, scheduler, limit)
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
            for name, scheduled_us, payload, attempts, reason, at_us in rows
        ]


def _state(
    scheduler: str,
    name: str,
    spec: bytes,
    created_us: int,
    paused: int,
    next_us: int | None,
    version: int,
) -> ScheduleState:
    """The state of a stored row; CorruptDataError naming the row when a column is damaged."""
    check_row(ScheduleRow(0, scheduler, name, spec, created_us, paused, next_us, version))
    return ScheduleState(
        schedule=decode_spec(spec, scheduler, name),
        created_at=from_us(created_us),
        paused=bool(paused),
        next_fire=None if paused or next_us is None else from_us(next_us),
        version=version,
    )
