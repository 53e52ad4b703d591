"""Cron expressions, parsed once into sets: EventBridge's six fields and Unix's five.

Six fields (EventBridge, as AWS documents it): ``minutes hours day-of-month month day-of-week
year``, day-of-week 1 = Sunday ... 7 = Saturday, exactly one of the two day fields ``?``.
Day-of-month takes ``L`` (the last day) and ``nW`` (the weekday nearest day n, never crossing
the month; a month without day n has none); day-of-week takes ``L`` (Saturday, the last day of the
week), ``nL`` (the last such weekday of the month) and ``n#k`` (the k-th, 1-5; a month without a
k-th has none). These stand alone in their field.

Five fields (Unix): ``minute hour day-of-month month day-of-week``, day-of-week 0 or 7 = Sunday,
no ``?``, ``L``, ``W`` or ``#``. When both day fields are restricted (neither starts with ``*``), a
day matching either fires; otherwise a day must match both (Vixie cron's rule).

Both take ``*``, lists (``,``), ranges (``a-b``, not wrapping), steps (``*/s``, ``a/s``,
``a-b/s``) and month and weekday names (``JAN``, ``MON``, in any case). Parsing is one pass of
string splits over a text of at most 250 characters, so its cost is linear in the text.
"""

from __future__ import annotations

import calendar
from functools import lru_cache
from typing import NamedTuple

from reventless.errors import CronSyntaxError

__all__ = ("MAX_CRON_LENGTH", "CronSpec", "compile_cron")

MAX_CRON_LENGTH = 250
_MONTHS = {name: n for n, name in enumerate(calendar.month_abbr) if name}
_MONTH_NAMES = {name.upper(): n for name, n in _MONTHS.items()}
# Weekday names in each dialect's numbering.
_AWS_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_UNIX_DAYS = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
# The year range EventBridge accepts.
MIN_YEAR, MAX_YEAR = 1970, 2199
# The Gregorian calendar repeats every 400 years: a spec that matches no day in that many
# months matches none ever.
_CYCLE_MONTHS = 400 * 12


class _Field(NamedTuple):
    name: str
    low: int
    high: int
    names: dict[str, int]
    wildcards: str


_AWS_FIELDS = (
    _Field("minutes", 0, 59, {}, ", - * /"),
    _Field("hours", 0, 23, {}, ", - * /"),
    _Field("day-of-month", 1, 31, {}, ", - * ? / L W"),
    _Field("month", 1, 12, _MONTH_NAMES, ", - * / and JAN-DEC"),
    _Field("day-of-week", 1, 7, _AWS_DAYS, ", - * ? L # and SUN-SAT"),
    _Field("year", MIN_YEAR, MAX_YEAR, {}, ", - * /"),
)
_UNIX_FIELDS = (
    _Field("minute", 0, 59, {}, ", - * /"),
    _Field("hour", 0, 23, {}, ", - * /"),
    _Field("day-of-month", 1, 31, {}, ", - * /"),
    _Field("month", 1, 12, _MONTH_NAMES, ", - * / and JAN-DEC"),
    _Field("day-of-week", 0, 7, _UNIX_DAYS, ", - * / and SUN-SAT"),
)


class DayRule(NamedTuple):
    """Which days of a month a day field picks: plain days of the month, plain weekdays
    (Monday = 0), the last day, the weekday nearest a day, the last such weekday, the k-th."""

    days: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()
    last_day: bool = False
    nearest_weekday: int = 0
    last_weekday: int = -1
    nth: tuple[int, int] | None = None  # (weekday, k)


class CronSpec(NamedTuple):
    """A parsed cron expression. ``dom``/``dow`` None: that field is ``?``. ``either``: a day
    matching one of the two fires (Unix, both restricted); otherwise it must match both."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    years: tuple[int, int] | None
    year_set: frozenset[int] | None
    dom: DayRule | None
    dow: DayRule | None
    either: bool
    unix: bool


def _error(text: str, field: _Field, item: str, why: str) -> CronSyntaxError:
    allowed = f"{field.low}-{field.high} with {field.wildcards}"
    return CronSyntaxError(
        text,
        field.name,
        item,
        f"{field.name} {allowed}",
        message=(
            f"rate.expression {text!r}: {field.name} {item!r} is not allowed: {why}; "
            f"{field.name} takes {allowed}"
        ),
    )


def _number(text: str, field: _Field, item: str, piece: str) -> int:
    """A value of ``field``: ASCII digits (at most 4) or a name the field knows."""
    if piece.isascii() and piece.isdigit() and len(piece) <= 4:
        value = int(piece)
    elif piece.upper() in field.names:
        return field.names[piece.upper()]
    else:
        what = "a number or a name" if field.names else "a number"
        raise _error(text, field, item, f"{piece!r} is not {what}")
    if not field.low <= value <= field.high:
        raise _error(text, field, item, f"{value} is outside {field.low}-{field.high}")
    return value


def _item_values(text: str, field: _Field, item: str) -> range:
    """The values of one list item: ``*``, ``a``, ``a-b``, each optionally ``/step``."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()) or len(step_text) > 4:
            raise _error(text, field, item, f"the step {step_text!r} is not a whole number")
        step = int(step_text)
        if not 1 <= step <= field.high:
            raise _error(text, field, item, f"the step must be 1 to {field.high}")
    if base == "*":
        return range(field.low, field.high + 1, step)
    first, dash, last = base.partition("-")
    low = _number(text, field, item, first)
    if dash:
        high = _number(text, field, item, last)
        if high < low:
            raise _error(text, field, item, f"the range runs backwards ({low} > {high})")
    else:
        high = field.high if slash else low
    return range(low, high + 1, step)


