"""The PostgreSQL provider (``pip install reventless[postgres]``, asyncio only: asyncpg).

Its first part: the store's schema, in a schema name of the user's choice, and the event log
with a ``read_all`` that never skips an event (a transaction-id watermark, ``_event_log``)::

    async with reventless.postgres.provider("postgresql://app@db/app", schema="orders") as p:
        log = p.event_log()

The schedules and their engine, topics and reactions are still to come (issue 23).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import sniffio

from reventless.clock import Clock, SystemClock
from reventless.errors import UsageError, ValidationError
from reventless.postgres._event_log import PostgresEventLog, translating
from reventless.postgres._schema import SCHEMA_VERSION, quote_schema
from reventless.postgres._store import upgrade

__all__ = ("SCHEMA_VERSION", "PostgresEventLog", "PostgresProvider", "provider")

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

    def __init__(self, pool: asyncpg.Pool, schema: str, clock: Clock, where: str) -> None:
        self.pool = pool
        self.schema = schema
        self.clock = clock
        self._where = where
        self._event_log: PostgresEventLog | None = None
        self._closed = False

    def event_log(self) -> PostgresEventLog:
        """The EventLog adapter of this store."""
        if self._closed:
            raise UsageError(_CLOSED)
        if self._event_log is None:
            self._event_log = PostgresEventLog(self.pool, self.schema, self._where)
        return self._event_log


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
) -> AsyncIterator[PostgresProvider]:
    """The provider on a database: a ``postgresql://`` URL (the provider makes and closes a pool
    of at most ``max_connections``) or an asyncpg pool of yours (left open). The store's tables
    are made in ``schema`` at the first open, or checked.

    Behind a connection pooler in transaction mode (PgBouncer's ``pool_mode = transaction``),
    pass a pool made with ``statement_cache_size=0`` (asyncpg's named prepared statements live
    on one server connection; PgBouncer 1.21 or newer with ``max_prepared_statements`` set
    keeps them itself). Every statement of an append, its lock included, runs inside one
    transaction, so a transaction-mode pooler keeps them on one server connection.

    :raises BackendUnavailableError: the server cannot be reached.
    :raises PermissionDeniedError: the server refused the credentials or a privilege.
    :raises ValidationError: a bad schema name, or a schema holding another application's tables.
    :raises UsageError: not on asyncio (trio).
    :raises CorruptDataError: a schema written by a newer release, or a damaged one.
    """
    quote_schema(schema)
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
    opened = PostgresProvider(pool, schema, clock or SystemClock(), where)
    try:
        await upgrade(pool, schema, where)
        yield opened
    finally:
        opened._closed = True
        if owned:
            await pool.close()
