"""Reactions on PostgreSQL: every process that runs a plugin may run its reactions; a lease per
reaction lets one process at a time run each (contract: ``reaction_adapter``).

How a runner follows the log: it reads events after its checkpoint through the event log's
``read_all`` (whose transaction-id watermark never passes over an event that commits late) and
handles those of the aggregates it follows one at a time. A handler's appends to this database
join one transaction with the checkpoint's compare-and-set on (position, lease owner)
(``_reaction_tx``): the events a handling appended are in the log if and only if the checkpoint
moved past it, so a crash, a failed attempt or a lease taken over never applies them twice.
Effects elsewhere (an HTTP call, a schedule) are at least once, as on every provider; the
checkpoint is then written after each event that had any, and at the end of a batch otherwise.

The lease is the reaction's row, judged by the database's clock. The row says it lapses
``lease_ttl + timeout + 1 s`` after a renewal began, while the holder starts no handler later
than ``lease_ttl`` after it (on its own monotonic clock), so a standby that takes over never
runs a handler at the same time as the old holder. A standby tries again right after the lease
it saw lapses, and at least every third of ``lease_ttl``: a holder that died is replaced
``lease_ttl + timeout + 1 s`` after its last renewal at most.

Wake-ups: every append notifies the schema's channel from its transaction (``_event_log``), as
do reset and resume; one connection per provider listens (``_Listener``) and wakes every runner.
Runners also poll every ``poll_interval``, which covers what a notification cannot: a listening
connection being replaced, and the watermark moving because a transaction that appended nothing
ended. A lost listening connection is replaced with backoff, and the runners are woken then (an
event may have been appended meanwhile).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import asyncpg

from reventless.aggregate_adapter import StoredEvent
from reventless.clock import Clock
from reventless.errors import ReventlessError
from reventless.event_topic import EventMessage, Subscription, TopicMessage
from reventless.postgres._event_log import PostgresEventLog, events_channel, translating
from reventless.postgres._reaction_rows import ReactionRows
from reventless.postgres._reaction_tx import CURRENT, ReactionTransaction
from reventless.reaction import (
    Components,
    HandlingHold,
    Reaction,
    ReactionDeadLetter,
    ReactionOperation,
    ReactionStatus,
    already_running,
    check_operations_limit,
    check_reaction_name,
    check_reset_position,
)
from reventless.scheduler_adapter import check_pause_note

__all__ = ("PostgresReactions",)

logger = logging.getLogger("reventless.postgres.reactions")

_BATCH = 100
_MARGIN_S = 1.0
_AFTER_LAPSE_S = 0.01
_BUSY_RETRIES = 1000  # a stream kept busy this often counts as one failed attempt
_LISTENER_NAME = "reventless-listen"
_MIN_POOL_TO_LISTEN = 3


class _LeaseLost(Exception):
    """This process may no longer run the reaction: it stands by."""


class _Lease:
    """One process's claim on one reaction's lease (see the module's docstring)."""

    def __init__(self, rows: ReactionRows, name: str, owner: str, ttl: float, timeout: float):
        self._rows = rows
        self._name = name
        self.owner = owner
        self.ttl = ttl
        self._hold_s = ttl + timeout + _MARGIN_S
        self._until = 0.0
        self._lapses_in = 0.0

    async def try_acquire(self) -> bool:
        started = time.monotonic()
        held, self._lapses_in = await self._rows.take(self._name, self.owner, self._hold_s)
        self._until = started + self.ttl if held else 0.0
        return held

    def retry_in(self) -> float:
        return min(self.ttl / 3, max(self._lapses_in, 0.0) + _AFTER_LAPSE_S)

    def fence(self) -> None:
        if time.monotonic() >= self._until:
            raise _LeaseLost(f"reaction {self._name!r}: the lease was not renewed in time")

    async def keep(self) -> None:
        while True:
            await anyio.sleep(self.ttl / 3)
            if not await self.try_acquire():
                raise _LeaseLost(f"reaction {self._name!r}: another process took the lease")

    async def release(self) -> None:
        self._until = 0.0
        with contextlib.suppress(ReventlessError):
            await self._rows.give_back(self._name, self.owner)


class _Handled:
    """How one event went: ``committed`` (its appends and the checkpoint committed together),
    ``effects`` (calls outside the transaction), ``lost`` (the checkpoint moved or the lease
    went elsewhere: nothing was committed), or ``reason`` (every attempt failed)."""

    def __init__(
        self,
        *,
        committed: bool = False,
        effects: int = 0,
        lost: bool = False,
        reason: str | None = None,
        attempts: int = 0,
    ) -> None:
        self.committed = committed
        self.effects = effects
        self.lost = lost
        self.reason = reason
        self.attempts = attempts


class _Runner:
    """Runs one reaction of one started plugin until cancelled."""

    def __init__(self, host: PostgresReactions, reaction: Reaction, running: Components) -> None:
        self.host = host
        self.rows = host.rows
        self.reaction = reaction
        self.running = running
        self.scope = anyio.CancelScope()
        self.wake = anyio.Event()
        self.previous: _Runner | None = None  # the runner of this name it replaces
        self.started = False
        self.done = anyio.Event()
        self.subscriptions: list[Subscription] = []
        self.hold = HandlingHold(host.clock)
        self.lease = _Lease(host.rows, reaction.name, host.owner, host.lease_ttl, reaction.timeout)

    def notify(self, position: int) -> None:
        """An event was appended in this process: hold a virtual clock until it is handled
        (so a test that moves time on sees the reaction's effects), and wake up."""
        self.hold.appended(position)
        self.wake.set()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.hold.release()
            self.done.set()

    async def _run(self) -> None:
        with self.scope:
            try:
                if self.previous is not None:
                    await self.previous.done.wait()
                    self.previous = None
                start = await self.host.log.head_position() if self.reaction.start == "end" else 0
                await self.rows.register(self.reaction.name, list(self.reaction.follows), start)
                await self._lead_or_stand_by()
            finally:
                with anyio.CancelScope(shield=True):
                    await self.lease.release()

    async def _lead_or_stand_by(self) -> None:
        while True:
            try:
                if not await self.lease.try_acquire():
                    self.hold.release()  # another process handles the events
                    await anyio.sleep(self.lease.retry_in())
                    continue
                async with anyio.create_task_group() as group:
                    group.start_soon(self.lease.keep)
                    await self._follow()
            except* _LeaseLost:
                pass  # stand by; the next round tries to take the lease again
            except* ReventlessError as errors:
                # The database is out of reach for now: stand by and try again.
                logger.warning("reaction %r: %s", self.reaction.name, errors.exceptions[0])
                await self.lease.release()
                await anyio.sleep(self.host.poll_interval)

    async def _idle(self) -> None:
        with anyio.move_on_after(self.host.poll_interval):
            await self.wake.wait()

    async def _follow(self) -> None:
        while True:
            self.wake = anyio.Event()
            position, state = await self.rows.checkpoint(self.reaction.name)
            events = (
                []
                if state == "stopped"
                else await self.host.log.read_all(
                    after_position=position, limit=_BATCH, aggregates=list(self.reaction.follows)
                )
            )
            if not events:
                if state == "stopped" or position >= self.hold.target:
                    self.hold.release()
                await self._idle()
                continue
            self.hold.take()
            await self._handle_batch(position, events)

    async def _handle_batch(self, position: int, events: list[StoredEvent]) -> None:
        name, owner = self.reaction.name, self.lease.owner
        persisted = handled = position
        for stored in events:
            outcome = await self._attempts(stored, persisted)
            if outcome.lost:
                return
            if outcome.reason is not None:
                await self._dead_letter(persisted, handled, stored, outcome)
                return
            handled = stored.position
            if outcome.committed:
                persisted = handled
            elif outcome.effects:
                if not await self.rows.advance_alone(name, owner, persisted, handled):
                    return
                persisted = handled
        if handled != persisted:
            await self.rows.advance_alone(name, owner, persisted, handled)

    async def _dead_letter(
        self, persisted: int, handled: int, stored: StoredEvent, outcome: _Handled
    ) -> None:
        """Move the checkpoint to what was handled, then dead-letter ``stored``."""
        name, owner = self.reaction.name, self.lease.owner
        if handled != persisted:
            if not await self.rows.advance_alone(name, owner, persisted, handled):
                return
            persisted = handled
        await self.rows.dead_letter(
            name,
            owner,
            persisted,
            stored,
            outcome.attempts,
            outcome.reason or "",
            self.reaction.on_failure,
        )

    async def _attempts(self, stored: StoredEvent, persisted: int) -> _Handled:
        """Call the handler until an attempt succeeds or ``max_attempts`` failed. An attempt
        that met a busy stream is rolled back and repeated, not counted. Errors of the
        bookkeeping (the database out of reach) propagate: the runner stands by, and the event
        is not charged for them."""
        reaction = self.reaction
        attempt, busy, reason = 1, 0, ""
        while attempt <= reaction.max_attempts:
            self.lease.fence()
            tx = ReactionTransaction(self.host.pool, self.host.schema, reaction.timeout + _MARGIN_S)
            outcome = await self._attempt(tx, stored, attempt, persisted)
            if outcome.reason is None:
                return outcome
            if tx.busy and busy < _BUSY_RETRIES:
                busy += 1  # another writer holds a stream it appends to: not a failure
                await anyio.sleep(random.uniform(0.001, 0.02))  # jitter
                continue
            reason = outcome.reason
            await self.rows.note_failure(
                reaction.name,
                self.lease.owner,
                f"attempt {attempt} of {reaction.max_attempts} at position "
                f"{stored.position} failed: {reason}",
            )
            if attempt < reaction.max_attempts:
                await anyio.sleep(reaction.retry_delay(attempt))
            attempt += 1
        return _Handled(reason=reason, attempts=reaction.max_attempts)

    async def _attempt(
        self, tx: ReactionTransaction, stored: StoredEvent, attempt: int, persisted: int
    ) -> _Handled:
        """One call of the handler in its transaction, committed with the checkpoint when it
        appended; rolled back (and the aggregates' cached states of what it appended dropped)
        when it raised or the checkpoint could not move."""
        committed = False
        try:
            token = CURRENT.set(tx)
            try:
                context = await self.reaction.handle(stored, self.running, attempt=attempt)
            except Exception as exc:
                return _Handled(reason=f"{type(exc).__name__}: {exc}")
            finally:
                CURRENT.reset(token)
            if tx.busy:  # the handler caught the busy stream's error and went on
                return _Handled(reason="a stream it appends to was busy")
            if tx.conn is None:
                return _Handled(effects=context.effects)
            async with translating(self.host.where), tx.lock:
                moved = await tx.conn.fetchval(
                    self.rows.advance,
                    self.reaction.name,
                    persisted,
                    stored.position,
                    self.lease.owner,
                )
                if not moved:
                    return _Handled(lost=True)
                await tx.end(commit=True)
            committed = True
        finally:
            if not committed:
                await tx.end(commit=False)
                self._forget(tx)
        for publish in tx.after_commit:
            await publish()
        return _Handled(committed=True)

    def _forget(self, tx: ReactionTransaction) -> None:
        for aggregate, aggregate_id in tx.appended:
            found = self.running.aggregates.get(aggregate)
            if found is not None:
                found.forget(aggregate_id)


class _Listener:
    """One connection LISTENing on the schema's channel; wakes every runner at a notification,
    and whenever it (re)connects. A lost connection is replaced with backoff."""

    def __init__(self, host: PostgresReactions) -> None:
        self.host = host
        self.channel = events_channel(host.schema)
        self.connected = 0  # how many times it has listened (a test watches it)

    def _wake(self, *_: object) -> None:
        self.host.wake_all()

    async def run(self) -> None:
        delay = 0.05
        while True:
            try:
                await self._listen()
                delay = 0.05
            except Exception as exc:  # whatever broke the connection: never stall, re-listen
                logger.warning("reactions: listening connection lost (%s); re-listening", exc)
            self.host.wake_all()  # an event may have been appended while nobody listened
            await anyio.sleep(delay)
            delay = min(delay * 2, 5.0)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A connection of its own when the provider has the URL (the pool's are all left to
        the work), else one of the user's pool, held while it listens."""
        if self.host.listen_dsn is None:
            async with self.host.pool.acquire() as conn:
                yield conn
            return
        conn = await asyncpg.connect(self.host.listen_dsn)
        try:
            yield conn
        finally:
            conn.terminate()  # nothing to finish on it: the server drops its LISTEN

    async def _listen(self) -> None:
        lost = anyio.Event()

        def on_lost(_: object) -> None:
            lost.set()

        async with self._connection() as conn:
            conn.add_termination_listener(on_lost)
            try:
                await conn.execute(f"SET application_name = '{_LISTENER_NAME}'")
                await conn.add_listener(self.channel, self._wake)
                self.connected += 1
                self.host.wake_all()
                while not lost.is_set():
                    with anyio.move_on_after(self.host.keepalive):
                        await lost.wait()
                    if not lost.is_set():
                        await conn.execute("SELECT 1")  # a dead connection raises here
            finally:
                conn.remove_termination_listener(on_lost)
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    try:
                        await conn.remove_listener(self.channel, self._wake)
                        await conn.execute("RESET application_name")
                    except Exception:  # a broken connection: closed, not given back
                        with contextlib.suppress(Exception):  # asyncpg may have released it
                            conn.terminate()


class PostgresReactions:
    """The PostgreSQL provider's reactions: runs those of started plugins (in ``provider.run()``)
    and offers their operations, which work on the database whether or not this process runs
    them."""

    def __init__(
        self,
        pool: Any,
        schema: str,
        where: str,
        log: PostgresEventLog,
        clock: Clock,
        *,
        lease_ttl: float,
        poll_interval: float,
        listen_dsn: str | None = None,
        keepalive: float = 5.0,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.where = where
        self.listen_dsn = listen_dsn
        self.log = log
        self.clock = clock
        self.rows = ReactionRows(pool, schema, where, log)
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.keepalive = keepalive
        self.owner = uuid.uuid4().hex
        self.listener = _Listener(self)
        self._runners: dict[str, _Runner] = {}
        self._stopping: dict[str, _Runner] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._listening = False

    # -- running ---------------------------------------------------------------------------

    def register(self, reaction: Reaction, running: Components) -> None:
        if reaction.name in self._runners:
            raise already_running(reaction.name)
        runner = _Runner(self, reaction, running)
        runner.previous = self._stopping.pop(reaction.name, None)

        async def on_event(message: TopicMessage) -> None:
            runner.notify(message.position if isinstance(message, EventMessage) else 0)

        for name in reaction.follows:
            aggregate = running.aggregates.get(name)
            if aggregate is not None:
                runner.subscriptions.append(
                    aggregate.event_topic.subscribe(on_event, name=f"reaction:{reaction.name}")
                )
        self._runners[reaction.name] = runner
        if self._group is not None:
            self._start(runner)

    def unregister(self, name: str) -> None:
        runner = self._runners.pop(name, None)
        if runner is not None:
            for subscription in runner.subscriptions:
                subscription.cancel()
            runner.scope.cancel()
            if runner.started:
                self._stopping[name] = runner

    def wake_all(self) -> None:
        for runner in self._runners.values():
            runner.wake.set()

    async def run_beside(self, main: Callable[[], Awaitable[None]]) -> None:
        """``await main()`` while running every registered reaction, and those registered
        later, until cancelled. An error of ``main`` comes out as itself."""
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                for runner in self._runners.values():
                    self._start(runner)
                await main()
                group.cancel_scope.cancel()
        except BaseExceptionGroup as errors:
            if len(errors.exceptions) == 1:
                raise errors.exceptions[0] from None
            raise
        finally:
            self._group = None
            self._listening = False
            self._stopping.clear()

    def _start(self, runner: _Runner) -> None:
        assert self._group is not None
        runner.started, runner.done = True, anyio.Event()
        self._group.start_soon(runner.run, name=f"reaction:{runner.reaction.name}")
        if not self._listening and self._may_listen():
            self._listening = True
            self._group.start_soon(self.listener.run, name="reventless-reactions-listen")

    def _may_listen(self) -> bool:
        """Whether a connection can listen: one of its own, or one of a pool of the user's
        that keeps at least two others for the work (a pool of one or two held by the
        listener would stall the runners; they then wake by polling only)."""
        if self.listen_dsn is not None or self.pool.get_max_size() >= _MIN_POOL_TO_LISTEN:
            return True
        logger.info(
            "reactions: the pool holds %d connection(s); no LISTEN (it would hold one), the "
            "runners poll every %g s",
            self.pool.get_max_size(),
            self.poll_interval,
        )
        return False

    # -- operations --------------------------------------------------------------------------

    async def statuses(self) -> list[ReactionStatus]:
        return await self.rows.statuses()

    async def dead_letters(self, name: str, *, limit: int = 100) -> list[ReactionDeadLetter]:
        check_reaction_name(name)
        check_operations_limit(limit)
        return await self.rows.dead_letters(name, limit)

    async def reset(
        self, name: str, position: int, *, reason: str | None = None, by: str | None = None
    ) -> None:
        check_reaction_name(name)
        check_reset_position(position)
        note = check_pause_note(reason, by)
        await self.rows.reset(name, position, note)
        self.wake_all()

    async def resume(
        self, name: str, *, skip: bool = False, reason: str | None = None, by: str | None = None
    ) -> int:
        check_reaction_name(name)
        note = check_pause_note(reason, by)
        position = await self.rows.resume(name, bool(skip), note)
        self.wake_all()
        return position

    async def operations(self, name: str, *, limit: int = 100) -> list[ReactionOperation]:
        check_reaction_name(name)
        check_operations_limit(limit)
        return await self.rows.operations(name, limit)
