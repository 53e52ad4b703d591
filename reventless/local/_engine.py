"""The local engine: sleeps on the clock until the earliest fire, delivers, records.

Shape of one fire: the dispatcher pops due entries from an in-memory heap, reads their rows, plans
the fire (misfire policy included) and hands it to a pool of delivery workers. A worker delivers
and then commits the bookkeeping (advance the schedule, record history, queue a retry or a dead
letter) in one transaction shared with other workers' outcomes (group commit). The row is advanced
only after delivery, so a crash in between repeats the fire with the same fire id: at-least-once.

The heap holds one int per schedule, ``(time_s << 34) | (row_id << 1) | kind``: a hint, never
the truth. Every popped entry is checked against its row; stale entries (replaced, paused,
deleted schedules) are dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import math
import sqlite3
import time
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.abc
import sniffio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from reventless.clock import Clock, Hold
from reventless.errors import (
    DeliveryRefusedError,
    ReventlessError,
    UsageError,
)
from reventless.fire_times import next_fire_after
from reventless.local._group_commit import GroupCommit
from reventless.local._store import (
    LeaseLostError,
    Outcome,
    SqliteStore,
    decode_spec,
    from_us,
    to_us,
    translate_sqlite_error,
)
from reventless.schedule import Schedule, Single, IntervalRate
from reventless.scheduler_adapter import MisfirePolicy, RetryPolicy
from reventless.target import FireEnvelope, Target, fire_id

__all__ = ("Engine", "StoreRunner")

T = TypeVar("T")

_KIND_FIRE = 0
_KIND_RETRY = 1
_ID_BITS = 33
_ID_MASK = (1 << _ID_BITS) - 1
_TIME_SHIFT = _ID_BITS + 1
_DUE_BATCH = 1024  # planning is CPU in the event loop: keep each step short
_MAX_JOBS_PER_CHUNK = 256
_LATE_AFTER_US = 60_000_000  # a fire handled this late was missed, not merely busy
_BACKOFF_CAP_S = 300.0
_REFUSED = "\x00refused\x00"  # marks a permanent failure inside the error text


def _key(time_s: int, row_id: int, kind: int) -> int:
    return (time_s << _TIME_SHIFT) | (row_id << 1) | kind


def _ceil_s(us: int) -> int:
    return -(-us // 1_000_000)


class StoreRunner:
    """Runs store calls in one worker thread, one at a time, translating sqlite3 errors.

    On asyncio a dedicated single-thread executor is used: its hand-off costs about a fifth less
    than anyio's generic thread pool, which is most of the cost of a single create. Other
    backends use ``anyio.to_thread`` with a limiter of one.
    """

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self._limiter = anyio.CapacityLimiter(1)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    async def _in_thread(self, func: Callable[[], T]) -> T:
        if sniffio.current_async_library() == "asyncio":
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="reventless-store"
                )
            loop = asyncio.get_running_loop()
            # Shielded like abandon_on_cancel=False: a started call always completes.
            return await asyncio.shield(loop.run_in_executor(self._executor, func))
        return await anyio.to_thread.run_sync(func, limiter=self._limiter)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self.store.close()

    async def call(self, func: Callable[..., T], *args: Any) -> T:
        delay = 0.02
        for attempt in range(3):
            try:
                return await self._in_thread(partial(func, *args))
            except sqlite3.Error as exc:
                error = translate_sqlite_error(exc, self.store.path)
                busy = getattr(exc, "sqlite_errorname", "").startswith(
                    ("SQLITE_BUSY", "SQLITE_LOCKED")
                )
                if not busy or attempt == 2:
                    raise error from exc
            # Only lock contention is known to pass; it is retried with backoff (real time).
            await anyio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover


class _Job:
    """One schedule's (or one retry's) work for a worker."""

    __slots__ = (
        "attempts",
        "completed",
        "deliver",
        "expired",
        "kind",
        "missed",
        "name",
        "next_us",
        "payload",
        "row_id",
        "scheduled_us",
        "scheduler",
        "target",
        "version",
    )

    def __init__(
        self, kind: int, row_id: int, scheduler: str, name: str, payload: str, target: Target
    ) -> None:
        self.kind = kind
        self.row_id = row_id
        self.scheduler = scheduler
        self.name = name
        self.payload = payload
        self.target = target
        self.version = 0
        self.deliver: list[int] = []
        self.missed: list[int] = []
        self.expired: tuple[int, int, int] | None = None
        self.next_us: int | None = None
        self.completed = False
        self.attempts = 0
        self.scheduled_us = 0


def _merge(outcomes: list[Outcome]) -> Outcome:
    if len(outcomes) == 1:
        return outcomes[0]
    merged = Outcome()
    for part in outcomes:
        merged.advance += part.advance
        merged.complete += part.complete
        merged.history += part.history
        merged.new_retries += part.new_retries
        merged.retry_updates += part.retry_updates
        merged.retry_deletes += part.retry_deletes
        merged.dead_letters += part.dead_letters
    return merged


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
        self._clock = clock
        self._misfire_policy = misfire_policy
        self._grace_us = int(misfire_grace.total_seconds() * 1_000_000)
        self._retry_policy = retry_policy
        self._max_age_us = int(retry_policy.max_event_age.total_seconds() * 1_000_000)
        self._delivery_timeout = delivery_timeout
        self._lease_ttl = lease_ttl
        self._poll_interval = poll_interval
        self._workers = workers
        self._owner = uuid.uuid4().hex if use_lease else None
        self.targets: dict[str, Target] = {}
        self._heap: list[int] = []
        self._leading = False
        self._running = False
        self._inflight: dict[int, list[int]] = {}
        self._inflight_retries: set[int] = set()
        self._waiting_for_target: dict[str, list[int]] = {}
        self._sleep_scope: anyio.CancelScope | None = None
        self._sleep_deadline_s: int | None = None
        self._poke_hold: Hold | None = None
        self._stopping = False
        self._seq = 0
        self._live = 0
        self._committer: GroupCommit[Outcome, list[int]] = GroupCommit(self._flush)
        self._broken: list[tuple[int, int, str, int]] = []
        self._rebuild_requested = False
        self._pushed_while_loading: list[int] | None = None

    @property
    def is_leading(self) -> bool:
        return self._leading

    # -- what operations tell the engine --------------------------------------------------------

    def schedule_changed(self, row_id: int, next_us: int | None) -> None:
        """An operation in this process stored a fire time for ``row_id``."""
        if not self._leading or next_us is None:
            return
        self._push(_key(_ceil_s(next_us), row_id, _KIND_FIRE))
        self._live += 1
        if len(self._heap) > 4 * self._live + 10_000:
            self._rebuild_requested = True

    def target_attached(self, scheduler: str) -> None:
        for key in self._waiting_for_target.pop(scheduler, []):
            self._push(key)

    def _push(self, key: int) -> None:
        if self._pushed_while_loading is not None:
            self._pushed_while_loading.append(key)
        heapq.heappush(self._heap, key)
        time_s = key >> _TIME_SHIFT
        if self._sleep_scope is not None and (
            self._sleep_deadline_s is None or time_s < self._sleep_deadline_s
        ):
            self._poke()

    def _poke(self) -> None:
        if self._sleep_scope is not None and self._poke_hold is None:
            self._poke_hold = self._clock.hold()
            self._sleep_scope.cancel()

    # -- running ---------------------------------------------------------------------------------

    async def run(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        if self._running:
            raise UsageError("provider.run() is already running; run it once per provider")
        self._running = True
        self._task_status: anyio.abc.TaskStatus[None] | None = task_status
        # Busy for a virtual clock from the first step on, so that advance() called right after
        # start_soon(run) waits for the engine to load and go to sleep.
        starting = self._clock.hold()
        try:
            while True:
                if not await self._try_lease():
                    starting.release()  # standing by: nothing is due in this process
                    self._started()
                    await self._wait_for_lease()
                with self._clock.work():
                    starting.release()
                    try:
                        await self._lead()
                    except BaseExceptionGroup as group:
                        leaves = _leaves(group)
                        if all(isinstance(leaf, LeaseLostError) for leaf in leaves):
                            continue  # another process leads now: stand by again
                        typed = [leaf for leaf in leaves if isinstance(leaf, ReventlessError)]
                        if typed and len(typed) == len(leaves):
                            # One typed error out, not a group: the first cause is the one to read.
                            raise typed[0] from group
                        raise
        finally:
            starting.release()
            self._running = False
            self._leading = False
            if self._owner is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await self._runner.call(self._runner.store.release_lease, self._owner)

    def _started(self) -> None:
        if self._task_status is not None:
            self._task_status.started()
            self._task_status = None

    async def _try_lease(self) -> bool:
        if self._owner is None:
            return True
        return await self._runner.call(
            self._runner.store.try_lease, self._owner, time.time(), self._lease_ttl
        )

    async def _wait_for_lease(self) -> None:
        if self._owner is None:
            return
        # Polling is the only way: the lease holder is another process, with no event to wait on.
        while not await self._runner.call(  # noqa: ASYNC110
            self._runner.store.try_lease, self._owner, time.time(), self._lease_ttl
        ):
            await anyio.sleep(self._lease_ttl / 3)

    async def _renew_lease(self) -> None:
        assert self._owner is not None
        while True:
            await anyio.sleep(self._lease_ttl / 3)
            if not await self._runner.call(
                self._runner.store.try_lease, self._owner, time.time(), self._lease_ttl
            ):
                raise LeaseLostError("another process took the lease")

    async def _load(self) -> None:
        # Operations may push while the store is being read; keep what they push.
        self._pushed_while_loading = []
        try:
            fires, retries, seq = await self._runner.call(self._runner.store.load_due_index)
            heap = [_key(_ceil_s(next_us), row_id, _KIND_FIRE) for row_id, next_us in fires]
            heap += [_key(_ceil_s(at_us), row_id, _KIND_RETRY) for row_id, at_us in retries]
            heap += self._pushed_while_loading
        finally:
            self._pushed_while_loading = None
        heapq.heapify(heap)
        self._heap = heap
        self._seq = seq
        self._live = len(fires) + len(retries)
        self._rebuild_requested = False

    async def _lead(self) -> None:
        self._stopping = False
        self._inflight.clear()
        self._inflight_retries.clear()
        self._waiting_for_target.clear()
        self._leading = True
        await self._load()
        self._started()
        send, receive = anyio.create_memory_object_stream[tuple[list[_Job], Hold]](
            self._workers * 2
        )
        try:
            async with anyio.create_task_group() as group:
                for number in range(self._workers):
                    group.start_soon(
                        self._worker, receive.clone(), name=f"reventless-delivery-{number}"
                    )
                receive.close()
                if self._owner is not None:
                    group.start_soon(self._renew_lease, name="reventless-lease")
                    group.start_soon(self._poll_changes, name="reventless-changes")
                async with send:
                    await self._dispatch_loop(send)
        finally:
            self._leading = False
            self._stopping = True

    async def _poll_changes(self) -> None:
        """Pick up schedules that other processes created or changed in the same file."""
        while True:
            await anyio.sleep(self._poll_interval)
            rows, self._seq = await self._runner.call(self._runner.store.changes_since, self._seq)
            for row_id, next_us in rows:
                self._push(_key(_ceil_s(next_us), row_id, _KIND_FIRE))

    async def _dispatch_loop(self, send: MemoryObjectSendStream[tuple[list[_Job], Hold]]) -> None:
        heap = self._heap
        # Runs inside run()'s clock.work(): its sleeps count as idle for a virtual clock.
        try:
            while True:
                if self._rebuild_requested:
                    await self._load()
                    heap = self._heap
                now = self._clock.now()
                now_s = int(now.timestamp())
                due: list[int] = []
                while heap and (heap[0] >> _TIME_SHIFT) <= now_s and len(due) < _DUE_BATCH:
                    due.append(heapq.heappop(heap))
                if due:
                    await self._dispatch(due, now, send)
                    continue
                await self._sleep((heap[0] >> _TIME_SHIFT) if heap else None)
        finally:
            self._stopping = True

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
            # The loop is awake again and will look at the heap before it sleeps.
            hold, self._poke_hold = self._poke_hold, None
            hold.release()

    # -- planning fires ----------------------------------------------------------------------------

    async def _dispatch(
        self, due: list[int], now: datetime, send: MemoryObjectSendStream[tuple[list[_Job], Hold]]
    ) -> None:
        fire_times: dict[int, int] = {}
        retry_ids: list[int] = []
        for key in due:
            row_id = (key >> 1) & _ID_MASK
            if key & 1 == _KIND_RETRY:
                if row_id not in self._inflight_retries:
                    retry_ids.append(row_id)
                continue
            deferred = self._inflight.get(row_id)
            if deferred is not None:
                deferred.append(key)  # looked at again once the fire in flight is recorded
                continue
            fire_times[row_id] = key >> _TIME_SHIFT
        jobs: list[_Job] = []
        now_us = to_us(now)
        if fire_times:
            rows = await self._runner.call(self._runner.store.load_schedules, list(fire_times))
            for row in rows:
                job = self._plan_fire(row, fire_times[row[0]], now, now_us)
                if job is not None:
                    jobs.append(job)
        while self._broken:
            row_id, version, reason, scheduled_us = self._broken.pop()
            await self._runner.call(
                self._runner.store.mark_broken, row_id, version, reason, now_us, scheduled_us
            )
        if retry_ids:
            for row in await self._runner.call(self._runner.store.load_retries, retry_ids):
                retry_id, scheduler, name, scheduled_us, payload, attempts, _ = row
                target = self.targets.get(scheduler)
                if target is None:
                    self._waiting_for_target.setdefault(scheduler, []).append(
                        _key(row[6] // 1_000_000, retry_id, _KIND_RETRY)
                    )
                    continue
                job = _Job(_KIND_RETRY, retry_id, scheduler, name, payload, target)
                job.attempts = attempts
                job.scheduled_us = scheduled_us
                self._inflight_retries.add(retry_id)
                jobs.append(job)
        if not jobs:
            return
        size = max(1, min(_MAX_JOBS_PER_CHUNK, math.ceil(len(jobs) / self._workers)))
        for start in range(0, len(jobs), size):
            await send.send((jobs[start : start + size], self._clock.hold()))

    def _plan_fire(
        self, row: tuple[Any, ...], time_s: int, now: datetime, now_us: int
    ) -> _Job | None:
        row_id, scheduler, name, spec, created_us, paused, next_us, version = row
        if paused or next_us is None or _ceil_s(next_us) != time_s:
            return None  # stale hint: the row changed after this entry was pushed
        target = self.targets.get(scheduler)
        if target is None:
            self._waiting_for_target.setdefault(scheduler, []).append(
                _key(time_s, row_id, _KIND_FIRE)
            )
            return None
        try:
            schedule = decode_spec(spec, scheduler, name)
        except ReventlessError as exc:
            self._broken.append((row_id, version, str(exc), next_us))
            return None
        job = _Job(_KIND_FIRE, row_id, scheduler, name, schedule.payload, target)
        job.version = version
        self._plan_instants(job, schedule, next_us, from_us(created_us), now, now_us)
        self._inflight[row_id] = []
        return job

    def _plan_instants(
        self,
        job: _Job,
        schedule: Schedule,
        first_us: int,
        created: datetime,
        now: datetime,
        now_us: int,
    ) -> None:
        if isinstance(schedule.rate, Single):
            due = [first_us]
            job.completed = True
        else:
            due = _due_instants(schedule, first_us, created, now_us - self._grace_us, now_us, job)
            nxt = next_fire_after(schedule, now, created_at=created)
            if nxt is None:
                job.completed = True
            else:
                job.next_us = to_us(nxt)
        if due and due[0] < now_us - self._grace_us:
            # Only a Single can get here: its one instant is older than the grace window.
            job.expired = (1, due[0], due[0])
            return
        late_before = now_us - _LATE_AFTER_US
        policy = self._misfire_policy
        if policy is MisfirePolicy.ALL:
            job.deliver = due
        elif policy is MisfirePolicy.LATEST:
            job.deliver = due[-1:]
            job.missed = due[:-1]
        else:
            job.deliver = [instant for instant in due if instant >= late_before]
            job.missed = [instant for instant in due if instant < late_before]

    # -- delivering ------------------------------------------------------------------------------

    async def _worker(self, receive: MemoryObjectReceiveStream[tuple[list[_Job], Hold]]) -> None:
        async with receive:
            async for jobs, hold in receive:
                try:
                    # A delivery under way finishes (bounded by the delivery timeout) and is
                    # recorded even when the engine is being cancelled: nothing half-done.
                    with anyio.CancelScope(shield=True):
                        await self._work(jobs)
                finally:
                    hold.release()

    async def _deliver(self, job: _Job, scheduled_us: int) -> str | None:
        """None when delivered; otherwise the error, prefixed with _REFUSED when permanent."""
        envelope = FireEnvelope(
            schedule=job.name, scheduled_time=from_us(scheduled_us), payload=job.payload
        )
        try:
            with anyio.fail_after(self._delivery_timeout):
                await job.target.deliver(envelope)
        except TimeoutError:
            return f"delivery timed out after {self._delivery_timeout:g} s"
        except DeliveryRefusedError as exc:
            return f"{_REFUSED}{type(exc).__name__}: {exc}"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    async def _work(self, jobs: list[_Job]) -> None:
        outcome = Outcome()
        history = outcome.history
        retry_jobs: list[_Job] = []
        finished: list[_Job] = []
        for job in jobs:
            if self._stopping:
                # Shutting down: leave jobs not yet started untouched in the store; they run
                # again, with the same fire ids, on the next start.
                if job.kind == _KIND_RETRY:
                    self._inflight_retries.discard(job.row_id)
                else:
                    self._inflight.pop(job.row_id, None)
                continue
            if job.kind == _KIND_RETRY:
                await self._work_retry(job, outcome)
                retry_jobs.append(job)
                continue
            scheduler, name = job.scheduler, job.name
            delivered_all = True
            for scheduled_us in job.deliver:
                if self._stopping and scheduled_us != job.deliver[0]:
                    delivered_all = False
                    break
                error = await self._deliver(job, scheduled_us)
                at_us = to_us(self._clock.now())
                if error is None:
                    history.append((scheduler, name, "fired", at_us, scheduled_us, None))
                else:
                    self._record_failure(outcome, job, scheduled_us, 0, error, at_us)
            if not delivered_all:
                # Cancelled midway: record what was delivered, leave the row to fire again.
                self._inflight.pop(job.row_id, None)
                continue
            at_us = to_us(self._clock.now())
            for scheduled_us in job.missed:
                history.append(
                    (
                        scheduler,
                        name,
                        "missed",
                        at_us,
                        scheduled_us,
                        f"not delivered under misfire policy {self._misfire_policy}",
                    )
                )
            if job.expired is not None:
                count, first_us, last_us = job.expired
                history.append(
                    (
                        scheduler,
                        name,
                        "expired",
                        at_us,
                        last_us,
                        f"{count} fire(s) from {from_us(first_us):%Y-%m-%dT%H:%M:%SZ} "
                        f"older than the misfire grace window",
                    )
                )
            if job.completed:
                outcome.complete.append((job.row_id, job.version))
                history.append((scheduler, name, "completed", at_us, None, None))
            else:
                outcome.advance.append((job.next_us, job.row_id, job.version))
            finished.append(job)
        new_ids = await self._committer.submit(outcome)
        for job in finished:
            deferred = self._inflight.pop(job.row_id, None) or []
            if job.next_us is not None:
                deferred.append(_key(_ceil_s(job.next_us), job.row_id, _KIND_FIRE))
            elif job.completed:
                self._live -= 1
            for key in deferred:
                self._push(key)
        for job in retry_jobs:
            self._inflight_retries.discard(job.row_id)
            if job.next_us is not None:
                self._push(_key(_ceil_s(job.next_us), job.row_id, _KIND_RETRY))
        for (_, _, _, _, _, next_attempt_us, _), retry_id in zip(
            outcome.new_retries, new_ids, strict=True
        ):
            self._push(_key(_ceil_s(next_attempt_us), retry_id, _KIND_RETRY))

    def _backoff_us(self, fire: str, attempts: int) -> int:
        base = min(2.0 ** (attempts - 1), _BACKOFF_CAP_S)
        # Deterministic jitter in [0.5, 1.0) so that retries of a burst spread out.
        jitter = 0.5 + (zlib.crc32(f"{fire}#{attempts}".encode()) % 1000) / 2000
        return int(base * jitter * 1_000_000)

    def _record_failure(
        self, outcome: Outcome, job: _Job, scheduled_us: int, attempts: int, error: str, at_us: int
    ) -> None:
        """A delivery failed after ``attempts`` earlier tries: retry it or dead-letter it."""
        fire = fire_id(job.name, from_us(scheduled_us))
        attempts += 1
        refused = error.startswith(_REFUSED)
        error = error.removeprefix(_REFUSED)
        outcome.history.append(
            (job.scheduler, job.name, "failed", at_us, scheduled_us, f"attempt {attempts}: {error}")
        )
        retries_used = attempts - 1
        too_many = retries_used >= self._retry_policy.max_attempts
        next_at = at_us + self._backoff_us(fire, attempts)
        too_old = next_at - scheduled_us > self._max_age_us
        if refused or too_many or too_old:
            if refused:
                why = "refused by the target; not retried"
            elif too_many:
                why = f"gave up after {attempts} attempt(s)"
            else:
                why = "the next retry would pass max_event_age"
            outcome.dead_letters.append(
                (
                    job.scheduler,
                    job.name,
                    scheduled_us,
                    job.payload,
                    attempts,
                    f"{error}; {why}",
                    at_us,
                )
            )
            outcome.history.append(
                (job.scheduler, job.name, "dead_lettered", at_us, scheduled_us, f"{error}; {why}")
            )
            if job.kind == _KIND_RETRY:
                outcome.retry_deletes.append((job.row_id,))
                job.next_us = None
            return
        if job.kind == _KIND_RETRY:
            outcome.retry_updates.append((attempts, next_at, error, job.row_id))
            job.next_us = next_at
        else:
            outcome.new_retries.append(
                (job.scheduler, job.name, scheduled_us, job.payload, attempts, next_at, error)
            )

    async def _work_retry(self, job: _Job, outcome: Outcome) -> None:
        error = await self._deliver(job, job.scheduled_us)
        at_us = to_us(self._clock.now())
        if error is None:
            outcome.retry_deletes.append((job.row_id,))
            outcome.history.append(
                (
                    job.scheduler,
                    job.name,
                    "fired",
                    at_us,
                    job.scheduled_us,
                    f"delivered on attempt {job.attempts + 1}",
                )
            )
            job.next_us = None
        else:
            self._record_failure(outcome, job, job.scheduled_us, job.attempts, error, at_us)

    async def _flush(self, outcomes: list[Outcome]) -> list[list[int]]:
        merged = _merge(outcomes)
        ids = await self._runner.call(self._runner.store.commit_outcomes, merged, self._owner)
        split, start = [], 0
        for part in outcomes:
            split.append(ids[start : start + len(part.new_retries)])
            start += len(part.new_retries)
        return split


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves.extend(_leaves(exc))
        else:
            leaves.append(exc)
    return leaves


def _due_instants(
    schedule: Schedule,
    first_us: int,
    created: datetime,
    grace_start_us: int,
    now_us: int,
    job: _Job,
) -> list[int]:
    """Fire instants from ``first_us`` up to ``now_us``; those before the grace window are
    summarised in ``job.expired`` instead of listed."""
    rate = schedule.rate
    cursor_us = first_us
    if cursor_us < grace_start_us:
        # Count the expired instants without listing them: arithmetic for intervals, a walk
        # (at most one fire a day) for wall-clock rates.
        if isinstance(rate, IntervalRate):
            step_us = rate.minutes * 60_000_000
            skipped = -(-(grace_start_us - cursor_us) // step_us)
            last_expired = cursor_us + (skipped - 1) * step_us
            job.expired = (skipped, cursor_us, last_expired)
            cursor_us += skipped * step_us
        else:
            count, last = 0, cursor_us
            instant: datetime | None = from_us(cursor_us)
            while instant is not None and to_us(instant) < grace_start_us:
                count += 1
                last = to_us(instant)
                instant = next_fire_after(schedule, instant, created_at=created)
            job.expired = (count, first_us, last)
            if instant is None:
                return []
            cursor_us = to_us(instant)
    due: list[int] = []
    instant = from_us(cursor_us)
    while cursor_us <= now_us:
        due.append(cursor_us)
        nxt = next_fire_after(schedule, instant, created_at=created)
        if nxt is None:
            break
        instant = nxt
        cursor_us = to_us(nxt)
    return due
