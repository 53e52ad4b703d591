"""The embedded provider: one SQLite file, an anyio engine, nothing to install.

::

    async with reventless.local.provider("state.db") as provider:      # or ":memory:"
        scheduler = await Scheduler.make(provider, target=some_target)
        await scheduler.operations.create_schedule(schedule)
        await provider.run()                                             # fires until cancelled

The provider, and the schedulers and aggregates made on it, work inside the ``async with`` block
only: used before it (``provider(...)`` not entered) or after it, they raise UsageError saying so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from functools import partial
from pathlib import Path

import anyio
import anyio.abc

from reventless._engine_settings import check_misfire, check_retry_policy, check_seconds
from reventless._observe import engine_log
from reventless._provider_context import ProviderContext, provider_context
from reventless.clock import Clock, SystemClock
from reventless.errors import ReventlessError, UsageError, ValidationError
from reventless.local._engine import Engine
from reventless.local._engine_parts import CatchUp
from reventless.local._event_log import SqliteEventLog
from reventless.local._publisher import (
    Attachment,
    LocalScheduledPublisher,
    SchedulerInfo,
    StoreStatus,
)
from reventless.local._reactions import LocalReactions
from reventless.local._retention import PruneReport, Retention, prune
from reventless.local._stall import Stall, StallWatch
from reventless.local._store import SqliteStore
from reventless.local._store_runner import StoreRunner
from reventless.reaction_adapter import Reactions
from reventless.scheduler_adapter import MisfirePolicy, RetryPolicy

__all__ = (
    "Attachment",
    "CatchUp",
    "LocalProvider",
    "LocalScheduledPublisher",
    "ProviderContext",
    "PruneReport",
    "Retention",
    "SchedulerInfo",
    "SqliteEventLog",
    "Stall",
    "StoreStatus",
    "provider",
)

_log = logging.getLogger("reventless.local.retention")

_CLOSED = (
    "this provider is closed (its 'async with' block has ended); use it, and the schedulers and "
    "aggregates made on it, inside 'async with reventless.local.provider(...) as provider:'"
)


class LocalProvider:
    """The embedded provider; make it with ``async with reventless.local.provider(...)``."""

    clock: Clock
    path: str

    def __init__(
        self,
        store: SqliteStore,
        clock: Clock,
        engine: Engine,
        runner: StoreRunner,
        lease_ttl: float = 20.0,
        retention: Retention | None = None,
    ):
        self.clock = clock
        self.path = store.path
        self._engine = engine
        self._publisher = LocalScheduledPublisher(runner, engine)
        self._runner = runner
        self._event_log = SqliteEventLog(runner)
        self._reactions = LocalReactions(
            runner,
            self._event_log,
            clock,
            lease_ttl=lease_ttl,
            use_lease=store.path != ":memory:",
        )
        self._run_scope: anyio.CancelScope | None = None
        self._stopped = anyio.Event()
        self._closed = False
        self.retention = retention
        # Told when synchronous code holds the event loop past the delivery timeout (a ``Stall``:
        # how long, and where); None logs it at ERROR. ``reventless run`` ends the process.
        self.on_stall: Callable[[Stall], None] | None = None

    @property
    def on_catch_up(self) -> Callable[[CatchUp], None] | None:
        """Told, once per lead, the fires found due from before this process took the lease
        (``CatchUp``: how many, and what the misfire policy made of them); ``reventless run``
        prints it. None (the default): only the history and the logs say it."""
        return self._engine.on_catch_up

    @on_catch_up.setter
    def on_catch_up(self, hook: Callable[[CatchUp], None] | None) -> None:
        self._engine.on_catch_up = hook

    @property
    def is_leading(self) -> bool:
        """Whether this process holds the store's lease and fires (a health check can use it)."""
        return self._engine.is_leading

    def scheduled_publisher(self) -> LocalScheduledPublisher:
        """The ScheduledPublisher adapter that schedulers made on this provider use."""
        if self._closed:
            raise UsageError(_CLOSED)
        return self._publisher

    def event_log(self) -> SqliteEventLog:
        """The EventLog adapter that aggregates made on this provider use (same file)."""
        if self._closed:
            raise UsageError(_CLOSED)
        return self._event_log

    def reactions(self) -> Reactions:
        """The reactions on this store: their operations (status and lag, dead letters, reset,
        resume), and the runner of those declared by started plugins, which ``run()`` runs."""
        if self._closed:
            raise UsageError(_CLOSED)
        return self._reactions

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Fire schedules, and run the reactions of started plugins, until cancelled.

        With a file store, only one process fires at a time: the others stand by and take over
        within the lease time when it stops. ``await task_group.start(provider.run)`` returns once
        this process leads and has loaded its schedules, or stands by. Cancel the task (Ctrl-C,
        a task group, leaving the provider's block) for a graceful stop: deliveries under way
        finish and are recorded.
        :raises BackendUnavailableError: the store became unusable (locked, disk full).
        :raises PermissionDeniedError: the store file is read-only.
        """
        if self._closed:
            raise UsageError(_CLOSED)
        if self._runner.store.read_only:
            raise UsageError(
                "this provider was opened with read_only=True; open it without to run the engine"
            )
        with anyio.CancelScope() as scope:
            self._run_scope = scope
            self._stopped = anyio.Event()
            try:
                await self._run_with_pruning(task_status)
            except ReventlessError as exc:
                engine_log.error("the engine on %s stopped: %s", self.path, exc, exc_info=exc)
                raise
            finally:
                self._run_scope = None
                self._stopped.set()

    async def _run_with_pruning(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        """The engine and the reactions, with the retention loop beside them; an error of the
        engine comes out as itself."""
        try:
            async with anyio.create_task_group() as group:
                if self.retention is not None:
                    group.start_soon(self._prune_loop, self.retention, name="reventless-prune")
                watch = StallWatch(self._engine.delivery_timeout, self.on_stall)
                group.start_soon(watch.run, name="reventless-stall-watch")
                await self._reactions.run_beside(partial(self._engine.run, task_status))
                group.cancel_scope.cancel()
        except BaseExceptionGroup as errors:
            if len(errors.exceptions) == 1:
                raise errors.exceptions[0] from None
            raise

    async def prune(self, retention: Retention | None = None) -> PruneReport:
        """Delete now the history, dead letters, handled-message records and reactions'
        operations records that ``retention``
        (default: the provider's; ``Retention()`` when it has none) no longer keeps.

        Works in batches of ``retention.batch`` rows, one short transaction each.
        :raises PermissionDeniedError: the store was opened read-only.
        """
        if self._closed:
            raise UsageError(_CLOSED)
        if retention is not None and not isinstance(retention, Retention):
            raise ValidationError("retention", retention, "a reventless.local.Retention")
        chosen = retention or self.retention or Retention()
        report = await prune(self._runner, chosen, self.clock.now())
        if report != PruneReport():
            _log.info(
                "pruned %d history entries, %d dead letters, %d handled-message records, %d "
                "reaction operations records",
                report.history,
                report.dead_letters,
                report.handled_messages,
                report.reaction_operations,
                extra={
                    "pruned_history": report.history,
                    "pruned_dead_letters": report.dead_letters,
                    "pruned_handled_messages": report.handled_messages,
                    "pruned_reaction_operations": report.reaction_operations,
                },
            )
        return report

    async def _prune_loop(self, retention: Retention) -> None:
        """The leader prunes every ``retention.every``; a failure is logged and tried again."""
        while True:
            await anyio.sleep(retention.every.total_seconds())
            if not self._engine.is_leading:
                continue
            try:
                await self.prune(retention)
            except ReventlessError as exc:
                _log.warning("pruning the store failed: %s", exc, exc_info=exc)

    async def _close(self) -> None:
        self._closed = True
        if self._run_scope is not None:
            self._run_scope.cancel()
            with anyio.CancelScope(shield=True), anyio.move_on_after(60):
                await self._stopped.wait()


_DEFAULT_RETENTION = Retention()


@provider_context("reventless.local.provider", LocalProvider)
async def provider(
    path: str | Path,
    *,
    clock: Clock | None = None,
    misfire_policy: MisfirePolicy | str = MisfirePolicy.LATEST,
    misfire_grace: timedelta = timedelta(hours=24),
    retry_policy: RetryPolicy | None = None,
    delivery_timeout: float = 30.0,
    lease_ttl: float = 20.0,
    poll_interval: float = 1.0,
    workers: int = 32,
    lock_timeout: float = 5.0,
    read_only: bool = False,
    retention: Retention | None = _DEFAULT_RETENTION,
) -> AsyncIterator[LocalProvider]:
    """Open (or create) the store at ``path`` and yield the embedded provider.

    Use it as ``async with reventless.local.provider(path) as provider:``; the store is closed
    when the block ends. The returned ``ProviderContext`` raises UsageError with that fix when
    used without ``async with``. Arguments are checked on entering the block.

    - ``clock``: where time comes from (default: the system clock). Use
      ``reventless.testing.VirtualClock`` in tests and ``ScaledClock`` for demos.
    - ``misfire_policy`` (``"latest"``, ``"all"``, ``"skip"``) and ``misfire_grace`` (0 to 30
      days): what happens to fires missed while the engine was down or stalled.
    - ``retry_policy``: retries of failed deliveries before dead-lettering.
    - ``delivery_timeout``: real seconds (0.01 to 900) one delivery may take before it counts
      as failed.
    - ``lease_ttl``: real seconds (1 to 3600) after which a standby process takes over from one
      that died; ``poll_interval``: how often (0.05 to 60 s) the leader looks for schedules
      other processes wrote.
    - ``workers``: concurrent deliveries (1 to 1024).
    - ``lock_timeout``: real seconds (0.01 to 600) to wait for another process's lock on the
      file before an operation fails with BackendUnavailableError.
    - ``read_only``: open an existing store only to read it (list, get, history, dead letters),
      also when the file or its folder is not writable; writes raise PermissionDeniedError and
      ``run()`` raises UsageError.
    - ``retention``: how long history, dead letters and handled-message records are kept
      (``reventless.local.Retention``; by default 30 days, and 31 for handled messages); the
      leader prunes in the background. None keeps everything.

    A standby process takes over from a leader that died within ``lease_ttl`` +
    ``delivery_timeout`` + 1 s: the leader starts no delivery it could not finish before then,
    so a fire is never delivered by two processes.
    """
    policy, _ = check_misfire(misfire_policy, misfire_grace)
    check_seconds("delivery_timeout", delivery_timeout, 0.01, 900)
    check_seconds("lease_ttl", lease_ttl, 1, 3600)
    check_seconds("poll_interval", poll_interval, 0.05, 60)
    check_seconds("lock_timeout", lock_timeout, 0.01, 600)
    if type(workers) is not int or not 1 <= workers <= 1024:
        raise ValidationError("workers", workers, "a whole number from 1 to 1024")
    check_retry_policy(retry_policy)
    if retention is not None and not isinstance(retention, Retention):
        raise ValidationError("retention", retention, "a reventless.local.Retention or None")
    if not isinstance(path, (str, Path)):
        raise ValidationError("path", path, "a file path or ':memory:'")
    clock = clock or SystemClock()
    if type(read_only) is not bool:
        raise ValidationError("read_only", read_only, "True or False")
    if read_only and (str(path) == ":memory:" or not os.path.isfile(path)):  # noqa: ASYNC240 - one stat before opening
        raise ValidationError("path", path, "an existing store file when read_only=True")
    store = await anyio.to_thread.run_sync(
        partial(SqliteStore, path, float(lock_timeout), read_only=read_only)
    )
    runner = StoreRunner(store)
    engine = Engine(
        runner,
        clock,
        misfire_policy=policy,
        misfire_grace=misfire_grace,
        retry_policy=retry_policy or RetryPolicy(),
        delivery_timeout=float(delivery_timeout),
        lease_ttl=float(lease_ttl),
        poll_interval=float(poll_interval),
        workers=workers,
        use_lease=store.path != ":memory:",
    )
    local = LocalProvider(store, clock, engine, runner, float(lease_ttl), retention)
    try:
        yield local
    finally:
        with anyio.CancelScope(shield=True):
            await local._close()
            await anyio.to_thread.run_sync(runner.close)
