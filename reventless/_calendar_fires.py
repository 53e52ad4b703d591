"""Fire times of the calendar rates (Monthly, NthWeekday, Cron): their days, their fires on a
day under the DST policy, the next fire after an instant and the counting the misfire planning
needs. ``reventless.fire_times`` is their public home."""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from reventless._wall_time import (
    _FAST_DAYS,
    _MINUTE,
    _NOT_FOUND,
    _ONE_DAY,
    ceil_minute,
    local_date,
    wall_fires_on,
    wall_instants,
)
from reventless._zones import load_zone
from reventless.schedule import (
    CalendarRate,
    DstPolicy,
    Schedule,
)

__all__ = (
    "calendar_fire_at_or_before",
    "calendar_fires_on",
    "count_calendar_fires",
    "next_calendar_day",
    "previous_calendar_day",
)

# --- calendar rates (Monthly, NthWeekday, Cron) ------------------------------------------------
#
# A calendar rate fires at one or more wall times on the local dates its ``month_days`` picks.
# The days are found month by month (a month's days at once), so a rate that fires once in years
# costs a few hundred month look-ups, not a walk over every day. The fires of one day come from
# ``wall_fires_on`` for each wall time, the same rule the wall-clock rates follow, except on a
# day whose UTC offset is the same at its first and last minute, read either way (a plain day):
# there every wall time is its fold=0 reading and the fires keep the wall times' order.

# A gap or an overlap lasts less than a day, so the fires of a local date lie before those of the
# date two days later: the search looks at the day after the first day with a fire, no further.
# It gives up after this many dates with fires all skipped (a wall time that a zone's clocks
# jump over again and again), and the month walk after 400 years (the calendar's cycle).
_MAX_SKIPPED_DAYS = 64
_CYCLE_MONTHS = 400 * 12
_LAST_MINUTE = time(23, 59)


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def next_calendar_day(rate: CalendarRate, day: date) -> date | None:
    """The first local date on or after ``day`` on which ``rate`` fires; None: none before
    9999-12-31 (or after the rate's last year)."""
    for found in rate.month_days(day.year, day.month):  # the usual case: in the same month
        if found >= day.day:
            return day.replace(day=found)
    index = _month_index(day)
    years = rate.year_range
    end = _month_index(date.max)
    if years is not None:
        if day.year > years[1]:
            return None
        index = max(index, years[0] * 12)
        end = min(end, years[1] * 12 + 11)
    end = min(end, index + _CYCLE_MONTHS)
    first = day.day if index == _month_index(day) else 1
    while index <= end:
        year, month = divmod(index, 12)
        for found in rate.month_days(year, month + 1):
            if found >= first:
                return date(year, month + 1, found)
        index += 1
        first = 1
    return None


def previous_calendar_day(rate: CalendarRate, day: date) -> date | None:
    """The last local date on or before ``day`` on which ``rate`` fires; None: none."""
    index = _month_index(day)
    years = rate.year_range
    end = _month_index(date.min)
    if years is not None:
        if day.year < years[0]:
            return None
        index = min(index, years[1] * 12 + 11)
        end = max(end, years[0] * 12)
    end = max(end, index - _CYCLE_MONTHS)
    last = day.day if index == _month_index(day) else 31
    while index >= end:
        year, month = divmod(index, 12)
        for found in reversed(rate.month_days(year, month + 1)):
            if found <= last:
                return date(year, month + 1, found)
        index -= 1
        last = 31
    return None


def _plain_offset(zone: tzinfo, day: date) -> timedelta | None:
    """The UTC offset of local date ``day`` when it is the same at its first and last minute
    under either reading (no transition that day); None otherwise."""
    if zone is UTC:
        return _NO_OFFSET
    key = (zone, day)
    found = _PLAIN_OFFSETS.get(key, _UNKNOWN)
    if found is _UNKNOWN:
        if len(_PLAIN_OFFSETS) >= _MAX_PLAIN_OFFSETS:
            _PLAIN_OFFSETS.clear()
        found = _PLAIN_OFFSETS[key] = _day_offset(zone, day)
    return found


# The offsets of recent local dates by zone: the next fire of a calendar rate asks for the same
# date again and again (the dates a rate fires on are few). Bounded: emptied when full.
_PLAIN_OFFSETS: dict[tuple[tzinfo, date], timedelta | None] = {}
_MAX_PLAIN_OFFSETS = 65_536
_UNKNOWN = timedelta(days=-99)  # not a UTC offset: absent from the cache
_NO_OFFSET = timedelta(0)


def _day_offset(zone: tzinfo, day: date) -> timedelta | None:
    start = datetime.combine(day, time(0, 0))
    end = datetime.combine(day, _LAST_MINUTE)
    offset = zone.utcoffset(start)
    if (
        offset != zone.utcoffset(start.replace(fold=1))
        or offset != zone.utcoffset(end)
        or offset != zone.utcoffset(end.replace(fold=1))
    ):
        return None
    return offset


