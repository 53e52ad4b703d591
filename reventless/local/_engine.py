"""The local engine: sleeps on the clock until the earliest fire, delivers, records.

An orchestrator of small parts (``docs/internals.md`` tells the whole story):

- the due index (``_due_index``): which row may be due when; a hint checked against the row;
- the lease (``_lease``): which process fires, fenced so that two never deliver the same fire;
- the store runner (``_store_runner``): every store call, one at a time, in a worker thread;
- misfire planning (``reventless.misfire``, pure): what to deliver of what fell due;
- delivery workers: deliver a chunk of jobs, then commit their bookkeeping together with other
  workers' (``_group_commit``). A row is advanced only after delivery, so a crash in between
  repeats the fire with the same fire id: at-least-once.
"""

from __future__ import annotations

import contextlib
import enum
import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from reventless._fire_bookkeeping import Bookkeeper, note_expired, note_missed
from reventless._fire_jobs import DeliveryFailure, FireJob, RetryJob
from reventless._observe import Observer, watch_engine
from reventless.clock import Clock, Hold
from reventless.errors import (
    CorruptDataError,
    DeliveryRefusedError,
    ReventlessError,
    UsageError,
)
from reventless.fire_times import fire_jitter
from reventless.local._connection import LeaseLostError
from reventless.local._due_index import ID_MASK, DueEntry, DueIndex, EntryKind, ceil_s, pack, unpack
from reventless.local._engine_parts import (
    CatchUp,
    Countdown,
    DueBatch,
    Instants,
    Watch,
    cancelled_by_caller,
    count_catch_up,
    cut_overdue,
    raise_leaf,
)
from reventless.local._group_commit import GroupCommit
from reventless.local._lease import Lease, store_row
from reventless.local._rows import (
    ChangeMark,
    Outcome,
    RetryRow,
    ScheduleRow,
    check_row,
    decode_stored,
    to_us,
    valid_us,
)
from reventless.local._store_runner import StoreRunner
from reventless.misfire import plan_misfire
from reventless.scheduler_adapter import MisfirePolicy, RetryPolicy
from reventless.target import FireEnvelope, Target

__all__ = ("CatchUp", "Engine", "EngineState")

Job = FireJob | RetryJob

# Due rows taken per step. Planning is CPU in the event loop and yields every
# _PLANS_PER_CHECKPOINT rows; a large step shares out its jobs in large chunks (each chunk costs
# a hand-off, two cancel scopes and a share of a commit) and its bookkeeping in few statements.
_DUE_BATCH = 2048
_PLANS_PER_CHECKPOINT = 32
_STEPS_PER_CHECKPOINT = 16  # deliveries, or jobs recorded, between yields of a worker
_MAX_JOBS_PER_CHUNK = 256
_ALL_CHUNK = 64  # deliveries of one schedule per plan under MisfirePolicy.ALL
_LATE_AFTER = timedelta(seconds=60)  # a fire handled this late was missed, not merely busy
_MICROSECOND = timedelta(microseconds=1)
_FENCE_POLL_S = 0.05
_MAX_INSTANTS = 4096
_LOAD_CHUNK = 5000  # rows per read while loading the due index: one step of the loop


class EngineState(enum.Enum):
    """Where the engine stands; one state instead of several flags."""

    IDLE = "idle"
    STANDING_BY = "standing by"
    LEADING = "leading"
    STOPPING = "stopping"


