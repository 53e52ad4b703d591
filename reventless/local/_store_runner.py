"""Runs the store's synchronous calls in one worker thread, one at a time."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Callable
from functools import partial
from typing import ParamSpec, TypeVar

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
    ``lock_timeout``), so a call fails after that long, not a multiple of it. On asyncio a
    dedicated single-thread executor is used: its hand-off costs about a fifth less than anyio's
    generic thread pool, which is most of the cost of a single create.
    """

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self._limiter = anyio.CapacityLimiter(1)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False

    async def _in_thread(self, func: Callable[[], T]) -> T:
        if sniffio.current_async_library() == "asyncio":
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="reventless-store"
                )
            future = asyncio.get_running_loop().run_in_executor(self._executor, func)
            # As abandon_on_cancel=False: a call, once handed over, completes and is waited for.
            # (asyncio.shield would cost two more turns of the event loop per call.)
            with anyio.CancelScope(shield=True):
                return await future
        return await anyio.to_thread.run_sync(func, limiter=self._limiter)

    def close(self) -> None:
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self.store.close()

    async def call(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``func(*args, **kwargs)`` in the store's thread; sqlite3 errors come out translated."""
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