def _values(text: str, field: _Field, part: str) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        if not item:
            raise _error(text, field, part, "an empty list item")
        values.update(_item_values(text, field, item))
    return frozenset(values)


def _dom(text: str, field: _Field, part: str) -> DayRule:
    if part.upper() == "L":
        return DayRule(last_day=True)
    if part[-1:] in ("W", "w") and "," not in part:
        day = _number(text, field, part, part[:-1])
        return DayRule(nearest_weekday=day)
    if "L" in part.upper() or "W" in part.upper():
        raise _error(text, field, part, "L and nW stand alone in day-of-month")
    return DayRule(days=_values(text, field, part))


def _weekday(value: int, unix: bool) -> int:
    """A day-of-week value as Python numbers it (Monday = 0)."""
    return (value + 6) % 7 if unix else (value + 5) % 7


def _dow(text: str, field: _Field, part: str, unix: bool) -> DayRule:
    upper = part.upper()
    if not unix and "," not in part:
        if upper == "L":
            return DayRule(weekdays=frozenset({5}))  # the last day of the week, Saturday
        if upper.endswith("L") and len(part) > 1:
            return DayRule(last_weekday=_weekday(_number(text, field, part, part[:-1]), False))
        day, hash_, nth = part.partition("#")
        if hash_:
            weekday = _weekday(_number(text, field, part, day), False)
            if not (nth.isascii() and nth.isdigit() and 1 <= int(nth) <= 5 and len(nth) == 1):
                raise _error(text, field, part, f"the week after # must be 1 to 5, not {nth!r}")
            return DayRule(nth=(weekday, int(nth)))
    if "#" in part or "L" in upper or "?" in part:
        why = "L, nL and n#k stand alone in day-of-week"
        if unix:
            why = "a five-field (Unix) cron has no ?, L, W or #"
        raise _error(text, field, part, why)
    values = _values(text, field, part)
    return DayRule(weekdays=frozenset(_weekday(v, unix) for v in values))


def _parse(text: str) -> CronSpec:
    if not isinstance(text, str):
        raise CronSyntaxError(
            text, "expression", text, "a str", message=f"rate.expression {text!r} is not a str"
        )
    if len(text) > MAX_CRON_LENGTH:
        raise CronSyntaxError(
            text,
            "expression",
            f"{len(text)} characters",
            f"at most {MAX_CRON_LENGTH} characters",
            message=(
                f"rate.expression is {len(text)} characters; at most {MAX_CRON_LENGTH} are allowed"
            ),
        )
    parts = text.split()
    if len(parts) not in (5, 6):
        raise CronSyntaxError(
            text,
            "expression",
            text,
            "six fields (minutes hours day-of-month month day-of-week year) or five (Unix)",
            message=(
                f"rate.expression {text!r} has {len(parts)} fields; expected six, EventBridge's "
                "'minutes hours day-of-month month day-of-week year' (e.g. '0 9 ? * MON-FRI *'), "
                "or five, Unix's 'minute hour day-of-month month day-of-week' (e.g. '0 9 * * 1-5')"
            ),
        )
    unix = len(parts) == 5
    return _parse_unix(text, parts) if unix else _parse_aws(text, parts)


def _parse_aws(text: str, parts: list[str]) -> CronSpec:
    fields = _AWS_FIELDS
    for field, part in zip(fields, parts, strict=True):
        if part == "?" and field.name not in ("day-of-month", "day-of-week"):
            raise _error(text, field, part, "? is for day-of-month or day-of-week only")
    dom_part, dow_part = parts[2], parts[4]
    if (dom_part == "?") == (dow_part == "?"):
        both = "both are" if dom_part == "?" else "neither is"
        raise CronSyntaxError(
            text,
            "day-of-month",
            f"{dom_part} and {dow_part}",
            "exactly one of day-of-month and day-of-week as ?",
            message=(
                f"rate.expression {text!r}: day-of-month {dom_part!r} and day-of-week "
                f"{dow_part!r}: {both} ?; EventBridge needs exactly one of the two to be ? "
                "(e.g. '0 9 15 * ? *' or '0 9 ? * MON *')"
            ),
        )
    dom = None if dom_part == "?" else _dom(text, fields[2], dom_part)
    dow = None if dow_part == "?" else _dow(text, fields[4], dow_part, unix=False)
    if dom_part == "*":
        dom = None
    if dow_part == "*":
        dow = None
    year_set = None if parts[5] == "*" else _values(text, fields[5], parts[5])
    return _spec(text, parts, fields, dom, dow, False, year_set)


