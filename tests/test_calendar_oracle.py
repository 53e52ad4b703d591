"""Calendar rates against an independent oracle that walks every UTC minute in the zone.

The oracle shares no code with the implementation: it reads the cron text itself (a per-value
membership test, not the parser's sets), decides which local dates match from the date alone,
reads the clocks minute by minute and applies the DST policy as SEMANTICS.md states it. Windows
of a few days are drawn over 1990-2040 in zones with odd transitions, near a transition or a
month's end, for every policy.
"""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from reventless import (
    LAST,
    Cron,
    DstPolicy,
    Monthly,
    NthWeekday,
    Rate,
    Schedule,
    fire_times,
)
from reventless.fire_times import first_fire
from reventless.misfire import plan_misfire
from reventless.scheduler_adapter import MisfirePolicy
from tests.strategies import aws_cron_texts, dst_policies, unix_cron_texts
from tests.test_misfire import CREATED, enumerate_plan

ZONES = (
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Apia",
    "Europe/Berlin",
    "America/St_Johns",
    "Antarctica/Troll",
    "America/Nuuk",
    "UTC",
)
_MINUTE = timedelta(minutes=1)

# --- the oracle's own reading of a cron expression ---------------------------------------------

_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_AWS_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_UNIX_DAYS = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}


def _value(text: str, names: dict[str, int]) -> int:
    return names[text.upper()] if text.upper() in names else int(text)


def _item_has(item: str, value: int, low: int, high: int, names: dict[str, int]) -> bool:
    """Whether one list item (``*``, ``a``, ``a-b``, with ``/step``) includes ``value``."""
    if "/" in item:
        base, step_text = item.split("/")
        step = int(step_text)
    else:
        base, step = item, 1
    if base == "*":
        start, stop = low, high
    elif "-" in base:
        first, last = base.split("-")
        start, stop = _value(first, names), _value(last, names)
    else:
        start = _value(base, names)
        stop = high if "/" in item else start
    return start <= value <= stop and (value - start) % step == 0


def _field_has(field: str, value: int, low: int, high: int, names: dict[str, int]) -> bool:
    return any(_item_has(item, value, low, high, names) for item in field.split(","))


def _nearest_weekday(day: date, n: int) -> date | None:
    length = calendar.monthrange(day.year, day.month)[1]
    if n > length:
        return None
    weekdays = [
        date(day.year, day.month, d)
        for d in range(1, length + 1)
        if date(day.year, day.month, d).weekday() < 5
    ]
    return min(weekdays, key=lambda d: abs(d.day - n))


def _aws_dom(field: str, day: date) -> bool:
    length = calendar.monthrange(day.year, day.month)[1]
    if field == "*":
        return True
    if field == "L":
        return day.day == length
    if field.endswith("W"):
        return _nearest_weekday(day, int(field[:-1])) == day
    return _field_has(field, day.day, 1, 31, {})


def _aws_dow(field: str, day: date) -> bool:
    number = day.isoweekday() % 7 + 1  # Sunday 1 ... Saturday 7
    length = calendar.monthrange(day.year, day.month)[1]
    if field == "*":
        return True
    if field == "L":
        return number == 7
    if field.endswith("L"):
        return number == _value(field[:-1], _AWS_DAYS) and day.day + 7 > length
    if "#" in field:
        weekday, nth = field.split("#")
        return number == _value(weekday, _AWS_DAYS) and (day.day - 1) // 7 + 1 == int(nth)
    return _field_has(field, number, 1, 7, _AWS_DAYS)


def _unix_dow(field: str, day: date) -> bool:
    number = day.isoweekday() % 7  # Sunday 0
    return _field_has(field, number, 0, 7, _UNIX_DAYS) or (
        number == 0 and _field_has(field, 7, 0, 7, _UNIX_DAYS)
    )


@cache
def cron_day(text: str, day: date) -> bool:
    fields = text.split()
    if len(fields) == 6:
        _, _, dom, month, dow, year = fields
        if year != "*" and not _field_has(year, day.year, 1970, 2199, {}):
            return False
        if not _field_has(month, day.month, 1, 12, _MONTHS):
            return False
        return _aws_dom(dom, day) if dow == "?" else _aws_dow(dow, day)
    _, _, dom, month, dow = fields
    if not _field_has(month, day.month, 1, 12, _MONTHS):
        return False
    by_day = _field_has(dom, day.day, 1, 31, {})
    by_weekday = _unix_dow(dow, day)
    if dom.startswith("*") or dow.startswith("*"):
        return by_day and by_weekday
    return by_day or by_weekday


