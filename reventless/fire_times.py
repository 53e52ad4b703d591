"""When a schedule fires: the one pure function both engines use, and what is built on it.

Rules (SEMANTICS.md section 2), in brief:

- Every fire instant is a whole UTC minute.
- Intervals (Minutes, Hours, Days) are fixed durations anchored at the creation instant rounded up
  to the minute; fires are at ``anchor + k * interval`` for k >= 1. The zone plays no part.
- Wall-clock variants fire at their wall time in the schedule's zone on the allowed local weekdays.
  The schedule's ``DstPolicy`` says what happens when the clocks change. By default a wall time
  inside a spring-forward gap is skipped that day and one that occurs twice (fall-back) fires
  once, at its first occurrence. ``gap="shift"`` fires a wall time in a gap at the instant it
  names with the UTC offset in force before the gap (RFC 5545), as far after the gap's end as it
  lies after the gap's start; ``overlap="last"`` fires at the second occurrence, ``"both"`` at
  each. Two days' fires that fall on one instant (a shifted fire on a day a zone skipped
  entirely) are one fire.
- Single fires at its wall-clock minute under the same policy: once, or at both occurrences of a
  repeated wall time under ``overlap="both"``; then it is complete.
- Where the zone's UTC offset has seconds (local mean time, before about 1900; Monrovia until
  1972), a wall time begins between two UTC minutes; it fires at the next whole UTC minute.

All datetimes in and out are aware; results are in UTC.

At the ends of the datetime range the functions stay total: a fire later than 9999-12-31 23:59
UTC does not exist (None, or the iteration ends), nor does a wall-clock fire on a local date
outside 0001-01-01 to 9999-12-31; ``preview`` leaves out interval fires whose local time it
cannot show. An input instant with no UTC equivalent in the range is refused with ValidationError.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo

import msgspec

from reventless._calendar_fires import (
    _calendar_gap_days,
    _calendar_shifted_from,
    _next_calendar_fire,
)
from reventless._timefmt import strftime
from reventless._wall_time import (
    _FAST_DAYS,
    _NOT_FOUND,
    _ONE_DAY,
    _apply_dst,
    ceil_minute,
    local_date,
    wall_fires_on,
    wall_instants,
)
from reventless._zones import load_zone, resolve_wall_time
from reventless.errors import ValidationError
from reventless.schedule import (
    CalendarRate,
    Cron,
    Daily,
    Days,
    DstPolicy,
    Hours,
    IntervalRate,
    Minutes,
    Monthly,
    NthWeekday,
    Schedule,
    Single,
    WallClockRate,
    Weekdays,
    WeekdaysAndSaturday,
)

__all__ = (
    "FirePreview",
    "fire_jitter",
    "fire_times",
    "first_fire",
    "jitter_of",
    "last_fire",
    "next_fire_after",
    "preview",
    "single_fires",
    "single_is_past",
    "wall_fires_on",
)

# A wall-clock variant fires at least weekly; a gap can skip a day or two. Searching this many
# days ahead is therefore always enough, and keeps the function total.
_MAX_DAYS_AHEAD = 400
MAX_PREVIEW = 10_000


def as_utc(value: object, field: str) -> datetime:
    """Return an aware datetime converted to UTC, or raise ValidationError naming ``field``."""
    if not isinstance(value, datetime):
        raise ValidationError(field, value, "an aware datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            field,
            value,
            "an aware datetime",
            message=(
                f"{field} {value.isoformat()} is naive; pass an aware datetime, "
                "e.g. datetime.now(timezone.utc)"
            ),
        )
    if value.tzinfo is UTC:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValidationError(
            field,
            value,
            "an instant from 0001-01-01 00:00 to 9999-12-31 23:59:59.999999 UTC",
            message=(
                f"{field} {value.isoformat()} is not allowed; expected an instant from "
                "0001-01-01 00:00 to 9999-12-31 23:59:59.999999 UTC"
            ),
        ) from exc


def jitter_of(schedule: Schedule, instant: datetime) -> timedelta:
    """How long after its nominal ``instant`` the embedded engine delivers a fire of
    ``schedule``: whole seconds from 0 to ``jitter_minutes`` minutes (excluded), derived from the
    fire id by SHA-256, so that every process and every restart agrees; zero without jitter."""
    minutes = schedule.jitter_minutes
    return fire_jitter(schedule.name, instant, minutes) if minutes else timedelta(0)


@functools.lru_cache(maxsize=1024)
def _utc_stamp(instant: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of ``instant`` in UTC; cached: the fires of a batch share a few
    instants, and formatting costs more than the hash of the fire id."""
    return f"{instant.astimezone(UTC):%Y-%m-%dT%H:%M:%S}"


