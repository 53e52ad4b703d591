"""The Clock port and its implementations: system, scaled and virtual time.

The engine never reads the time or sleeps on its own: it asks a Clock. That makes the same engine
run in real time, faster than real time (demos, crash tests), or under a VirtualClock that a test
moves forward by hand and that only returns once everything due has been delivered.

Two things are deliberately *not* on the clock, because they are about processes and I/O rather
than about schedule time: the per-delivery timeout and the cross-process lease. Both use real
seconds.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

import anyio

from reventless.errors import ValidationError
from reventless.fire_times import as_utc

__all__ = ("Clock", "Hold", "ScaledClock", "SystemClock", "VirtualClock")

# Real clocks re-check the time at least this often, so a wall-clock step (NTP, suspend) is
# noticed within this bound instead of after one long sleep.
_MAX_REAL_SLEEP = 30.0


class Hold(Protocol):
    """Work in progress that a virtual clock waits for before moving time on."""

    def release(self) -> None:
        """End the hold; calling it again does nothing."""


@runtime_checkable
class Clock(Protocol):
    """Where the engine gets the time and how it waits for it.

    - ``now()`` returns the current instant as an aware UTC datetime. It never goes backwards
      within one clock object.
    - ``await sleep_until(deadline)`` returns once ``now() >= deadline`` (``None``: never; wait
      for cancellation). It is cancellable at any point and then leaves nothing behind.
    - ``hold()`` marks work started because of time (a fire being delivered) that a virtual clock
      must see finish before it moves on; real clocks return a hold that does nothing.
    - ``work()`` is a context manager for a long-lived task whose sleeps count as idle and whose
      waking counts as busy until it sleeps again (the engine's main loop).
    """

    def now(self) -> datetime: ...

    async def sleep_until(self, deadline: datetime | None) -> None: ...

    def hold(self) -> Hold: ...

    def work(self) -> AbstractContextManager[None]: ...


class _NoHold:
    __slots__ = ()

    def release(self) -> None:
        return None


_NO_HOLD = _NoHold()


class _RealClockBase:
    """Shared by the clocks that follow real time."""

    def now(self) -> datetime:  # pragma: no cover - overridden
        raise NotImplementedError

    def _real_seconds_until(self, deadline: datetime) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    async def sleep_until(self, deadline: datetime | None) -> None:
        if deadline is None:
            await anyio.sleep_forever()
            return
        deadline = as_utc(deadline, "deadline")
        # A loop, not one sleep: the wall clock can step while we sleep (NTP, suspend).
        while (remaining := self._real_seconds_until(deadline)) > 0:  # noqa: ASYNC110
            await anyio.sleep(min(remaining, _MAX_REAL_SLEEP))

    def hold(self) -> Hold:
        return _NO_HOLD

    @contextmanager
    def work(self) -> Iterator[None]:
        yield


class SystemClock(_RealClockBase):
    """The machine's UTC wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def _real_seconds_until(self, deadline: datetime) -> float:
        return (deadline - datetime.now(UTC)).total_seconds()


class ScaledClock(_RealClockBase):
    """Simulated time that runs ``speed`` times faster than real time, from ``start``.

    ``ScaledClock(3600)`` passes one simulated hour per real second. Useful for demos and for crash
    tests, where a real process must run through many fires quickly.
    """

    def __init__(self, speed: float, *, start: datetime | None = None) -> None:
        if not isinstance(speed, (int, float)) or isinstance(speed, bool) or not speed > 0:
            raise ValidationError("speed", speed, "a number greater than 0")
        if speed > 1e7:
            raise ValidationError("speed", speed, "at most 10,000,000 simulated seconds a second")
        self.speed = float(speed)
        self._start = datetime.now(UTC) if start is None else as_utc(start, "start")
        self._real_start = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._real_start) * self.speed
        try:
            return self._start + timedelta(seconds=elapsed)
        except OverflowError as exc:
            raise ValidationError(
                "start",
                self._start,
                "an instant that leaves the clock room to run",
                message=(
                    f"ScaledClock from {self._start.isoformat()} at {self.speed:g}x has run past "
                    "9999-12-31, the last instant a datetime holds; start it earlier"
                ),
            ) from exc

    def _real_seconds_until(self, deadline: datetime) -> float:
        return (deadline - self.now()).total_seconds() / self.speed


