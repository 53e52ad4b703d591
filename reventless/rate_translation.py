"""Rates to AWS schedule expressions and back (SEMANTICS.md section 3).

Two dialects:

- ``"scheduler"``: EventBridge Scheduler. ``at(...)`` for Single, ``rate(...)`` for intervals,
  six-field ``cron(...)`` for the wall-clock variants, read in ``ScheduleExpressionTimezone``.
- ``"rules"``: legacy EventBridge rules, which run in UTC only and have no ``at()``; a Single
  becomes a cron with its year.

The seven rates translate as a bijection: ``from_expression`` inverts exactly what
``to_expression`` produces for them and refuses every other string instead of guessing. The
calendar rates go to ``cron(...)`` too: ``Monthly`` as ``cron(M H D * ? *)`` (``L`` for the last
day), ``NthWeekday`` as ``cron(M H ? * D#N *)`` (``DL`` for the last), a six-field ``Cron`` as its
own text and a five-field one as the six fields that fire alike (day-of-week renumbered, ``?``
in the unrestricted day field, year ``*``). A five-field cron that restricts both day fields
fires on days matching either (Unix); EventBridge has no such OR and it is refused. Reading
back, a cron expression of one of the fixed forms gives that rate and any other valid
six-field expression a ``Cron``: a ``Cron`` spelled like a fixed form, or written in five
fields, reads back as a different rate with the same fires, and ``AwsScheduleFields.rate_text``
carries the rate as written for the provider to keep.

EventBridge Scheduler has one fixed DST rule (a wall time in a gap is skipped, a repeated one
fires at its first occurrence), the default ``DstPolicy``; ``aws_schedule_fields`` refuses a
schedule with any other policy rather than fire it by a rule it did not ask for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

from reventless._cron import compile_cron
from reventless._zones import is_utc_key
from reventless.errors import ValidationError
from reventless.fire_times import as_utc, first_fire
from reventless.schedule import (
    LAST,
    CalendarRate,
    Cron,
    Daily,
    Days,
    Hours,
    IntervalRate,
    Minutes,
    Monthly,
    NthWeekday,
    Rate,
    Schedule,
    Single,
    WallClockRate,
    Weekdays,
    WeekdaysAndSaturday,
    dst_text,
    parse_rate,
    rate_text,
)

__all__ = (
    "AwsScheduleFields",
    "Dialect",
    "aws_schedule_fields",
    "check_aws_dst",
    "created_at_from_start_date",
    "from_expression",
    "rate_from_description",
    "to_expression",
)

Dialect = Literal["scheduler", "rules"]
_MAX_EXPRESSION = 256  # ScheduleExpression
_DIALECTS = ("scheduler", "rules")

_UNITS: dict[type[IntervalRate], tuple[str, str]] = {
    Minutes: ("minute", "minutes"),
    Hours: ("hour", "hours"),
    Days: ("day", "days"),
}
_INTERVAL_BY_UNIT: dict[str, Callable[[int], Rate]] = {
    "minute": Minutes,
    "minutes": Minutes,
    "hour": Hours,
    "hours": Hours,
    "day": Days,
    "days": Days,
}
# The day-of-month/month/day-of-week/year fields of each wall-clock variant's cron.
_CRON_TAILS: dict[type[WallClockRate], str] = {
    Daily: "* * ? *",
    Weekdays: "? * MON-FRI *",
    WeekdaysAndSaturday: "? * MON-SAT *",
}
_WALL_BY_TAIL: dict[str, Callable[[int, int], Rate]] = {
    "* * ? *": Daily,
    "? * MON-FRI *": Weekdays,
    "? * MON-SAT *": WeekdaysAndSaturday,
}

# Numbers exactly as to_expression writes them: no sign, no leading zeros.
_NUM = r"(0|[1-9]\d{0,5})"
_AT = re.compile(r"at\((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):00\)")
_RATE = re.compile(r"rate\(([1-9]\d{0,7}) (minute|minutes|hour|hours|day|days)\)")
_CRON_WALL = re.compile(rf"cron\({_NUM} {_NUM} (\* \* \? \*|\? \* MON-FRI \*|\? \* MON-SAT \*)\)")
_CRON_SINGLE = re.compile(rf"cron\({_NUM} {_NUM} {_NUM} {_NUM} \? (\d{{4}})\)")
_CRON_MONTHLY = re.compile(rf"cron\({_NUM} {_NUM} ([1-9]\d?|L) \* \? \*\)")
_CRON_NTH = re.compile(rf"cron\({_NUM} {_NUM} \? \* ([1-7])(#[1-5]|L) \*\)")
_CRON_ANY = re.compile(r"cron\(([^()]*)\)")


def _check_dialect(dialect: object) -> None:
    if dialect not in _DIALECTS:
        raise ValidationError("dialect", dialect, "'scheduler' or 'rules'")


def to_expression(rate: Rate, *, dialect: Dialect = "scheduler", timezone: str = "UTC") -> str:
    """The AWS schedule expression for ``rate``.

    ``timezone`` matters only to the ``"rules"`` dialect, which runs in UTC and so refuses any
    other zone.
    """
    _check_dialect(dialect)
    if dialect == "rules" and not is_utc_key(timezone):
        raise ValidationError(
            "timezone",
            timezone,
            "'UTC' for the 'rules' dialect",
            message=(
                f"timezone {timezone!r} cannot be expressed as a legacy EventBridge rule, which "
                "runs in UTC only; use the 'scheduler' dialect (EventBridge Scheduler)"
            ),
        )
    if isinstance(rate, WallClockRate):
        return f"cron({rate.minute} {rate.hour} {_CRON_TAILS[type(rate)]})"
    if isinstance(rate, CalendarRate):
        expression = f"cron({_calendar_cron(rate)})"
        if len(expression) > _MAX_EXPRESSION:
            raise ValidationError(
                "rate.expression",
                rate_text(rate),
                f"an expression of at most {_MAX_EXPRESSION} characters on AWS",
                message=(
                    f"rate {rate_text(rate)} becomes {expression!r} on AWS, {len(expression)} "
                    f"characters; EventBridge takes at most {_MAX_EXPRESSION}"
                ),
            )
        return expression
    if isinstance(rate, IntervalRate):
        singular, plural = _UNITS[type(rate)]
        return f"rate({rate.n} {singular if rate.n == 1 else plural})"
    if isinstance(rate, Single):
        if dialect == "rules":
            return f"cron({rate.minute} {rate.hour} {rate.day} {rate.month} ? {rate.year})"
        return (
            f"at({rate.year:04d}-{rate.month:02d}-{rate.day:02d}T"
            f"{rate.hour:02d}:{rate.minute:02d}:00)"
        )
    raise ValidationError("rate", rate, "one of the rate variants")


def _aws_weekday(weekday: int) -> int:
    """A Python weekday (Monday = 0) as EventBridge numbers it (Sunday = 1 ... Saturday = 7)."""
    return (weekday + 1) % 7 + 1


def _calendar_cron(rate: CalendarRate) -> str:
    if isinstance(rate, Monthly):
        day = "L" if rate.day == LAST else str(rate.day)
        return f"{rate.minute} {rate.hour} {day} * ? *"
    if isinstance(rate, NthWeekday):
        which = "L" if rate.nth == LAST else f"#{rate.nth}"
        return f"{rate.minute} {rate.hour} ? * {_aws_weekday(rate.weekday)}{which} *"
    assert isinstance(rate, Cron)
    if not rate.five_fields:
        return rate.expression
    return _six_fields(rate)


def _six_fields(rate: Cron) -> str:
    """The EventBridge expression that fires as a five-field (Unix) cron does."""
    minute, hour, dom, month, dow = rate.expression.split()
    if dom == "*" and dow == "*":
        return f"{minute} {hour} * {month} ? *"
    if dow == "*":
        return f"{minute} {hour} {dom} {month} ? *"
    if dom == "*":
        weekdays = compile_cron(rate.expression).dow
        assert weekdays is not None
        numbers = sorted(_aws_weekday(day) for day in weekdays.weekdays)
        return f"{minute} {hour} ? {month} {_runs(numbers)} *"
    rule = (
        "fires on days matching either day field"
        if not dom.startswith("*") and not dow.startswith("*")
        else "fires on days matching both day fields"
    )
    raise ValidationError(
        "rate.expression",
        rate.expression,
        "a five-field cron with '*' in day-of-month or in day-of-week, for EventBridge",
        message=(
            f"rate.expression {rate.expression!r} restricts both day-of-month ({dom!r}) and "
            f"day-of-week ({dow!r}), so in Unix cron it {rule}; EventBridge cron takes one of "
            "the two only (the other is '?') and cannot express this. Split it into two "
            "schedules, one per day field, or use the embedded engine"
        ),
    )


def _runs(numbers: list[int]) -> str:
    """Sorted numbers as a cron list, consecutive runs as ranges: ``[2, 3, 4, 6]`` is
    ``'2-4,6'``."""
    parts = []
    start = previous = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ",".join(parts)


def from_expression(expression: str, *, dialect: Dialect = "scheduler") -> Rate:
    """The rate whose ``to_expression`` in ``dialect`` is exactly ``expression``.

    Any other expression, including ones AWS would accept but this library never writes, raises
    ValidationError naming the expression.
    """
    _check_dialect(dialect)
    if not isinstance(expression, str):
        raise ValidationError("expression", expression, "a str")
    try:
        rate = _parse(expression, dialect)
    except ValidationError as exc:
        raise ValidationError(
            "expression",
            expression,
            exc.allowed,
            message=f"expression {expression!r} is not valid: {exc}",
        ) from exc
    if rate is None or to_expression(rate, dialect=dialect) != expression:
        raise ValidationError(
            "expression",
            expression,
            _ALLOWED_TEXT[dialect],
            message=(
                f"expression {expression!r} is not one this library writes for the {dialect!r} "
                f"dialect; expected {_ALLOWED_TEXT[dialect]}"
            ),
        )
    return rate


_ALLOWED_TEXT = {
    "scheduler": (
        "at(YYYY-MM-DDTHH:MM:00), rate(N minute[s]|hour[s]|day[s]), or cron(...) with six "
        "fields separated by single spaces, e.g. cron(0 9 ? * MON-FRI *)"
    ),
    "rules": (
        "cron(M H D MO ? YYYY), rate(N minute[s]|hour[s]|day[s]), or cron(...) with six "
        "fields separated by single spaces, e.g. cron(0 9 ? * MON-FRI *)"
    ),
}


def _parse(expression: str, dialect: str) -> Rate | None:
    if match := _RATE.fullmatch(expression):
        return _INTERVAL_BY_UNIT[match.group(2)](int(match.group(1)))
    if match := _CRON_WALL.fullmatch(expression):
        minute, hour, tail = match.groups()
        return _WALL_BY_TAIL[tail](int(hour), int(minute))
    if match := _CRON_MONTHLY.fullmatch(expression):
        minute, hour, day = match.groups()
        return Monthly(LAST if day == "L" else int(day), int(hour), int(minute))
    if match := _CRON_NTH.fullmatch(expression):
        minute, hour, day, which = match.groups()
        weekday = (int(day) + 5) % 7
        nth = LAST if which == "L" else int(which[1:])
        return NthWeekday(nth, weekday, int(hour), int(minute))
    if dialect == "scheduler" and (match := _AT.fullmatch(expression)):
        year, month, day, hour, minute = (int(part) for part in match.groups())
        return Single(year, month, day, hour, minute)
    if dialect == "rules" and (match := _CRON_SINGLE.fullmatch(expression)):
        minute, hour, day, month, year = (int(part) for part in match.groups())
        return Single(year, month, day, hour, minute)
    if (match := _CRON_ANY.fullmatch(expression)) and len(match.group(1).split(" ")) == 6:
        return Cron(match.group(1))
    return None


class AwsScheduleFields(msgspec.Struct, frozen=True, kw_only=True):
    """What EventBridge Scheduler needs beside the target to keep this library's semantics.

    ``start_date`` (UTC) is set for intervals only: the first fire instant, which anchors
    ``rate(...)``. ``action_after_completion`` is ``"DELETE"`` for a Single, ``"NONE"`` otherwise.
    A window sets ``start_date`` to ``not_before`` (for an interval: its first fire in the
    window), and ``end_date`` to half a minute after ``not_after``, so that a fire at
    ``not_after`` happens whether EventBridge reads its end date inclusively or not (no whole
    minute lies between); a schedule with ``not_after`` is deleted after it, as on the embedded
    engine (``action_after_completion="DELETE"``).
    ``flexible_time_window`` is ``{"Mode": "OFF"}``, or for ``jitter_minutes`` N
    ``{"Mode": "FLEXIBLE", "MaximumWindowInMinutes": N}`` (AWS picks the delay; the embedded
    engine derives it from the fire id).
    ``rate_text`` is the rate as ``rate_text`` writes it when the expression reads back as
    another rate with the same fires (a five-field ``Cron``, or a ``Cron`` spelled like a fixed
    form such as ``Cron('0 9 * * ? *')``, which reads back as ``Daily(9, 0)``); None otherwise.
    """

    expression: str
    timezone: str
    start_date: datetime | None
    action_after_completion: Literal["DELETE", "NONE"]
    rate_text: str | None = None
    end_date: datetime | None = None
    flexible_time_window: dict[str, Any] = msgspec.field(default_factory=lambda: {"Mode": "OFF"})


def aws_schedule_fields(schedule: Schedule, *, created_at: datetime) -> AwsScheduleFields:
    """The EventBridge Scheduler fields for ``schedule`` created at ``created_at``.

    :raises ValidationError: ``schedule.dst`` is not the default policy (skip/first), the only
        one EventBridge Scheduler has; ``schedule.misfire`` is set (EventBridge has none).
    """
    check_aws_dst(schedule)
    if schedule.max_fires is not None:
        raise ValidationError(
            "max_fires",
            schedule.max_fires,
            "None (left out) on AWS",
            message=(
                f"max_fires {schedule.max_fires} of {schedule.name!r} cannot be kept by "
                "EventBridge Scheduler, which does not count fires; leave max_fires out (a "
                "not_after bound ends a schedule on AWS too), or use the embedded engine"
            ),
        )
    if schedule.misfire is not None:
        raise ValidationError(
            "misfire",
            schedule.misfire,
            "None (left out) on AWS",
            message=(
                f"misfire {schedule.misfire!r} of {schedule.name!r} cannot be kept by EventBridge "
                "Scheduler, which has no misfire policy (it does not stop, and retries a failed "
                "delivery by the retry policy); leave misfire out, or use the embedded engine"
            ),
        )
    created = as_utc(created_at, "created_at")
    rate = schedule.rate
    start_date = schedule.not_before
    if isinstance(rate, IntervalRate):
        start_date = first_fire(schedule, created)
    end_date = None if schedule.not_after is None else schedule.not_after + _HALF_MINUTE
    expression = to_expression(rate)
    written = None
    if isinstance(rate, Cron) and from_expression(expression) != rate:
        written = rate_text(rate)
    return AwsScheduleFields(
        expression=expression,
        timezone=schedule.timezone,
        start_date=start_date,
        action_after_completion=(
            "DELETE" if isinstance(rate, Single) or end_date is not None else "NONE"
        ),
        rate_text=written,
        end_date=end_date,
        flexible_time_window=(
            {"Mode": "OFF"}
            if schedule.jitter_minutes is None
            else {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": schedule.jitter_minutes}
        ),
    )


_HALF_MINUTE = timedelta(seconds=30)


def rate_from_description(expression: str, text: str) -> Rate | None:
    """The rate ``text`` (``AwsScheduleFields.rate_text``) names, if it still translates to
    ``expression``; None when it does not parse or no longer matches (the expression was
    changed outside reventless, and the expression is what AWS fires by)."""
    try:
        rate = parse_rate(text)
        same = to_expression(rate) == expression
    except ValidationError:
        return None
    return rate if same else None


def check_aws_dst(schedule: Schedule) -> None:
    """Refuse a schedule whose DST policy EventBridge Scheduler cannot keep (any but the default).

    Also where the policy would change no fire (a zone without DST, a Single outside a
    transition): AWS does not store the policy, so the schedule read back would differ from the
    one written, and so would its fires after a change of the zone's rules.
    """
    dst = schedule.dst
    if dst.is_default:
        return
    raise ValidationError(
        "dst",
        dst_text(dst),
        "gap=skip,overlap=first (the default) on AWS",
        message=(
            f"dst {dst_text(dst)} of {schedule.name!r} cannot be kept by EventBridge Scheduler: "
            "it skips a wall time that a DST gap removes and fires a repeated wall time once, "
            "at its first occurrence, with no other choice; leave dst out (gap=skip,"
            "overlap=first) or use the embedded engine, which keeps every policy"
        ),
    )


def created_at_from_start_date(rate: Rate, start_date: datetime) -> datetime:
    """Recover an interval's anchor from its ``StartDate``: the inverse of ``aws_schedule_fields``.

    The anchor is one interval before the first fire; any creation instant in the minute before
    the anchor yields the same fires.
    """
    if not isinstance(rate, IntervalRate):
        raise ValidationError("rate", rate_text(rate), "an interval (Minutes, Hours or Days)")
    start = as_utc(start_date, "start_date")
    if start.second or start.microsecond:
        raise ValidationError("start_date", start_date, "a whole minute")
    try:
        return start - timedelta(minutes=rate.minutes)
    except OverflowError as exc:
        raise ValidationError(
            "start_date", start_date, "an instant at least one interval after 0001-01-01 UTC"
        ) from exc
