"""Misfire planning: what an engine does with fire instants it reached late.

Pure and synchronous, like ``fire_times``. An engine that was down or stalled finds a schedule whose
next fire lies in the past; ``plan_misfire`` says which of the missed instants to deliver now, which
to record as missed, which expired (older than the grace window), and where the schedule stands
afterwards. The cost does not grow with the number of missed instants for intervals (arithmetic) and
grows with the number of missed *days* for wall-clock and calendar rates, so a long
downtime is planned in one short step; ``MisfirePolicy.ALL`` hands out at most ``limit`` deliveries
per plan and says where to continue.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import NamedTuple

from reventless._calendar_fires import calendar_fire_at_or_before, count_calendar_fires
from reventless._wall_time import ceil_minute, wall_fires_on
from reventless._zones import load_zone
from reventless.fire_times import as_utc, last_fire, next_fire_after, single_fires
from reventless.schedule import CalendarRate, IntervalRate, Schedule, Single, WallClockRate

__all__ = ("FireRange", "MisfirePlan", "MisfirePolicy", "plan_misfire")

_TICK = timedelta(microseconds=1)
_ONE_DAY = timedelta(days=1)
# A wall-clock rate fires at least once a week, so its previous fire is within 8 local days
# (9 counting the day after, whose fire can lie before a given instant: see _wall_at_or_before).
_MAX_DAYS_BACK = 9


class MisfirePolicy(enum.StrEnum):
    """What the local engine does with fires it missed (down or stalled) within the grace window.

    ``LATEST`` delivers one fire, for the most recent missed instant; ``ALL`` delivers each, oldest
    first; ``SKIP`` delivers none. Every missed instant not delivered is recorded as ``missed``;
    instants older than the grace window are recorded as ``expired``.
    """

    LATEST = "latest"
    ALL = "all"
    SKIP = "skip"


class FireRange(NamedTuple):
    """``size`` fire instants from ``first`` to ``last`` (both included), every one on the
    schedule's own grid, so each fire id can be derived from the range."""

    size: int
    first: datetime
    last: datetime


class MisfirePlan(NamedTuple):
    """What to do with a schedule found due at ``now``.

    - ``deliver``: instants to deliver now, oldest first.
    - ``missed``: due instants within the grace window that the policy does not deliver.
    - ``expired``: due instants older than the grace window (never delivered).
    - ``next_fire``: the schedule's next fire once these deliveries are recorded: the next
      instant still to deliver (``ALL`` with more than ``limit`` due), else the first fire
      strictly after ``now``; None when the schedule has completed.
    """

    deliver: tuple[datetime, ...]
    missed: FireRange | None
    expired: FireRange | None
    next_fire: datetime | None


def plan_misfire(
    schedule: Schedule,
    first_due: datetime,
    *,
    created_at: datetime,
    now: datetime,
    grace: timedelta,
    policy: MisfirePolicy,
    late_after: timedelta = timedelta(seconds=60),
    limit: int = 64,
) -> MisfirePlan:
    """Plan the due instants of ``schedule`` from ``first_due`` (its stored next fire) to ``now``.

    ``grace`` is the misfire grace window; instants older than ``now - grace`` expire.
    ``late_after`` is how late an instant may be handled and still count as on time under
    ``MisfirePolicy.SKIP``. ``limit`` (>= 1) bounds ``deliver`` under ``MisfirePolicy.ALL``.
    """
    created = as_utc(created_at, "created_at")
    first_due, now = as_utc(first_due, "first_due"), as_utc(now, "now")
    if first_due > now:
        return MisfirePlan((), None, None, first_due)
    grace_start = now - grace
    following = _after(schedule, first_due, created)
    if first_due >= grace_start and (following is None or following > now):
        # The usual case, on time or nearly: exactly one instant is due.
        if policy is MisfirePolicy.SKIP and first_due < now - late_after:
            return MisfirePlan((), FireRange(1, first_due, first_due), None, following)
        return MisfirePlan((first_due,), None, None, following)
    expired = _range(schedule, first_due, grace_start - _TICK, created)
    window_start = max(first_due, grace_start)
    window = _range(schedule, window_start, now, created)
    following = _after(schedule, now, created)
    if window is None:
        return MisfirePlan((), None, expired, following)
    if policy is MisfirePolicy.LATEST:
        missed = _range(schedule, window.first, window.last - _TICK, created)
        return MisfirePlan((window.last,), missed, expired, following)
    if policy is MisfirePolicy.SKIP:
        late_before = now - late_after
        missed = _range(schedule, window.first, late_before - _TICK, created)
        on_time = _range(schedule, max(window.first, late_before), now, created)
        deliver = () if on_time is None else _list(schedule, on_time.first, on_time.size, created)
        return MisfirePlan(deliver, missed, expired, following)
    deliver = _list(schedule, window.first, min(window.size, max(1, limit)), created)
    if len(deliver) < window.size:
        return MisfirePlan(deliver, None, expired, _after(schedule, deliver[-1], created))
    return MisfirePlan(deliver, None, expired, following)


def count_due(schedule: Schedule, first: datetime, now: datetime, *, created_at: datetime) -> int:
    """The number of fire instants of ``schedule`` from ``first`` to ``now``, both included."""
    found = _range(
        schedule,
        as_utc(first, "first"),
        as_utc(now, "now"),
        as_utc(created_at, "created_at"),
    )
    return 0 if found is None else found.size


