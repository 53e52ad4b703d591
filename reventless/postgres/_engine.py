"""The PostgreSQL engine: every process fires, none leads.

Each of an engine's claim loops takes the due fires in batches (``FOR UPDATE SKIP LOCKED``):
a row locked by one loop, of this process or another, is skipped by the others. The claimed
fires are delivered while their rows stay locked, and their bookkeeping (``_fire_bookkeeping``:
the schedule advanced or completed, the history, missed fires, retries, dead letters) commits
in the same transaction. A process that dies mid-batch loses its connection; the server rolls
its transaction back, the locks go, and another loop delivers those fires again with the same
fire ids (at-least-once; a fire is recorded delivered once: ``history_fired_once``).

A fire delivered to a command topic of this store's event log joins the batch's transaction
(``_event_log.joining``): the command's events and the fire's record commit together, so a
fire's effect is applied once without a dedup window. Such a batch holds the event log's
append lock from before its claim until its commit (the log's rule for ``read_all``), so
while it delivers, other appends to the store wait.

Time: due fires are judged by the database's clock (``DB_NOW_US``), so application servers
whose clocks disagree agree on what is due; a provider made with another clock (a virtual
clock in tests, a scaled one in demos) passes that clock's "now" instead, and sleeps on it.

Wake-ups: a loop sleeps until the earliest fire it could claim, until a poke (an operation of
this process, or a NOTIFY of another's: ``_listener``), or at most ``poll_interval`` (the
fallback that also finds the fires of a process that died).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import anyio
import anyio.abc
import asyncpg

from reventless._fire_bookkeeping import Bookkeeper, note_expired, note_missed
from reventless._fire_jobs import DeliveryFailure, FireJob, RetryJob
from reventless._fire_rows import Outcome, from_us, to_us
from reventless._observe import Observer
from reventless._payload_types import command_spec
from reventless.clock import Clock, Hold
from reventless.errors import DeliveryRefusedError, ReventlessError
from reventless.local._rows import decode_stored
from reventless.misfire import plan_misfire
from reventless.postgres._engines import EngineRecords
from reventless.postgres._event_log import append_lock_key, joining, translating
from reventless.postgres._fire_writes import FireWrites, Planned, Stored
from reventless.postgres._listener import listen_for_changes
from reventless.postgres._schema import quote_schema
from reventless.postgres._tx import DB_NOW_US, abandon, due_us
from reventless.scheduler_adapter import MisfirePolicy, RetryPolicy
from reventless.target import FireEnvelope, Target

__all__ = ("EngineSettings", "PostgresEngine")

_log = logging.getLogger("reventless.postgres.engine")
_LATE_AFTER = timedelta(seconds=60)  # a fire handled this late was missed, not merely busy
_ALL_CHUNK = 64  # deliveries of one schedule per plan under MisfirePolicy.ALL
_MAX_BACKOFF_S = 30.0
# A loop that sleeps until a known due instant wakes this much earlier, claims and plans the
# fires due then (and advances their rows), and delivers them at the instant: that work is out
# of the fires' lateness. Never earlier: it waits, by the engine's clock, for the latest due
# instant it claimed. 100 ms: two loops' batches of a second's 1,000 fires took 50-60 ms to
# claim and plan on a 2-core machine (benchmarks/bench_pg_lateness.py). Not for a batch that
# joins the event log's transaction (it would hold the append lock while it waits).
_LEAD_US = 100_000
# A claim walks the due index from its head, locking the first ``batch`` rows it can: a plan
# that reads every due row and sorts them costs a batch's claim in proportion to all that is
# due (measured: 10-15 ms instead of 1 ms per 500 rows of a 5,000-fire burst). The planner
# picks that plan when its statistics are stale (a burst created since the last ANALYZE), so
# the claims' transaction plans without sorting, and sorts again for the rest of the batch.
_BY_DUE_INDEX = "SET LOCAL enable_sort = off"
_SORTS_AGAIN = "SET LOCAL enable_sort = on"

Job = FireJob | RetryJob


class EngineSettings:
    """The engine's knobs, checked by ``reventless.postgres.provider``."""

    def __init__(
        self,
        *,
        misfire_policy: MisfirePolicy = MisfirePolicy.LATEST,
        misfire_grace: timedelta = timedelta(hours=24),
        retry_policy: RetryPolicy | None = None,
        delivery_timeout: float = 30.0,
        poll_interval: float = 1.0,
        batch: int = 500,
        claimers: int = 2,
        concurrency: int = 64,
    ) -> None:
        self.misfire_policy = misfire_policy
        self.misfire_grace = misfire_grace
        self.retry_policy = retry_policy or RetryPolicy()
        self.delivery_timeout = delivery_timeout
        self.poll_interval = poll_interval
        self.batch = batch
        self.claimers = claimers
        self.concurrency = concurrency


