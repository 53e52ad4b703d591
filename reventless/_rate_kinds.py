"""The rate kinds: when a schedule fires, as frozen, tagged msgspec Structs (the tags are stored
and never change), each checking its ranges on construction and on decoding. Their public home
is ``reventless.schedule`` (and ``reventless``); this module keeps ``schedule.py`` to the
Schedule itself."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from typing import Any, ClassVar, TypeAlias

import msgspec
import msgspec.structs

from reventless._cron import compile_cron, spec_month_days
from reventless._suggest import did_you_mean
from reventless._zones import load_zone, resolve_wall_time, zone_key
from reventless.errors import ArgumentError, ReventlessError, ValidationError

__all__ = (
    "LAST",
    "MAX_FIRES",
    "MAX_INTERVAL_MINUTES",
    "MAX_JITTER_MINUTES",
    "MAX_PAYLOAD_BYTES",
    "RATE_TYPES",
    "CalendarRate",
    "Cron",
    "Daily",
    "Days",
    "Hours",
    "IntervalRate",
    "Minutes",
    "Monthly",
    "NthWeekday",
    "Rate",
    "Single",
    "WallClockRate",
    "Weekdays",
    "WeekdaysAndSaturday",
    "weekday_name",
)

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_JITTER_MINUTES = 1440  # EventBridge's MaximumWindowInMinutes
MAX_FIRES = 100_000
MAX_INTERVAL_MINUTES = 3650 * 24 * 60
_NAME = re.compile(r"[0-9A-Za-z._-]{1,64}")


def _check_int(field: str, value: Any, low: int, high: int) -> None:
    # bool is an int subclass; True must not pass for an hour.
    if type(value) is not int or not low <= value <= high:
        raise ValidationError(field, value, f"a whole number from {low} to {high}")


# A call of each class, shown when it was called with the wrong arguments.
_EXAMPLES = {
    "Single": "Single(2026, 12, 25, 14, 30)",
    "Minutes": "Minutes(5)",
    "Hours": "Hours(1)",
    "Days": "Days(1)",
    "Daily": "Daily(9, 0)",
    "Weekdays": "Weekdays(17, 0)",
    "WeekdaysAndSaturday": "WeekdaysAndSaturday(8, 30)",
    "Monthly": "Monthly(-1, 18, 0)",
    "NthWeekday": "NthWeekday(2, 1, 9, 0)",
    "Cron": "Cron('0 9 ? * MON-FRI *')",
    "Schedule": "Schedule(name='daily-report', rate=Daily(9, 0), payload='...')",
    "DstPolicy": "DstPolicy(gap='shift', overlap='both')",
}
_UNEXPECTED = re.compile(r"Unexpected keyword argument '(.*)'", re.DOTALL)


# Called directly rather than through super(): this runs for every construction.
_STRUCT_CALL = msgspec.StructMeta.__call__


class _NamedArguments(msgspec.StructMeta):
    """The metaclass of rates and Schedule: a call with missing, extra or unknown arguments raises
    ArgumentError naming the class and its call form (msgspec's own TypeError names neither).
    Decoding does not go through here and costs nothing more."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return _STRUCT_CALL(cls, *args, **kwargs)
        except ReventlessError:
            raise
        except TypeError as exc:
            raise _argument_error(cls, args, kwargs, exc) from exc


def _argument_error(
    cls: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any], exc: TypeError
) -> ArgumentError:
    name = cls.__name__
    fields: tuple[str, ...] = cls.__struct_fields__
    keyword_only = getattr(cls, "_KEYWORD_ONLY", False)
    if keyword_only:
        form = f"{name}({', '.join(f + '=...' for f in fields)})"
    else:
        form = f"{name}({', '.join(fields)})"
    example = _EXAMPLES.get(name)
    allowed = form if example is None else f"{form}, e.g. {example}"
    text = str(exc)
    unexpected = _UNEXPECTED.fullmatch(text)
    if unexpected is not None:
        detail = f"unexpected keyword argument {unexpected.group(1)!r}" + did_you_mean(
            unexpected.group(1), fields
        )
    elif text == "Extra positional arguments provided":
        detail = (
            f"takes keyword arguments only, got {len(args)} positional"
            if keyword_only
            else f"takes at most {len(fields)} arguments, got {len(args) + len(kwargs)}"
        )
    else:
        detail = text[:1].lower() + text[1:]
    given = ", ".join([*map(repr, args), *(f"{key}={value!r}" for key, value in kwargs.items())])
    return ArgumentError(
        name, f"{name}({given})", allowed, message=f"{name}: {detail}; expected {allowed}"
    )


class _RateBase(
    msgspec.Struct,
    metaclass=_NamedArguments,
    frozen=True,
    tag_field="kind",
    forbid_unknown_fields=True,
    gc=False,
):
    """Common base of the rate variants (not itself a rate)."""


