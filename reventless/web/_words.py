"""A rate in words for the console ("every day at 02:30", "the last Friday of each month at
17:00"); the rate's own expression (``rate_text``) stands beside it."""

from __future__ import annotations

from reventless.schedule import (
    LAST,
    Cron,
    Daily,
    Days,
    Hours,
    Minutes,
    Monthly,
    NthWeekday,
    Rate,
    Single,
    Weekdays,
    WeekdaysAndSaturday,
)

__all__ = ("rate_words",)

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_NTH = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", LAST: "last"}


def _every(n: int, unit: str) -> str:
    return f"every {unit}" if n == 1 else f"every {n} {unit}s"


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def rate_words(rate: Rate) -> str:
    """How often ``rate`` fires, in words; wall times are in the schedule's zone."""
    if isinstance(rate, (Minutes, Hours, Days)):
        return _interval(rate)
    if isinstance(rate, Single):
        return (
            f"once, on {rate.year:04d}-{rate.month:02d}-{rate.day:02d} at "
            f"{rate.hour:02d}:{rate.minute:02d}"
        )
    if isinstance(rate, Cron):
        return f"cron {rate.expression}"
    return _wall(rate)


def _interval(rate: Minutes | Hours | Days) -> str:
    if isinstance(rate, Minutes):
        return _every(rate.n, "minute")
    if isinstance(rate, Hours):
        return _every(rate.n, "hour")
    return _every(rate.n, "day")


def _wall(rate: Daily | Weekdays | WeekdaysAndSaturday | Monthly | NthWeekday) -> str:
    at = f"{rate.hour:02d}:{rate.minute:02d}"
    if isinstance(rate, Daily):
        return f"every day at {at}"
    if isinstance(rate, Weekdays):
        return f"Monday to Friday at {at}"
    if isinstance(rate, WeekdaysAndSaturday):
        return f"Monday to Saturday at {at}"
    if isinstance(rate, Monthly):
        day = "the last day" if rate.day == LAST else f"the {_ordinal(rate.day)}"
        return f"{day} of each month at {at}"
    nth = _NTH.get(rate.nth, str(rate.nth))
    return f"the {nth} {_DAYS[rate.weekday]} of each month at {at}"