def fire_jitter(name: str, instant: datetime, minutes: int) -> timedelta:
    """``jitter_of`` from the schedule's name and jitter window: the first 8 bytes of the SHA-256
    of the fire id (``name@YYYY-MM-DDTHH:MM:SSZ``), modulo the window's seconds."""
    text = f"{name}@{_utc_stamp(instant)}Z".encode()
    digest = int.from_bytes(hashlib.sha256(text).digest()[:8], "big")
    return timedelta(seconds=digest % (minutes * 60))


def next_fire_after(
    schedule: Schedule, after: datetime, *, created_at: datetime | None = None
) -> datetime | None:
    """The first fire instant strictly later than ``after``, or None when there is none.

    ``created_at`` (default: ``after``) anchors interval variants. Both must be aware datetimes.
    A schedule's window (``not_before``, ``not_after``) leaves out the fires outside it.
    """
    if schedule.not_before is None and schedule.not_after is None and schedule.max_fires is None:
        return _next_fire(schedule, after, created_at)
    return _next_fire_in_window(schedule, after, created_at)


def _next_fire_in_window(
    schedule: Schedule, after: datetime, created_at: datetime | None
) -> datetime | None:
    after = as_utc(after, "after")
    created = after if created_at is None else as_utc(created_at, "created_at")
    fire = _next_fire_between(schedule, after, created)
    high = last_fire(schedule, created)
    if fire is None or (high is not None and fire > high):
        return None
    return fire


def _next_fire_between(schedule: Schedule, after: datetime, created: datetime) -> datetime | None:
    """The next fire after ``after`` within ``not_before`` / ``not_after``."""
    low, high = schedule.not_before, schedule.not_after
    if low is not None and after < low and low > _EARLIEST:
        after = low - _TICK  # fires from `low` on, `low` included
    fire = _next_fire(schedule, after, created)
    if fire is None or (high is not None and fire > high):
        return None
    return fire


def last_fire(schedule: Schedule, created_at: datetime) -> datetime | None:
    """The latest instant a schedule created at ``created_at`` may fire at: ``not_after``, or
    its ``max_fires``-th fire from its creation when that comes first; None: no such bound
    (or fewer fires than ``max_fires`` before the end of its window)."""
    count = schedule.max_fires
    if count is None:
        return schedule.not_after
    created = as_utc(created_at, "created_at")
    key = (schedule, created)
    found = _LAST_FIRES.get(key, _EARLIEST)
    if found is _EARLIEST:
        found = None
        cursor = created
        for _ in range(count):
            nxt = _next_fire_between(schedule, cursor, created)
            if nxt is None:
                found = schedule.not_after
                break
            cursor = found = nxt
        if len(_LAST_FIRES) >= 1024:
            _LAST_FIRES.clear()
        _LAST_FIRES[key] = found
    return found


# The last fire under max_fires by (schedule, creation instant): the engine asks again at each
# fire. Bounded: emptied when full.
_LAST_FIRES: dict[tuple[Schedule, datetime], datetime | None] = {}