class _VirtualHold:
    __slots__ = ("_clock", "_held")

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._held = True
        clock._acquire_one()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._clock._release_one()

    def resume(self) -> None:
        if not self._held:
            self._held = True
            self._clock._acquire_one()


class _Sleeper:
    __slots__ = ("done", "event", "hold")

    def __init__(self, hold: _VirtualHold | None) -> None:
        self.event = anyio.Event()
        self.hold = hold
        self.done = False


_current_work: ContextVar[_VirtualHold | None] = ContextVar("reventless_work", default=None)


class VirtualClock:
    """Time that moves only when a test says so, deterministically.

    ``await clock.advance(delta)`` moves time forward in steps, to each sleeper's deadline in turn,
    and after each step waits until every hold is released and every working task sleeps again:
    when it returns, every fire due up to the new instant has been delivered and recorded.
    """

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start, "start")
        self._sleepers: list[tuple[datetime, int, _Sleeper]] = []
        self._counter = itertools.count()
        self._busy = 0
        # Created on demand: anyio events need a running event loop, a clock does not.
        self._idle_event: anyio.Event | None = None

    def now(self) -> datetime:
        return self._now

    def hold(self) -> Hold:
        return _VirtualHold(self)

    @contextmanager
    def work(self) -> Iterator[None]:
        hold = self.hold()
        assert isinstance(hold, _VirtualHold)
        token = _current_work.set(hold)
        try:
            yield
        finally:
            _current_work.reset(token)
            hold.release()

    def _acquire_one(self) -> None:
        self._busy += 1

    def _release_one(self) -> None:
        self._busy -= 1
        if self._busy == 0 and self._idle_event is not None:
            self._idle_event.set()
            self._idle_event = None

    async def sleep_until(self, deadline: datetime | None) -> None:
        if deadline is not None:
            deadline = as_utc(deadline, "deadline")
            if deadline <= self._now:
                await anyio.lowlevel.checkpoint()
                return
        hold = _current_work.get()
        sleeper = _Sleeper(hold)
        if deadline is not None:  # a sleeper without a deadline only wakes by cancellation
            heapq.heappush(self._sleepers, (deadline, next(self._counter), sleeper))
        if hold is not None:
            hold.release()  # asleep: idle until woken
        try:
            await sleeper.event.wait()
        finally:
            sleeper.done = True
            if hold is not None and not sleeper.event.is_set():
                # Woken by cancellation rather than by time: busy again from here.
                hold.resume()

    async def wait_idle(self) -> None:
        """Return once no hold is outstanding and every working task is asleep."""
        while True:
            while self._busy:
                if self._idle_event is None:
                    self._idle_event = anyio.Event()
                await self._idle_event.wait()
            # Let tasks that a release just made runnable take their turn before anyone looks.
            await anyio.lowlevel.checkpoint()
            if not self._busy:
                return

    async def advance(self, delta: timedelta) -> None:
        """Move time forward by ``delta`` (>= 0), running everything that falls due on the way."""
        if not isinstance(delta, timedelta) or delta < timedelta(0):
            raise ValidationError("delta", delta, "a timedelta of zero or more")
        await self.advance_to(self._now + delta)

    async def advance_to(self, instant: datetime) -> None:
        """Move time forward to ``instant``; see ``advance``."""
        target = as_utc(instant, "instant")
        if target < self._now:
            raise ValidationError("instant", instant, f"no earlier than now ({self._now})")
        await self.wait_idle()
        while self._sleepers and self._sleepers[0][0] <= target:
            self._now = max(self._now, self._sleepers[0][0])
            self._wake_due()
            await self.wait_idle()
        self._now = target
        self._wake_due()
        await self.wait_idle()

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, sleeper = heapq.heappop(self._sleepers)
            if sleeper.done:
                continue  # its task was cancelled out of the sleep already
            if sleeper.hold is not None:
                sleeper.hold.resume()
            sleeper.event.set()