def calendar_fires_on(
    zone: tzinfo, day: date, rate: CalendarRate, dst: DstPolicy
) -> list[datetime]:
    """The fire instants of the wall times of ``rate`` on local date ``day`` (whether the rate
    fires that day is not checked here), in order, one per instant (a day's wall times may
    share an instant only across a gap or an overlap)."""
    offset = _plain_offset(zone, day) if date.min < day < date.max else None
    if offset is not None:
        base = datetime(day.year, day.month, day.day, tzinfo=UTC) - offset
        fires = [base + _DAY_MINUTES[minute] for minute in rate.day_minutes]
        if base.second:  # a local mean time offset
            fires = [ceil_minute(fire) for fire in fires]
        return fires
    key = (zone, day, rate, dst)
    cached = _TRANSITION_DAYS.get(key)
    if cached is None:
        found: set[datetime] = set()
        for hour, minute in rate.wall_times:
            found.update(wall_fires_on(zone, day, hour, minute, dst))
        if len(_TRANSITION_DAYS) >= 256:
            _TRANSITION_DAYS.clear()
        cached = _TRANSITION_DAYS[key] = sorted(found)
    return cached


# The fires of recent days with a transition, which take a round trip per wall time: the
# search asks for the same day again at each of its fires.
_TRANSITION_DAYS: dict[tuple[tzinfo, date, CalendarRate, DstPolicy], list[datetime]] = {}


def _first_calendar_fire_on(
    zone: tzinfo, day: date, rate: CalendarRate, dst: DstPolicy, after: datetime
) -> datetime | None:
    """The first fire of local date ``day`` strictly after ``after``."""
    offset = _plain_offset(zone, day) if date.min < day < date.max else None
    if offset is None:
        fires = calendar_fires_on(zone, day, rate, dst)
        return next((fire for fire in fires if fire > after), None)
    return _first_plain_fire(day, offset, rate, after)