_TICK = timedelta(microseconds=1)
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _next_fire(schedule: Schedule, after: datetime, created_at: datetime | None) -> datetime | None:
    """``next_fire_after`` without the window."""
    if after.__class__ is not datetime or after.tzinfo is not UTC:
        after = as_utc(after, "after")  # (the usual UTC datetime skips the call)
    rate = schedule.rate
    kind = rate.__class__
    if kind in _INTERVALS or (kind not in _WALL_CLOCKS and isinstance(rate, IntervalRate)):
        created = after if created_at is None else created_at
        if created.__class__ is not datetime or created.tzinfo is not UTC:
            created = as_utc(created, "created_at")
        # Inline, not a call: intervals are the cheapest fires and the most frequent ones.
        grid = _GRIDS.get(created)
        if grid is None or (grid[0] is not rate and grid[0] != rate):
            grid = _grid(rate, created)  # type: ignore[arg-type]  # narrowed by the class test
        _, anchor, step, first = grid
        if first is None or after < first:
            return first  # None: not even the first fire is before 9999-12-31 23:59 UTC
        try:
            # The next point of the grid anchor + k * step strictly after `after`: the time to
            # it is (anchor - after) % step, or a whole step when `after` is itself a point.
            return after + ((anchor - after) % step or step)
        except OverflowError:  # the next fire lies after 9999-12-31 23:59 UTC
            return None
    if kind in _CALENDARS:
        calendar: CalendarRate = rate  # type: ignore[assignment]  # narrowed by the class test
        return _next_calendar_fire(load_zone(schedule.timezone), calendar, schedule.dst, after)
    if kind in _WALL_CLOCKS or isinstance(rate, WallClockRate):
        return _next_wall_clock_fire(schedule, rate, after)  # type: ignore[arg-type]  # narrowed by the class test
    return _next_calendar_or_single(schedule, after)


def _next_wall_clock_fire(
    schedule: Schedule, wall: WallClockRate, after: datetime
) -> datetime | None:
    zone, dst = load_zone(schedule.timezone), schedule.dst
    if zone is not UTC and dst.gap == "skip" and dst.overlap == "first":
        # The usual case, one call deep.
        fire = _next_default_wall_fire(zone, wall.hour, wall.minute, wall.weekdays, after)
        if fire is not _NOT_FOUND:
            return fire
    return _next_wall_fire(zone, wall, dst, after)


def _next_calendar_or_single(schedule: Schedule, after: datetime) -> datetime | None:
    rate = schedule.rate
    if isinstance(rate, CalendarRate):
        return _next_calendar_fire(load_zone(schedule.timezone), rate, schedule.dst, after)
    return next((fire for fire in single_fires(schedule) if fire > after), None)


# The rate classes, tested before isinstance (for a subclass): a set lookup costs a third of an
# isinstance with the rates' metaclass.
_INTERVALS = frozenset({Minutes, Hours, Days})
_WALL_CLOCKS = frozenset({Daily, Weekdays, WeekdaysAndSaturday})
_CALENDARS = frozenset({Monthly, NthWeekday, Cron})

_Grid = tuple[IntervalRate, datetime, timedelta, datetime | None]
# The grid of an interval by its creation instant: one per schedule, asked for again at each of
# its fires. The rate is checked by identity first (the engine shares one object per distinct
# rate), then by value; another rate created at the same instant replaces it. A plain dict,
# emptied when full: cheaper to look up than an lru_cache.
_GRIDS: dict[datetime, _Grid] = {}
_MAX_GRIDS = 4096


def _grid(rate: IntervalRate, created: datetime) -> _Grid:
    """An interval's grid: the rate, its anchor (the creation instant rounded up to the minute),
    its step and its first fire (None: not before 9999-12-31 23:59 UTC)."""
    step = timedelta(minutes=rate.minutes)
    try:
        anchor = ceil_minute(created)
        grid: _Grid = (rate, anchor, step, anchor + step)
    except OverflowError:  # created in the last minutes of 9999: no fire is left
        grid = (rate, created, step, None)
    if len(_GRIDS) >= _MAX_GRIDS:
        _GRIDS.clear()
    _GRIDS[created] = grid
    return grid