def _parse_unix(text: str, parts: list[str]) -> CronSpec:
    fields = _UNIX_FIELDS
    for field, part in zip(fields, parts, strict=True):
        if any(char in part for char in "?#") or (
            field.name == "day-of-month" and any(char in part.upper() for char in "LW")
        ):
            raise _error(text, field, part, "a five-field (Unix) cron has no ?, L, W or #")
    dom = _dom(text, fields[2], parts[2])
    dow = _dow(text, fields[4], parts[4], unix=True)
    # Vixie cron: a field starting with * is unrestricted for the either-or rule, yet its values
    # still apply (*/2 in day-of-month with a weekday matches odd days that are that weekday).
    dom_star, dow_star = parts[2].startswith("*"), parts[4].startswith("*")
    either = not dom_star and not dow_star
    return _spec(
        text,
        parts,
        fields,
        None if parts[2] == "*" else dom,
        None if parts[4] == "*" else dow,
        either,
        None,
    )


def _spec(
    text: str,
    parts: list[str],
    fields: tuple[_Field, ...],
    dom: DayRule | None,
    dow: DayRule | None,
    either: bool,
    year_set: frozenset[int] | None,
) -> CronSpec:
    minutes = _values(text, fields[0], parts[0])
    hours = _values(text, fields[1], parts[1])
    months = _values(text, fields[3], parts[3])
    years = None if year_set is None else (min(year_set), max(year_set))
    spec = CronSpec(
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        months=months,
        years=years,
        year_set=year_set,
        dom=dom,
        dow=dow,
        either=either,
        unix=len(parts) == 5,
    )
    if not _matches_some_day(spec):
        raise CronSyntaxError(
            text,
            "expression",
            text,
            "an expression that matches at least one day",
            message=(
                f"rate.expression {text!r} matches no day in any year (e.g. 30 February, or a "
                "fifth weekday of a month that never has one); it would never fire"
            ),
        )
    return spec


def _matches_some_day(spec: CronSpec) -> bool:
    start = spec.years[0] if spec.years else 2000
    for index in range(_CYCLE_MONTHS):
        year, month = divmod(index, 12)
        year += start
        if spec.years and year > spec.years[1]:
            return False
        if spec_month_days(spec, year, month + 1):
            return True
    return False


def _rule_days(rule: DayRule, first_weekday: int, length: int) -> set[int]:
    days = {day for day in rule.days if day <= length}
    if rule.weekdays:
        days.update(d for d in range(1, length + 1) if (first_weekday + d - 1) % 7 in rule.weekdays)
    if rule.last_day:
        days.add(length)
    if rule.nearest_weekday and rule.nearest_weekday <= length:
        days.add(_nearest_weekday(rule.nearest_weekday, first_weekday, length))
    if rule.last_weekday >= 0:
        last_weekday_of_month = (first_weekday + length - 1) % 7
        days.add(length - (last_weekday_of_month - rule.last_weekday) % 7)
    if rule.nth is not None:
        weekday, k = rule.nth
        day = 1 + (weekday - first_weekday) % 7 + 7 * (k - 1)
        if day <= length:
            days.add(day)
    return days


def _nearest_weekday(day: int, first_weekday: int, length: int) -> int:
    """The Monday-Friday nearest ``day``, within the month: a Saturday moves to the Friday
    before (or the Monday after, on the 1st), a Sunday to the Monday after (or the Friday
    before, on the last day)."""
    weekday = (first_weekday + day - 1) % 7
    if weekday == 5:
        return day - 1 if day > 1 else day + 2
    if weekday == 6:
        return day + 1 if day < length else day - 2
    return day


def spec_month_days(spec: CronSpec, year: int, month: int) -> tuple[int, ...]:
    """The days of ``month`` of ``year`` on which ``spec`` fires, in order."""
    if month not in spec.months or (spec.year_set is not None and year not in spec.year_set):
        return ()
    first_weekday, length = calendar.monthrange(year, month)
    dom, dow = spec.dom, spec.dow
    if dom is None and dow is None:
        return tuple(range(1, length + 1))
    if dom is None or dow is None:
        rule = dom if dow is None else dow
        assert rule is not None
        return tuple(sorted(_rule_days(rule, first_weekday, length)))
    by_day = _rule_days(dom, first_weekday, length)
    by_weekday = _rule_days(dow, first_weekday, length)
    days = by_day | by_weekday if spec.either else by_day & by_weekday
    return tuple(sorted(days))


@lru_cache(maxsize=1024)
def compile_cron(text: str) -> CronSpec:
    """The parsed form of a cron expression; raises CronSyntaxError naming the field."""
    return _parse(text)