@cache
def cron_time(text: str, hour: int, minute: int) -> bool:
    fields = text.split()
    return _field_has(fields[0], minute, 0, 59, {}) and _field_has(fields[1], hour, 0, 23, {})


def oracle_matches(rate: Rate, wall: datetime) -> bool:
    """Whether ``rate`` names the naive local minute ``wall``."""
    day = wall.date()
    if isinstance(rate, Cron):
        return cron_time(rate.expression, wall.hour, wall.minute) and cron_day(rate.expression, day)
    assert isinstance(rate, (Monthly, NthWeekday))
    if (wall.hour, wall.minute) != (rate.hour, rate.minute):
        return False
    length = calendar.monthrange(day.year, day.month)[1]
    if isinstance(rate, Monthly):
        return day.day == (length if rate.day == LAST else rate.day)
    if day.weekday() != rate.weekday:
        return False
    if rate.nth == LAST:
        return day.day + 7 > length
    return (day.day + 6) // 7 == rate.nth


# --- the oracle's walk ---------------------------------------------------------------------------


def oracle_fires(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """The fires in (start, end], found by reading the clocks at every UTC minute."""
    zone = ZoneInfo(schedule.timezone) if schedule.timezone != "UTC" else UTC
    rate, dst = schedule.rate, schedule.dst
    occurrences: dict[datetime, list[datetime]] = {}
    shifted: dict[datetime, datetime] = {}
    instant = (start - timedelta(days=2)).replace(second=0, microsecond=0)
    stop = end + timedelta(days=2)
    previous = instant.astimezone(zone).replace(tzinfo=None)
    while instant <= stop:
        instant += _MINUTE
        local = instant.astimezone(zone).replace(tzinfo=None)
        if oracle_matches(rate, local):
            occurrences.setdefault(local, []).append(instant)
        wall = previous + _MINUTE
        while wall < local:  # the clocks jumped over [previous + 1 minute, local)
            if oracle_matches(rate, wall):
                shifted[wall] = instant + (wall - (previous + _MINUTE))
            wall += _MINUTE
        previous = local
    fires: set[datetime] = set()
    for wall in occurrences.keys() | shifted.keys():
        found = occurrences.get(wall, [])
        if not found:
            if dst.gap == "shift":
                fires.add(shifted[wall])
        elif dst.overlap == "first":
            fires.add(found[0])
        elif dst.overlap == "last":
            fires.add(found[-1])
        else:
            fires.update(found)
    return sorted(fire for fire in fires if start < fire <= end)


def core_fires(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    return list(itertools.takewhile(lambda t: t <= end, fire_times(schedule, created_at=start)))


# --- where to look ------------------------------------------------------------------------------


@cache
def zone_transitions(zone_name: str) -> tuple[datetime, ...]:
    """UTC instants (to the hour) at which the zone's offset has changed, 1990-2040."""
    if zone_name == "UTC":
        return ()
    zone = ZoneInfo(zone_name)
    found = []
    day = datetime(1990, 1, 1, tzinfo=UTC)
    offset = day.astimezone(zone).utcoffset()
    # Day by day, then hour by hour through a day whose offset changed (no zone here changes
    # twice within a day in these years).
    while day < datetime(2040, 12, 31, tzinfo=UTC):
        following = day + timedelta(days=1)
        if following.astimezone(zone).utcoffset() != offset:
            instant = day
            while instant.astimezone(zone).utcoffset() == offset:
                instant += timedelta(hours=1)
            found.append(instant)
            offset = following.astimezone(zone).utcoffset()
        day = following
    return tuple(found)


@st.composite
def windows(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone and the centre of a window: near a transition, a month's end, or anywhere."""
    zone = draw(st.sampled_from(ZONES))
    changes = zone_transitions(zone)
    anywhere = st.datetimes(
        min_value=datetime(1990, 1, 3), max_value=datetime(2040, 12, 28), timezones=st.just(UTC)
    )
    kinds = [anywhere]
    if changes:
        kinds.append(st.sampled_from(changes))
    month_end = st.tuples(st.integers(1990, 2040), st.integers(1, 12)).map(
        lambda ym: datetime(ym[0], ym[1], calendar.monthrange(*ym)[1], 12, tzinfo=UTC)
    )
    kinds.append(month_end)
    centre = draw(st.one_of(kinds))
    return zone, centre + timedelta(minutes=draw(st.integers(-1440, 1440)))


@st.composite
def rate_near(draw: st.DrawFn, zone: str, centre: datetime) -> Rate:
    """A calendar rate likely to fire near ``centre``: its local date and times nearby."""
    local = centre.astimezone(ZoneInfo(zone) if zone != "UTC" else UTC)
    near = local + timedelta(minutes=draw(st.integers(-180, 180)))
    hour, minute = near.hour, near.minute
    length = calendar.monthrange(near.year, near.month)[1]
    kind = draw(st.sampled_from(["monthly", "nth", "cron-aws", "cron-unix", "cron-hours"]))
    if kind == "monthly":
        day = draw(st.sampled_from([near.day, LAST, min(near.day + 1, 31), 31, 29]))
        return Monthly(day, hour, minute)
    if kind == "nth":
        nth = (near.day + 6) // 7 if draw(st.booleans()) else draw(st.sampled_from([5, LAST]))
        if near.day + 7 > length and draw(st.booleans()):
            nth = LAST
        return NthWeekday(nth, near.weekday(), hour, minute)
    if kind == "cron-hours":
        # Several times a day around the wall time: the day's fires cross the transition.
        step = draw(st.sampled_from([1, 7, 15, 20, 30]))
        weekday = near.isoweekday() % 7 + 1
        days = draw(st.sampled_from(["* * ?", f"? * {weekday}", "L * ?", f"{near.day}W * ?"]))
        dom, month, dow = days.split()
        # Two hours each side, across midnight too (23,0,1: a gap at midnight shifts the first
        # date's late fires past the next date's early ones).
        hours = ",".join(str(h) for h in sorted({(hour + k) % 24 for k in range(-2, 3)}))
        return Cron(f"{minute % step}/{step} {hours} {dom} {month} {dow} *")
    text = draw(aws_cron_texts() if kind == "cron-aws" else unix_cron_texts())
    fields = text.split()
    fields[1] = draw(st.sampled_from([fields[1], str(hour), f"{max(hour - 1, 0)}-{hour}"]))
    try:
        return Cron(" ".join(fields))
    except ValueError:
        return Cron(f"{minute} {hour} * * *")


def _schedule(rate: Rate, zone: str, dst: DstPolicy) -> Schedule:
    return Schedule(name="s", rate=rate, payload="p", timezone=zone, dst=dst)


@given(st.data(), dst_policies)
def test_calendar_rates_agree_with_the_minute_by_minute_oracle(
    data: st.DataObject, dst: DstPolicy
) -> None:
    zone, centre = data.draw(windows())
    rate = data.draw(rate_near(zone, centre))
    schedule = _schedule(rate, zone, dst)
    start = centre - timedelta(days=1, minutes=data.draw(st.integers(0, 1440)), seconds=30)
    end = start + timedelta(days=3)
    expected = oracle_fires(schedule, start, end)
    assert core_fires(schedule, start, end) == expected
    if expected:
        assert first_fire(schedule, start) == expected[0]


@given(st.data(), dst_policies, st.sampled_from(list(MisfirePolicy)), st.integers(1, 5))
def test_calendar_misfire_plans_match_enumeration(
    data: st.DataObject, dst: DstPolicy, policy: MisfirePolicy, limit: int
) -> None:
    """Counting missed and expired fires and finding the last one before an instant agree
    with walking the fires one by one."""
    zone, centre = data.draw(windows())
    schedule = _schedule(data.draw(rate_near(zone, centre)), zone, dst)
    start = centre - timedelta(days=1)
    first_due = next(iter(fire_times(schedule, created_at=CREATED, after=start)), None)
    if first_due is None:
        return
    now = first_due + timedelta(
        minutes=data.draw(st.integers(0, 3 * 1440)), seconds=data.draw(st.integers(0, 59))
    )
    grace = timedelta(minutes=data.draw(st.integers(0, 3 * 1440)))
    plan = plan_misfire(
        schedule, first_due, created_at=CREATED, now=now, grace=grace, policy=policy, limit=limit
    )
    assert plan == enumerate_plan(schedule, first_due, now, grace, policy, limit)


def test_the_oracle_itself_sees_a_gap_and_an_overlap() -> None:
    """The oracle is not vacuous: Berlin's 02:30 is skipped in March and repeated in October."""
    daily = Cron("30 2 * * ? *")
    march = _schedule(daily, "Europe/Berlin", DstPolicy())
    fires = oracle_fires(
        march, datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)
    )
    assert date(2026, 3, 29) not in {f.date() for f in fires}
    both = _schedule(daily, "Europe/Berlin", DstPolicy(overlap="both"))
    october = oracle_fires(
        both, datetime(2026, 10, 24, tzinfo=UTC), datetime(2026, 10, 26, tzinfo=UTC)
    )
    assert [f for f in october if f.day == 25] == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    ]