def single_fires(schedule: Schedule) -> tuple[datetime, ...]:
    """The fire instants of a Single schedule, in order: one, or two under overlap="both"
    when its wall time occurs twice."""
    rate = schedule.rate
    if not isinstance(rate, Single):
        raise ValidationError("rate", rate, "a Single")
    key = (rate, schedule.timezone, schedule.dst)
    fires = _SINGLE_FIRES.get(key)
    if fires is not None:
        return fires
    pair = wall_instants(
        load_zone(schedule.timezone), rate.year, rate.month, rate.day, rate.hour, rate.minute
    )
    # A Single's year (1970-2199) keeps the instants in range, and Schedule refuses one in a
    # gap unless the gap policy shifts it, so it has at least one fire.
    assert pair is not None
    fires = _apply_dst(*pair, schedule.dst)
    assert fires
    if len(_SINGLE_FIRES) >= _MAX_SINGLE_FIRES:
        _SINGLE_FIRES.clear()
    _SINGLE_FIRES[key] = fires
    return fires


# A Single's instants by (its rate, zone and DST policy): a burst of Singles due at one minute
# asks for the same ones at each fire (the engine plans what follows each). Bounded: emptied
# when full.
_SINGLE_FIRES: dict[tuple[Single, str, DstPolicy], tuple[datetime, ...]] = {}
_MAX_SINGLE_FIRES = 4096


def single_instant(schedule: Schedule) -> datetime:
    """The first fire instant of a Single schedule."""
    return single_fires(schedule)[0]


def single_is_past(schedule: Schedule, now: datetime) -> bool:
    """Whether a Single's (last) fire is before the minute of ``now``: such a Single is refused
    at create (one within the current minute still fires). False for every other rate."""
    if not isinstance(schedule.rate, Single):
        return False
    return single_fires(schedule)[-1] < as_utc(now, "now").replace(second=0, microsecond=0)


def first_fire(schedule: Schedule, created_at: datetime) -> datetime | None:
    """The first fire of a schedule created (or replaced) at ``created_at``.

    A Single fires at its own instant, also when that lies within the creation minute (a Single
    before that minute is refused at create: see ``single_is_past``); under overlap="both" its
    first fire is the first of its instants not before that minute. The other rates fire first
    strictly after ``created_at``.
    """
    if isinstance(schedule.rate, Single):
        fires = single_fires(schedule)
        minute = as_utc(created_at, "created_at").replace(second=0, microsecond=0)
        return next((fire for fire in fires if fire >= minute), fires[-1])
    return next_fire_after(schedule, created_at, created_at=created_at)


def _next_wall_fire(
    zone: tzinfo, rate: WallClockRate, dst: DstPolicy, after: datetime
) -> datetime | None:
    hour, minute, weekdays = rate.hour, rate.minute, rate.weekdays
    if zone is UTC:
        return _next_utc_wall_fire(hour, minute, weekdays, after)
    return _next_wall_fire_exact(zone, rate, dst, after)


# Each hour:minute (by index hour * 60 + minute) as a time in UTC and as a wall time read with
# fold=1, made when first needed: combining a date with them costs less than building either.
_WALL_TIMES: list[tuple[time, time] | None] = [None] * 1440