class Single(_RateBase, frozen=True, tag="single"):
    """Fire once at this wall-clock minute in the schedule's time zone, then complete.

    ``Single.at(when)`` builds one from an aware datetime; ``Schedule.once`` builds the whole
    schedule.
    """

    year: int
    month: int
    day: int
    hour: int
    minute: int

    @classmethod
    def at(cls, moment: datetime, timezone: str | tzinfo = "UTC") -> Single:
        """The Single that fires at the instant ``moment``, written as a wall time in ``timezone``.

        ``moment`` is an aware datetime on a whole minute (a Single has minute resolution:
        seconds are refused, not cut). Give the Schedule the same ``timezone``: with the
        default, ``'UTC'``, which is also the Schedule's default, ``Schedule(name=...,
        rate=Single.at(when), payload=...)`` fires at ``when`` whatever ``when``'s own zone.
        ``timezone`` takes what ``Schedule.timezone`` takes (a name, a ZoneInfo, a fixed offset of
        whole hours).
        :raises ValidationError: ``moment`` is naive, not on a whole minute, outside the years
            1970-2199, or the second occurrence of a wall time that ``timezone`` repeats (a
            Single there fires at the first; ``Schedule.once`` handles this case).
        """
        key = zone_key(timezone, "timezone")
        single = _single_at(moment, key, "moment")
        if single is None:
            raise ValidationError(
                "moment",
                moment,
                f"an instant whose wall time in {key} occurs once",
                message=(
                    f"moment {moment.isoformat()} is the second occurrence of the wall time "
                    f"{moment.astimezone(load_zone(key)):%Y-%m-%d %H:%M} in {key} (the clocks "
                    "went back), and a Single there fires at the first; use timezone='UTC' "
                    "or Schedule.once, which picks a zone that fires at this instant"
                ),
            )
        return single

    def __post_init__(self) -> None:
        _check_int("rate.year", self.year, 1970, 2199)
        _check_int("rate.month", self.month, 1, 12)
        last_day = calendar.monthrange(self.year, self.month)[1]
        if type(self.day) is not int or not 1 <= self.day <= last_day:
            month = f"{self.year:04d}-{self.month:02d}"
            raise ValidationError(
                "rate.day", self.day, f"a day from 1 to {last_day} ({month} has {last_day} days)"
            )
        _check_int("rate.hour", self.hour, 0, 23)
        _check_int("rate.minute", self.minute, 0, 59)


