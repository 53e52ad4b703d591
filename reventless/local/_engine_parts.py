"""The engine's small parts: the catch-up it tells about once per lead, a due batch read ahead,
the watches its delivery workers share with the watchdog, and how it picks the one error a
caller should see out of a task group's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import anyio
import anyio.abc
import anyio.lowlevel
import sniffio

from reventless.errors import (
    ReventlessError,
)
from reventless.local._connection import LeaseLostError
from reventless.local._rows import RetryRow, ScheduleRow, from_us
from reventless.misfire import FireRange, MisfirePlan, count_due
from reventless.schedule import Schedule
from reventless.scheduler_adapter import MisfirePolicy

__all__ = (
    "CatchUp",
    "Countdown",
    "DueBatch",
    "Instants",
    "Watch",
    "cancelled_by_caller",
    "count_catch_up",
    "cut_overdue",
    "leaves",
    "raise_leaf",
)


class DueBatch:
    """One batch taken from the due index at ``now``: the ids to read, then their rows, read in
    the store's thread while the batch before it is planned (``Engine._dispatch_loop``)."""

    __slots__ = ("error", "fire_ids", "now", "read", "retries", "retry_ids", "rows")

    def __init__(self, now: datetime, fire_ids: list[int], retry_ids: list[int]) -> None:
        self.now = now
        self.fire_ids = fire_ids
        self.retry_ids = retry_ids
        self.rows: list[ScheduleRow] = []
        self.retries: list[RetryRow] = []
        self.read = anyio.Event()  # set once the rows are read, or the read failed
        self.error: Exception | None = None


class CatchUp:
    """The fires found due from before this engine took the lease (by more than ``_LATE_AFTER``:
    they fell due while no engine ran), as the misfire policy planned them; one per lead, told
    once its planning is done (the engine's first sleep)."""

    __slots__ = ("before_us", "delivered", "due", "expired", "missed", "policy", "rows")

    def __init__(self, before_us: int, policy: MisfirePolicy) -> None:
        self.before_us = before_us
        self.policy = policy
        self.rows: set[int] = set()  # each schedule counted at its first plan only
        self.due = self.delivered = self.missed = self.expired = 0

    def add(self, deliver: int, missed: FireRange | None, expired: FireRange | None) -> None:
        missed_n = 0 if missed is None else missed.size
        expired_n = 0 if expired is None else expired.size
        self.due += deliver + missed_n + expired_n
        self.delivered += deliver
        self.missed += missed_n
        self.expired += expired_n


def count_catch_up(
    catch_up: CatchUp,
    row: ScheduleRow,
    timing: Schedule,
    plan: MisfirePlan,
    now: datetime,
    instant: Callable[[int], datetime],
) -> None:
    """Count a schedule found due from before the lead (its first plan: under ``all``, the
    fires past this plan's chunk are counted now)."""
    if row.id in catch_up.rows:
        return
    catch_up.rows.add(row.id)
    later = 0
    if plan.deliver and plan.next_fire is not None and plan.next_fire <= now:
        later = count_due(timing, plan.next_fire, now, created_at=instant(row.created_at))
    catch_up.add(len(plan.deliver) + later, plan.missed, plan.expired)


class Instants:
    """``from_us``, remembered (up to ``limit`` instants): a burst or a batch created together
    shares its instants."""

    __slots__ = ("_found", "_limit")

    def __init__(self, limit: int) -> None:
        self._found: dict[int, datetime] = {}
        self._limit = limit

    def __call__(self, us: int) -> datetime:
        found = self._found.get(us)
        if found is None:
            if len(self._found) >= self._limit:
                self._found.clear()
            found = self._found[us] = from_us(us)
        return found


class Watch:
    """One delivery worker as the watchdog sees it: the scope to cancel and when the delivery
    under way started (``time.monotonic()``; None between deliveries)."""

    __slots__ = ("scope", "started")

    def __init__(self) -> None:
        self.scope: anyio.CancelScope | None = None
        self.started: float | None = None


class Countdown:
    """Set ``done`` once ``count_down`` was called ``count`` times."""

    __slots__ = ("done", "left")

    def __init__(self, count: int) -> None:
        self.left = count
        self.done = anyio.Event()

    def count_down(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set()


def cut_overdue(watches: list[Watch], now: float, timeout: float) -> float:
    """Cancel every delivery older than ``timeout``; return the seconds until the next one
    could be."""
    wait = timeout
    for watch in watches:
        started = watch.started
        if started is None:
            continue
        left = started + timeout - now
        if left <= 0 and watch.scope is not None:
            watch.started = None
            watch.scope.cancel()
        else:
            wait = min(wait, left)
    return max(wait, 0.001)


def cancelled_by_caller() -> bool:
    """Whether a cancellation seen now was requested for this task (not merely let through)."""
    if sniffio.current_async_library() != "asyncio":
        return True  # trio's Cancelled cannot be raised by a target on its own
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(leaves(exc))
        else:
            found.append(exc)
    return found


def raise_leaf(group: BaseExceptionGroup[BaseException]) -> None:
    """Raise the one error a caller should see for a failed lead; return when the lease moved.

    The same on asyncio and trio: KeyboardInterrupt and SystemExit come out bare, a typed error
    comes out alone (the first, with the group as its cause), anything else as the group.
    """
    found = leaves(group)
    for leaf in found:
        if isinstance(leaf, (KeyboardInterrupt, SystemExit)):
            raise leaf
    if all(isinstance(leaf, LeaseLostError) for leaf in found):
        return
    typed = [leaf for leaf in found if isinstance(leaf, ReventlessError)]
    if typed and len(typed) == len(found):
        raise typed[0] from group
    raise group
