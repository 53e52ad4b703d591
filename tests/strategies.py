"""Hypothesis strategies for the pure core, in one place."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from reventless import (
    Cron,
    Daily,
    Days,
    DstPolicy,
    Hours,
    Minutes,
    Monthly,
    NthWeekday,
    Rate,
    Schedule,
    Single,
    ValidationError,
    Weekdays,
    WeekdaysAndSaturday,
)
from reventless._zones import resolve_wall_time

UTC = UTC
# The zones with unusual transitions the issue names, plus fixed and half-hour ones: Lord Howe
# moves by 30 minutes, Troll by two hours, Dublin's winter time is a negative DST, Apia skipped
# 30 December 2011, Santiago changes at midnight, Nuuk springs forward across it (23:00 -> 00:00),
# St. John's fell back across it (00:01 -> 23:01) until 2011.
DST_ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "America/St_Johns",
    "Pacific/Chatham",
    "Antarctica/Troll",
    "Europe/Dublin",
    "America/Nuuk",
)
ZONES = (*DST_ZONES, "UTC", "Asia/Kolkata")

hours = st.integers(0, 23)
minutes = st.integers(0, 59)

wall_rates = st.one_of(
    st.builds(Daily, hours, minutes),
    st.builds(Weekdays, hours, minutes),
    st.builds(WeekdaysAndSaturday, hours, minutes),
)
interval_rates = st.one_of(
    st.builds(Minutes, st.integers(1, 5_256_000)),
    st.builds(Minutes, st.integers(1, 180)),
    st.builds(Hours, st.integers(1, 87_600)),
    st.builds(Days, st.integers(1, 3650)),
)


@st.composite
def singles(draw: st.DrawFn) -> Single:
    year = draw(st.integers(1970, 2199))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, calendar.monthrange(year, month)[1]))
    return Single(year, month, day, draw(hours), draw(minutes))


rates: st.SearchStrategy[Rate] = st.one_of(wall_rates, interval_rates, singles())

dst_policies = st.builds(
    DstPolicy,
    gap=st.sampled_from(["skip", "shift"]),
    overlap=st.sampled_from(["first", "last", "both"]),
)

names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
    min_size=1,
    max_size=64,
)


@st.composite
def schedules(draw: st.DrawFn, rate: st.SearchStrategy[Rate] = rates) -> Schedule:
    chosen = draw(rate)
    zone = draw(st.sampled_from(ZONES))
    if isinstance(chosen, Single):
        instant, _ = resolve_wall_time(
            ZoneInfo(zone), chosen.year, chosen.month, chosen.day, chosen.hour, chosen.minute
        )
        if instant is None:
            zone = "UTC"
    payload = draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=100))
    return Schedule(name=draw(names), rate=chosen, payload=payload, timezone=zone)


instants = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2190, 12, 31), timezones=st.just(UTC)
)


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """UTC instants (to the hour) around which the zone's offset changes, 1995-2040."""
    zone = ZoneInfo(zone_name)
    found = []
    instant = datetime(1995, 1, 1, tzinfo=UTC)
    end = datetime(2040, 1, 1, tzinfo=UTC)
    step = timedelta(hours=1)
    offset = instant.astimezone(zone).utcoffset()
    while instant < end:
        instant += step
        current = instant.astimezone(zone).utcoffset()
        if current != offset:
            found.append(instant)
            offset = current
    return tuple(found)


@st.composite
def zone_and_instant_near_transition(draw: st.DrawFn) -> tuple[str, datetime]:
    """A DST zone and an instant within three days of one of its offset changes."""
    zone = draw(st.sampled_from(DST_ZONES))
    centre = draw(st.sampled_from(transitions(zone)))
    shift = draw(st.integers(-3 * 1440, 3 * 1440))
    seconds = draw(st.integers(0, 59))
    return zone, centre + timedelta(minutes=shift, seconds=seconds)


@st.composite
def wall_rate_near(draw: st.DrawFn, zone: str, instant: datetime) -> Rate:
    """A wall-clock rate whose wall time is within an hour or two of ``instant``'s local time."""
    local = instant.astimezone(ZoneInfo(zone))
    base = local.hour * 60 + local.minute + draw(st.integers(-120, 120))
    base %= 1440
    cls = draw(st.sampled_from([Daily, Weekdays, WeekdaysAndSaturday]))
    return cls(base // 60, base % 60)


# Zones at the extremes of the offset range and with odd local mean times, for the ends of the
# datetime range: +14, -12, -11, +13:45 (with DST), LMT +9:18:59.
EXTREME_ZONES = (
    "Pacific/Kiritimati",
    "Etc/GMT+12",
    "Pacific/Pago_Pago",
    "Pacific/Chatham",
    "Asia/Tokyo",
    "America/New_York",
    "UTC",
)
# Any fixed UTC offset a datetime allows (strictly within one day), to the minute or finer.
fixed_offsets = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    ),
)


@st.composite
def schedules_anywhere(draw: st.DrawFn) -> Schedule:
    """Any valid schedule, in a zone from ZONES or EXTREME_ZONES."""
    base = draw(schedules())
    zone = draw(st.sampled_from((base.timezone, *EXTREME_ZONES)))
    if isinstance(base.rate, Single):
        zone = base.timezone  # keeps a Single outside any DST gap
    return Schedule(name=base.name, rate=base.rate, payload=base.payload, timezone=zone)


