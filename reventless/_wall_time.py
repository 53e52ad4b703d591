"""Wall times read in a zone: the instants of a wall time either side of a clock change, the
fires a DST policy makes of them, local dates. Shared by the fire times of the wall-clock and
the calendar rates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

from reventless.schedule import (
    DstPolicy,
)

__all__ = ("ceil_minute", "local_date", "wall_fires_on", "wall_instants")

_ONE_DAY = timedelta(days=1)


_MINUTE = timedelta(minutes=1)


# The default policy's fast path gives up (the exact search takes over) after this many local
# dates: a week of rest days and a skipped day or two.
_FAST_DAYS = 9


_NOT_FOUND = datetime.min.replace(tzinfo=UTC)


def ceil_minute(instant: datetime) -> datetime:
    """Round an instant up to the next whole minute (unchanged when already whole)."""
    if instant.second == 0 and instant.microsecond == 0:
        return instant
    return instant.replace(second=0, microsecond=0) + _MINUTE


def wall_instants(
    zone: tzinfo, year: int, month: int, day: int, hour: int, minute: int
) -> tuple[datetime, datetime] | None:
    """The wall time read with the UTC offset before and after a transition, as UTC instants
    (not rounded to the minute); None when either lies outside the datetime range.

    Python's ``fold`` does the reading (PEP 495): fold=0 takes the offset in force before a
    transition, fold=1 the one after. The two are equal on a day without a transition at that
    time; the first is the earlier in an overlap (the first occurrence) and the later in a gap
    (where it is RFC 5545's reading, the instant after the gap).
    """
    wall = datetime(year, month, day, hour, minute, tzinfo=zone)
    try:
        return wall.astimezone(UTC), wall.replace(fold=1).astimezone(UTC)
    except OverflowError:
        return None


def _apply_dst(before: datetime, after: datetime, dst: DstPolicy) -> tuple[datetime, ...]:
    """The fires of one wall time that reads as ``before``/``after`` (see ``wall_instants``)."""
    if before == after:
        return (ceil_minute(before),)
    if before > after:  # a gap: the wall time does not exist that day
        return (ceil_minute(before),) if dst.gap == "shift" else ()
    if dst.overlap == "first":
        return (ceil_minute(before),)
    if dst.overlap == "last":
        return (ceil_minute(after),)
    return (ceil_minute(before), ceil_minute(after))


def wall_fires_on(
    zone: tzinfo, day: date, hour: int, minute: int, dst: DstPolicy
) -> tuple[datetime, ...]:
    """The fire instants, in order, of the wall time ``hour:minute`` of local date ``day`` in
    ``zone`` under ``dst``: none (a skipped gap, or outside the datetime range), one, or two
    (both occurrences of a repeated wall time). The weekday is not checked here."""
    pair = wall_instants(zone, day.year, day.month, day.day, hour, minute)
    return () if pair is None else _apply_dst(*pair, dst)


def local_date(instant: datetime, zone: tzinfo) -> date:
    """The date of ``instant`` in ``zone``, clamped to 0001-01-01 .. 9999-12-31 at the ends."""
    try:
        return instant.astimezone(zone).date()
    except OverflowError:
        return date.min if instant.year == 1 else date.max
