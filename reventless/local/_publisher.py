"""The ScheduledPublisher adapter over the SQLite store (contract: ``scheduler_adapter``).

Besides the port, it records in the store which process attached which target to which scheduler
(with the payload rules of a typed target), so that another process, such as the command line,
can list the schedulers, tell whether a running engine serves them and check payloads as the
API does. ``store_status`` reads that record.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import datetime

import msgspec

from reventless._attachments import describe_target, duplicate_scheduler
from reventless._payload_types import describe_payload
from reventless._repairs import MAX_BACKFILL, redrive_wanted
from reventless.local._engine import Engine
from reventless.local._group_commit import GroupCommit
from reventless.local._rows import (
    AttachmentRow,
    PutGroup,
    ScheduleRow,
    check_row,
    decode_spec,
    from_us,
    to_us,
    valid_us,
)
from reventless.local._store_runner import StoreRunner
from reventless.schedule import Schedule
from reventless.scheduler_adapter import (
    DeadLetter,
    EngineStatus,
    HistoryEntry,
    HistoryKind,
    IfExists,
    PublisherOverview,
    PutOutcome,
    SchedulePage,
    ScheduleState,
    page_of_rows,
    pause_detail,
)
from reventless.target import Target, fire_id

__all__ = ("Attachment", "LocalScheduledPublisher", "SchedulerInfo", "StoreStatus")


# Puts of up to this many rows are brief store calls (see StoreRunner.call_brief).
_BRIEF_ROWS = 8


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """A target a process attached to a scheduler, as the store recorded it.

    ``engine_running`` is True when that process holds the store's lease now: its engine fires
    this scheduler's schedules. ``payload_types`` is the typed target's payload rules (see
    ``reventless._payload_types``), None for an untyped target.
    """

    scheduler: str
    target: str
    process: str
    owner: str
    attached_at: datetime
    engine_running: bool
    payload_types: str | None = None


class SchedulerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One scheduler namespace of a store: its schedules and the targets attached to it.

    ``served`` is True when the running engine (the lease holder) has a target attached to it;
    otherwise its fires wait.
    """

    name: str
    schedules: int
    paused: int
    attachments: list[Attachment]
    served: bool


class StoreStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Every scheduler of a store, and which process runs its engine.

    ``engine`` is the lease holder's process (``"pid 41 on host"``), ``"an unrecorded process"``
    when it attached nothing, None when no engine runs; ``lease_until`` is when its lease ends
    unless renewed. A lease's row outlives a holder that was killed until it lapses: a holder on
    this host is checked by its pid, and one that is gone is no engine (``engine`` None) but
    ``ended``, its process, until the lease lapses. ``engine_checked`` says whether the engine
    was found alive here; a holder on another host (or unrecorded) cannot be, and
    ``last_seen`` (its last renewal, None when not recorded) says how fresh it is.
    """

    engine: str | None
    lease_until: datetime | None
    schedulers: list[SchedulerInfo]
    engine_checked: bool = False
    ended: str | None = None
    last_seen: datetime | None = None

    def scheduler(self, name: str) -> SchedulerInfo | None:
        return next((info for info in self.schedulers if info.name == name), None)


def _process() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


_PROCESS = re.compile(r"pid (\d+) on (.*)")


def process_alive(process: str) -> bool | None:
    """Whether the process ``"pid N on HOST"`` (as ``_process`` writes it) runs: known only on
    this host (None elsewhere, or for a text not of that form)."""
    found = _PROCESS.fullmatch(process)
    if found is None or found[2] != socket.gethostname():
        return None
    pid = int(found[1])
    if not 0 < pid < 2**31:
        return None
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the pid exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    return True


class LocalScheduledPublisher:
    """Stores schedules in SQLite and tells the engine when the earliest fire may have changed."""

    def __init__(self, runner: StoreRunner, engine: Engine) -> None:
        self._runner = runner
        self._store = runner.store
        self._engine = engine
        # Attachments are recorded under the engine's lease id, so a reader can tell which
        # belong to the process that fires.
        self._owner = engine.lease_owner or uuid.uuid4().hex
        self._names: set[str] = set()
        # Creates of concurrent callers share one transaction.
        self._puts: GroupCommit[PutGroup, list[tuple[int, int | None, bool]]] = GroupCommit(
            self._put_groups,
            sticky=False,
            shield=False,  # one store call: not cancellable
        )

    async def attach(self, scheduler: str, target: Target) -> None:
        if scheduler in self._names:
            raise duplicate_scheduler(scheduler, self._engine.targets.get(scheduler))
        self._names.add(scheduler)  # before the await: two concurrent makes cannot both pass
        try:
            if not self._store.read_only:  # a reader fires nothing; there is nothing to record
                row = AttachmentRow(
                    scheduler,
                    self._owner,
                    describe_target(target),
                    describe_payload(target),
                    _process(),
                    int(time.time() * 1_000_000),
                )
                await self._runner.call(self._store.record_attachment, row)
        except BaseException:
            self._names.discard(scheduler)
            raise
        self._engine.targets[scheduler] = target
        self._engine.target_attached(scheduler)

    async def store_status(self) -> StoreStatus:
        """Every scheduler of the store (from schedules, history and attachments), the targets
        attached to each, and whether the process running the engine serves it."""
        counts, recorded, rows, holder, renewed_us = await self._runner.call(self._read_status)
        now = time.time()
        running = holder[0] if holder is not None and holder[1] > now else None
        process = next((row.process for row in rows if row.owner == running), None)
        alive = None if process is None else process_alive(process)
        ended = process if alive is False else None
        if ended is not None:
            running = None  # killed (its lease lapses later): no engine serves the store
        attachments: dict[str, list[Attachment]] = {}
        for row in rows:
            attachments.setdefault(row.scheduler, []).append(_attachment(row, running))
        totals = {name: (count, paused) for name, count, paused in counts}
        names = sorted({*totals, *recorded, *attachments})
        infos = [
            SchedulerInfo(
                name=name,
                schedules=totals.get(name, (0, 0))[0],
                paused=totals.get(name, (0, 0))[1],
                attachments=attachments.get(name, []),
                served=any(a.engine_running for a in attachments.get(name, [])),
            )
            for name in names
        ]
        engine = None
        if running is not None:
            engine = process or "an unrecorded process"
        held = running is not None or ended is not None
        until = None if not held or holder is None else _from_seconds(holder[1])
        return StoreStatus(
            engine=engine,
            lease_until=until,
            schedulers=infos,
            engine_checked=engine is not None and alive is True,
            ended=ended,
            last_seen=None if not held or renewed_us is None else from_us(renewed_us),
        )

    async def overview(self) -> PublisherOverview:
        status = await self.store_status()
        engine = EngineStatus(
            holder=status.engine,
            last_seen=status.last_seen if status.engine else None,
            lease_until=status.lease_until if status.engine else None,
        )
        return PublisherOverview(
            schedulers=[info.name for info in status.schedulers], engine=engine
        )

    def _read_status(
        self,
    ) -> tuple[
        list[tuple[str, int, int]],
        list[str],
        list[AttachmentRow],
        tuple[str, float] | None,
        int | None,
    ]:
        store = self._store
        return (
            store.schedule_counts(),
            store.recorded_schedulers(),
            store.attachments(),
            store.lease_holder(),
            store.lease_renewed_us(),
        )

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
        if if_exists is not IfExists.REPLACE:
            # Its existence check and write are one transaction of their own: a refusal fails
            # only this call, never the creates of others that a shared commit would hold.
            kept = await self._runner.call(
                self._store.put_many, scheduler, schedules, created_at, if_exists
            )
            for row_id, next_us, outcome in kept:
                if outcome is not PutOutcome.KEPT:
                    self._engine.schedule_changed(row_id, next_us)
            return [outcome for _, _, outcome in kept]
        results = await self._puts.submit(PutGroup(scheduler, schedules, created_at))
        outcomes = []
        for row_id, next_us, created in results:
            self._engine.schedule_changed(row_id, next_us)
            outcomes.append(PutOutcome.CREATED if created else PutOutcome.REPLACED)
        return outcomes

    async def _put_groups(self, groups: list[PutGroup]) -> list[list[tuple[int, int | None, bool]]]:
        if sum(len(group.schedules) for group in groups) <= _BRIEF_ROWS:
            return await self._runner.call_brief(self._store.put_groups, groups)
        return await self._runner.call(self._store.put_groups, groups)

    async def delete(self, scheduler: str, name: str, *, at: datetime) -> bool:
        # The engine's heap entry goes stale and is dropped when it comes up.
        return await self._runner.call_brief(self._store.delete, scheduler, name, at)

    async def get(self, scheduler: str, name: str) -> ScheduleState:
        _, *row = await self._runner.call_brief(self._store.get, scheduler, name)
        return _state(scheduler, name, *row)

    async def list_schedules(
        self, scheduler: str, *, prefix: str = "", limit: int = 100, after: str | None = None
    ) -> SchedulePage:
        rows = await self._runner.call(self._store.list_rows, scheduler, prefix, limit, after)
        return page_of_rows(rows, limit, lambda row: _state(scheduler, *row))

    async def pause(
        self,
        scheduler: str,
        name: str,
        *,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> ScheduleState:
        await self._runner.call(self._store.pause, scheduler, name, at, reason, by)
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
        resumed = await self._runner.call(self._store.resume, scheduler, name, at, reason, by)
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
        detail = pause_detail(reason, by)
        row_id, scheduled_us = await self._runner.call(
            self._store.trigger, scheduler, name, at_us, detail
        )
        self._engine.repairs_queued([(row_id, at_us)])
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
        detail = pause_detail(reason, by)
        queued = await self._runner.call(
            self._store.backfill, scheduler, name, start, end, at, MAX_BACKFILL, detail
        )
        at_us = to_us(at)
        self._engine.repairs_queued([(row_id, at_us) for row_id, _ in queued])
        return [fire_id(name, from_us(scheduled_us)) for _, scheduled_us in queued]

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
        detail = pause_detail(reason, by)
        moved = await self._runner.call(
            self._store.redrive, scheduler, schedule, wanted, at_us, detail
        )
        self._engine.repairs_queued([(row_id, at_us) for row_id, _, _ in moved])
        return [fire_id(name, from_us(scheduled_us)) for _, name, scheduled_us in moved]


def _attachment(row: AttachmentRow, running: str | None) -> Attachment:
    return Attachment(
        scheduler=row.scheduler,
        target=row.target,
        process=row.process,
        owner=row.owner,
        attached_at=from_us(row.attached_at),
        engine_running=row.owner == running,
        payload_types=row.payload_types,
    )


def _from_seconds(seconds: float) -> datetime:
    return from_us(int(seconds * 1_000_000))


def _state(
    scheduler: str,
    name: str,
    spec: bytes,
    created_us: int,
    paused: int,
    next_us: int | None,
    version: int,
    paused_at: object = None,
    paused_by: object = None,
    pause_reason: object = None,
) -> ScheduleState:
    """The state of a stored row; CorruptDataError naming the row when a column is damaged.

    The pause's columns are read only while paused (a release without them leaves them as they
    were when it resumes or replaces); a damaged one reads as not known rather than failing the
    schedule, whose firing does not depend on it."""
    check_row(ScheduleRow(0, scheduler, name, spec, created_us, paused, next_us, version))
    return ScheduleState(
        schedule=decode_spec(spec, scheduler, name),
        created_at=from_us(created_us),
        paused=bool(paused),
        next_fire=None if paused or next_us is None else from_us(next_us),
        version=version,
        paused_at=from_us(paused_at)
        if paused and isinstance(paused_at, int) and valid_us(paused_at)
        else None,
        paused_by=paused_by if paused and isinstance(paused_by, str) else None,
        pause_reason=pause_reason if paused and isinstance(pause_reason, str) else None,
    )
