"""When a schedule fires: the one pure function both engines use, and what is built on it.

Rules (SEMANTICS.md section 2), in brief:

- Every fire instant is a whole UTC minute.
- Intervals (Minutes, Hours, Days) are fixed durations anchored at the creation instant rounded up
  to the minute; fires are at ``anchor + k * interval`` for k >= 1. The zone plays no part.
- Wall-clock variants fire at their wall time in the schedule's zone on the allowed local weekdays.
  A wall time inside a spring-forward gap is skipped that day; one that occurs twice (fall-back)
  fires once, at its first occurrence.
- Single fires once at its wall-clock minute (the first occurrence in an overlap).
- Where the zone's UTC offset has seconds (local mean time, before about 1900; Monrovia until
  1972), a wall time begins between two UTC minutes; it fires at the next whole UTC minute.

All datetimes in and out are aware; results are in UTC.

At the ends of the datetime range the functions stay total: a fire later than 9999-12-31 23:59
UTC does not exist (None, or the iteration ends), nor does a wall-clock fire on a local date
outside 0001-01-01 to 9999-12-31; ``preview`` leaves out interval fires whose local time it
cannot show. An input instant with no UTC equivalent in the range is refused with ValidationError.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache

import msgspec

from reventless._zones import load_zone, resolve_wall_time
from reventless.errors import ValidationError
from reventless.schedule import IntervalRate, Rate, Schedule, Single, WallClockRate

__all__ = (
    "FirePreview",
    "fire_times",
    "first_fire",
    "next_fire_after",
    "preview",
    "single_is_past",
)

_ONE_DAY = timedelta(days=1)
_MINUTE = timedelta(minutes=1)
# A wall-clock variant fires at least weekly; a gap can skip a day or two. Searching this many
# days ahead is therefore always enough, and keeps the function total.
_MAX_DAYS_AHEAD = 400
MAX_PREVIEW = 10_000


def as_utc(value: object, field: str) -> datetime:
    """Return an aware datetime converted to UTC, or raise ValidationError naming ``field``."""
    if value.__class__ is datetime and value.tzinfo is UTC:
        return value  # the usual case, first: the engine calls this for every fire
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


def ceil_minute(instant: datetime) -> datetime:
    """Round an instant up to the next whole minute (unchanged when already whole)."""
    if instant.second == 0 and instant.microsecond == 0:
        return instant
    return instant.replace(second=0, microsecond=0) + _MINUTE


def next_fire_after(
    schedule: Schedule, after: datetime, *, created_at: datetime | None = None
) -> datetime | None:
    """The first fire instant strictly later than ``after``, or None when there is none.

    ``created_at`` (default: ``after``) anchors interval variants. Both must be aware datetimes.
    """
    if after.__class__ is not datetime or after.tzinfo is not UTC:
        after = as_utc(after, "after")  # (the usual UTC datetime skips the call)
    rate = schedule.rate
    if isinstance(rate, IntervalRate):
        created = after if created_at is None else created_at
        if created.__class__ is not datetime or created.tzinfo is not UTC:
            created = as_utc(created, "created_at")
        # Inline, not a call: intervals are the cheapest fires and the most frequent ones.
        grid = _GRIDS.get(created)
        if grid is None or (grid[0] is not rate and grid[0] != rate):
            grid = _grid(rate, created)
        _, anchor, step, first = grid
        if first is None or after < first:
            return first  # None: not even the first fire is before 9999-12-31 23:59 UTC
        try:
            # The next point of the grid anchor + k * step strictly after `after`: the time to
            # it is (anchor - after) % step, or a whole step when `after` is itself a point.
            return after + ((anchor - after) % step or step)
        except OverflowError:  # the next fire lies after 9999-12-31 23:59 UTC
            return None
    if isinstance(rate, WallClockRate):
        return _next_wall_fire(
            load_zone(schedule.timezone), rate.hour, rate.minute, rate.weekdays, after
        )
    instant = single_instant(schedule)
    return instant if instant > after else None


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
    step = timedelta(minutes=rate.n * rate.unit_minutes)
    try:
        anchor = ceil_minute(created)
        grid: _Grid = (rate, anchor, step, anchor + step)
    except OverflowError:  # created in the last minutes of 9999: no fire is left
        grid = (rate, created, step, None)
    if len(_GRIDS) >= _MAX_GRIDS:
        _GRIDS.clear()
    _GRIDS[created] = grid
    return grid


def single_instant(schedule: Schedule) -> datetime:
    """The UTC instant of a Single schedule's fire (first occurrence in a fall-back overlap)."""
    rate = schedule.rate
    if not isinstance(rate, Single):
        raise ValidationError("rate", rate, "a Single")
    return _single_instant(rate, schedule.timezone)


