"""Reactions on the embedded provider: checkpoints, leases and dead letters in the store file.

One row of ``reactions`` per reaction holds its checkpoint (the log position of the last event
handled), its state (running, or stopped by a dead letter), its last error and its lease; an
operator's reset or resume adds a row to ``reaction_operations`` in the same transaction. The
tables are the store's (``_schema``); a file of an older schema opened read-only may lack them.

How a runner follows the log: it reads the followed aggregates' events after its checkpoint,
handles them one at a time, and advances the checkpoint with a compare-and-set on (position,
lease owner), so an operator's reset or a lost lease makes the write fail and the runner re-read.
The checkpoint is written after every event whose handler had an effect, and at the end of a
batch otherwise (replaying an event without effects costs nothing). The events are read through
the EventLog port (``read_all`` of the followed aggregates, ``head_position``, ``count`` for the
lag), whose ``read_all`` never passes over an event that becomes visible later: a checkpoint
never skips one. Only the reactions' own tables are read and written here.

New events are noticed by polling the log's last position and ``PRAGMA data_version`` (which
moves when another connection commits) every ``poll_interval``, and at once for events appended
through the plugin's own aggregates (their event topics). The lease is the scheduler engine's
idea, one row per reaction: the row says it lapses ``ttl + timeout + 1 s`` after a renewal began,
while the holder starts no handler later than ``ttl`` after it; so a standby that takes over
never runs a handler at the same time as the old holder. A standby tries again right after the
lease it saw lapses (and at least every third of ``ttl``, for a lease released early): a runner
that died is replaced ``ttl + timeout + 1 s`` after its last renewal at most, not a third of
``ttl`` later.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import anyio
import anyio.abc

from reventless.aggregate_adapter import EventLog, StoredEvent
from reventless.clock import Clock
from reventless.errors import ReactionNotFoundError
from reventless.event_topic import EventMessage, TopicMessage
from reventless.local._connection import LeaseLostError
from reventless.local._lease import Lease, reaction_row
from reventless.local._rows import from_us
from reventless.local._store import SqliteStore
from reventless.local._store_runner import StoreRunner
from reventless.reaction import (
    Components,
    HandlingHold,
    OnFailure,
    Reaction,
    ReactionDeadLetter,
    ReactionOperation,
    ReactionStatus,
    already_running,
    check_operations_limit,
    check_reaction_name,
    check_reset_position,
    check_reset_within_head,
    dead_letter_columns,
    dead_letter_of_row,
    operation_of_row,
    stopped_error,
)
from reventless.scheduler_adapter import check_pause_note

__all__ = ("LocalReactions",)

_BATCH = 100
_RUNNING, _STOPPED = "running", "stopped"


# -- the store (synchronous: called in the store's thread) --------------------------------------


def _has_tables(store: SqliteStore) -> bool:
    return store.has_table("reactions")


def _register(store: SqliteStore, name: str, follows: list[str], start: int, now: int) -> None:
    """Make the reaction's row, checkpoint at ``start``, when it has none; record what it
    follows now."""
    with store.transaction():
        store.conn.execute(
            "INSERT INTO reactions (name, follows, position, state, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET follows = excluded.follows",
            (name, json.dumps(follows), start, _RUNNING, now),
        )


def _checkpoint(store: SqliteStore, name: str) -> tuple[int, str]:
    row = store.conn.execute(
        "SELECT position, state FROM reactions WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        raise ReactionNotFoundError(name)
    return int(row[0]), str(row[1])


_OWNED = "name = ? AND position = ? AND (? IS NULL OR owner = ?)"


def _advance(
    store: SqliteStore, name: str, owner: str | None, expected: int, position: int, now: int
) -> bool:
    """Move the checkpoint from ``expected`` to ``position`` while this runner owns the row and
    nobody reset it; False (nothing written) otherwise."""
    with store.transaction():
        cursor = store.conn.execute(
            f"UPDATE reactions SET position = ?, last_error = NULL, updated_at = ? WHERE {_OWNED}",
            (position, now, name, expected, owner, owner),
        )
        return cursor.rowcount == 1


def _note_failure(store: SqliteStore, name: str, owner: str | None, error: str, now: int) -> None:
    with store.transaction():
        store.conn.execute(
            "UPDATE reactions SET last_error = ?, updated_at = ? WHERE name = ?"
            " AND (? IS NULL OR owner = ?)",
            (error, now, name, owner, owner),
        )


def _dead_letter(
    store: SqliteStore,
    name: str,
    owner: str | None,
    expected: int,
    event: StoredEvent,
    attempts: int,
    reason: str,
    action: OnFailure,
    now: int,
) -> bool:
    """Record the dead letter and stop before the event or skip it, in one transaction."""
    with store.transaction():
        if action is OnFailure.SKIP:
            change = "position = ?, last_error = NULL"
            values: tuple[Any, ...] = (event.position,)
        else:
            change = "state = 'stopped', last_error = ?"
            values = (stopped_error(event, reason),)
        cursor = store.conn.execute(
            f"UPDATE reactions SET {change}, updated_at = ? WHERE {_OWNED}",
            (*values, now, name, expected, owner, owner),
        )
        if cursor.rowcount != 1:
            return False
        store.conn.execute(
            "INSERT INTO reaction_dead_letters (reaction, position, aggregate, aggregate_id,"
            " version, type, attempts, reason, action, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*dead_letter_columns(name, event, attempts, reason, action), now),
        )
        return True


def _data_version(store: SqliteStore) -> int:
    """What changes when another connection commits (an operator's reset, say)."""
    return int(store.conn.execute("PRAGMA data_version").fetchone()[0])


class _ReactionRow(NamedTuple):
    name: str
    follows: tuple[str, ...]
    position: int
    state: str
    last_error: str | None
    owner: str | None
    lease_until: float
    updated_at: int


def _reaction_rows(store: SqliteStore) -> list[_ReactionRow]:
    if not _has_tables(store):
        return []
    rows = store.conn.execute(
        "SELECT name, follows, position, state, last_error, owner, lease_until, updated_at"
        " FROM reactions ORDER BY name"
    ).fetchall()
    return [_ReactionRow(row[0], tuple(json.loads(row[1])), *row[2:]) for row in rows]


def _status(row: _ReactionRow, head: int, pending: int, now: float) -> ReactionStatus:
    live = row.owner is not None and row.lease_until >= now
    return ReactionStatus(
        name=row.name,
        follows=row.follows,
        position=row.position,
        head=head,
        pending=pending,
        state=row.state,
        last_error=row.last_error,
        holder=row.owner if live else None,
        lease_until=from_us(int(row.lease_until * 1_000_000)) if live else None,
        updated_at=from_us(row.updated_at),
    )


def _dead_letters(store: SqliteStore, name: str, limit: int) -> list[ReactionDeadLetter]:
    if not _has_tables(store):
        raise ReactionNotFoundError(name)
    _checkpoint(store, name)
    rows = store.conn.execute(
        "SELECT id, reaction, position, aggregate, aggregate_id, version, type, attempts,"
        " reason, action, at FROM reaction_dead_letters WHERE reaction = ?"
        " ORDER BY id DESC LIMIT ?",
        (name, limit),
    ).fetchall()
    return [dead_letter_of_row(row, from_us(row[10])) for row in rows]


class _Note(NamedTuple):
    """Who did an operation and why (each checked, or None)."""

    reason: str | None
    by: str | None


def _set_running(
    store: SqliteStore,
    name: str,
    action: str,
    note: _Note,
    moved: tuple[int, int],
    state: str,
    now: int,
) -> None:
    """Clear a stop at position ``moved[1]`` and record the operation, in the caller's
    transaction."""
    store.conn.execute(
        "UPDATE reactions SET position = ?, state = 'running', last_error = NULL,"
        " updated_at = ? WHERE name = ?",
        (moved[1], now, name),
    )
    store.conn.execute(
        "INSERT INTO reaction_operations (reaction, action, at, done_by, reason, from_position,"
        " to_position, from_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (name, action, now, note.by, note.reason, moved[0], moved[1], state),
    )


def _reset(store: SqliteStore, name: str, position: int, head: int, note: _Note, now: int) -> None:
    if not _has_tables(store):
        raise ReactionNotFoundError(name)
    with store.transaction():
        check_reset_within_head(position, head)
        before, state = _checkpoint(store, name)
        _set_running(store, name, "reset", note, (before, position), state, now)


def _resume(store: SqliteStore, name: str, skip: bool, note: _Note, now: int) -> int:
    """Clear a stop; with ``skip`` also step over the event it stopped at. The position after."""
    if not _has_tables(store):
        raise ReactionNotFoundError(name)
    with store.transaction():
        before, state = _checkpoint(store, name)
        position = before
        if skip and state == _STOPPED:
            row = store.conn.execute(
                "SELECT MAX(position) FROM reaction_dead_letters WHERE reaction = ?"
                " AND action = 'stopped'",
                (name,),
            ).fetchone()
            position = max(position, int(row[0] or 0))
        action = "skip" if skip else "resume"
        _set_running(store, name, action, note, (before, position), state, now)
        return position


def _operations(store: SqliteStore, name: str, limit: int) -> list[ReactionOperation]:
    if not _has_tables(store):
        raise ReactionNotFoundError(name)
    _checkpoint(store, name)
    if not store.has_table("reaction_operations"):
        return []  # a file of an older schema, opened read-only: none were recorded
    rows = store.conn.execute(
        "SELECT id, reaction, action, at, done_by, reason, from_position, to_position, from_state"
        " FROM reaction_operations WHERE reaction = ? ORDER BY id DESC LIMIT ?",
        (name, limit),
    ).fetchall()
    return [operation_of_row(row, from_us(row[3])) for row in rows]


def _now_us() -> int:
    return time.time_ns() // 1000


# -- running ---------------------------------------------------------------------------------------


class _Runner:
    """Runs one reaction of one started plugin until cancelled."""

    def __init__(self, host: LocalReactions, reaction: Reaction, running: Components) -> None:
        self.host = host
        self.reaction = reaction
        self.running = running
        self.scope = anyio.CancelScope()
        self.wake = anyio.Event()
        # The runner this one replaces (the same name, unregistered): it shares this process's
        # lease owner, so its release must land before this runner takes the lease.
        self.previous: _Runner | None = None
        self.started = False  # run() was scheduled: it sets done when it has ended
        self.done = anyio.Event()
        self.hold = HandlingHold(host.clock)
        self.lease = Lease(
            host.runner,
            reaction_row(reaction.name),
            owner=host.owner,
            ttl=host.lease_ttl,
            timeout=reaction.timeout,
        )

    def notify(self, position: int) -> None:
        """An event was appended in this process: hold a virtual clock until it is handled."""
        self.hold.appended(position)
        self.wake.set()

    async def _call(self, func: Any, *args: Any) -> Any:
        return await self.host.runner.call(func, self.host.runner.store, *args)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.done.set()

    async def _run(self) -> None:
        with self.scope:
            try:
                if self.previous is not None:
                    await self.previous.done.wait()
                    self.previous = None
                start = (
                    await self.host.events.head_position() if self.reaction.start == "end" else 0
                )
                await self._call(
                    _register, self.reaction.name, list(self.reaction.follows), start, _now_us()
                )
                while True:
                    if not await self.lease.try_acquire():
                        self.hold.release()  # another process handles the events
                        await anyio.sleep(self.lease.retry_in())
                        continue
                    try:
                        async with anyio.create_task_group() as group:
                            if self.lease.owner is not None:
                                group.start_soon(self.lease.keep)
                            await self._follow()
                    except BaseExceptionGroup as errors:
                        _, rest = errors.split(LeaseLostError)
                        if rest is not None:
                            raise rest from None
                    except LeaseLostError:
                        pass  # stand by; the next round tries to take the lease again
            finally:
                self.hold.release()
                with anyio.CancelScope(shield=True):
                    await self.lease.release()

    async def _idle(self) -> None:
        with anyio.move_on_after(1.0):  # also re-reads a row an operator changed
            await self.wake.wait()

    async def _follow(self) -> None:
        names = list(self.reaction.follows)
        while True:
            self.wake = anyio.Event()
            position, state = await self._call(_checkpoint, self.reaction.name)
            events = (
                []
                if state == _STOPPED
                else await self.host.events.read_all(
                    after_position=position, limit=_BATCH, aggregates=names
                )
            )
            if not events:
                if state == _STOPPED or position >= self.hold.target:
                    self.hold.release()
                await self._idle()
                continue
            self.hold.take()
            await self._handle_batch(position, events)

    async def _handle_batch(self, position: int, events: list[StoredEvent]) -> None:
        name, owner = self.reaction.name, self.lease.owner
        persisted = handled = position
        for stored in events:
            effects, attempts, reason = await self._attempts(stored)
            if effects is None:
                if handled != persisted:
                    if not await self._call(_advance, name, owner, persisted, handled, _now_us()):
                        return
                    persisted = handled
                await self._call(
                    _dead_letter,
                    name,
                    owner,
                    persisted,
                    stored,
                    attempts,
                    reason,
                    self.reaction.on_failure,
                    _now_us(),
                )
                return
            handled = stored.position
            if effects:
                if not await self._call(_advance, name, owner, persisted, handled, _now_us()):
                    return
                persisted = handled
        if handled != persisted:
            await self._call(_advance, name, owner, persisted, handled, _now_us())

    async def _attempts(self, stored: StoredEvent) -> tuple[int | None, int, str]:
        """(effects, attempts, last reason); effects None when every attempt failed."""
        reaction = self.reaction
        reason = ""
        for attempt in range(1, reaction.max_attempts + 1):
            self.lease.fence()
            try:
                context = await reaction.handle(stored, self.running, attempt=attempt)
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                await self._call(
                    _note_failure,
                    reaction.name,
                    self.lease.owner,
                    f"attempt {attempt} of {reaction.max_attempts} at position "
                    f"{stored.position} failed: {reason}",
                    _now_us(),
                )
                if attempt < reaction.max_attempts:
                    await anyio.sleep(reaction.retry_delay(attempt))
                continue
            return context.effects, attempt, ""
        return None, reaction.max_attempts, reason


class LocalReactions:
    """The embedded provider's reactions: runs those of started plugins (in ``provider.run()``)
    and offers their operations (``statuses``, ``dead_letters``, ``reset``, ``resume``,
    ``operations``), which work on the store file whether or not this process runs them."""

    def __init__(
        self,
        runner: StoreRunner,
        events: EventLog,
        clock: Clock,
        *,
        lease_ttl: float,
        use_lease: bool,
        poll_interval: float = 0.05,
    ) -> None:
        self.runner = runner
        self.events = events  # the store's own event log, read through its port
        self.clock = clock
        self.lease_ttl = lease_ttl
        self.owner = uuid.uuid4().hex if use_lease else None
        self.poll_interval = poll_interval
        self._runners: dict[str, _Runner] = {}
        self._stopping: dict[str, _Runner] = {}  # unregistered, perhaps still releasing
        self._group: anyio.abc.TaskGroup | None = None
        self._watching = False

    # -- running ---------------------------------------------------------------------------

    def register(self, reaction: Reaction, running: Components) -> None:
        """Run ``reaction`` for ``running`` (now if ``run`` is under way, else when it starts)."""
        if reaction.name in self._runners:
            raise already_running(reaction.name)
        runner = _Runner(self, reaction, running)
        runner.previous = self._stopping.pop(reaction.name, None)

        async def on_event(message: TopicMessage) -> None:
            runner.notify(message.position if isinstance(message, EventMessage) else 0)

        for name in reaction.follows:
            running.aggregates[name].event_topic.subscribe(
                on_event, name=f"reaction:{reaction.name}"
            )
        self._runners[reaction.name] = runner
        if self._group is not None:
            self._start(runner)

    def unregister(self, name: str) -> None:
        runner = self._runners.pop(name, None)
        if runner is not None:
            runner.scope.cancel()
            if runner.started:
                self._stopping[name] = runner

    async def run_beside(self, main: Callable[[], Awaitable[None]]) -> None:
        """``await main()`` (the engine) while running every registered reaction, and those
        registered later, until cancelled. An error of ``main`` comes out as itself."""
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
            self._watching = False
            self._stopping.clear()  # the group has ended: every runner of it has released

    def _start(self, runner: _Runner) -> None:
        assert self._group is not None
        runner.started, runner.done = True, anyio.Event()
        self._group.start_soon(runner.run, name=f"reaction:{runner.reaction.name}")
        if not self._watching:
            self._watching = True
            self._group.start_soon(self._watch, name="reventless-reactions-watch")

    async def _watch(self) -> None:
        last = None
        while True:
            if self._runners:
                marker = (
                    await self.events.head_position(),
                    await self.runner.call(_data_version, self.runner.store),
                )
                if marker != last:
                    last = marker
                    for runner in self._runners.values():
                        runner.wake.set()
            await anyio.sleep(self.poll_interval)

    # -- operations --------------------------------------------------------------------------

    async def statuses(self) -> list[ReactionStatus]:
        """Every reaction recorded in the store, by name, with its position and lag."""
        rows = await self.runner.call(_reaction_rows, self.runner.store)
        head = await self.events.head_position()  # after the rows: never behind a checkpoint
        now = time.time()
        return [
            _status(
                row,
                head,
                await self.events.count(after_position=row.position, aggregates=row.follows),
                now,
            )
            for row in rows
        ]

    async def dead_letters(self, name: str, *, limit: int = 100) -> list[ReactionDeadLetter]:
        """The reaction's dead letters, newest first, at most ``limit`` (1 to 10,000).
        :raises ReactionNotFoundError: no reaction of that name ever ran on this store."""
        check_reaction_name(name)
        check_operations_limit(limit)
        return await self.runner.call(_dead_letters, self.runner.store, name, limit)

    async def reset(
        self, name: str, position: int, *, reason: str | None = None, by: str | None = None
    ) -> None:
        check_reaction_name(name)
        check_reset_position(position)
        note = _Note(*check_pause_note(reason, by))
        head = await self.events.head_position()
        await self.runner.call(_reset, self.runner.store, name, position, head, note, _now_us())
        self._poke(name)

    async def resume(
        self, name: str, *, skip: bool = False, reason: str | None = None, by: str | None = None
    ) -> int:
        check_reaction_name(name)
        note = _Note(*check_pause_note(reason, by))
        position: int = await self.runner.call(
            _resume, self.runner.store, name, bool(skip), note, _now_us()
        )
        self._poke(name)
        return position

    async def operations(self, name: str, *, limit: int = 100) -> list[ReactionOperation]:
        check_reaction_name(name)
        check_operations_limit(limit)
        return await self.runner.call(_operations, self.runner.store, name, limit)

    def _poke(self, name: str) -> None:
        runner = self._runners.get(name)
        if runner is not None:
            runner.wake.set()