def _next_default_wall_fire(
    zone: tzinfo, hour: int, minute: int, weekdays: frozenset[int], after: datetime
) -> datetime:
    """The next fire under the default policy, as ``_next_wall_fire_exact`` finds it, but with
    less work; ``_NOT_FOUND`` near the ends of the datetime range or after ``_FAST_DAYS`` days.

    The fire of a local date is its wall time's fold=0 reading unless the wall time is in a gap.
    Only the first candidate after `after` needs that check, and a round trip only when the
    fold=1 reading has a larger offset (a gap, as in ``_apply_dst``). The zone is asked for the
    offsets of a datetime's fields directly (zoneinfo reads only the fields and the fold), so
    the wall time is built once, in UTC: the fire is that minus the offset, and the next date's
    wall time is one day later.
    """
    try:
        local = after.astimezone(zone)
    except OverflowError:
        return _NOT_FOUND
    year = local.year
    if year == 1 or year >= 9999:
        return _NOT_FOUND  # the exact search clamps local dates at the ends of the range
    index = hour * 60 + minute
    times = _WALL_TIMES[index]
    if times is None:
        times = _WALL_TIMES[index] = (time(hour, minute, tzinfo=UTC), time(hour, minute, fold=1))
    wall = datetime.combine(local, times[0])
    weekday = local.weekday()
    for _ in range(_FAST_DAYS):
        if weekday in weekdays:
            offset = zone.utcoffset(wall)
            assert offset is not None
            fire = wall - offset
            if fire.second:  # a local mean time offset (zoneinfo's offsets are whole seconds)
                fire = ceil_minute(fire)
            if fire > after:
                later = zone.utcoffset(datetime.combine(wall, times[1]))
                assert later is not None
                if later <= offset or _comes_back(zone, wall - offset, wall):
                    return fire
                # Otherwise the wall time falls in a spring-forward gap that day: skipped.
        wall += _ONE_DAY
        weekday = weekday + 1 if weekday < 6 else 0
    return _NOT_FOUND


def _comes_back(zone: tzinfo, instant: datetime, wall: datetime) -> bool:
    """Whether ``instant`` reads as the minute of ``wall`` in ``zone``: false for a wall time in
    a gap, except for one in a gap shorter than a minute that leaves part of the minute (local
    mean time changes), which fires as ``_next_wall_fire_exact`` lets it."""
    back = instant.astimezone(zone)
    return back.minute == wall.minute and back.hour == wall.hour and back.day == wall.day


def _next_wall_fire_exact(
    zone: tzinfo, rate: WallClockRate, dst: DstPolicy, after: datetime
) -> datetime | None:
    hour, minute, weekdays = rate.hour, rate.minute, rate.weekdays
    # Under the default policy the first fire after `after` is never on a local date before the
    # local date of `after`: the first occurrence of any wall time of an earlier date lies before
    # it. Another policy can put the previous date's fire after it (a time shifted past midnight,
    # the second pass of an hour repeated across midnight), never one of an earlier date (no gap
    # or overlap lasts longer than a day).
    first = local_date(after, zone).toordinal()
    if dst.overlap != "first":
        return _next_wall_fire_any(zone, rate, dst, after, max(first - 1, 1))
    if dst.gap == "shift":
        first = max(first - 1, 1)
    # One fire a day at most: the first reading of the wall time (fold=0) is the fire unless the
    # wall time is in a gap and the gap is skipped. A gap shows as a round trip that does not
    # come back to the wall time; that check is needed only for the candidate after `after`.
    gap_shifts = dst.gap == "shift"
    for ordinal in range(first, min(first + _MAX_DAYS_AHEAD, _MAX_ORDINAL + 1)):
        day = date.fromordinal(ordinal)
        if day.weekday() not in weekdays:
            continue
        wall = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
        try:
            instant = wall.astimezone(UTC)
            fire = ceil_minute(instant)
            if fire <= after:
                continue
            if gap_shifts:
                return fire
            back = instant.astimezone(zone)
        except OverflowError:  # the instant lies outside the datetime range
            continue
        if back.minute == minute and back.hour == hour and back.day == day.day:
            return fire
        # Otherwise the wall time falls in a spring-forward gap that day: skipped.
    return None


def _next_wall_fire_any(
    zone: tzinfo, rate: WallClockRate, dst: DstPolicy, after: datetime, first: int
) -> datetime | None:
    for ordinal in range(first, min(first + _MAX_DAYS_AHEAD, _MAX_ORDINAL + 1)):
        day = date.fromordinal(ordinal)
        if day.weekday() not in rate.weekdays:
            continue
        for fire in wall_fires_on(zone, day, rate.hour, rate.minute, dst):
            if fire > after:
                return fire
    return None


