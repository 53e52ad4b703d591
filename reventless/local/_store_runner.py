"""Runs the store's synchronous calls in one worker thread, one at a time."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, ParamSpec, TypeVar

import anyio
import sniffio

from reventless.errors import UsageError
from reventless.local._store import SqliteStore, translate_sqlite_error

__all__ = ("StoreRunner",)

P = ParamSpec("P")
T = TypeVar("T")


class StoreRunner:
    """Runs store calls in one worker thread, one at a time, translating sqlite3 errors.

    Lock contention is waited out by SQLite itself (``busy_timeout`` = the provider's
    ``lock_timeout``), so a call fails after that long, not a multiple of it. On asyncio the
    store has a thread of its own fed by a queue, which answers through
    ``call_soon_threadsafe``: that hand-off costs about half of ``run_in_executor``'s and a
    third of anyio's generic thread pool, and it is most of the cost of a single create.
    """

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self._limiter = anyio.CapacityLimiter(1)
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        # Calls handed to the store's thread and not yet finished there (kept on the event
        # loop's thread only): at 0 the connection is free for a brief call on the caller's.
        self._in_flight = 0
        self._brief_writes = 0
        self._checkpointer = _Checkpointer(store.path)

    async def _in_thread(self, func: Callable[[], T]) -> T:
        if sniffio.current_async_library() != "asyncio":
            # Shielded from the start, the wait for the store's turn included: a store call is
            # never given up half-way on either backend (the group commits rely on it).
            self._in_flight += 1
            try:
                with anyio.CancelScope(shield=True):
                    result = await anyio.to_thread.run_sync(func, limiter=self._limiter)
            finally:
                self._in_flight -= 1
            return result
        if self._thread is None:
            # A daemon: a provider left open must not keep the interpreter from exiting (an
            # unfinished transaction is rolled back by SQLite at the next open).
            self._thread = threading.Thread(
                target=_serve, args=(self._calls,), name="reventless-store", daemon=True
            )
            self._thread.start()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._in_flight += 1  # back down in _settle, once the thread is done with it
        self._calls.put((func, future, self))
        # As abandon_on_cancel=False: a call, once handed over, completes and is waited for.
        with anyio.CancelScope(shield=True):
            result = await future
        return result  # noqa: RET504 (after the scope: its __exit__ could swallow, says mypy)

    def close(self) -> None:
        self._closed = True
        self._checkpointer.close()
        if self._thread is not None:
            self._calls.put(None)
            self._thread.join()
            self._thread = None
        self.store.close()

    async def call_brief(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``call`` for a call known to be brief (a few rows, no scan) that is one transaction
        or only reads. When the store's thread has nothing to do, it runs right here on the
        caller's thread, which saves two thread hand-offs that cost more than the call itself.
        It never waits there: lock contention (SQLITE_BUSY at once, with no busy wait) sends
        it to the thread, to be waited out as usual; and no checkpoint runs there (one syncs
        the file, which can take tens of milliseconds): every ``_CHECKPOINT_EVERY`` brief
        writes, a passive checkpoint runs in a thread and on a connection of its own, which
        neither waits for nor holds up anybody. A write of a few rows to the WAL holds the
        event loop for a few hundred microseconds at most.
        """
        if self._closed:
            raise self._closed_error()
        if self._in_flight:
            return await self.call(func, *args, **kwargs)
        conn = self.store.conn
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        busy = False
        changes = conn.total_changes
        try:
            result = func(*args, **kwargs)
        except sqlite3.Error as exc:
            if not getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY"):
                raise translate_sqlite_error(exc, self.store.path) from exc
            busy = True  # taken by another connection: nothing was done
        finally:
            conn.execute(f"PRAGMA busy_timeout = {self.store.busy_timeout_ms}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {_AUTOCHECKPOINT_PAGES}")
        if busy:  # the lock is waited for in the thread, as usual
            return await self.call(func, *args, **kwargs)
        if conn.total_changes != changes:
            self._brief_writes += 1
            if self._brief_writes >= _CHECKPOINT_EVERY:
                self._brief_writes = 0
                self._checkpointer.start()
            elif self._checkpointer.take_finished():
                # The background pass overlapped writes, so the frames written meanwhile are
                # left, and SQLite rewinds the WAL only once all are copied: copy those few
                # here, between two writes, and the next write starts the WAL over.
                await self.call(_checkpoint_quietly, conn)
        return result

    def _closed_error(self) -> UsageError:
        return UsageError(
            f"the provider of store {self.store.path!r} is closed (its 'async with' block "
            "has ended); use its schedulers and aggregates inside 'async with "
            "reventless.local.provider(...) as provider:'"
        )

    async def call(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``func(*args, **kwargs)`` in the store's thread; sqlite3 errors come out translated.

        Not cancellable: a caller cancelled meanwhile waits for its call to end, then sees the
        cancellation (as ``abandon_on_cancel=False``, and from before the call is handed over).
        """
        if self._closed:
            raise self._closed_error()
        try:
            return await self._in_thread(partial(func, *args, **kwargs))
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, self.store.path) from exc


_Call = tuple[Callable[[], Any], "asyncio.Future[Any]", StoreRunner]
_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default
_CHECKPOINT_EVERY = 200  # brief writes between two checkpoints (about SQLite's 1,000 pages)


def _checkpoint_quietly(conn: sqlite3.Connection) -> None:
    # A failed checkpoint loses nothing: a later one (or SQLite's own) does the work.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


class _Checkpointer:
    """Passive WAL checkpoints in a thread and on a connection of their own, one at a time."""

    def __init__(self, path: str) -> None:
        # Nothing to checkpoint in memory (no WAL) nor read-only (no writes of ours).
        self._path = None if path in ("", ":memory:") else path
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._finished = False  # set by the checkpoint's thread, taken on the event loop's

    def start(self) -> None:
        if self._path is None or (self._thread is not None and self._thread.is_alive()):
            return  # the one under way will do
        self._thread = threading.Thread(
            target=self._checkpoint, name="reventless-checkpoint", daemon=True
        )
        self._thread.start()

    def _checkpoint(self) -> None:
        # Errors are not this call's to report: the next checkpoint (or SQLite's own, after a
        # commit made in the store's thread) does the work.
        with contextlib.suppress(sqlite3.Error):
            if self._conn is None:
                assert self._path is not None
                self._conn = sqlite3.connect(
                    self._path, isolation_level=None, check_same_thread=False, timeout=0
                )
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self._finished = True

    def take_finished(self) -> bool:
        """Whether a pass finished since the last call."""
        finished, self._finished = self._finished, False
        return finished

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _serve(calls: queue.SimpleQueue[_Call | None]) -> None:
    """The store thread: runs each call and hands its outcome to the caller's event loop."""
    while (call := calls.get()) is not None:
        func, future, runner = call
        try:
            outcome: tuple[Any, BaseException | None] = (func(), None)
        except BaseException as exc:  # handed to the caller, who raises it
            outcome = (None, exc)
        # RuntimeError: the caller's event loop is closed, nobody waits any more.
        with contextlib.suppress(RuntimeError):
            future.get_loop().call_soon_threadsafe(_settle, future, runner, *outcome)
        del call, func, future, outcome  # no reference to a result outlives its call


def _settle(
    future: asyncio.Future[Any], runner: StoreRunner, result: Any, error: BaseException | None
) -> None:
    runner._in_flight -= 1
    if future.done():  # cancelled by plain asyncio (outside anyio's shield)
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
