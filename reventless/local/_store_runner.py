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
from reventless.local._connection import translate_sqlite_error
from reventless.local._store import SqliteStore

__all__ = ("StoreRunner",)

P = ParamSpec("P")
T = TypeVar("T")


class StoreRunner:
    """Runs store calls one at a time, in the store's own thread (brief ones on the caller's,
    see ``call_brief``), translating sqlite3 errors, and checkpoints the WAL in the background.

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
        # Checkpoints run in the background (see _after_call), never inside a commit: SQLite's
        # own, after a commit, would hold up that writer while it syncs the file.
        self._checkpointer = _Checkpointer(None if store.read_only else store.path)
        if self._checkpointer.path is not None:
            store.conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._changes_at_pass = store.conn.total_changes
        # Whether the connection waits out another's lock (busy_timeout = the lock timeout) or
        # answers BUSY at once (0, for call_brief). Set for the next call only when it differs:
        # a run of brief calls (single creates) pays for no PRAGMA, where a pair each cost a
        # tenth of a create. Read and set only by the one thread that has the connection.
        self._waits_for_locks = True

    async def _in_thread(self, func: Callable[[], T]) -> T:
        if sniffio.current_async_library() != "asyncio":
            # Shielded from the start, the wait for the store's turn included: a store call is
            # never given up half-way on either backend (the group commits rely on it).
            self._in_flight += 1
            try:
                with anyio.CancelScope(shield=True):
                    result = await anyio.to_thread.run_sync(
                        partial(self._in_store_thread, func), limiter=self._limiter
                    )
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
        self._calls.put((partial(self._in_store_thread, func), future, self))
        # As abandon_on_cancel=False: a call, once handed over, completes and is waited for.
        with anyio.CancelScope(shield=True):
            result = await future
        return result  # noqa: RET504 (after the scope: its __exit__ could swallow, says mypy)

    def _in_store_thread(self, func: Callable[[], T]) -> T:
        self._wait_for_locks(True)
        try:
            return func()
        finally:
            self._after_call()

    def _after_call(self, *, may_finish: bool = True) -> None:
        """After a call, on the thread that has the connection: finish a background pass that
        ended, and start one when enough was written since the last.

        A pass overlaps writes, so it leaves the frames written meanwhile, and SQLite rewinds
        the WAL only once every frame is copied: those few are copied here, between two
        writes, and the next write starts the WAL over (without it, it grows without end).
        """
        checkpointer = self._checkpointer
        if checkpointer.path is None:
            return
        conn = self.store.conn
        if may_finish and checkpointer.take_finished():
            _checkpoint_quietly(conn)
        changes = conn.total_changes
        if changes - self._changes_at_pass >= _CHANGES_PER_CHECKPOINT:
            self._changes_at_pass = changes
            checkpointer.start()

    def close(self) -> None:
        self._closed = True
        if self._thread is not None:
            self._calls.put(None)
            self._thread.join()
            self._thread = None
        self._checkpointer.close()  # after the store's thread: its last call may start a pass
        self.store.close()

    async def call_brief(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``call`` for a call known to be brief (a few rows, no scan) that is one transaction
        or only reads. When the store's thread has nothing to do, it runs right here on the
        caller's thread, which saves two thread hand-offs that cost more than the call itself.
        It never waits there: lock contention (SQLITE_BUSY at once, with no busy wait) sends
        it to the thread, to be waited out as usual, and so does a checkpoint to finish (it
        syncs the file). A write of a few rows to the WAL holds the event loop for a few
        hundred microseconds at most.
        """
        if self._closed:
            raise self._closed_error()
        if self._in_flight or self._checkpointer.finished:
            return await self.call(func, *args, **kwargs)
        self._wait_for_locks(False)
        busy = False
        try:
            result = func(*args, **kwargs)
        except sqlite3.Error as exc:
            if not getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY"):
                raise translate_sqlite_error(exc, self.store.path) from exc
            busy = True  # taken by another connection: nothing was done
        if busy:  # the lock is waited for in the thread, as usual
            return await self.call(func, *args, **kwargs)
        self._after_call(may_finish=False)  # (a sync is the thread's to do, at its next call)
        return result

    def _wait_for_locks(self, wait: bool) -> None:
        if self._waits_for_locks is not wait:
            timeout = self.store.busy_timeout_ms if wait else 0
            self.store.conn.execute(f"PRAGMA busy_timeout = {timeout}")
            self._waits_for_locks = wait

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
# Rows written between two checkpoint passes: some 350 single creates or 500 fires, about
# 2,000 pages of WAL (SQLite's own default is 1,000 pages, checkpointed inside a commit).
_CHANGES_PER_CHECKPOINT = 1000


def _checkpoint_quietly(conn: sqlite3.Connection) -> None:
    # A failed checkpoint loses nothing: a later pass does the work.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


class _Checkpointer:
    """Passive WAL checkpoints in a thread and on a connection of their own, one at a time."""

    def __init__(self, path: str | None) -> None:
        # Nothing to checkpoint in memory (no WAL) nor read-only (None: no writes of ours).
        self.path = None if path in ("", ":memory:") else path
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        # Set by the pass's thread at its end; taken by the thread that has the connection.
        self.finished = False

    def start(self) -> None:
        if self.path is None or (self._thread is not None and self._thread.is_alive()):
            return  # the one under way will do
        self._thread = threading.Thread(
            target=self._checkpoint, name="reventless-checkpoint", daemon=True
        )
        self._thread.start()

    def _checkpoint(self) -> None:
        # Errors are not this pass's to report: a later pass does the work.
        with contextlib.suppress(sqlite3.Error):
            if self._conn is None:
                assert self.path is not None
                self._conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=0
                )
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self.finished = True

    def take_finished(self) -> bool:
        """Whether a pass finished since the last call."""
        finished, self.finished = self.finished, False
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