_MAX_ORDINAL = date.max.toordinal() - 1


def _next_utc_wall_fire(
    hour: int, minute: int, weekdays: frozenset[int], after: datetime
) -> datetime | None:
    # No gaps or overlaps: plain calendar arithmetic.
    day = after.date()
    candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
    try:
        if candidate <= after:
            candidate += _ONE_DAY
        while candidate.weekday() not in weekdays:
            candidate += _ONE_DAY
    except OverflowError:  # the next fire lies after 9999-12-31 23:59 UTC
        return None
    return candidate


def fire_times(
    schedule: Schedule, *, created_at: datetime, after: datetime | None = None
) -> Iterator[datetime]:
    """Iterate the fire instants strictly after ``after`` (default: ``created_at``), in order."""
    created = as_utc(created_at, "created_at")
    cursor = created if after is None else as_utc(after, "after")
    rate = schedule.rate
    if isinstance(rate, IntervalRate):
        # After the first, an interval's fires are its grid: one addition each.
        instant = next_fire_after(schedule, cursor, created_at=created)
        step = timedelta(minutes=rate.minutes)
        high = last_fire(schedule, created)
        while instant is not None and (high is None or instant <= high):
            yield instant
            try:
                instant = instant + step
            except OverflowError:  # the next fire lies after 9999-12-31 23:59 UTC
                return
        return
    while (instant := next_fire_after(schedule, cursor, created_at=created)) is not None:
        yield instant
        cursor = instant


class FirePreview(msgspec.Struct, frozen=True, kw_only=True):
    """One upcoming fire, annotated for people.

    - ``at`` is the UTC instant and ``local`` the same instant in the schedule's zone.
    - ``repeated_wall_time``: that wall time occurs twice that day (fall-back); which occurrence
      fires is the policy's choice (``overlap``), and ``second_occurrence`` tells this one.
    - ``skipped_days``: the local dates since the previous fire on which the wall time fell into
      a spring-forward gap and so did not fire (``gap="skip"``).
    - ``shifted``: the wall time fell into a gap and ``gap="shift"`` moved it to this instant.
    - ``notes``: what the DST policy did, in words, for this fire and the days since the
      previous one; empty on days without a transition.
    """

    at: datetime
    local: datetime
    repeated_wall_time: bool = False
    skipped_days: tuple[date, ...] = ()
    second_occurrence: bool = False
    shifted: bool = False
    notes: tuple[str, ...] = ()


def preview(
    schedule: Schedule,
    *,
    created_at: datetime,
    after: datetime | None = None,
    count: int = 10,
) -> list[FirePreview]:
    """The next ``count`` fires (1 to 10,000) after ``after``, with DST annotations."""
    if type(count) is not int or not 1 <= count <= MAX_PREVIEW:
        raise ValidationError("count", count, f"a whole number from 1 to {MAX_PREVIEW}")
    zone = load_zone(schedule.timezone)
    created = as_utc(created_at, "created_at")
    cursor = created if after is None else as_utc(after, "after")
    rows: list[FirePreview] = []
    for instant in fire_times(schedule, created_at=created, after=cursor):
        row = _preview_row(schedule, zone, instant, cursor)
        cursor = instant
        if row is None:
            # An interval fire whose local time lies outside years 1-9999 cannot be shown.
            continue
        rows.append(row)
        if len(rows) == count:
            break
    return rows