class PostgresEngine:
    """Fires the schedules of one schema, beside any number of engines of other processes."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        where: str,
        clock: Clock,
        settings: EngineSettings,
        *,
        database_time: bool,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._where = where
        self._clock = clock
        self._settings = settings
        self._database_time = database_time
        self.targets: dict[str, Target] = {}
        self.observer = Observer("postgres")
        self._books = Bookkeeper(settings.retry_policy, self.observer)
        self._writes = FireWrites(schema)
        self.records = EngineRecords(pool, schema, where, uuid.uuid4().hex)
        self._sleepers: dict[anyio.CancelScope, Hold | None] = {}
        self._pokes = 0  # how many pokes so far: a loop that saw one while awake does not sleep
        self.running = False
        # Set by the provider once its event log is in use: fires to command topics then
        # join the batch's transaction.
        self.event_log_in_use = False
        self._append_lock = append_lock_key(schema)
        s = quote_schema(schema)
        self._now = f"SELECT coalesce($1::bigint, {DB_NOW_US})"
        self._claim_fires = (
            f"SELECT id, scheduler, name, spec, created_at, next_fire, version, due_at"
            f" FROM {s}.schedules WHERE due_at <= $1 AND scheduler = ANY($2::text[])"
            " ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED"
        )
        self._claim_retries = (
            "SELECT id, scheduler, name, scheduled_time, payload, attempts, next_attempt_at"
            f" FROM {s}.retries"
            " WHERE next_attempt_at <= $1 AND scheduler = ANY($2::text[])"
            " ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED"
        )
        # The earliest fire this engine could claim (rows locked by a loop are left out: that
        # loop looks again itself), and the clock's now.
        self._next_due = (
            f"SELECT least((SELECT due_at FROM {s}.schedules WHERE due_at IS NOT NULL"
            "  AND scheduler = ANY($2::text[]) ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED),"
            f" (SELECT next_attempt_at FROM {s}.retries WHERE scheduler = ANY($2::text[])"
            "  ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)),"
            f" coalesce($1::bigint, {DB_NOW_US})"
        )

    @property
    def claimers(self) -> int:
        return self._settings.claimers

    # -- what operations tell the engine --------------------------------------------------------

    def poke(self) -> None:
        """Something changed (a schedule, a repair, an attached target): look again now."""
        self._pokes += 1
        for scope, hold in list(self._sleepers.items()):
            if hold is None:
                # Busy for a virtual clock until the loop has looked again and sleeps.
                self._sleepers[scope] = self._clock.hold()
                scope.cancel()

    # -- running ---------------------------------------------------------------------------------

    async def run(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        self.running = True
        # Busy for a virtual clock from here on, so that advance() right after start waits
        # for the loops to look and go to sleep.
        starting = [self._clock.hold() for _ in range(self._settings.claimers)]
        try:
            await self.records.beat()  # named as running from the start
            async with anyio.create_task_group() as group:
                group.start_soon(self.records.keep_alive, name="reventless-pg-alive")
                group.start_soon(
                    listen_for_changes,
                    self._pool,
                    self._schema,
                    self.poke,
                    self._settings.poll_interval,
                    name="reventless-pg-listen",
                )
                for number, hold in enumerate(starting):
                    group.start_soon(self._claim_loop, hold, name=f"reventless-pg-claim-{number}")
                task_status.started()
        finally:
            for hold in starting:
                hold.release()
            self.running = False

    def _now_param(self) -> int | None:
        return None if self._database_time else to_us(self._clock.now())

    async def _claim_loop(self, starting: Hold) -> None:
        backoff = 0.0
        ahead: int | None = None  # the due instant the loop woke early for
        with self._clock.work():
            starting.release()
            while True:
                pokes = self._pokes
                try:
                    while await self._step(ahead):
                        ahead = None
                    ahead = None
                    next_due, now_us = await self._look_ahead()
                    backoff = 0.0
                except ReventlessError as exc:
                    # The server is away or restarting: never give up, look again later.
                    backoff = min(max(backoff * 2, 0.1), _MAX_BACKOFF_S)
                    _log.warning(
                        "the engine on %s failed: %s; again in %.1f s", self._where, exc, backoff
                    )
                    await anyio.sleep(backoff)
                    continue
                lead = self._lead_us()
                if next_due is not None and next_due - now_us <= lead:
                    ahead = next_due  # due within the lead: claim it now
                    continue
                if pokes == self._pokes:
                    await self._sleep(None if next_due is None else next_due - lead, now_us)
                    ahead = next_due

    def _lead_us(self) -> int:
        return 0 if self._joins() else _LEAD_US

    def _joins(self) -> bool:
        """Whether a batch joins the event log's transaction (a target is a command topic of
        this store's event log, and the log is in use)."""
        return self.event_log_in_use and any(
            command_spec(target) is not None for target in self.targets.values()
        )

    async def _look_ahead(self) -> tuple[int | None, int]:
        names = list(self.targets)
        async with translating(self._where), self._pool.acquire() as conn:
            next_due, now_us = await conn.fetchrow(self._next_due, self._now_param(), names)
        return next_due, now_us

    async def _sleep(self, wake_us: int | None, now_us: int) -> None:
        with anyio.CancelScope() as scope:
            self._sleepers[scope] = None
            try:
                with anyio.move_on_after(self._settings.poll_interval):
                    if self._database_time:
                        wait = math.inf if wake_us is None else (wake_us - now_us) / 1e6
                        await anyio.sleep(max(wait, 0))
                    else:
                        await self._clock.sleep_until(None if wake_us is None else from_us(wake_us))
            finally:
                hold = self._sleepers.pop(scope, None)
                if hold is not None:
                    hold.release()

    async def _step(self, ahead: int | None = None) -> int:
        """Claim one batch of due fires and retries, deliver them, commit their bookkeeping;
        how many were claimed. ``ahead``: the due instant the loop woke early for; fires due
        up to it (at most ``_LEAD_US`` from now) are claimed too, and delivered once due.
        Shielded from the first delivery on: a stop lets the batch finish (each delivery is
        bounded by the delivery timeout) rather than deliver without recording; a stop while
        it waits for the due instant rolls the claim back."""
        if not self.targets:
            return 0
        joins = self._joins()
        if joins:
            ahead = None
        # The claims walk the due index in its order (see _claim): no sort.
        begin, commit = f"BEGIN; {_BY_DUE_INDEX}", "COMMIT"
        if joins:
            unlock = f"SELECT pg_advisory_unlock({self._append_lock})"
            begin = f"BEGIN; SELECT pg_advisory_lock({self._append_lock}); {_BY_DUE_INDEX}"
            commit = f"{unlock}; COMMIT"
        async with translating(self._where), self._pool.acquire() as conn:
            try:
                with anyio.CancelScope(shield=True):
                    await conn.execute(begin)
                    batch = await self._claim(conn, ahead)
                if batch is not None and batch.wait_until_us is not None:
                    await self._until_due(batch)  # nothing delivered yet: a stop rolls back
                with anyio.CancelScope(shield=True):
                    claimed = 0 if batch is None else await self._fire(conn, joins, batch)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await abandon(conn, unlock if joins else None)
                raise
            with anyio.CancelScope(shield=True):
                await conn.execute(commit)
        return claimed

    async def _claim(self, conn: Any, ahead: int | None) -> _Batch | None:
        """Claim and plan a batch (None: nothing due); fires due up to ``ahead``, at most
        ``_LEAD_US`` from now, are planned as at their due instant (and retries due then
        claimed)."""
        names = list(self.targets)
        size = self._settings.batch
        now_us = await conn.fetchval(self._now, self._now_param())
        started = time.monotonic()
        bound = now_us if ahead is None else max(now_us, min(ahead, now_us + _LEAD_US))
        fires = await conn.fetch(self._claim_fires, bound, names, size)
        retries = await conn.fetch(self._claim_retries, bound, names, size)
        if not fires and not retries:
            return None
        await conn.execute(_SORTS_AGAIN)  # the rest of the batch plans as usual
        batch = _Batch(now_us, started, len(fires) + len(retries))
        now = from_us(now_us)
        jobs, envelopes = batch.jobs, batch.envelopes
        for row in fires:
            due = row[7]
            if due > now_us:  # claimed ahead: planned as at its due instant
                batch.wait_until_us = max(batch.wait_until_us or due, due)
                planned = self._plan_fire(row, from_us(due), batch.plans, batch.damaged)
            else:
                planned = self._plan_fire(row, now, batch.plans, batch.damaged)
            if planned is not None:
                jobs.append(planned)
                envelopes.append(
                    tuple(
                        _envelope(planned.name, instant, planned.payload)
                        for instant in planned.deliver
                    )
                )
        for row_id, scheduler, name, scheduled_us, payload, attempts, due in retries:
            if due > now_us:
                batch.wait_until_us = max(batch.wait_until_us or due, due)
            target = self.targets[scheduler]
            jobs.append(RetryJob(row_id, scheduler, name, payload, target, attempts, scheduled_us))
            envelopes.append((_envelope(name, scheduled_us, payload),))
        # Before the deliveries (before the fires are due, when claimed ahead): their rows'
        # advance is then out of the fires' lateness.
        fire_jobs = [job for job in jobs if isinstance(job, FireJob)]
        batch.early = await self._writes.advance_early(conn, fire_jobs, batch.plans)
        return batch

    async def _until_due(self, batch: _Batch) -> None:
        """Wait until the engine's clock reaches the latest due instant claimed ahead."""
        assert batch.wait_until_us is not None
        if self._database_time:
            # ``now_us`` was read before ``started``: the server's clock is at least this far.
            until = batch.started + (batch.wait_until_us - batch.now_us) / 1e6
            while (remaining := until - time.monotonic()) > 0:  # noqa: ASYNC110 - a deadline
                await anyio.sleep(remaining)
        else:
            await self._clock.sleep_until(from_us(batch.wait_until_us))

    async def _fire(self, conn: Any, joins: bool, batch: _Batch) -> int:
        """Deliver a claimed batch and write its bookkeeping; how many rows it claimed."""
        jobs, now_us, started = batch.jobs, batch.now_us, batch.started
        plans, damaged = batch.plans, batch.damaged
        if joins:
            with joining(self._pool, conn):
                results = await self._deliver_all(jobs, batch.envelopes)
        else:
            results = await self._deliver_all(jobs, batch.envelopes)
        if self._database_time:
            at_us = now_us + int((time.monotonic() - started) * 1_000_000)
        else:
            at_us = to_us(self._clock.now())
        outcome = Outcome()
        for job, got in zip(jobs, results, strict=True):
            if isinstance(job, RetryJob):
                self._books.record_retry(job, got, outcome, at_us)
            else:
                self._books.record_fire(job, got, outcome, at_us)
        await self._writes.commit(conn, outcome, plans, damaged, at_us, batch.early)
        return batch.claimed

    def _plan_fire(
        self,
        row: Any,
        now: datetime,
        plans: dict[int, Planned],
        damaged: list[tuple[int, str]],
    ) -> FireJob | None:
        row_id, scheduler, name, spec, created_us, stored_next, version, stored_due = row
        try:
            timing, payload, misfire = decode_stored(bytes(spec), scheduler, name)
        except ReventlessError as exc:
            damaged.append((row_id, str(exc)))
            return None
        late_after = _LATE_AFTER
        if timing.jitter_minutes:
            late_after += timedelta(minutes=timing.jitter_minutes)
        policy = misfire or self._settings.misfire_policy
        plan = plan_misfire(
            timing,
            from_us(stored_next),
            created_at=from_us(created_us),
            now=now,
            grace=self._settings.misfire_grace,
            policy=policy,
            late_after=late_after,
            limit=_ALL_CHUNK,
        )
        next_us = None if plan.next_fire is None else to_us(plan.next_fire)
        # The next fire's due instant, worked out before this one is due (the bookkeeping
        # rarely moves the row elsewhere: ``FireWrites`` works that out then).
        plans[row_id] = (
            name,
            timing.jitter_minutes,
            next_us,
            due_us(name, timing.jitter_minutes, next_us),
            stored_next,
            stored_due,
        )
        return FireJob(
            row_id,
            scheduler,
            name,
            payload,
            self.targets[scheduler],
            version,
            tuple(to_us(instant) for instant in plan.deliver),
            note_missed(name, plan.missed, policy),
            note_expired(name, plan.expired),
            next_us,
            plan.next_fire is None,
        )

    # -- delivering ------------------------------------------------------------------------------

    async def _deliver_all(
        self, jobs: list[Job], envelopes: list[tuple[FireEnvelope, ...]]
    ) -> list[list[DeliveryFailure | None]]:
        """Every job's deliveries (``envelopes``: each job's, made beforehand), by at most
        ``concurrency`` workers side by side, each job's in order; one result per instant
        (None: delivered).

        Each delivery is bounded by ``delivery_timeout``, kept by one watchdog rather than a
        timer per delivery (a cancel scope and a timer per fire cost about as much as the rest
        of its delivery): a worker notes when its delivery under way must end, and the watchdog
        cancels the worker's scope once that passes; the worker records the time-out and goes
        on in a new scope."""
        results: list[list[DeliveryFailure | None]] = [[] for _ in jobs]
        if not jobs:
            return results
        todo = iter(enumerate(zip(jobs, envelopes, strict=True)))
        allowed = self._settings.delivery_timeout
        watched = [_Watched() for _ in range(min(self._settings.concurrency, len(jobs)))]
        async with anyio.create_task_group() as guard:
            guard.start_soon(_watchdog, watched, allowed)
            async with anyio.create_task_group() as group:
                for watch in watched:
                    group.start_soon(self._work, _instants(todo), watch, results, allowed)
            guard.cancel_scope.cancel()
        return results

    async def _work(
        self,
        items: Iterator[tuple[int, Job, FireEnvelope]],
        watch: _Watched,
        results: list[list[DeliveryFailure | None]],
        allowed: float,
    ) -> None:
        """One worker: deliver ``items`` one after another, noting when each must end
        (``allowed`` seconds after its start) for the watchdog."""
        while True:
            under_way: int | None = None
            with anyio.CancelScope() as scope:
                watch.scope = scope
                for index, job, envelope in items:
                    under_way = index
                    watch.until = time.monotonic() + allowed
                    got = await self._deliver(job, envelope)
                    watch.until = math.inf
                    results[index].append(got)
                    under_way = None
                    if scope.cancel_called:
                        break  # cancelled as it ended: the next delivery gets a new scope
                else:
                    return
            if under_way is not None:  # the watchdog cancelled it
                watch.until = math.inf
                results[under_way].append(
                    DeliveryFailure(f"delivery timed out after {allowed:g} s", False)
                )

    async def _deliver(self, job: Job, envelope: FireEnvelope) -> DeliveryFailure | None:
        try:
            await job.target.deliver(envelope)
        except DeliveryRefusedError as exc:
            return DeliveryFailure(f"{type(exc).__name__}: {exc}", True)
        except Exception as exc:
            return DeliveryFailure(f"{type(exc).__name__}: {exc}", False)
        return None