class IntervalRate(_RateBase, frozen=True):
    """The base of the fixed-duration rates (Minutes, Hours, Days): every ``n`` units."""

    n: int
    unit_minutes: ClassVar[int]

    def __post_init__(self) -> None:
        _check_int("rate.n", self.n, 1, MAX_INTERVAL_MINUTES // self.unit_minutes)

    @property
    def minutes(self) -> int:
        """The interval's length in minutes."""
        return self.n * self.unit_minutes


class Minutes(IntervalRate, frozen=True, tag="minutes"):
    """Fire every ``n`` minutes (1 to 5,256,000, that is at most 3650 days)."""

    unit_minutes: ClassVar[int] = 1


class Hours(IntervalRate, frozen=True, tag="hours"):
    """Fire every ``n`` hours (1 to 87,600)."""

    unit_minutes: ClassVar[int] = 60


class Days(IntervalRate, frozen=True, tag="days"):
    """Fire every ``n`` x 24 hours (1 to 3650), also across DST changes."""

    unit_minutes: ClassVar[int] = 1440


class WallClockRate(_RateBase, frozen=True):
    """The base of the wall-clock rates (Daily, Weekdays, WeekdaysAndSaturday)."""

    hour: int
    minute: int
    # Weekday numbers (Monday = 0) on which the variant fires.
    weekdays: ClassVar[frozenset[int]]

    def __post_init__(self) -> None:
        _check_int("rate.hour", self.hour, 0, 23)
        _check_int("rate.minute", self.minute, 0, 59)


class Daily(WallClockRate, frozen=True, tag="daily"):
    """Fire every day at this wall time in the schedule's time zone."""

    weekdays: ClassVar[frozenset[int]] = frozenset(range(7))


class Weekdays(WallClockRate, frozen=True, tag="weekdays"):
    """Fire Monday to Friday at this wall time in the schedule's time zone."""

    weekdays: ClassVar[frozenset[int]] = frozenset(range(5))


class WeekdaysAndSaturday(WallClockRate, frozen=True, tag="weekdays_and_saturday"):
    """Fire Monday to Saturday at this wall time in the schedule's time zone."""

    weekdays: ClassVar[frozenset[int]] = frozenset(range(6))


LAST = -1
"""``Monthly(LAST, ...)`` fires on the last day of the month, ``NthWeekday(LAST, ...)`` on the
last such weekday."""
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class CalendarRate(_RateBase, frozen=True):
    """The base of the calendar rates (Monthly, NthWeekday, Cron): wall times in the schedule's
    zone on the local dates that ``month_days`` picks, under the DST policy like ``Daily``."""

    def month_days(self, year: int, month: int) -> tuple[int, ...]:
        """The days of ``month`` in ``year`` on which the rate fires, in order (none: skipped)."""
        raise NotImplementedError

    @property
    def wall_times(self) -> tuple[tuple[int, int], ...]:
        """The (hour, minute) wall times of a day on which the rate fires, in order."""
        raise NotImplementedError

    @property
    def year_range(self) -> tuple[int, int] | None:
        """The first and last year in which the rate can fire; None: no limit."""
        return None

    @property
    def day_minutes(self) -> tuple[int, ...]:
        """The wall times as minutes of the day (hour * 60 + minute), in order."""
        return tuple(hour * 60 + minute for hour, minute in self.wall_times)


class Monthly(CalendarRate, frozen=True, tag="monthly"):
    """Fire on day ``day`` of every month (1-31, or ``LAST`` = -1 for the last day) at this wall
    time. A month without that day (31 in April, 30 in February) is skipped, as EventBridge's
    cron skips it; use ``LAST`` for the end of every month."""

    day: int
    hour: int
    minute: int

    def __post_init__(self) -> None:
        if type(self.day) is not int or not (1 <= self.day <= 31 or self.day == LAST):
            raise ValidationError(
                "rate.day", self.day, "a day of the month from 1 to 31, or -1 (LAST) for the last"
            )
        _check_int("rate.hour", self.hour, 0, 23)
        _check_int("rate.minute", self.minute, 0, 59)

    def month_days(self, year: int, month: int) -> tuple[int, ...]:
        day = self.day
        if 1 <= day <= 28:
            return (day,)  # every month has it
        length = _month_length(year, month)
        if day == LAST:
            return (length,)
        return (day,) if day <= length else ()

    @property
    def wall_times(self) -> tuple[tuple[int, int], ...]:
        return ((self.hour, self.minute),)

    @property
    def day_minutes(self) -> tuple[int, ...]:
        return (self.hour * 60 + self.minute,)


class NthWeekday(CalendarRate, frozen=True, tag="nth_weekday"):
    """Fire on the ``nth`` (1-5, or ``LAST`` = -1) ``weekday`` (Monday = 0 ... Sunday = 6, as
    Python's ``calendar`` numbers them) of every month at this wall time: ``NthWeekday(2, 1, 9,
    0)`` is the second Tuesday at 09:00. A month without a fifth such weekday is skipped."""

    nth: int
    weekday: int
    hour: int
    minute: int

    def __post_init__(self) -> None:
        if type(self.nth) is not int or not (1 <= self.nth <= 5 or self.nth == LAST):
            raise ValidationError("rate.nth", self.nth, "1 to 5, or -1 (LAST) for the last")
        if type(self.weekday) is not int or not 0 <= self.weekday <= 6:
            raise ValidationError(
                "rate.weekday", self.weekday, "a weekday from 0 (Monday) to 6 (Sunday)"
            )
        _check_int("rate.hour", self.hour, 0, 23)
        _check_int("rate.minute", self.minute, 0, 59)

    def month_days(self, year: int, month: int) -> tuple[int, ...]:
        first = 1 + (self.weekday - _weekday(year, month, 1)) % 7
        if self.nth == LAST:
            length = _month_length(year, month)
            return (first + 7 * ((length - first) // 7),)
        day = first + 7 * (self.nth - 1)
        return (day,) if day <= 28 or day <= _month_length(year, month) else ()

    @property
    def wall_times(self) -> tuple[tuple[int, int], ...]:
        return ((self.hour, self.minute),)

    @property
    def day_minutes(self) -> tuple[int, ...]:
        return (self.hour * 60 + self.minute,)


class Cron(CalendarRate, frozen=True, tag="cron"):
    """Fire at the minutes a cron expression picks, read as wall times in the schedule's zone.

    Six fields are EventBridge's dialect, ``'minutes hours day-of-month month day-of-week
    year'`` (``Cron('0 9 ? * MON-FRI *')``, ``Cron('0 18 L * ? *')``, ``Cron('0 9 ? * 3#2 *')``);
    five are Unix's, ``'minute hour day-of-month month day-of-week'`` (``Cron('*/15 9-17 * *
    1-5')``), with Unix's rule that when both day fields are restricted a day matching either
    fires. ``reventless._cron`` has the whole grammar. The text is kept with single spaces
    between the fields.
    """

    expression: str

    def __post_init__(self) -> None:
        compile_cron(self.expression)  # raises CronSyntaxError naming the field
        normal = " ".join(self.expression.split())
        if normal != self.expression:
            msgspec.structs.force_setattr(self, "expression", normal)

    @property
    def five_fields(self) -> bool:
        """Whether this is a Unix (five-field) expression."""
        return compile_cron(self.expression).unix

    def month_days(self, year: int, month: int) -> tuple[int, ...]:
        return _cron_month_days(self.expression, year, month)

    @property
    def wall_times(self) -> tuple[tuple[int, int], ...]:
        return _cron_times(self.expression)

    @property
    def year_range(self) -> tuple[int, int] | None:
        return compile_cron(self.expression).years

    @property
    def day_minutes(self) -> tuple[int, ...]:
        return _cron_minutes(self.expression)


@lru_cache(maxsize=1024)
def _cron_times(expression: str) -> tuple[tuple[int, int], ...]:
    spec = compile_cron(expression)
    return tuple((hour, minute) for hour in spec.hours for minute in spec.minutes)


@lru_cache(maxsize=1024)
def _cron_minutes(expression: str) -> tuple[int, ...]:
    return tuple(hour * 60 + minute for hour, minute in _cron_times(expression))


_MONTH_LENGTHS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _month_length(year: int, month: int) -> int:
    if month == 2 and calendar.isleap(year):
        return 29
    return _MONTH_LENGTHS[month]


def _weekday(year: int, month: int, day: int) -> int:
    return date(year, month, day).weekday()


@lru_cache(maxsize=16384)
def _cron_month_days(expression: str, year: int, month: int) -> tuple[int, ...]:
    return spec_month_days(compile_cron(expression), year, month)


def weekday_name(weekday: int) -> str:
    """``'Tuesday'`` for 1 (Monday = 0)."""
    return _WEEKDAY_NAMES[weekday]


def _aware_minute(moment: object, field: str) -> datetime:
    """``moment`` in UTC, refused unless it is an aware datetime on a whole UTC minute."""
    if not isinstance(moment, datetime):
        raise ValidationError(field, moment, "an aware datetime on a whole minute")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValidationError(
            field,
            moment,
            "an aware datetime",
            message=(
                f"{field} {moment.isoformat()} is naive (it has no time zone); pass an aware "
                "datetime, e.g. datetime(2026, 12, 24, 18, 0, tzinfo=ZoneInfo('Europe/Berlin'))"
            ),
        )
    if moment.second or moment.microsecond:
        raise ValidationError(
            field,
            moment,
            "a whole minute",
            message=(
                f"{field} {moment.isoformat()} has seconds; a Single fires on a whole minute: "
                f"pass {field}.replace(second=0, microsecond=0), or the next minute"
            ),
        )
    try:
        instant = moment.astimezone(UTC)
    except OverflowError as exc:  # the first or last hours of the datetime range
        raise ValidationError(
            field, moment, "an instant whose date is in the years 1970 to 2199"
        ) from exc
    if instant.second or instant.microsecond:
        # A zone whose offset had seconds (local mean time, before about 1900).
        raise ValidationError(
            field,
            moment,
            "an instant on a whole UTC minute",
            message=(
                f"{field} {moment.isoformat()} is not on a whole UTC minute (its zone's offset "
                f"then was {moment.utcoffset()}); a Single fires on whole UTC minutes"
            ),
        )
    return instant


def _single_at(moment: object, key: str, field: str) -> Single | None:
    """The Single whose wall minute in zone ``key`` is the instant ``moment``; None when that
    wall time occurs twice there and ``moment`` is the second occurrence."""
    instant = _aware_minute(moment, field)
    zone = load_zone(key)
    try:
        wall = instant.astimezone(zone)
    except OverflowError:
        wall = instant  # at the very ends of the datetime range: refused just below
    if not 1970 <= wall.year <= 2199:
        raise ValidationError(
            field, moment, f"an instant whose date in {key} is in the years 1970 to 2199"
        )
    single = Single(wall.year, wall.month, wall.day, wall.hour, wall.minute)
    resolved, _ = resolve_wall_time(zone, wall.year, wall.month, wall.day, wall.hour, wall.minute)
    return single if resolved == instant else None


Rate: TypeAlias = (
    Single
    | Minutes
    | Hours
    | Days
    | Daily
    | Weekdays
    | WeekdaysAndSaturday
    | Monthly
    | NthWeekday
    | Cron
)
RATE_TYPES: tuple[type[Rate], ...] = (
    Single,
    Minutes,
    Hours,
    Days,
    Daily,
    Weekdays,
    WeekdaysAndSaturday,
    Monthly,
    NthWeekday,
    Cron,
)
_RATE_BY_NAME: dict[str, type[Rate]] = {cls.__name__: cls for cls in RATE_TYPES}
