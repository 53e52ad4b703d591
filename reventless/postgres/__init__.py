"""The PostgreSQL provider (``pip install reventless[postgres]``, asyncio only: asyncpg).

Its first part: the store's schema, in a schema name of the user's choice, and the event log
with a ``read_all`` that never skips an event (a transaction-id watermark, ``_event_log``)::

    async with reventless.postgres.provider("postgresql://app@db/app", schema="orders") as p:
        log = p.event_log()

Event topics are in process (``_event_topics`` says why); reactions run in ``provider.run()``
with a checkpoint and a lease per reaction in the database (``_reactions``). The schedules and
their engine are still to come (issue 23).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import asyncpg
import sniffio

from reventless.clock import Clock, SystemClock
from reventless.errors import UsageError, ValidationError
from reventless.postgres._event_log import PostgresEventLog, translating
from reventless.postgres._event_topics import PostgresEventTopic
from reventless.postgres._reactions import PostgresReactions
from reventless.postgres._schema import SCHEMA_VERSION, quote_schema
from reventless.postgres._store import upgrade

__all__ = (
    "SCHEMA_VERSION",
    "PostgresEventLog",
    "PostgresEventTopic",
    "PostgresProvider",
    "PostgresReactions",
    "provider",
)

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
    """The PostgreSQL provider so far: its clock and its event log."""

    clock: Clock
    schema: str

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        clock: Clock,
        where: str,
        *,
        lease_ttl: float = 20.0,
        poll_interval: float = 1.0,
        listen_dsn: str | None = None,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.clock = clock
        self._where = where
        self._event_log: PostgresEventLog | None = None
        self._closed = False
        self._init_topics_and_reactions(lease_ttl, poll_interval, listen_dsn)

    def event_log(self) -> PostgresEventLog:
        """The EventLog adapter of this store."""
        if self._closed:
            raise UsageError(_CLOSED)
        if self._event_log is None:
            self._event_log = PostgresEventLog(self.pool, self.schema, self._where)
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

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the reactions of started plugins until cancelled; every process may: one at a
        time runs each reaction, the others stand by and take over within the lease time
        (``lease_ttl`` + the reaction's timeout + 1 s) when it stops or dies.
        ``await task_group.start(provider.run)`` returns at once."""
        if self._closed:
            raise UsageError(_CLOSED)
        await self._reactions.run_beside(partial(_until_cancelled, task_status))


async def _until_cancelled(task_status: anyio.abc.TaskStatus[None]) -> None:
    """What runs beside the reactions until the schedules' engine does (issue 23)."""
    task_status.started()
    await anyio.sleep_forever()


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
    lease_ttl: float = 20.0,
    poll_interval: float = 1.0,
) -> AsyncIterator[PostgresProvider]:
    """The provider on a database: a ``postgresql://`` URL (the provider makes and closes a pool
    of at most ``max_connections``) or an asyncpg pool of yours (left open). The store's tables
    are made in ``schema`` at the first open, or checked.

    Behind a connection pooler in transaction mode (PgBouncer's ``pool_mode = transaction``),
    pass a pool made with ``statement_cache_size=0`` (asyncpg's named prepared statements live
    on one server connection; PgBouncer 1.21 or newer with ``max_prepared_statements`` set
    keeps them itself). Every statement of an append, its lock included, runs inside one
    transaction, so a transaction-mode pooler keeps them on one server connection.

    Reactions: one process at a time runs each, holding a lease of ``lease_ttl`` seconds
    (renewed every third of it); new events wake the runners through LISTEN/NOTIFY, and they
    also poll every ``poll_interval`` seconds (behind a transaction-mode pooler, which drops
    LISTEN, polling is what remains). The listening connection is one of its own, outside the
    pool, when the provider was given a URL, else one of your pool's, held while it runs.

    :raises BackendUnavailableError: the server cannot be reached.
    :raises PermissionDeniedError: the server refused the credentials or a privilege.
    :raises ValidationError: a bad schema name, or a schema holding another application's tables.
    :raises UsageError: not on asyncio (trio).
    :raises CorruptDataError: a schema written by a newer release, or a damaged one.
    """
    quote_schema(schema)
    _check_seconds("lease_ttl", lease_ttl, 0.3, 3600)
    _check_seconds("poll_interval", poll_interval, 0.01, 60)
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
            pool: Any = await asyncpg.create_pool(
                dsn_or_pool, min_size=1, max_size=max_connections, reset=_reset
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
        lease_ttl=float(lease_ttl),
        poll_interval=float(poll_interval),
        listen_dsn=dsn_or_pool if owned else None,
    )
    try:
        await upgrade(pool, schema, where)
        yield opened
    finally:
        opened._closed = True
        if owned:
            await pool.close()


def _check_seconds(field: str, value: object, low: float, high: float) -> None:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not low <= value <= high  # also refuses nan
    ):
        raise ValidationError(field, value, f"a number of seconds from {low:g} to {high:g}")