class Engine:
    """Fires the schedules of one store. Created by the local provider; see ``provider``."""

    def __init__(
        self,
        runner: StoreRunner,
        clock: Clock,
        *,
        misfire_policy: MisfirePolicy,
        misfire_grace: timedelta,
        retry_policy: RetryPolicy,
        delivery_timeout: float,
        lease_ttl: float,
        poll_interval: float,
        workers: int,
        use_lease: bool,
    ) -> None:
        self._runner = runner
        self._store = runner.store
        self._clock = clock
        self._misfire_policy = misfire_policy
        self._grace = misfire_grace
        self._delivery_timeout = delivery_timeout
        self._poll_interval = poll_interval
        self._workers = workers
        self._lease = Lease(
            runner,
            store_row(runner.store),
            owner=uuid.uuid4().hex if use_lease else None,
            ttl=lease_ttl,
            timeout=delivery_timeout,
        )
        self.targets: dict[str, Target] = {}
        self.state = EngineState.IDLE
        self._index = DueIndex()
        self._inflight: set[int] = set()  # schedule rows whose fires are being delivered
        # Entries of rows in flight, looked at again once the fire in flight is recorded.
        self._deferred: dict[int, list[int]] = {}
        self._inflight_retries: set[int] = set()
        # Rows of due batches read but not planned yet (see _dispatch_loop): treated as in flight
        # by the batch read after them, which would otherwise hold a copy from before they fire.
        self._reading: set[int] = set()
        self._reading_retries: set[int] = set()
        self._waiting_for_target: dict[str, list[DueEntry]] = {}
        self._damaged: list[tuple[int, str]] = []
        self._sleep_scope: anyio.CancelScope | None = None
        self._sleep_deadline_s: int | None = None
        self._poke_hold: Hold | None = None
        self._changes = ChangeMark(0, 0)  # how far _poll_changes has read
        self._rebuild_requested = False
        self._committer: GroupCommit[Outcome, list[int]] = GroupCommit(
            self._flush, shield=False
        )  # one store call
        self._task_status: anyio.abc.TaskStatus[None] | None = None
        self._repairs_seen: set[tuple[int, int]] = set()  # (retry id, due) of repairs pushed
        self.observer = Observer("local")
        self._books = Bookkeeper(retry_policy, self.observer)
        watch_engine(self)
        self._instant = Instants(_MAX_INSTANTS)
        # Keys pushed for this process's own writes since the change poller last looked.
        self._pushed_here: set[int] = set()
        self._catch_up: CatchUp | None = None
        # Told the catch-up of each lead that found missed fires (``reventless run`` prints it).
        self.on_catch_up: Callable[[CatchUp], None] | None = None

    @property
    def is_leading(self) -> bool:
        return self.state is EngineState.LEADING

    @property
    def lease_owner(self) -> str | None:
        """The id of this engine's lease (None without one: ``:memory:``)."""
        return self._lease.owner

    @property
    def delivery_timeout(self) -> float:
        return self._delivery_timeout

    @property
    def store_path(self) -> str:
        return self._store.path

    def gauges(self) -> dict[str, float] | None:
        """The figures of the metrics gauges while leading (None while standing by)."""
        if not self.is_leading:
            return None
        earliest = self._index.earliest_s()
        behind = 0 if earliest is None else int(self._clock.now().timestamp()) - earliest
        return {
            "schedules": self._index.live,
            "in_flight": len(self._inflight) + len(self._inflight_retries),
            "backlog_age": max(0, behind),
        }

    # -- what operations tell the engine --------------------------------------------------------

    def schedule_changed(self, row_id: int, next_us: int | None) -> None:
        """An operation in this process stored a fire time for ``row_id``."""
        if not self.is_leading or next_us is None:
            return
        key = self._push(ceil_s(next_us), row_id, EntryKind.FIRE)
        if self._lease.owner is not None:
            self._pushed_here.add(key)  # the change poller will see this write: not again
        self._index.live += 1
        if self._index.bloated():
            self._rebuild_requested = True

    def repairs_queued(self, repairs: list[tuple[int, int]]) -> None:
        """Fires (retry row id, due at) queued by trigger, backfill or redrive in this process."""
        if not self.is_leading:
            return  # the leader (another process) finds them with _poll_repairs
        for row_id, at_us in repairs:
            if self._lease.owner is not None:  # only a file store runs _poll_repairs
                self._repairs_seen.add((row_id, at_us))
            self._push(ceil_s(at_us), row_id, EntryKind.RETRY)

    def target_attached(self, scheduler: str) -> None:
        for entry in self._waiting_for_target.pop(scheduler, []):
            self._push(*entry)

    def _push(self, time_s: int, row_id: int, kind: EntryKind) -> int:
        key = self._index.push(time_s, row_id, kind)
        if self._sleep_scope is not None and (
            self._sleep_deadline_s is None or time_s < self._sleep_deadline_s
        ):
            self._poke()
        return key

    def _poke(self) -> None:
        if self._sleep_scope is not None and self._poke_hold is None:
            self._poke_hold = self._clock.hold()
            self._sleep_scope.cancel()

    # -- running ---------------------------------------------------------------------------------

    async def run(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        if self.state is not EngineState.IDLE:
            raise UsageError("provider.run() is already running; run it once per provider")
        self.state = EngineState.STANDING_BY
        self._task_status = task_status
        self.observer.engine_started(self._store.path)
        # Busy for a virtual clock from the first step on, so that advance() called right after
        # start_soon(run) waits for the engine to load and go to sleep.
        starting = self._clock.hold()
        try:
            while True:
                if not await self._lease.try_acquire():
                    self.observer.standing_by(self._store.path)
                    starting.release()  # standing by: nothing is due in this process
                    self._started()
                    await self._lease.wait_until_held()
                with self._clock.work():
                    starting.release()
                    try:
                        await self._lead()
                    except BaseExceptionGroup as group:
                        raise_leaf(group)  # returns only when the lease moved: stand by
                        self.observer.lease_lost(self._store.path)
                    except LeaseLostError:
                        self.observer.lease_lost(self._store.path)
                self.state = EngineState.STANDING_BY
        finally:
            starting.release()
            self.state = EngineState.IDLE
            self.observer.engine_stopped(self._store.path)
            # A store that cannot be written lets the lease expire instead.
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(5),
                contextlib.suppress(ReventlessError),
            ):
                await self._lease.release()

    def _started(self) -> None:
        if self._task_status is not None:
            self._task_status.started()
            self._task_status = None

    async def _load(self) -> None:
        """Build the due index from the store, in chunks between which the loop runs on."""
        index = self._index
        heap = index.begin_load()  # operations may push meanwhile; they go into both
        self._pushed_here.clear()
        live = 0
        try:
            self._changes = await self._runner.call(self._store.change_mark)
            for kind, load in (
                (EntryKind.FIRE, self._store.due_fires),
                (EntryKind.RETRY, self._store.due_retries),
            ):
                after: int | None = 0
                while after is not None:
                    rows = await self._runner.call(load, after, _LOAD_CHUNK)
                    index.add_loaded(heap, [_key(at, row_id, kind) for row_id, at in rows.due])
                    live += len(rows.due)
                    reason = "its next fire time is not a valid instant"
                    self._damaged += [(row_id, reason) for row_id in rows.damaged]
                    after = rows.last_id
        except BaseException:
            index.abort_load()
            raise
        index.end_load(heap, live)
        self._rebuild_requested = False

    async def _lead(self) -> None:
        self._inflight.clear()
        self._deferred.clear()
        self._inflight_retries.clear()
        self._reading.clear()
        self._reading_retries.clear()
        self._waiting_for_target.clear()
        self._committer = GroupCommit(self._flush, shield=False)  # one store call
        self.state = EngineState.LEADING
        late_us = int(_LATE_AFTER.total_seconds() * 1_000_000)
        self._catch_up = CatchUp(to_us(self._clock.now()) - late_us, self._misfire_policy)
        try:
            await self._load()
            self.observer.leading(self._store.path, self._index.live)
            self._started()
            await self._run_parts()
        finally:
            self._lease.drop()

    async def _run_parts(self) -> None:
        send, receive = anyio.create_memory_object_stream[tuple[list[Job], Hold]](self._workers * 2)
        watches = [Watch() for _ in range(self._workers)]
        stopped = Countdown(self._workers)
        async with anyio.create_task_group() as group:
            group.start_soon(self._watchdog, watches, stopped, name="reventless-watchdog")
            for number, watch in enumerate(watches):
                group.start_soon(
                    self._worker,
                    receive.clone(),
                    watch,
                    stopped,
                    name=f"reventless-delivery-{number}",
                )
            receive.close()
            if self._lease.owner is not None:
                group.start_soon(self._lease.keep, name="reventless-lease")
                group.start_soon(self._poll_changes, name="reventless-changes")
                group.start_soon(self._poll_repairs, name="reventless-repairs")
            async with send:
                await self._dispatch_loop(send, group)

    async def _poll_changes(self) -> None:
        """Pick up schedules that other processes created or changed in the same file.

        Writes of this process were pushed when they were made; the poll sees them too and
        leaves them out (``_pushed_here``), so that a schedule is not in the index twice. What
        was pushed before a poll started was written before it, so that poll covers it.
        """
        while True:
            await anyio.sleep(self._poll_interval)
            covered, self._pushed_here = self._pushed_here, set()
            rows, self._changes = await self._runner.call(self._store.changes_since, self._changes)
            for row_id, next_us in rows:
                if not valid_us(next_us):
                    self._damaged.append((row_id, "its next fire time is not a valid instant"))
                    continue
                key = _key(next_us, row_id, EntryKind.FIRE)
                if key not in covered and key not in self._pushed_here:
                    self._push(ceil_s(next_us), row_id, EntryKind.FIRE)

    async def _poll_repairs(self) -> None:
        """Pick up fires that other processes (the command line) queued to repair."""
        # Each repair is pushed once per poller; one that _load also pushed gets a second entry,
        # which _plan_retry drops once the row has moved on (a failed attempt sets it later).
        while True:
            await anyio.sleep(self._poll_interval)
            before = set(self._repairs_seen)
            queued = set(await self._runner.call(self._store.queued_repairs))
            for row_id, at_us in queued - self._repairs_seen:
                self._push(ceil_s(at_us), row_id, EntryKind.RETRY)
            # Keep what this process pushed meanwhile; forget repairs attempted since.
            self._repairs_seen = queued | (self._repairs_seen - before)

    async def _dispatch_loop(
        self, send: MemoryObjectSendStream[tuple[list[Job], Hold]], group: anyio.abc.TaskGroup
    ) -> None:
        """Take due batches from the index and hand their jobs to the workers, one batch read
        ahead: the rows of batch N+1 are read in the store's thread while the event loop plans
        and delivers batch N, instead of the two threads taking turns. A row of a batch read
        and not yet planned counts as in flight for the batches read after it (``_reading``),
        so no batch holds a copy of a row from before another batch fires it."""
        # Runs inside run()'s clock.work(): its sleeps count as idle for a virtual clock.
        ahead: DueBatch | None = None
        try:
            while True:
                if self._rebuild_requested:
                    await self._load()
                await self._quarantine_damaged()
                if not self._lease.may_work():
                    # Renewal is late (a slow disk, a busy thread): deliver nothing until it
                    # lands, or stand down when it fails.
                    await anyio.sleep(_FENCE_POLL_S)
                    continue
                if ahead is None:
                    ahead = self._read_due(group)
                    if ahead is None:
                        if self._catch_up is not None:
                            self._tell_catch_up(self._catch_up)
                        await self._sleep(self._index.earliest_s())
                        continue
                batch = ahead
                await batch.read.wait()
                if batch.error is not None:
                    raise batch.error
                ahead = self._read_due(group)  # never sleeps with a read under way: see above
                await self._dispatch(batch, send)
        finally:
            self.state = EngineState.STOPPING

    def _read_due(self, group: anyio.abc.TaskGroup) -> DueBatch | None:
        """Take the batch due now from the index and start reading its rows (None: none due)."""
        now = self._clock.now()
        due = self._index.pop_due(int(now.timestamp()), _DUE_BATCH)
        if not due:
            return None
        fire_ids, retry_ids = self._sort_due(due)
        batch = DueBatch(now, fire_ids, retry_ids)
        self._reading.update(fire_ids)
        self._reading_retries.update(retry_ids)
        group.start_soon(self._read_rows, batch, name="reventless-due-rows")
        return batch

    async def _read_rows(self, batch: DueBatch) -> None:
        try:
            if batch.fire_ids:
                batch.rows = await self._runner.call(self._store.load_schedules, batch.fire_ids)
            if batch.retry_ids:
                batch.retries = await self._runner.call(self._store.load_retries, batch.retry_ids)
        except Exception as exc:  # raised by the dispatch loop, which waits for this batch
            batch.error = exc
        finally:
            batch.read.set()

    def _tell_catch_up(self, catch_up: CatchUp) -> None:
        self._catch_up = None
        if catch_up.due:
            self.observer.caught_up(self._store.path, catch_up)
            if self.on_catch_up is not None:
                self.on_catch_up(catch_up)

    async def _sleep(self, deadline_s: int | None) -> None:
        deadline = None if deadline_s is None else datetime.fromtimestamp(deadline_s, UTC)
        with anyio.CancelScope() as scope:
            self._sleep_scope = scope
            self._sleep_deadline_s = deadline_s
            try:
                await self._clock.sleep_until(deadline)
            finally:
                self._sleep_scope = None
        if self._poke_hold is not None:
            # The loop is awake again and will look at the index before it sleeps.
            hold, self._poke_hold = self._poke_hold, None
            hold.release()

    async def _quarantine_damaged(self) -> None:
        while self._damaged:
            row_id, reason = self._damaged.pop()
            at_us = to_us(self._clock.now())
            await self._runner.call(self._store.quarantine, row_id, reason, at_us)

    # -- planning fires ----------------------------------------------------------------------------

    async def _dispatch(
        self, batch: DueBatch, send: MemoryObjectSendStream[tuple[list[Job], Hold]]
    ) -> None:
        try:
            jobs: list[Job] = await self._plan_fires(batch.rows, batch.now)
            jobs += [job for row in batch.retries if (job := self._plan_retry(row)) is not None]
        finally:
            self._done_reading(batch)
        size = max(1, min(_MAX_JOBS_PER_CHUNK, math.ceil(len(jobs) / self._workers)))
        for start in range(0, len(jobs), size):
            await send.send((jobs[start : start + size], self._clock.hold()))

    def _done_reading(self, batch: DueBatch) -> None:
        """The batch is planned: its rows are in flight now, or were not due. Entries of those
        not due, deferred meanwhile by a later batch, go back to the index."""
        self._reading.difference_update(batch.fire_ids)
        self._reading_retries.difference_update(batch.retry_ids)
        if not self._deferred:
            return
        for row_id in batch.fire_ids:
            if row_id not in self._inflight:
                for key in self._deferred.pop(row_id, ()):
                    self._push(*unpack(key))

    def _sort_due(self, keys: list[int]) -> tuple[list[int], list[int]]:
        """The ids of due schedule rows (once each) and of due retry rows, leaving out those
        in flight or read for a batch not planned yet."""
        fire_ids: dict[int, None] = {}  # an ordered set
        retry_ids: list[int] = []
        inflight, reading = self._inflight, self._reading
        for key in keys:
            row_id = (key >> 1) & ID_MASK
            if key & 1:  # EntryKind.RETRY
                if row_id not in self._inflight_retries and row_id not in self._reading_retries:
                    retry_ids.append(row_id)
            elif row_id in inflight or row_id in reading:
                self._deferred.setdefault(row_id, []).append(key)
            else:
                fire_ids[row_id] = None
        return list(fire_ids), retry_ids

    async def _plan_fires(self, rows: list[ScheduleRow], now: datetime) -> list[Job]:
        jobs: list[Job] = []
        now_us = to_us(now)
        for number, row in enumerate(rows):
            if number % _PLANS_PER_CHECKPOINT == _PLANS_PER_CHECKPOINT - 1:
                await anyio.lowlevel.checkpoint()  # keep every step of a catch-up short
            job = self._plan_fire(row, now, now_us)
            if job is not None:
                jobs.append(job)
        return jobs

    def _plan_fire(self, row: ScheduleRow, now: datetime, now_us: int) -> FireJob | None:
        try:
            check_row(row)
        except CorruptDataError as exc:
            self._damaged.append((row.id, str(exc)))
            return None
        if row.paused or row.next_fire is None or row.next_fire > now_us:
            # Not due (any more): the entry that brought the row here was stale. The row is the
            # truth, whichever of its entries brought it up; its current one is in the index.
            return None
        target = self.targets.get(row.scheduler)
        if target is None:
            self._waiting_for_target.setdefault(row.scheduler, []).append(
                DueEntry(ceil_s(row.next_fire), row.id, EntryKind.FIRE)
            )
            return None
        try:
            timing, payload, misfire = decode_stored(row.spec, row.scheduler, row.name)
        except ReventlessError as exc:
            self._damaged.append((row.id, str(exc)))
            return None
        first_due = self._instant(row.next_fire)
        late_after = _LATE_AFTER
        if timing.jitter_minutes:
            # Delivered within its jitter window, at a delay derived from its fire id.
            delay = fire_jitter(row.name, first_due, timing.jitter_minutes)
            due_us = row.next_fire + delay // _MICROSECOND
            if due_us > now_us:
                self._push(ceil_s(due_us), row.id, EntryKind.FIRE)
                return None
            late_after += timedelta(minutes=timing.jitter_minutes)
        plan = plan_misfire(
            timing,
            first_due,
            created_at=self._instant(row.created_at),
            now=now,
            grace=self._grace,
            policy=misfire or self._misfire_policy,
            late_after=late_after,
            limit=_ALL_CHUNK,
        )
        catch_up = self._catch_up
        if catch_up is not None and row.next_fire < catch_up.before_us:
            count_catch_up(catch_up, row, timing, plan, now, self._instant)
        if len(plan.deliver) == 1 and plan.deliver[0] is first_due:
            deliver: tuple[int, ...] = (row.next_fire,)  # the usual plan: the stored instant
        else:
            deliver = tuple(to_us(instant) for instant in plan.deliver)
        self._inflight.add(row.id)
        return FireJob(
            row.id,
            row.scheduler,
            row.name,
            payload,
            target,
            row.version,
            deliver,
            note_missed(row.name, plan.missed, misfire or self._misfire_policy),
            note_expired(row.name, plan.expired),
            None if plan.next_fire is None else to_us(plan.next_fire),
            plan.next_fire is None,
        )

    def _plan_retry(self, row: RetryRow) -> RetryJob | None:
        if ceil_s(row.next_attempt_at) > int(self._clock.now().timestamp()):
            return None  # a stale duplicate entry (a repair seen twice): its own entry is due later
        target = self.targets.get(row.scheduler)
        if target is None:
            self._waiting_for_target.setdefault(row.scheduler, []).append(
                DueEntry(ceil_s(row.next_attempt_at), row.id, EntryKind.RETRY)
            )
            return None
        self._inflight_retries.add(row.id)
        return RetryJob(
            row.id, row.scheduler, row.name, row.payload, target, row.attempts, row.scheduled_time
        )

    # -- delivering ------------------------------------------------------------------------------

    async def _worker(
        self,
        receive: MemoryObjectReceiveStream[tuple[list[Job], Hold]],
        watch: Watch,
        stopped: Countdown,
    ) -> None:
        try:
            async with receive:
                async for jobs, hold in receive:
                    try:
                        # A delivery under way finishes (bounded by the delivery timeout) and is
                        # recorded even when the engine is being cancelled: nothing half-done.
                        with anyio.CancelScope(shield=True):
                            await self._work(jobs, watch)
                    finally:
                        hold.release()
        finally:
            stopped.count_down()

    async def _watchdog(self, watches: list[Watch], stopped: Countdown) -> None:
        """Cut off deliveries that run past the delivery timeout: one task for all workers,
        instead of a timer per delivery. Lives until the last worker has stopped, so that a
        hung target is cut off during a graceful stop too."""
        with anyio.CancelScope(shield=True):
            while not stopped.done.is_set():
                wait = cut_overdue(watches, time.monotonic(), self._delivery_timeout)
                with anyio.move_on_after(wait):
                    await stopped.done.wait()

    def _may_deliver(self, now: float | None = None) -> bool:
        return (
            self.state is EngineState.LEADING
            and self._committer.failure is None
            and self._lease.may_work(now)
        )

    async def _deliver_all(
        self, watch: Watch, owners: list[Job], instants: list[int]
    ) -> list[DeliveryFailure | None]:
        """Deliver ``instants[i]`` of ``owners[i]`` in order while delivering is allowed; one
        result per delivery started (None: delivered). The watchdog cancels the scope of a
        delivery that runs too long; the next delivery gets a fresh scope."""
        results: list[DeliveryFailure | None] = []
        observing = self.observer.observing()  # once a chunk: nothing to pay when no one looks
        while len(results) < len(owners):
            with anyio.CancelScope() as scope:
                watch.scope = scope
                for index in range(len(results), len(owners)):
                    now = time.monotonic()
                    if not self._may_deliver(now):
                        return results
                    watch.started = now
                    owner, instant = owners[index], instants[index]
                    delivery = self._deliver(owner, instant)
                    if observing:
                        delivery = self.observer.attempt(
                            delivery,
                            scheduler=owner.scheduler,
                            schedule=owner.name,
                            scheduled_us=instant,
                            attempt=owner.attempts + 1 if isinstance(owner, RetryJob) else 1,
                            now_us=to_us(self._clock.now()),
                        )
                    results.append(await delivery)
                    watch.started = None
                    if scope.cancel_called:
                        break  # the target swallowed the cut-off; go on in a fresh scope
                    if index % _STEPS_PER_CHECKPOINT == _STEPS_PER_CHECKPOINT - 1:
                        # A target that never waits would keep the loop for the whole chunk,
                        # and all workers woken together would add up: let others run.
                        await anyio.lowlevel.checkpoint()
            if scope.cancelled_caught:
                watch.started = None
                timeout = self._delivery_timeout
                results.append(DeliveryFailure(f"delivery timed out after {timeout:g} s", False))
        return results

    async def _deliver(self, job: Job, scheduled_us: int) -> DeliveryFailure | None:
        """None when delivered; otherwise why not. The watchdog's cut-off passes through."""
        envelope = FireEnvelope(
            schedule=job.name, scheduled_time=self._instant(scheduled_us), payload=job.payload
        )
        try:
            await job.target.deliver(envelope)
        except DeliveryRefusedError as exc:
            return DeliveryFailure(f"{type(exc).__name__}: {exc}", True)
        except Exception as exc:
            return DeliveryFailure(f"{type(exc).__name__}: {exc}", False)
        except anyio.get_cancelled_exc_class() as exc:
            if cancelled_by_caller():
                raise
            # The target let through a cancellation the engine did not ask for (it awaited a
            # future that someone else cancelled): a failed delivery like any other.
            return DeliveryFailure(f"{type(exc).__name__} raised by the target: {exc}", False)
        return None

    async def _work(self, jobs: list[Job], watch: Watch) -> None:
        owners: list[Job] = []
        instants: list[int] = []
        for job in jobs:
            if isinstance(job, RetryJob):
                owners.append(job)
                instants.append(job.scheduled_us)
            else:
                owners += [job] * len(job.deliver)
                instants += job.deliver
        results = await self._deliver_all(watch, owners, instants)
        outcome = Outcome()
        done = await self._record_all(jobs, results, outcome)
        if not done:
            return
        new_ids = await self._committer.submit(outcome)
        for number, job in enumerate(done):
            if number % _STEPS_PER_CHECKPOINT == _STEPS_PER_CHECKPOINT - 1:
                await anyio.lowlevel.checkpoint()  # one flush wakes every worker at once
            self._after_commit(job)
        for retry, retry_id in zip(outcome.new_retries, new_ids, strict=True):
            self._push(ceil_s(retry.next_attempt_at), retry_id, EntryKind.RETRY)

    async def _record_all(
        self, jobs: list[Job], results: list[DeliveryFailure | None], outcome: Outcome
    ) -> list[Job]:
        """Record each job's deliveries (``results`` in the order of ``_work``); give back the
        jobs none of whose deliveries started. Returns the jobs recorded."""
        # One clock read for the chunk: its deliveries ended a moment ago.
        at_us = to_us(self._clock.now())
        done: list[Job] = []
        position = 0
        for number, job in enumerate(jobs):
            if number % _STEPS_PER_CHECKPOINT == _STEPS_PER_CHECKPOINT - 1:
                await anyio.lowlevel.checkpoint()  # as in _deliver_all
            count = 1 if isinstance(job, RetryJob) else len(job.deliver)
            got = results[position : position + count]
            position += count
            if isinstance(job, RetryJob):
                recorded = self._books.record_retry(job, got, outcome, at_us)
            else:
                recorded = self._books.record_fire(job, got, outcome, at_us)
            if recorded:
                done.append(job)
            else:
                self._give_back(job)
        return done

    def _give_back(self, job: Job) -> None:
        """A job that was not started: its row is untouched; look at it again later."""
        if isinstance(job, RetryJob):
            self._inflight_retries.discard(job.row_id)
            if self.state is EngineState.LEADING:
                self._push(ceil_s(to_us(self._clock.now())), job.row_id, EntryKind.RETRY)
            return
        self._inflight.discard(job.row_id)
        deferred = self._deferred.pop(job.row_id, [])
        if self.state is EngineState.LEADING:
            self._push(ceil_s(job.deliver[0]), job.row_id, EntryKind.FIRE)
            for key in deferred:
                self._push(*unpack(key))

    def _after_commit(self, job: Job) -> None:
        if isinstance(job, RetryJob):
            self._inflight_retries.discard(job.row_id)
            if job.next_us is not None:
                self._push(ceil_s(job.next_us), job.row_id, EntryKind.RETRY)
            return
        self._inflight.discard(job.row_id)
        if job.next_us is not None and not job.completed:
            self._push(ceil_s(job.next_us), job.row_id, EntryKind.FIRE)
        elif job.completed:
            self._index.live -= 1
        if self._deferred:
            for key in self._deferred.pop(job.row_id, ()):
                self._push(*unpack(key))

    async def _flush(self, outcomes: list[Outcome]) -> list[list[int]]:
        merged = outcomes[0]
        if len(outcomes) > 1:
            merged = Outcome()
            for part in outcomes:
                merged.extend(part)
        ids = await self._runner.call(self._store.commit_outcomes, merged, self._lease.owner)
        split, start = [], 0
        for part in outcomes:
            split.append(ids[start : start + len(part.new_retries)])
            start += len(part.new_retries)
        return split


def _key(time_us: int, row_id: int, kind: EntryKind) -> int:
    return pack(ceil_s(time_us), row_id, kind)
