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

    async def _in_thread(self, func: Callable[[], T]) -> T:
        if sniffio.current_async_library() != "asyncio":
            # Shielded from the start, the wait for the store's turn included: a store call is
            # never given up half-way on either backend (the group commits rely on it).
            with anyio.CancelScope(shield=True):
                result = await anyio.to_thread.run_sync(func, limiter=self._limiter)
            return result  # noqa: RET504 (see below)
        if self._thread is None:
            # A daemon: a provider left open must not keep the interpreter from exiting (an
            # unfinished transaction is rolled back by SQLite at the next open).
            self._thread = threading.Thread(
                target=_serve, args=(self._calls,), name="reventless-store", daemon=True
            )
            self._thread.start()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls.put((func, future))
        # As abandon_on_cancel=False: a call, once handed over, completes and is waited for.
        with anyio.CancelScope(shield=True):
            result = await future
        return result  # noqa: RET504 (after the scope: its __exit__ could swallow, says mypy)

    def close(self) -> None:
        self._closed = True
        if self._thread is not None:
            self._calls.put(None)
            self._thread.join()
            self._thread = None
        self.store.close()

    async def call(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``func(*args, **kwargs)`` in the store's thread; sqlite3 errors come out translated.

        Not cancellable: a caller cancelled meanwhile waits for its call to end, then sees the
        cancellation (as ``abandon_on_cancel=False``, and from before the call is handed over).
        """
        if self._closed:
            raise UsageError(
                f"the provider of store {self.store.path!r} is closed (its 'async with' block "
                "has ended); use its schedulers and aggregates inside 'async with "
                "reventless.local.provider(...) as provider:'"
            )
        try:
            return await self._in_thread(partial(func, *args, **kwargs))
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, self.store.path) from exc


_Call = tuple[Callable[[], Any], "asyncio.Future[Any]"]


def _serve(calls: queue.SimpleQueue[_Call | None]) -> None:
    """The store thread: runs each call and hands its outcome to the caller's event loop."""
    while (call := calls.get()) is not None:
        func, future = call
        try:
            outcome: tuple[Any, BaseException | None] = (func(), None)
        except BaseException as exc:  # handed to the caller, who raises it
            outcome = (None, exc)
        # RuntimeError: the caller's event loop is closed, nobody waits any more.
        with contextlib.suppress(RuntimeError):
            future.get_loop().call_soon_threadsafe(_settle, future, *outcome)
        del call, func, future, outcome  # no reference to a result outlives its call


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled by plain asyncio (outside anyio's shield)
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
