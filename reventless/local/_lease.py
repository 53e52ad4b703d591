"""Leases: which process does a job (fires a store's schedules, runs one reaction), with a fence
that stops a holder before a standby can overlap it. One implementation serves the engine (the
store's ``lease`` row) and every reaction (its row of ``reactions``); ``LeaseRow`` is the row.

Only the holder works. It renews every third of ``ttl``. Fencing: the row says the lease runs
until ``start + ttl + timeout + margin``, where ``start`` is read *before* the renewal is
written, while the holder itself starts no work after ``start + ttl`` (on its own monotonic
clock). Work started in time ends within ``timeout`` (a delivery, a reaction's handler), and
its bookkeeping commits only while this process still owns the row, so by the time a standby may
take over, the old holder has stopped: no fire or event is handled by two processes at once.

A standby tries again right after the holder's lease lapses (a holder that died is replaced as
soon as the fence allows) and at least every third of ``ttl`` (a holder that stopped releases
its lease at once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from reventless.local._connection import LeaseLostError
from reventless.local._store import SqliteStore
from reventless.local._store_runner import StoreRunner

__all__ = ("Lease", "LeaseRow", "reaction_row", "store_row")

_MARGIN_S = 1.0
# How long after the holder's lease lapses a standby tries to take it (clock ticks).
_AFTER_LAPSE_S = 0.01

_Take = Callable[[SqliteStore, str, float, float], tuple[bool, float]]
_GiveBack = Callable[[SqliteStore, str], None]


@dataclass(frozen=True)
class LeaseRow:
    """Where a lease is kept: what it guards (for messages) and its two store calls, run in the
    store's thread. ``take(store, owner, now, hold_s)`` takes or renews it when it is free,
    lapsed or ``owner``'s, and answers (held, when the lease it did not get lapses, in
    ``time.time()``); ``give_back(store, owner)`` frees it if ``owner`` holds it."""

    label: str
    take: _Take
    give_back: _GiveBack


def _take_store(store: SqliteStore, owner: str, now: float, hold_s: float) -> tuple[bool, float]:
    return store.try_lease(owner, now, hold_s)


def _give_back_store(store: SqliteStore, owner: str) -> None:
    store.release_lease(owner)


def store_row(store: SqliteStore) -> LeaseRow:
    """The lease of the store's engine: the one process that fires its schedules."""
    return LeaseRow(f"store {store.path!r}", _take_store, _give_back_store)


def reaction_row(name: str) -> LeaseRow:
    """The lease of one reaction: the one process that runs it."""

    def take(store: SqliteStore, owner: str, now: float, hold_s: float) -> tuple[bool, float]:
        with store.transaction():
            cursor = store.conn.execute(
                "UPDATE reactions SET owner = ?, lease_until = ? WHERE name = ?"
                " AND (owner IS NULL OR owner = ? OR lease_until < ?)",
                (owner, now + hold_s, name, owner, now),
            )
            if cursor.rowcount == 1:
                return True, 0.0
            row = store.conn.execute(
                "SELECT lease_until FROM reactions WHERE name = ?", (name,)
            ).fetchone()
            return False, 0.0 if row is None else float(row[0])

    def give_back(store: SqliteStore, owner: str) -> None:
        with store.transaction():
            store.conn.execute(
                "UPDATE reactions SET owner = NULL, lease_until = 0 WHERE name = ? AND owner = ?",
                (name, owner),
            )

    return LeaseRow(f"reaction {name!r}", take, give_back)


class Lease:
    """One process's claim on one lease row; ``owner`` None means no lease (``:memory:``: no
    other process can share the store), so the holder is always this process."""

    def __init__(
        self,
        runner: StoreRunner,
        row: LeaseRow,
        *,
        owner: str | None,
        ttl: float,
        timeout: float,
    ) -> None:
        self._runner = runner
        self._row = row
        self.owner = owner
        self.ttl = ttl
        self._hold_s = ttl + timeout + _MARGIN_S
        self._until = float("inf") if owner is None else 0.0
        self._lapses_at = 0.0  # the other holder's lease, as last read (time.time())

    async def try_acquire(self) -> bool:
        """Take or renew the lease; True when this process holds it now."""
        if self.owner is None:
            return True
        started = time.monotonic()
        held, self._lapses_at = await self._runner.call(
            self._row.take, self._runner.store, self.owner, time.time(), self._hold_s
        )
        self._until = started + self.ttl if held else 0.0
        return held

    def retry_in(self) -> float:
        """After a failed ``try_acquire``: how long to wait before the next."""
        return min(self.ttl / 3, max(self._lapses_at - time.time(), 0.0) + _AFTER_LAPSE_S)

    async def wait_until_held(self) -> None:
        """Try until this process takes the lease (the holder is another process: no event)."""
        while not await self.try_acquire():  # noqa: ASYNC110 - another process: no event
            await anyio.sleep(self.retry_in())

    def may_work(self, now: float | None = None) -> bool:
        """Whether work may start now (the lease is held for long enough); ``now``:
        ``time.monotonic()`` if the caller has just read it."""
        return (time.monotonic() if now is None else now) < self._until

    def fence(self) -> None:
        """Raise LeaseLostError when this process may no longer work."""
        if not self.may_work():
            raise LeaseLostError(
                f"{self._row.label}: the lease was not renewed in time; standing by so that "
                "nothing is handled twice"
            )

    async def keep(self) -> None:
        """Renew every third of the ttl until cancelled; raise LeaseLostError if taken."""
        while True:
            await anyio.sleep(self.ttl / 3)
            if not await self.try_acquire():
                raise LeaseLostError(f"{self._row.label}: another process took the lease")

    def drop(self) -> None:
        """Stop working at once (the lease stays in the store until it lapses or is released)."""
        if self.owner is not None:
            self._until = 0.0

    async def release(self) -> None:
        """Stop working and free the lease for a standby."""
        self.drop()
        if self.owner is not None:
            await self._runner.call(self._row.give_back, self._runner.store, self.owner)