def _instants(
    todo: Iterator[tuple[int, tuple[Job, tuple[FireEnvelope, ...]]]],
) -> Iterator[tuple[int, Job, FireEnvelope]]:
    """The envelopes to deliver of the jobs taken from ``todo`` (shared by the workers), each
    job's in order, with the job and its index."""
    for index, (job, envelopes) in todo:
        for envelope in envelopes:
            yield index, job, envelope


def _envelope(name: str, scheduled_us: int, payload: str) -> FireEnvelope:
    return FireEnvelope(schedule=name, scheduled_time=from_us(scheduled_us), payload=payload)


async def _watchdog(watched: list[_Watched], allowed: float) -> None:
    """Cancel a worker's scope once its delivery under way is past its end; until cancelled."""
    while True:
        now = time.monotonic()
        for watch in watched:
            if watch.until <= now and watch.scope is not None:
                watch.until = math.inf
                watch.scope.cancel()
        # A delivery that starts later ends later than the earliest end noted now, and no
        # sooner than ``allowed`` from now.
        earliest = min(watch.until for watch in watched)
        await anyio.sleep(min(earliest - now, allowed))


class _Batch:
    """A claimed batch, planned: its jobs, the clock's now when it was claimed (``now_us``;
    ``started``: ``time.monotonic()`` just after), and the latest due instant of the fires
    claimed ahead (None: none was)."""

    __slots__ = (
        "claimed",
        "damaged",
        "early",
        "envelopes",
        "jobs",
        "now_us",
        "plans",
        "started",
        "wait_until_us",
    )

    def __init__(self, now_us: int, started: float, claimed: int) -> None:
        self.now_us = now_us
        self.started = started
        self.claimed = claimed
        self.jobs: list[Job] = []
        self.envelopes: list[tuple[FireEnvelope, ...]] = []  # each job's, made before its due
        self.plans: dict[int, Planned] = {}
        self.damaged: list[tuple[int, str]] = []
        self.wait_until_us: int | None = None
        self.early: dict[int, Stored] = {}  # the rows advanced early, as they were


class _Watched:
    """A delivery worker as its watchdog sees it: when its delivery under way must end
    (``time.monotonic()``; infinite between deliveries) and the scope to cancel then."""

    __slots__ = ("scope", "until")

    def __init__(self) -> None:
        self.until = math.inf
        self.scope: anyio.CancelScope | None = None
