"""The store's lease: which process fires, and a fence that stops a leader before it can overlap.

Only the lease holder delivers. The holder renews every third of ``ttl``. Fencing: the row in the
store says the lease runs until ``start + ttl + delivery_timeout + margin``, where ``start`` is read
*before* the renewal is written, while the holder itself starts no delivery after ``start + ttl``
(on its own monotonic clock). A delivery started in time ends within ``delivery_timeout``, and its
bookkeeping commits only while this process still owns the row, so by the time a standby may take
over, the old holder has stopped delivering: no fire is delivered by two processes at once.
"""

from __future__ import annotations

import time
import uuid

import anyio

from reventless.local._store import LeaseLostError, SqliteStore
from reventless.local._store_runner import StoreRunner

__all__ = ("Lease",)

_MARGIN_S = 1.0
# How long after the holder's lease lapses a standby tries to take it (clock ticks).
_AFTER_S = 0.01


def _lapses_at(store: SqliteStore) -> float:
    """When the lease in the store lapses (``time.time()``); 0 when there is none."""
    row = store.conn.execute("SELECT expires_at FROM lease WHERE id = 1").fetchone()
    return 0.0 if row is None else float(row[0])


class Lease:
    """One process's claim on a store file; ``owner`` None means no lease (``:memory:``)."""

    def __init__(
        self, runner: StoreRunner, *, ttl: float, delivery_timeout: float, enabled: bool
    ) -> None:
        self._runner = runner
        self.ttl = ttl
        self._hold_s = ttl + delivery_timeout + _MARGIN_S
        self.owner = uuid.uuid4().hex if enabled else None
        self._deliver_until = float("inf") if self.owner is None else 0.0

    async def try_acquire(self) -> bool:
        """Take or renew the lease; True when this process holds it now."""
        if self.owner is None:
            return True
        started = time.monotonic()
        held = await self._runner.call(
            self._runner.store.try_lease, self.owner, time.time(), self._hold_s
        )
        if held:
            self._deliver_until = started + self.ttl
        return held

    def may_deliver(self, now: float | None = None) -> bool:
        """Whether a delivery may start now (the lease is held for long enough); ``now``:
        ``time.monotonic()`` if the caller has just read it."""
        return (time.monotonic() if now is None else now) < self._deliver_until

    def fence(self) -> None:
        """Raise LeaseLostError when this process may no longer deliver."""
        if not self.may_deliver():
            raise LeaseLostError(
                f"store {self._runner.store.path!r}: the lease was not renewed in time; "
                "standing by so that no fire is delivered twice"
            )

    async def wait_until_held(self) -> None:
        """Poll until this process takes the lease (the holder is another process: no event):
        right after the holder's lease lapses (a holder that died is replaced as soon as the
        fence allows), and at least every third of the ttl (a holder that stopped releases its
        lease at once)."""
        while not await self.try_acquire():
            lapses_at = await self._runner.call(_lapses_at, self._runner.store)
            await anyio.sleep(min(self.ttl / 3, max(lapses_at - time.time(), 0.0) + _AFTER_S))

    async def keep(self) -> None:
        """Renew every third of the ttl until cancelled; raise LeaseLostError if taken."""
        assert self.owner is not None
        while True:
            await anyio.sleep(self.ttl / 3)
            if not await self.try_acquire():
                raise LeaseLostError("another process took the lease")

    def drop(self) -> None:
        if self.owner is not None:
            self._deliver_until = 0.0

    async def release(self) -> None:
        self.drop()
        if self.owner is not None:
            await self._runner.call(self._runner.store.release_lease, self.owner)