def _after(schedule: Schedule, instant: datetime, created: datetime) -> datetime | None:
    return next_fire_after(schedule, instant, created_at=created)


def _list(
    schedule: Schedule, first: datetime, count: int, created: datetime
) -> tuple[datetime, ...]:
    instants = [first]
    while len(instants) < count:
        nxt = _after(schedule, instants[-1], created)
        if nxt is None:
            break
        instants.append(nxt)
    return tuple(instants)


def _range(
    schedule: Schedule, low: datetime, high: datetime, created: datetime
) -> FireRange | None:
    """The fire instants in ``[low, high]`` as a range, or None when there are none."""
    if schedule.not_before is not None and low < schedule.not_before:
        low = schedule.not_before
    end = last_fire(schedule, created)
    if end is not None and high > end:
        high = end
    if high < low:
        return None
    first = _at_or_after(schedule, low, created)
    last = _at_or_before(schedule, high, created)
    if first is None or last is None or last < first:
        return None
    return FireRange(_count(schedule, first, last, created), first, last)


def _at_or_after(schedule: Schedule, instant: datetime, created: datetime) -> datetime | None:
    try:
        return _after(schedule, instant - _TICK, created)
    except OverflowError:  # pragma: no cover - only at datetime.min
        return None


def _at_or_before(schedule: Schedule, instant: datetime, created: datetime) -> datetime | None:
    end = last_fire(schedule, created)
    if end is not None and instant > end:
        instant = end
    fire = _unbounded_at_or_before(schedule, instant, created)
    if fire is None or (schedule.not_before is not None and fire < schedule.not_before):
        return None
    return fire


def _unbounded_at_or_before(
    schedule: Schedule, instant: datetime, created: datetime
) -> datetime | None:
    rate = schedule.rate
    if isinstance(rate, Single):
        return max((fire for fire in single_fires(schedule) if fire <= instant), default=None)
    if isinstance(rate, IntervalRate):
        anchor = ceil_minute(created)
        step = timedelta(minutes=rate.minutes)
        if instant < anchor + step:
            return None
        return anchor + ((instant - anchor) // step) * step
    if isinstance(rate, CalendarRate):
        return calendar_fire_at_or_before(schedule, rate, instant)
    assert isinstance(rate, WallClockRate)
    return _wall_at_or_before(schedule, rate, instant)


def _wall_at_or_before(
    schedule: Schedule, rate: WallClockRate, instant: datetime
) -> datetime | None:
    zone = load_zone(schedule.timezone)
    # Start a day late: in an hour repeated across midnight, the next date's fire can lie before
    # an instant whose local date is still the earlier one.
    day = min(instant.astimezone(zone).date(), date.max - _ONE_DAY) + _ONE_DAY
    for _ in range(_MAX_DAYS_BACK):
        fires = [fire for fire in _wall_fires(zone, schedule, rate, day) if fire <= instant]
        if fires:
            return fires[-1]
        if day == date.min:
            return None
        day -= _ONE_DAY
    return None  # pragma: no cover - a wall-clock rate fires every week


def _wall_fires(
    zone: tzinfo, schedule: Schedule, rate: WallClockRate, day: date
) -> tuple[datetime, ...]:
    """The instants a wall-clock rate fires on local ``day`` (none when not its weekday)."""
    if day.weekday() not in rate.weekdays:
        return ()
    return wall_fires_on(zone, day, rate.hour, rate.minute, schedule.dst)


def _count(schedule: Schedule, first: datetime, last: datetime, created: datetime) -> int:
    """The number of fire instants from ``first`` to ``last``, both fire instants."""
    rate = schedule.rate
    if isinstance(rate, IntervalRate):
        return (last - first) // timedelta(minutes=rate.minutes) + 1
    if isinstance(rate, Single):
        return sum(1 for fire in single_fires(schedule) if first <= fire <= last)
    if isinstance(rate, CalendarRate):
        return count_calendar_fires(schedule, rate, first, last)
    assert isinstance(rate, WallClockRate)
    zone = load_zone(schedule.timezone)
    day, end = first.astimezone(zone).date(), last.astimezone(zone).date()
    if zone is UTC:
        return _weekdays_between(day, end, rate.weekdays)
    # A day's fire can lie outside its local date (shifted past midnight, the second pass of an
    # hour repeated across midnight): look one day further each way and count distinct instants
    # in the range (a shifted fire can fall on the next day's own).
    day = day - _ONE_DAY if day > date.min else day
    end = min(end + _ONE_DAY, date.max)
    seen: set[datetime] = set()
    # One step a local day: a downtime of ten years is about 3,650 cheap steps.
    while day <= end:
        seen.update(f for f in _wall_fires(zone, schedule, rate, day) if first <= f <= last)
        if day == date.max:
            break
        day += _ONE_DAY
    return len(seen)


def _weekdays_between(first: date, last: date, weekdays: frozenset[int]) -> int:
    """Days from ``first`` to ``last`` (included) whose weekday is in ``weekdays``."""
    days = (last - first).days + 1
    weeks, rest = divmod(days, 7)
    start = first.weekday()
    return weeks * len(weekdays) + sum(1 for k in range(rest) if (start + k) % 7 in weekdays)