# Aware datetimes over the whole range 0001-9999, in any offset or zone: some have no UTC
# equivalent in that range.
any_aware_datetimes = st.datetimes(
    timezones=st.one_of(st.just(UTC), fixed_offsets, st.sampled_from(EXTREME_ZONES).map(ZoneInfo))
)


# Time zones a reminder's datetime may carry: IANA zones (with DST, half hours, a local mean time
# with seconds until 1972), UTC, fixed offsets of whole hours (which have Etc/GMT names) and of
# odd minutes (which have none).
reminder_zones = st.one_of(
    st.sampled_from((*ZONES, "Africa/Monrovia", "Etc/GMT-14", "Etc/GMT+12")).map(ZoneInfo),
    st.just(UTC),
    st.integers(-12, 14).map(lambda hours: timezone(timedelta(hours=hours))),
    st.integers(-23 * 60, 23 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes))),
)


@st.composite
def reminder_moments(draw: st.DrawFn) -> datetime:
    """An aware datetime on a whole local minute, 1971-2190: either an instant shown in a zone
    (the fold set as Python sets it), or wall fields with any fold, near a DST change or not
    (so also a wall time in a gap, or the second of a repeated one)."""
    zone = draw(reminder_zones)
    if isinstance(zone, ZoneInfo) and zone.key in DST_ZONES and draw(st.booleans()):
        centre = draw(st.sampled_from(transitions(zone.key)))
        instant = centre + timedelta(minutes=draw(st.integers(-180, 180)))
    else:
        instant = draw(instants).replace(second=0, microsecond=0)
    local = instant.astimezone(zone)
    if draw(st.booleans()):
        return local.replace(second=0, fold=draw(st.integers(0, 1)))
    return local.replace(second=0)


# --- calendar rates ------------------------------------------------------------------------------

days_of_month = st.one_of(st.integers(1, 31), st.just(-1))
monthly_rates = st.builds(Monthly, days_of_month, hours, minutes)
nth_weekday_rates = st.builds(
    NthWeekday, st.one_of(st.integers(1, 5), st.just(-1)), st.integers(0, 6), hours, minutes
)
_AWS_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


@st.composite
def _numeric_item(
    draw: st.DrawFn, low: int, high: int, names: tuple[str, ...] = (), first_name: int = 0
) -> str:
    """One list item of a numeric cron field: a value, a range, a step."""

    def value(v: int) -> str:
        if names and draw(st.booleans()):
            name = names[v - first_name] if 0 <= v - first_name < len(names) else None
            if name is not None:
                return draw(st.sampled_from([name, name.lower(), name.title()]))
        return str(v)

    a = draw(st.integers(low, high))
    b = draw(st.integers(a, high))
    step = draw(st.integers(1, max(1, high)))
    return draw(
        st.sampled_from(
            [
                value(a),
                f"{value(a)}-{value(b)}",
                f"*/{step}",
                f"{a}/{step}",
                f"{value(a)}-{value(b)}/{step}",
            ]
        )
    )


def _numeric_field(
    low: int, high: int, names: tuple[str, ...] = (), first_name: int = 0
) -> st.SearchStrategy[str]:
    items = st.lists(_numeric_item(low, high, names, first_name), min_size=1, max_size=3)
    return st.one_of(st.just("*"), items.map(",".join))


@st.composite
def aws_cron_texts(draw: st.DrawFn) -> str:
    """Six-field EventBridge expressions, a few minutes a day at most (the oracle scans them)."""
    minute = draw(st.one_of(_numeric_field(0, 59), st.integers(0, 59).map(str)))
    hour = draw(_numeric_field(0, 23))
    month = draw(st.one_of(st.just("*"), _numeric_field(1, 12, _MONTH_NAMES, 1)))
    weekday = st.integers(1, 7)
    dom_side = draw(
        st.one_of(
            _numeric_field(1, 31),
            st.just("L"),
            st.integers(1, 31).map(lambda d: f"{d}W"),
        )
    )
    dow_side = draw(
        st.one_of(
            _numeric_field(1, 7, _AWS_DAY_NAMES, 1),
            st.just("L"),
            weekday.map(lambda d: f"{d}L"),
            st.tuples(weekday, st.integers(1, 5)).map(lambda p: f"{p[0]}#{p[1]}"),
        )
    )
    year = draw(st.one_of(st.just("*"), st.just("*/2"), st.just("1990-2040")))
    if draw(st.booleans()):
        text = f"{minute} {hour} {dom_side} {month} ? {year}"
    else:
        text = f"{minute} {hour} ? {month} {dow_side} {year}"
    return text


@st.composite
def unix_cron_texts(draw: st.DrawFn) -> str:
    minute = draw(st.one_of(_numeric_field(0, 59), st.integers(0, 59).map(str)))
    hour = draw(_numeric_field(0, 23))
    dom = draw(_numeric_field(1, 31))
    month = draw(_numeric_field(1, 12, _MONTH_NAMES, 1))
    dow = draw(_numeric_field(0, 7, _AWS_DAY_NAMES, 0))
    return f"{minute} {hour} {dom} {month} {dow}"


def _valid_cron(text: str) -> bool:
    try:
        Cron(text)
    except ValidationError:
        return False  # e.g. a day that no month has
    return True


cron_rates = st.one_of(aws_cron_texts(), unix_cron_texts()).filter(_valid_cron).map(Cron)
calendar_rates = st.one_of(monthly_rates, nth_weekday_rates, cron_rates)
