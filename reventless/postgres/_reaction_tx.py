"""A reaction's transaction: the appends a reaction's handler makes to the same database commit
in one transaction with the reaction's checkpoint, so "handled" and "effect" cannot diverge.

The runner (``_reactions``) sets ``CURRENT`` while its handler runs. The event log
(``_event_log``) sees it and appends on the transaction's connection instead of one of its own;
the transaction begins at the first append, and the runner commits it together with the
checkpoint's compare-and-set (or rolls it back: the handler failed, the lease was lost).

The log's gap-free ``read_all`` needs every appending transaction to get its id and draw all its
positions inside one critical section (``_event_log``'s docstring). A handler may append more
than once, so a reaction's transaction takes the append lock at its first append and keeps it
until it ends: other appends wait meanwhile (the rest of the handler and the commit). While it
holds that lock it never waits for a stream's lock (a writer holding one may be waiting for the
append lock): when the stream is busy it marks itself ``busy``, and the runner rolls back and
handles the event again, the attempt not counted.

A process frozen inside such a transaction (stopped, swapped out) would hold the append lock, and
every append of the schema with it: the transaction tells the server to end it once it has been
idle for ``idle_limit`` seconds (the handler's timeout and a second: a live handler never is).

Messages its appends would publish to in-process event topics wait for the commit
(``after_commit``), and are dropped with a rollback, so that no subscriber sees an event that was
rolled back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import anyio

__all__ = ("CURRENT", "ReactionTransaction", "current_for")


class ReactionTransaction:
    """One attempt at one event: a connection of ``pool`` and its open transaction, made at
    the first use (``connection``); ``appended`` names the streams it appended to."""

    def __init__(self, pool: Any, schema: str, idle_limit: float) -> None:
        self.pool = pool
        self.schema = schema
        self.idle_limit_ms = max(int(idle_limit * 1000), 1)
        self.conn: Any = None
        self.lock = anyio.Lock()  # one statement at a time on the connection
        self.holds_append_lock = False
        self.busy = False
        self.appended: set[tuple[str, str]] = set()
        self.after_commit: list[Callable[[], Awaitable[None]]] = []

    async def connection(self) -> Any:
        """The transaction's connection (call with ``lock`` held); its first statement begins
        the transaction (``holds_append_lock`` false: the event log's first append sends BEGIN
        with its locks, one round trip)."""
        if self.conn is None:
            self.conn = await self.pool.acquire()
        return self.conn

    async def end(self, commit: bool) -> None:
        """Commit or roll back, and give the connection back; a connection that cannot even
        roll back is closed (the server then rolls back, and frees its locks)."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        with anyio.CancelScope(shield=True):
            try:
                await conn.execute("COMMIT" if commit else "ROLLBACK")
            except BaseException:
                # A lost connection may already have left the pool (asyncpg releases it).
                with contextlib.suppress(Exception):
                    conn.terminate()
                if commit:
                    raise
            finally:
                with contextlib.suppress(Exception):
                    await self.pool.release(conn)


CURRENT: ContextVar[ReactionTransaction | None] = ContextVar(
    "reventless_postgres_reaction_transaction", default=None
)


def current_for(pool: Any, schema: str) -> ReactionTransaction | None:
    """The reaction transaction running here on this store, if any."""
    tx = CURRENT.get()
    if tx is not None and tx.pool is pool and tx.schema == schema:
        return tx
    return None