@lru_cache(maxsize=4096)
def _single_instant(rate: Single, timezone: str) -> datetime:
    instant, _ = resolve_wall_time(
        load_zone(timezone), rate.year, rate.month, rate.day, rate.hour, rate.minute
    )
    # Schedule refuses a Single in a DST gap, so the instant exists.
    assert instant is not None
    return ceil_minute(instant)


def single_is_past(schedule: Schedule, now: datetime) -> bool:
    """Whether a Single's minute is before the minute of ``now``: such a Single is refused at
    create (one within the current minute still fires). False for every other rate."""
    if not isinstance(schedule.rate, Single):
        return False
    return single_instant(schedule) < as_utc(now, "now").replace(second=0, microsecond=0)


def first_fire(schedule: Schedule, created_at: datetime) -> datetime | None:
    """The first fire of a schedule created (or replaced) at ``created_at``.

    A Single fires at its own instant, also when that lies within the creation minute (a Single
    before that minute is refused at create: see ``single_is_past``); the other rates fire first
    strictly after ``created_at``.
    """
    if isinstance(schedule.rate, Single):
        return single_instant(schedule)
    return next_fire_after(schedule, created_at, created_at=created_at)


def _next_wall_fire(
    zone: tzinfo, hour: int, minute: int, weekdays: frozenset[int], after: datetime
) -> datetime | None:
    if zone is UTC:
        return _next_utc_wall_fire(hour, minute, weekdays, after)
    # The first fire after `after` is never on a local date before the local date of `after`:
    # the first occurrence of any wall time of an earlier date lies before it.
    first = local_date(after, zone).toordinal()
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
            back = instant.astimezone(zone)
        except OverflowError:  # the instant lies outside the datetime range
            continue
        if back.hour == hour and back.minute == minute and back.day == day.day:
            return fire
        # Otherwise the wall time falls in a spring-forward gap that day: skipped.
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


def local_date(instant: datetime, zone: tzinfo) -> date:
    """The date of ``instant`` in ``zone``, clamped to 0001-01-01 .. 9999-12-31 at the ends."""
    try:
        return instant.astimezone(zone).date()
    except OverflowError:
        return date.min if instant.year == 1 else date.max


def fire_times(
    schedule: Schedule, *, created_at: datetime, after: datetime | None = None
) -> Iterator[datetime]:
    """Iterate the fire instants strictly after ``after`` (default: ``created_at``), in order."""
    created = as_utc(created_at, "created_at")
    cursor = created if after is None else as_utc(after, "after")
    rate = schedule.rate
    instant = next_fire_after(schedule, cursor, created_at=created)
    if isinstance(rate, IntervalRate):
        # The rest of an interval's fires are its grid: one addition each.
        step = timedelta(minutes=rate.n * rate.unit_minutes)
        while instant is not None:
            yield instant
            try:
                instant = instant + step
            except OverflowError:
                return
        return
    while instant is not None:
        yield instant
        instant = next_fire_after(schedule, instant, created_at=created)


class FirePreview(msgspec.Struct, frozen=True, kw_only=True):
    """One upcoming fire, annotated for people.

    ``at`` is the UTC instant and ``local`` the same instant in the schedule's zone.
    ``repeated_wall_time`` is true when that wall time occurs twice that day (fall-back) and this
    is its first occurrence, the only one that fires. ``skipped_days`` lists the local dates since
    the previous fire on which the wall time fell into a spring-forward gap and so did not fire.
    """

    at: datetime
    local: datetime
    repeated_wall_time: bool = False
    skipped_days: tuple[date, ...] = ()


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
        row = _preview_row(schedule.rate, zone, instant, cursor)
        cursor = instant
        if row is None:
            # An interval fire whose local time lies outside years 1-9999 cannot be shown.
            continue
        rows.append(row)
        if len(rows) == count:
            break
    return rows


def _preview_row(
    rate: Rate, zone: tzinfo, instant: datetime, since: datetime
) -> FirePreview | None:
    try:
        local = instant.astimezone(zone)
    except OverflowError:
        return None
    repeated = False
    skipped: tuple[date, ...] = ()
    if isinstance(rate, (WallClockRate, Single)):
        _, repeated = resolve_wall_time(
            zone, local.year, local.month, local.day, local.hour, local.minute
        )
    if isinstance(rate, WallClockRate):
        skipped = _gap_days(zone, rate, since, local.date())
    return FirePreview(at=instant, local=local, repeated_wall_time=repeated, skipped_days=skipped)


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