def _first_plain_fire(
    day: date, offset: timedelta, rate: CalendarRate, after: datetime
) -> datetime | None:
    """The first fire after ``after`` of plain local date ``day`` whose UTC offset is ``offset``."""
    base = datetime.combine(day, _MIDNIGHT_UTC) - offset
    minutes = rate.day_minutes
    if base > after:
        fire = base + _DAY_MINUTES[minutes[0]]
        return ceil_minute(fire) if fire.second else fire
    # The wall minute of `after` that day: the first wall time past it is the candidate (or the
    # one before, where an offset with seconds puts a fire late in its minute).
    index = bisect_right(minutes, (after - base) // _MINUTE)
    for minute in minutes[max(index - 1, 0) :]:
        fire = base + _DAY_MINUTES[minute]
        if fire.second:
            fire = ceil_minute(fire)
        if fire > after:
            return fire
    return None


_MIDNIGHT_UTC = time(0, 0, tzinfo=UTC)
_DAY_MINUTES = [timedelta(minutes=minute) for minute in range(1440)]


def _next_calendar_fire(
    zone: tzinfo, rate: CalendarRate, dst: DstPolicy, after: datetime
) -> datetime | None:
    if dst.gap == "skip" and dst.overlap == "first":
        fire = _next_default_calendar_fire(zone, rate, after)
        if fire is not _NOT_FOUND:
            return fire
    start = local_date(after, zone)
    day = next_calendar_day(rate, start - _ONE_DAY if start > date.min else start)
    best: datetime | None = None
    best_day: date | None = None
    skipped = 0
    while day is not None:
        if best_day is not None and day > best_day + _ONE_DAY:
            break
        fire = _first_calendar_fire_on(zone, day, rate, dst, after)
        if fire is not None and (best is None or fire < best):
            best = fire
            best_day = best_day or day
        elif best is None and day > start:
            skipped += 1
            if skipped > _MAX_SKIPPED_DAYS:
                return None
        if day == date.max:
            break
        day = next_calendar_day(rate, day + _ONE_DAY)
    return best


def _next_default_calendar_fire(
    zone: tzinfo, rate: CalendarRate, after: datetime
) -> datetime | None:
    """The next fire under the default policy while the dates it looks at are plain, as
    ``_next_calendar_fire`` finds it, with less work; ``_NOT_FOUND`` at a date with a transition,
    near the ends of the datetime range, or after ``_FAST_DAYS`` dates without a fire.

    Under the default policy no fire of an earlier local date lies after ``after`` (each is the
    first reading of its wall time, before the clocks first showed the later date), and on a
    plain date every fire lies within the date: so the first plain date with a fire after
    ``after`` has the next fire.
    """
    try:
        day = after.astimezone(zone).date()
    except OverflowError:
        return _NOT_FOUND
    if day.year == 1 or day.year >= 9999:
        return _NOT_FOUND
    for _ in range(_FAST_DAYS):
        found = next_calendar_day(rate, day)
        if found is None or found.year >= 9999:
            return _NOT_FOUND
        offset = _plain_offset(zone, found)
        if offset is None:
            return _NOT_FOUND
        fire = _first_plain_fire(found, offset, rate, after)
        if fire is not None:
            return fire
        day = found + _ONE_DAY
    return _NOT_FOUND


def calendar_fire_at_or_before(
    schedule: Schedule, rate: CalendarRate, instant: datetime
) -> datetime | None:
    """The last fire of a calendar rate at or before ``instant``; None: none."""
    zone, dst = load_zone(schedule.timezone), schedule.dst
    start = local_date(instant, zone)
    day = previous_calendar_day(rate, start + _ONE_DAY if start < date.max else start)
    best: datetime | None = None
    best_day: date | None = None
    skipped = 0
    while day is not None:
        if best_day is not None and day < best_day - _ONE_DAY:
            break
        fires = [fire for fire in calendar_fires_on(zone, day, rate, dst) if fire <= instant]
        if fires and (best is None or fires[-1] > best):
            best = fires[-1]
            best_day = best_day or day
        elif best is None and day < start:
            skipped += 1
            if skipped > _MAX_SKIPPED_DAYS:
                return None
        if day == date.min:
            break
        day = previous_calendar_day(rate, day - _ONE_DAY)
    return best


def count_calendar_fires(
    schedule: Schedule, rate: CalendarRate, first: datetime, last: datetime
) -> int:
    """The number of fire instants of a calendar rate from ``first`` to ``last`` (included).

    A fire of one date can fall on the instant of a fire of the next only when one of the two
    has a transition (a shifted fire landing on the next day's own): only there are the two
    days' fires compared.
    """
    zone, dst = load_zone(schedule.timezone), schedule.dst
    start = local_date(first, zone)
    end = local_date(last, zone)
    day = next_calendar_day(rate, start - _ONE_DAY if start > date.min else start)
    end = min(end + _ONE_DAY, date.max) if end < date.max else end
    count = 0
    previous: tuple[date, list[datetime], bool] | None = None
    while day is not None and day <= end:
        fires = [f for f in calendar_fires_on(zone, day, rate, dst) if first <= f <= last]
        plain = _plain_offset(zone, day) is not None
        count += len(fires)
        if previous is not None and previous[0] == day - _ONE_DAY and not (plain and previous[2]):
            count -= len(set(fires).intersection(previous[1]))
        previous = (day, fires, plain)
        if day == date.max:
            break
        day = next_calendar_day(rate, day + _ONE_DAY)
    return count


def _fires_on_date(rate: CalendarRate, day: date) -> bool:
    return day.day in rate.month_days(day.year, day.month)


def _gap_walls(zone: tzinfo, rate: CalendarRate, day: date) -> list[tuple[datetime, datetime]]:
    """The wall times (naive) of local date ``day`` that fall into a gap, each with the instant
    that ``gap="shift"`` gives it; none on a plain day or a day the rate does not fire."""
    if not _fires_on_date(rate, day) or not date.min < day < date.max:
        return []
    if _plain_offset(zone, day) is not None:
        return []
    found = []
    for hour, minute in rate.wall_times:
        pair = wall_instants(zone, day.year, day.month, day.day, hour, minute)
        if pair is not None and pair[0] > pair[1]:
            found.append((datetime(day.year, day.month, day.day, hour, minute), pair[0]))
    return found


def _calendar_gap_days(
    zone: tzinfo, rate: CalendarRate, since: datetime, fire: datetime
) -> tuple[date, ...]:
    """Local dates with a wall time in a gap that would have fired after ``since`` and before
    ``fire`` (read with the offset after the gap, where the clocks resume)."""
    days = []
    day = local_date(since, zone)
    end = local_date(fire, zone)
    found = next_calendar_day(rate, day)
    while found is not None and found <= end:
        walls = _gap_walls(zone, rate, found)
        if any(since < ceil_minute(shifted) <= fire for _, shifted in walls):
            days.append(found)
        if found == date.max:
            break
        found = next_calendar_day(rate, found + _ONE_DAY)
    return tuple(days)


def _calendar_shifted_from(
    zone: tzinfo, rate: CalendarRate, instant: datetime, day: date
) -> datetime | None:
    """The wall time in a gap that ``gap="shift"`` moved to ``instant`` (none: the instant is a
    wall time of its own, which a shifted one may coincide with)."""
    days = (day - _ONE_DAY, day) if day > date.min else (day,)
    own = instant.astimezone(zone)
    if _fires_on_date(rate, own.date()) and (own.hour, own.minute) in rate.wall_times:
        return None
    for wall_day in days:
        for wall, shifted in _gap_walls(zone, rate, wall_day):
            if ceil_minute(shifted) == instant:
                return wall
    return None
