"""Rates to AWS schedule expressions and back (SEMANTICS.md section 3).

Two dialects:

- ``"scheduler"``: EventBridge Scheduler. ``at(...)`` for Single, ``rate(...)`` for intervals,
  six-field ``cron(...)`` for the wall-clock variants, read in ``ScheduleExpressionTimezone``.
- ``"rules"``: legacy EventBridge rules, which run in UTC only and have no ``at()``; a Single
  becomes a cron with its year.

The translation is a bijection on valid rates: ``from_expression`` inverts exactly what
``to_expression`` produces and refuses every other string instead of guessing.

EventBridge Scheduler has one fixed DST rule (a wall time in a gap is skipped, a repeated one
fires at its first occurrence), the default ``DstPolicy``; ``aws_schedule_fields`` refuses a
schedule with any other policy rather than fire it by a rule it did not ask for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from reventless._zones import is_utc_key
from reventless.errors import ValidationError
from reventless.fire_times import as_utc, first_fire
from reventless.schedule import (
    Daily,
    Days,
    Hours,
    IntervalRate,
    Minutes,
    Rate,
    Schedule,
    Single,
    WallClockRate,
    Weekdays,
    WeekdaysAndSaturday,
    dst_text,
    rate_text,
)

__all__ = (
    "AwsScheduleFields",
    "Dialect",
    "aws_schedule_fields",
    "check_aws_dst",
    "created_at_from_start_date",
    "from_expression",
    "to_expression",
)

Dialect = Literal["scheduler", "rules"]
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
    raise ValidationError("rate", rate, "one of the seven rate variants")


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
        "at(YYYY-MM-DDTHH:MM:00), rate(N minute[s]|hour[s]|day[s]), cron(M H * * ? *), "
        "cron(M H ? * MON-FRI *) or cron(M H ? * MON-SAT *)"
    ),
    "rules": (
        "cron(M H D MO ? YYYY), rate(N minute[s]|hour[s]|day[s]), cron(M H * * ? *), "
        "cron(M H ? * MON-FRI *) or cron(M H ? * MON-SAT *)"
    ),
}


def _parse(expression: str, dialect: str) -> Rate | None:
    if match := _RATE.fullmatch(expression):
        return _INTERVAL_BY_UNIT[match.group(2)](int(match.group(1)))
    if match := _CRON_WALL.fullmatch(expression):
        minute, hour, tail = match.groups()
        return _WALL_BY_TAIL[tail](int(hour), int(minute))
    if dialect == "scheduler" and (match := _AT.fullmatch(expression)):
        year, month, day, hour, minute = (int(part) for part in match.groups())
        return Single(year, month, day, hour, minute)
    if dialect == "rules" and (match := _CRON_SINGLE.fullmatch(expression)):
        minute, hour, day, month, year = (int(part) for part in match.groups())
        return Single(year, month, day, hour, minute)
    return None


class AwsScheduleFields(msgspec.Struct, frozen=True, kw_only=True):
    """What EventBridge Scheduler needs beside the target to keep this library's semantics.

    ``start_date`` (UTC) is set for intervals only: the first fire instant, which anchors
    ``rate(...)``. ``action_after_completion`` is ``"DELETE"`` for a Single, ``"NONE"`` otherwise.
    """

    expression: str
    timezone: str
    start_date: datetime | None
    action_after_completion: Literal["DELETE", "NONE"]


def aws_schedule_fields(schedule: Schedule, *, created_at: datetime) -> AwsScheduleFields:
    """The EventBridge Scheduler fields for ``schedule`` created at ``created_at``.

    :raises ValidationError: ``schedule.dst`` is not the default policy (skip/first), the only
        one EventBridge Scheduler has.
    """
    check_aws_dst(schedule)
    created = as_utc(created_at, "created_at")
    rate = schedule.rate
    start_date = None
    if isinstance(rate, IntervalRate):
        start_date = first_fire(schedule, created)
    return AwsScheduleFields(
        expression=to_expression(rate),
        timezone=schedule.timezone,
        start_date=start_date,
        action_after_completion="DELETE" if isinstance(rate, Single) else "NONE",
    )


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