def _preview_row(
    schedule: Schedule, zone: tzinfo, instant: datetime, since: datetime
) -> FirePreview | None:
    try:
        local = instant.astimezone(zone)
    except OverflowError:
        return None
    rate = schedule.rate
    if isinstance(rate, IntervalRate):
        return FirePreview(at=instant, local=local)
    _, repeated = resolve_wall_time(
        zone, local.year, local.month, local.day, local.hour, local.minute
    )
    skipped: tuple[date, ...] = ()
    if isinstance(rate, WallClockRate) and schedule.dst.gap == "skip":
        skipped = _gap_days(zone, rate, since, local.date())
    elif isinstance(rate, CalendarRate) and schedule.dst.gap == "skip":
        skipped = _calendar_gap_days(zone, rate, since, instant)
    notes = [f"skipped {', '.join(map(str, skipped))}: wall time in a DST gap"] if skipped else []
    shifted_from = _shifted_from(schedule, zone, instant, local.date())
    if shifted_from is not None:
        moved = (
            f"{local:%H:%M}"
            if shifted_from.date() == local.date()
            else strftime(local, "%Y-%m-%d %H:%M")
        )
        gap = strftime(shifted_from, "%Y-%m-%d %H:%M")
        notes.append(f"{gap} is in a DST gap; shifted to {moved} (gap=shift)")
    # astimezone marks the second pass of a repeated wall time with fold=1 (PEP 495).
    second = repeated and local.fold == 1
    if repeated:
        notes.append(_overlap_note(schedule.dst, second))
    return FirePreview(
        at=instant,
        local=local,
        repeated_wall_time=repeated,
        skipped_days=skipped,
        second_occurrence=second,
        shifted=shifted_from is not None,
        notes=tuple(notes),
    )


def _wall_days(rate: WallClockRate | Single, day: date) -> tuple[date, ...]:
    """The local dates whose fire can fall on local date ``day``: the day itself and, shifted
    past midnight, the day before."""
    if isinstance(rate, Single):
        return (date(rate.year, rate.month, rate.day),)
    days = (day - _ONE_DAY, day) if day > date.min else (day,)
    return tuple(d for d in days if d.weekday() in rate.weekdays)


def _shifted_from(
    schedule: Schedule, zone: tzinfo, instant: datetime, day: date
) -> datetime | None:
    """The wall time (naive, local) in a gap that ``gap="shift"`` moved to ``instant``."""
    rate = schedule.rate
    if schedule.dst.gap == "shift" and isinstance(rate, CalendarRate):
        return _calendar_shifted_from(zone, rate, instant, day)
    if schedule.dst.gap != "shift" or not isinstance(rate, (WallClockRate, Single)):
        return None
    for wall_day in _wall_days(rate, day):
        wall = datetime(wall_day.year, wall_day.month, wall_day.day, rate.hour, rate.minute)
        pair = wall_instants(zone, wall.year, wall.month, wall.day, wall.hour, wall.minute)
        if pair is not None and pair[0] > pair[1] and ceil_minute(pair[0]) == instant:
            return wall
    return None


def _overlap_note(dst: DstPolicy, second: bool) -> str:
    if dst.overlap == "first":
        return "wall time occurs twice; fires at the first"
    if dst.overlap == "last":
        return "wall time occurs twice; fires at the second (overlap=last)"
    which = "second" if second else "first"
    return f"wall time occurs twice; fires at both (overlap=both), this is the {which}"


def _gap_days(zone: tzinfo, rate: WallClockRate, since: datetime, end: date) -> tuple[date, ...]:
    """Allowed local dates after ``since`` and before ``end`` whose wall time falls in a gap."""
    days = []
    day = local_date(since, zone)
    while day < end:
        if day.weekday() in rate.weekdays and _in_gap_after(zone, rate, day, since):
            days.append(day)
        day += _ONE_DAY
    return tuple(days)


def _in_gap_after(zone: tzinfo, rate: WallClockRate, day: date, since: datetime) -> bool:
    """Whether the rate's wall time on ``day`` falls in a gap that lies after ``since``."""
    wall = datetime(day.year, day.month, day.day, rate.hour, rate.minute, tzinfo=zone)
    try:
        if wall.astimezone(UTC) <= since:
            return False
    except OverflowError:  # before 0001-01-01 UTC, so before `since`
        return False
    instant, _ = resolve_wall_time(zone, day.year, day.month, day.day, rate.hour, rate.minute)
    return instant is None
