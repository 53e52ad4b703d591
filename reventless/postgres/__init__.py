"""The PostgreSQL provider (``pip install reventless[postgres]``, asyncio only: asyncpg).

Its first part: the store's schema, in a schema name of the user's choice, and the event log
with a ``read_all`` that never skips an event (a transaction-id watermark, ``_event_log``)::

    async with reventless.postgres.provider("postgresql://app@db/app", schema="orders") as p:
        log = p.event_log()

Schedules and their engine: ``Scheduler.make(provider, target=...)`` and ``provider.run()``,
in every process that should fire (no leader: ``_engine``). Event topics are in process
(``_event_topics`` says why); reactions run in ``provider.run()`` too, with a checkpoint and a
lease per reaction in the database (``_reactions``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import asyncpg
import sniffio

from reventless._engine_settings import check_misfire, check_retry_policy, check_seconds
from reventless._fire_rows import to_us
from reventless.clock import Clock, SystemClock
from reventless.errors import ReventlessError, UsageError, ValidationError
from reventless.local import CatchUp, PruneReport, Retention, Stall
from reventless.local._stall import StallWatch
from reventless.postgres._engine import EngineSettings, PostgresEngine
from reventless.postgres._event_log import PostgresEventLog, translating
from reventless.postgres._event_topics import PostgresEventTopic
from reventless.postgres._publisher import PostgresScheduledPublisher
from reventless.postgres._reactions import PostgresReactions
from reventless.postgres._retention import prune_store
from reventless.postgres._schema import SCHEMA_VERSION, quote_schema
from reventless.postgres._store import check_readable, upgrade
from reventless.postgres._watch import LatenessWatch, catch_up
from reventless.scheduler_adapter import MisfirePolicy, RetryPolicy

__all__ = (
    "SCHEMA_VERSION",
    "PostgresEventLog",
    "PostgresEventTopic",
    "PostgresProvider",
    "PostgresReactions",
    "PostgresScheduledPublisher",
    "provider",
)

_log = logging.getLogger("reventless.postgres")
_DEFAULT_RETENTION = Retention()

_CLOSED = (
    "this provider is closed (its 'async with' block has ended); use it inside "
    "'async with reventless.postgres.provider(...) as provider:'"
)


async def _reset(connection: Any) -> None:
    """A pool's reset that sends nothing in the normal case: the provider leaves no session
    state on a connection it gives back (its append lock is given back, or the connection
    closed), only, should a transaction be left open, its rollback. (asyncpg's own reset
    costs a round trip at every checkout: ``benchmarks/bench_pg_driver.py``.)"""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


class PostgresProvider:
    """The PostgreSQL provider: its clock, event log, schedules and engine, topics and reactions."""

    clock: Clock
    schema: str

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        clock: Clock,
        where: str,
        settings: EngineSettings | None = None,
        retention: Retention | None = None,
        *,
        lease_ttl: float = 20.0,
        listen_dsn: str | None = None,
        read_only: bool = False,
    ) -> None:
        self.pool = pool
        self.read_only = read_only
        self.schema = schema
        self.clock = clock
        self._where = where
        self._event_log: PostgresEventLog | None = None
        self._closed = False
        self.retention = retention
        self._settings = settings or EngineSettings()
        # Due times by the database's clock, unless the provider was given another clock.
        self._engine = PostgresEngine(
            pool,
            schema,
            where,
            clock,
            self._settings,
            database_time=isinstance(clock, SystemClock),
        )
        # Told when synchronous code holds the event loop past the delivery timeout (a
        # ``Stall``: how long, and where); None logs it at ERROR. ``reventless run`` ends the
        # process, as on the embedded provider.
        self.on_stall: Callable[[Stall], None] | None = None
        # Told, at each start of ``run()``, the fires of this process's schedulers found more
        # than a minute overdue (``CatchUp``: how many, and what the misfire policy makes of
        # them); ``reventless run`` prints it. None: only the log (INFO) says it.
        self.on_catch_up: Callable[[CatchUp], None] | None = None
        self.lateness = LatenessWatch(pool, schema, where)
        self._publisher = PostgresScheduledPublisher(pool, schema, where, self._engine)
        self._run_scope: anyio.CancelScope | None = None
        self._stopped = anyio.Event()
        self._init_topics_and_reactions(
            lease_ttl, (settings or EngineSettings()).poll_interval, listen_dsn
        )

    def event_log(self) -> PostgresEventLog:
        """The EventLog adapter of this store."""
        if self._closed:
            raise UsageError(_CLOSED)
        if self._event_log is None:
            self._event_log = PostgresEventLog(self.pool, self.schema, self._where)
            self._engine.event_log_in_use = True
        return self._event_log

    # -- event topics and reactions (``_event_topics``, ``_reactions``) ------------------------

    def _init_topics_and_reactions(
        self, lease_ttl: float, poll_interval: float, listen_dsn: str | None
    ) -> None:
        self._event_topics: dict[str, PostgresEventTopic] = {}
        self._reactions = PostgresReactions(
            self.pool,
            self.schema,
            self._where,
            self.event_log(),
            self.clock,
            lease_ttl=lease_ttl,
            poll_interval=poll_interval,
            listen_dsn=listen_dsn,
        )

    def event_topic(self, name: str) -> PostgresEventTopic:
        """The event topic ``name``: in process, one per name on this provider (an aggregate's
        is named after it); what its subscribers get is published once the append committed."""
        if self._closed:
            raise UsageError(_CLOSED)
        topic = self._event_topics.get(name)
        if topic is None:
            topic = self._event_topics[name] = PostgresEventTopic(name, self.pool, self.schema)
        return topic

    def reactions(self) -> PostgresReactions:
        """The reactions on this database: their operations (status and lag, dead letters,
        reset, resume), and the runner of those declared by started plugins, which ``run()``
        runs."""
        if self._closed:
            raise UsageError(_CLOSED)
        return self._reactions

    # -- the schedules and their engine ---------------------------------------------------------

    def scheduled_publisher(self) -> PostgresScheduledPublisher:
        """The ScheduledPublisher adapter that schedulers made on this provider use."""
        if self._closed:
            raise UsageError(_CLOSED)
        return self._publisher

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Fire the schedules of the schedulers made on this provider, and run the reactions of
        started plugins, until cancelled.

        Run it in every process that should fire: all of them claim due fires, none leads
        (a fire is delivered by one of them; see ``docs/postgres.md``). Of the reactions, one
        process at a time runs each; the others stand by and take over within the lease time
        (``lease_ttl`` + the reaction's timeout + 1 s) when it stops or dies. A lost server is
        waited for (the engine retries with backoff, logging each failure). Cancel it for a
        graceful stop: the batches under way are delivered and recorded.
        """
        if self._closed:
            raise UsageError(_CLOSED)
        if self.read_only:
            raise UsageError(_READ_ONLY.format(what="run the engine"))
        if self._engine.running:
            raise UsageError("provider.run() is already running; run it once per provider")
        claimers = self._engine.claimers
        if self.pool.get_max_size() < claimers + 2:
            raise UsageError(
                f"the engine needs a pool of at least {claimers + 2} connections (one per claim "
                f"loop, claimers={claimers}, one to listen, one for the rest); this pool has "
                f"{self.pool.get_max_size()}: pass max_connections={claimers + 2} or more"
            )
        self._stopped = anyio.Event()
        with anyio.CancelScope() as self._run_scope:
            try:
                await self._reactions.run_beside(partial(self._run_engine, task_status))
            finally:
                self._run_scope = None
                self._stopped.set()

    async def _run_engine(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with anyio.create_task_group() as group:
            if self.retention is not None:
                group.start_soon(self._prune_loop, self.retention, name="reventless-pg-prune")
            watch = StallWatch(self._settings.delivery_timeout, self.on_stall)
            group.start_soon(watch.run, name="reventless-pg-stall-watch")
            await self._tell_catch_up()
            group.start_soon(
                self.lateness.run, self._engine.targets, self._now_us, name="reventless-pg-late"
            )
            await group.start(self._engine.run)
            task_status.started()

    def _now_us(self) -> int | None:
        """The engine's now: None for the database's clock."""
        return None if isinstance(self.clock, SystemClock) else to_us(self.clock.now())

    async def _tell_catch_up(self) -> None:
        """Say how many fires of this process's schedulers are overdue as the engine starts
        (the log, and ``on_catch_up``); a server that cannot answer is left to the engine."""
        if not self._engine.targets:
            return
        try:
            found = await catch_up(
                self.pool,
                self.schema,
                self._where,
                list(self._engine.targets),
                self._now_us(),
                self._settings.misfire_policy,
                self._settings.misfire_grace,
            )
        except ReventlessError as exc:
            _log.debug("counting the overdue fires failed: %s", exc)
            return
        if found.due:
            self._engine.observer.caught_up(self._where, found)
            if self.on_catch_up is not None:
                self.on_catch_up(found)

    async def _stop_running(self) -> None:
        """Leaving the provider's block stops its engine first (its batches finish), so that
        the pool can close."""
        self._closed = True
        if self._run_scope is not None:
            self._run_scope.cancel()
            with anyio.CancelScope(shield=True), anyio.move_on_after(60):
                await self._stopped.wait()

    async def prune(self, retention: Retention | None = None) -> PruneReport:
        """Delete now the history and dead letters that ``retention`` (default: the
        provider's; ``Retention()`` when it has none) no longer keeps, in batches of
        ``retention.batch`` rows, one short transaction each."""
        if self._closed:
            raise UsageError(_CLOSED)
        if self.read_only:
            raise UsageError(_READ_ONLY.format(what="prune"))
        if retention is not None and not isinstance(retention, Retention):
            raise ValidationError("retention", retention, "a reventless.local.Retention")
        chosen = retention or self.retention or Retention()
        return await prune_store(self.pool, self.schema, self._where, chosen, self.clock.now())

    async def _prune_loop(self, retention: Retention) -> None:
        """Every engine prunes every ``retention.every`` (deleting by age and count is
        idempotent, so several engines pruning at once only share the work)."""
        while True:
            await anyio.sleep(retention.every.total_seconds())
            try:
                await self.prune(retention)
            except ReventlessError as exc:
                _log.warning("pruning the store failed: %s", exc, exc_info=exc)


_READ_ONLY = "this provider was opened with read_only=True; open it without to {what}"


def _where(dsn: str | None, schema: str) -> str:
    """The store named for messages: the schema and the database, no password."""
    if dsn is None:
        return f"schema {schema!r}"
    parts = urlsplit(dsn)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"schema {schema!r} of {host}{port}{parts.path or '/'}"


@asynccontextmanager
async def provider(
    dsn_or_pool: str | asyncpg.Pool,
    *,
    schema: str = "reventless",
    clock: Clock | None = None,
    max_connections: int = 10,
    misfire_policy: MisfirePolicy | str = MisfirePolicy.LATEST,
    misfire_grace: timedelta = timedelta(hours=24),
    retry_policy: RetryPolicy | None = None,
    delivery_timeout: float = 30.0,
    poll_interval: float = 1.0,
    lease_ttl: float = 20.0,
    batch: int = 500,
    claimers: int = 2,
    retention: Retention | None = _DEFAULT_RETENTION,
    read_only: bool = False,
) -> AsyncIterator[PostgresProvider]:
    """The provider on a database: a ``postgresql://`` URL (the provider makes and closes a pool
    of at most ``max_connections``) or an asyncpg pool of yours (left open). The store's tables
    are made in ``schema`` at the first open, or checked.

    Behind a connection pooler in transaction mode (PgBouncer's ``pool_mode = transaction``),
    pass a pool made with ``statement_cache_size=0`` (asyncpg's named prepared statements live
    on one server connection; PgBouncer 1.21 or newer with ``max_prepared_statements`` set
    keeps them itself). Every statement of an append, its lock included, runs inside one
    transaction, so a transaction-mode pooler keeps them on one server connection.

    The engine (``run()``): ``misfire_policy``, ``misfire_grace``, ``retry_policy`` and
    ``delivery_timeout`` as for ``reventless.local.provider``; ``poll_interval`` (0.05 to 60 s)
    bounds how late a change that no NOTIFY announced is seen (and how soon the fires of a
    process that died are taken over); ``batch`` (1 to 10,000) fires are claimed per
    transaction by each of ``claimers`` (1 to 64) claim loops, each holding a connection
    while it delivers: ``run()`` needs a pool of at least ``claimers`` + 2 connections.
    ``retention`` as for the local provider; every engine prunes.

    ``read_only``: open an existing store only to read it. Nothing is created or upgraded: a
    schema without the store's tables is refused (ValidationError, saying how a store is
    made), as is one of an older schema version (UsageError: opening without ``read_only``
    upgrades it). ``run()`` and ``prune()`` raise UsageError; on a pool the provider makes
    from a URL, every session is read-only (``default_transaction_read_only``), so any write
    is refused by the server (BackendUnavailableError, SQLSTATE 25006) and nothing is written.

    Reactions (also in ``run()``): one process at a time runs each, holding a lease of
    ``lease_ttl`` seconds (renewed every third of it); new events wake the runners through
    LISTEN/NOTIFY, and they also poll every ``poll_interval`` seconds (behind a
    transaction-mode pooler, which drops LISTEN, polling is what remains). The listening
    connection is one of its own, outside the pool, when the provider was given a URL, else
    one of your pool's, held while it runs.

    :raises BackendUnavailableError: the server cannot be reached.
    :raises PermissionDeniedError: the server refused the credentials or a privilege.
    :raises ValidationError: a bad schema name, or a schema holding another application's tables.
    :raises UsageError: not on asyncio (trio).
    :raises CorruptDataError: a schema written by a newer release, or a damaged one.
    """
    quote_schema(schema)
    check_seconds("lease_ttl", lease_ttl, 0.3, 3600)
    settings = _settings(
        misfire_policy,
        misfire_grace,
        retry_policy,
        delivery_timeout,
        poll_interval,
        batch,
        claimers,
    )
    if retention is not None and not isinstance(retention, Retention):
        raise ValidationError("retention", retention, "a reventless.local.Retention or None")
    if type(read_only) is not bool:
        raise ValidationError("read_only", read_only, "True or False")
    library = sniffio.current_async_library()
    if library != "asyncio":
        raise UsageError(
            f"reventless.postgres runs on asyncio only (its driver, asyncpg, is built on it); "
            f"this is {library}: run it with asyncio (anyio.run(..., backend='asyncio'))"
        )
    if isinstance(dsn_or_pool, str):
        if not dsn_or_pool.startswith(("postgresql://", "postgres://")):
            raise ValidationError(
                "dsn", dsn_or_pool.split("@")[-1], "a postgresql:// URL or an asyncpg pool"
            )
        where = _where(dsn_or_pool, schema)
        if type(max_connections) is not int or max_connections < 1:
            raise ValidationError("max_connections", max_connections, "a whole number from 1")
        async with translating(where):
            # No floor of open connections: asyncpg would restore one on its own while the
            # server is away, logging a traceback at every try; the provider's own retries
            # say what happens instead.
            pool: Any = await asyncpg.create_pool(
                dsn_or_pool,
                min_size=0,
                max_size=max_connections,
                reset=_reset,
                server_settings={"default_transaction_read_only": "on"} if read_only else None,
            )
        owned = True
    elif isinstance(dsn_or_pool, asyncpg.Pool):
        pool, owned, where = dsn_or_pool, False, _where(None, schema)
    else:
        raise ValidationError("dsn_or_pool", dsn_or_pool, "a postgresql:// URL or an asyncpg pool")
    opened = PostgresProvider(
        pool,
        schema,
        clock or SystemClock(),
        where,
        settings,
        retention,
        lease_ttl=float(lease_ttl),
        listen_dsn=dsn_or_pool if owned else None,
        read_only=read_only,
    )
    try:
        if read_only:
            await check_readable(pool, schema, where)
        else:
            await upgrade(pool, schema, where)
        yield opened
    finally:
        await opened._stop_running()
        if owned:
            await pool.close()


def _settings(
    misfire_policy: object,
    misfire_grace: object,
    retry_policy: object,
    delivery_timeout: object,
    poll_interval: object,
    batch: object,
    claimers: object,
) -> EngineSettings:
    policy, grace = check_misfire(misfire_policy, misfire_grace)
    retry = check_retry_policy(retry_policy)
    check_seconds("delivery_timeout", delivery_timeout, 0.01, 900)
    check_seconds("poll_interval", poll_interval, 0.05, 60)
    _check_whole("batch", batch, 1, 10_000)
    _check_whole("claimers", claimers, 1, 64)
    assert isinstance(delivery_timeout, (int, float))
    assert isinstance(poll_interval, (int, float))
    assert isinstance(batch, int) and isinstance(claimers, int)
    return EngineSettings(
        misfire_policy=policy,
        misfire_grace=grace,
        retry_policy=retry,
        delivery_timeout=float(delivery_timeout),
        poll_interval=float(poll_interval),
        batch=batch,
        claimers=claimers,
    )


def _check_whole(field: str, value: object, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise ValidationError(field, value, f"a whole number from {low:,} to {high:,}")
