"""DST policies: worked examples, JSON, and agreement with a minute-by-minute evaluator."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reventless import (
    Daily,
    DstPolicy,
    Hours,
    Minutes,
    Rate,
    Schedule,
    Single,
    ValidationError,
    Weekdays,
    WeekdaysAndSaturday,
    aws_schedule_fields,
    fire_times,
    next_fire_after,
    preview,
)
from reventless.fire_times import first_fire, single_is_past
from reventless.misfire import plan_misfire
from reventless.scheduler_adapter import MisfirePolicy
from reventless.target import fire_id
from tests.strategies import (
    DST_ZONES,
    dst_policies,
    transitions,
    wall_rate_near,
    zone_and_instant_near_transition,
)
from tests.test_misfire import CREATED, enumerate_plan

SHIFT = DstPolicy(gap="shift")
LAST = DstPolicy(overlap="last")
BOTH = DstPolicy(overlap="both")
SHIFT_BOTH = DstPolicy(gap="shift", overlap="both")
_MINUTE = timedelta(minutes=1)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


DEFAULT = DstPolicy()


def sched(rate: Rate, zone: str, dst: DstPolicy = DEFAULT) -> Schedule:
    return Schedule(name="s", rate=rate, payload="p", timezone=zone, dst=dst)


def fires_between(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """The core's fires in (start, end]."""
    return list(itertools.takewhile(lambda t: t <= end, fire_times(schedule, created_at=start)))


# --- worked examples: one transition day per zone ---------------------------------------------

# (zone, wall time, policy, a UTC instant the day before, the fires of that day and the next).
EXAMPLES = [
    # Berlin, 29 March 2026: 02:00 CET -> 03:00 CEST.
    ("Europe/Berlin", (2, 30), DstPolicy(), at(2026, 3, 28, 12), [at(2026, 3, 30, 0, 30)]),
    (
        "Europe/Berlin",
        (2, 30),
        SHIFT,
        at(2026, 3, 28, 12),
        [at(2026, 3, 29, 1, 30), at(2026, 3, 30, 0, 30)],  # 03:30 CEST, then 02:30 CEST
    ),
    # Berlin, 25 October 2026: 03:00 CEST -> 02:00 CET.
    ("Europe/Berlin", (2, 30), DstPolicy(), at(2026, 10, 24, 12), [at(2026, 10, 25, 0, 30)]),
    ("Europe/Berlin", (2, 30), LAST, at(2026, 10, 24, 12), [at(2026, 10, 25, 1, 30)]),
    (
        "Europe/Berlin",
        (2, 30),
        BOTH,
        at(2026, 10, 24, 12),
        [at(2026, 10, 25, 0, 30), at(2026, 10, 25, 1, 30)],
    ),
    # Lord Howe, 4 October 2026: 02:00 +10:30 -> 02:30 +11 (a 30-minute gap).
    ("Australia/Lord_Howe", (2, 15), DstPolicy(), at(2026, 10, 3, 0), [at(2026, 10, 4, 15, 15)]),
    (
        "Australia/Lord_Howe",
        (2, 15),
        SHIFT,
        at(2026, 10, 3, 0),
        [at(2026, 10, 3, 15, 45), at(2026, 10, 4, 15, 15)],  # 02:45 +11
    ),
    # Lord Howe, 5 April 2026: 02:00 +11 -> 01:30 +10:30 (a 30-minute overlap).
    (
        "Australia/Lord_Howe",
        (1, 45),
        BOTH,
        at(2026, 4, 4, 0),
        [at(2026, 4, 4, 14, 45), at(2026, 4, 4, 15, 15), at(2026, 4, 5, 15, 15)],
    ),
    # Troll, 29 March 2026: 01:00 +00 -> 03:00 +02 (a two-hour gap).
    (
        "Antarctica/Troll",
        (2, 0),
        SHIFT,
        at(2026, 3, 28, 12),
        [at(2026, 3, 29, 2, 0), at(2026, 3, 30, 0, 0)],  # 04:00 +02
    ),
    # Troll, 25 October 2026: 03:00 +02 -> 01:00 +00 (a two-hour overlap).
    (
        "Antarctica/Troll",
        (1, 30),
        LAST,
        at(2026, 10, 24, 12),
        [at(2026, 10, 25, 1, 30), at(2026, 10, 26, 1, 30)],
    ),
    (
        "Antarctica/Troll",
        (1, 30),
        BOTH,
        at(2026, 10, 24, 12),
        [at(2026, 10, 24, 23, 30), at(2026, 10, 25, 1, 30), at(2026, 10, 26, 1, 30)],
    ),
    # Dublin (winter time is the negative DST in the zone database), 29 March 2026:
    # 01:00 GMT -> 02:00 IST, and 25 October 2026: 02:00 IST -> 01:00 GMT.
    ("Europe/Dublin", (1, 30), SHIFT, at(2026, 3, 28, 12), [at(2026, 3, 29, 1, 30)]),
    (
        "Europe/Dublin",
        (1, 30),
        BOTH,
        at(2026, 10, 24, 12),
        [at(2026, 10, 25, 0, 30), at(2026, 10, 25, 1, 30)],
    ),
    # Apia skipped 30 December 2011 (-10 -> +14): shifted, its 09:00 lands on the 31st's own
    # 09:00, which fires once.
    (
        "Pacific/Apia",
        (9, 0),
        SHIFT,
        at(2011, 12, 29, 0),
        [at(2011, 12, 29, 19, 0), at(2011, 12, 30, 19, 0)],
    ),
    (
        "Pacific/Apia",
        (9, 0),
        DstPolicy(),
        at(2011, 12, 29, 0),
        [at(2011, 12, 29, 19, 0), at(2011, 12, 30, 19, 0)],
    ),
]


@pytest.mark.parametrize(("zone", "wall", "dst", "start", "expected"), EXAMPLES)
def test_worked_transition_days(
    zone: str, wall: tuple[int, int], dst: DstPolicy, start: datetime, expected: list[datetime]
) -> None:
    schedule = sched(Daily(*wall), zone, dst)
    end = expected[-1]
    assert fires_between(schedule, start, end) == expected


def test_both_occurrences_have_distinct_stable_fire_ids() -> None:
    schedule = Schedule(
        name="meter", rate=Daily(1, 30), payload="p", timezone="Europe/Dublin", dst=BOTH
    )
    first, second = fires_between(schedule, at(2026, 10, 24, 12), at(2026, 10, 25, 2))
    assert fire_id("meter", first) == "meter@2026-10-25T00:30:00Z"
    assert fire_id("meter", second) == "meter@2026-10-25T01:30:00Z"
    # The same fires, computed again from another point (a restart), have the same ids.
    assert next_fire_after(schedule, first) == second
    assert next_fire_after(schedule, at(2026, 10, 25, 0, 45)) == second


def test_shift_past_midnight_fires_the_day_before_after_midnight() -> None:
    """Santiago springs forward at 24:00 -> 01:00: 00:30 on 6 September 2026 does not exist and
    is shifted to 01:30 that day."""
    schedule = sched(Daily(0, 30), "America/Santiago", SHIFT)
    fire = next_fire_after(schedule, at(2026, 9, 6, 3, 45))  # 23:45 -04 on the 5th
    assert fire == at(2026, 9, 6, 4, 30)  # 01:30 -03
    assert fire.astimezone(ZoneInfo("America/Santiago")).hour == 1


def test_a_time_shifted_past_midnight_still_fires_after_midnight() -> None:
    """Nuuk springs forward at 23:00 -> 00:00 (since 2024): Saturday's 23:30 does not exist and
    is shifted to Sunday 00:30, so from Sunday 00:10 the next fire is Saturday's, not Sunday's."""
    schedule = sched(Daily(23, 30), "America/Nuuk", SHIFT)
    assert next_fire_after(schedule, at(2026, 3, 29, 1, 10)) == at(2026, 3, 29, 1, 30)
    assert fires_between(schedule, at(2026, 3, 28, 12), at(2026, 3, 30, 12)) == [
        at(2026, 3, 29, 1, 30),
        at(2026, 3, 30, 0, 30),
    ]


def test_misfire_sees_a_fire_of_the_next_date_in_an_hour_repeated_across_midnight() -> None:
    """St. John's fell back at 00:01 -> 23:01 (until 2011): at 23:30 of the 28th (second pass),
    the 29th's 00:00 has already fired once. The latest missed fire is that one."""
    schedule = sched(Daily(0, 0), "America/St_Johns")
    first_due = at(2000, 10, 28, 2, 30)  # 00:00 -02:30 on the 28th
    now = at(2000, 10, 29, 3, 0)  # 23:30 -03:30 on the 28th
    plan = plan_misfire(
        schedule,
        first_due,
        created_at=CREATED,
        now=now,
        grace=timedelta(days=2),
        policy=MisfirePolicy.LATEST,
    )
    assert plan.deliver == (at(2000, 10, 29, 2, 30),)
    assert plan == enumerate_plan(
        schedule, first_due, now, timedelta(days=2), MisfirePolicy.LATEST, 64
    )


def test_the_second_pass_of_the_previous_date_follows_a_first_pass_after_midnight() -> None:
    """At 00:00 of the 29th (first pass), the 28th's 23:30 is still to come a second time."""
    schedule = sched(Daily(23, 30), "America/St_Johns", LAST)
    assert next_fire_after(schedule, at(2000, 10, 29, 2, 30)) == at(2000, 10, 29, 3, 0)


# --- Single ------------------------------------------------------------------------------------


def test_a_single_in_a_gap_is_accepted_under_shift_and_fires_after_it() -> None:
    rate = Single(2026, 3, 29, 2, 30)
    with pytest.raises(ValidationError, match="gap='shift'"):
        sched(rate, "Europe/Berlin")
    schedule = sched(rate, "Europe/Berlin", SHIFT)
    assert fires_between(schedule, at(2026, 1, 1), at(2027, 1, 1)) == [at(2026, 3, 29, 1, 30)]
    assert first_fire(schedule, at(2026, 1, 1)) == at(2026, 3, 29, 1, 30)


@pytest.mark.parametrize(
    ("dst", "expected"),
    [
        (DstPolicy(), [at(2026, 10, 25, 0, 30)]),
        (LAST, [at(2026, 10, 25, 1, 30)]),
        (BOTH, [at(2026, 10, 25, 0, 30), at(2026, 10, 25, 1, 30)]),
    ],
)
def test_a_single_in_an_overlap_follows_the_policy(
    dst: DstPolicy, expected: list[datetime]
) -> None:
    schedule = sched(Single(2026, 10, 25, 2, 30), "Europe/Berlin", dst)
    assert fires_between(schedule, at(2026, 1, 1), at(2027, 1, 1)) == expected


def test_a_both_single_created_between_its_occurrences_fires_at_the_second() -> None:
    schedule = sched(Single(2026, 10, 25, 2, 30), "Europe/Berlin", BOTH)
    between = at(2026, 10, 25, 1, 0)
    assert not single_is_past(schedule, between)
    assert first_fire(schedule, between) == at(2026, 10, 25, 1, 30)
    # Within the first occurrence's minute it still fires there.
    assert first_fire(schedule, at(2026, 10, 25, 0, 30, 40)) == at(2026, 10, 25, 0, 30)
    assert single_is_past(schedule, at(2026, 10, 25, 1, 31))
    assert single_is_past(sched(Single(2026, 10, 25, 2, 30), "Europe/Berlin"), between)


# --- preview notes -----------------------------------------------------------------------------


def test_preview_says_what_each_policy_did() -> None:
    shift = preview(
        sched(Daily(2, 30), "Europe/Berlin", SHIFT_BOTH), created_at=at(2026, 3, 28, 12), count=2
    )
    assert shift[0].shifted and shift[0].skipped_days == ()
    assert shift[0].notes == ("2026-03-29 02:30 is in a DST gap; shifted to 03:30 (gap=shift)",)
    assert shift[1].notes == ()
    both = preview(
        sched(Daily(2, 30), "Europe/Berlin", BOTH), created_at=at(2026, 10, 24, 12), count=3
    )
    assert [row.second_occurrence for row in both] == [False, True, False]
    assert [row.repeated_wall_time for row in both] == [True, True, False]
    assert both[0].notes == (
        "wall time occurs twice; fires at both (overlap=both), this is the first",
    )
    assert both[1].notes == (
        "wall time occurs twice; fires at both (overlap=both), this is the second",
    )
    [last] = preview(
        sched(Daily(2, 30), "Europe/Berlin", LAST), created_at=at(2026, 10, 24, 12), count=1
    )
    assert last.second_occurrence
    assert last.notes == ("wall time occurs twice; fires at the second (overlap=last)",)
    skip = preview(sched(Daily(2, 30), "Europe/Berlin"), created_at=at(2026, 3, 28, 12), count=1)
    assert skip[0].notes == ("skipped 2026-03-29: wall time in a DST gap",)
    assert skip[0].skipped_days == (date(2026, 3, 29),)


def test_preview_names_the_date_of_a_fire_shifted_into_the_next_day() -> None:
    rows = preview(
        sched(Daily(9, 0), "Pacific/Apia", SHIFT), created_at=at(2011, 12, 29, 0), count=3
    )
    assert [row.shifted for row in rows] == [False, True, False]
    assert rows[1].notes == (
        "2011-12-30 09:00 is in a DST gap; shifted to 2011-12-31 09:00 (gap=shift)",
    )
    single = preview(
        sched(Single(2026, 3, 29, 2, 30), "Europe/Berlin", SHIFT),
        created_at=at(2026, 1, 1),
        count=1,
    )
    assert single[0].shifted


# --- the schedule and its JSON -----------------------------------------------------------------


def test_default_policy_json_is_unchanged_and_old_json_decodes() -> None:
    old = (
        b'{"name":"open-shop","rate":{"kind":"weekdays_and_saturday","hour":8,"minute":30},'
        b'"payload":"open","timezone":"Europe/Berlin"}'
    )
    schedule = Schedule(
        name="open-shop", rate=WeekdaysAndSaturday(8, 30), payload="open", timezone="Europe/Berlin"
    )
    assert schedule.dst == DstPolicy()
    assert schedule.to_json() == old
    assert Schedule.from_json(old) == schedule
    explicit = Schedule(
        name="open-shop",
        rate=WeekdaysAndSaturday(8, 30),
        payload="open",
        timezone="Europe/Berlin",
        dst=DstPolicy(gap="skip", overlap="first"),
    )
    assert explicit == schedule and explicit.to_json() == old
    assert Schedule.from_json(old[:-1] + b',"dst":{"gap":"skip","overlap":"first"}}') == schedule
    assert Schedule.from_json(old[:-1] + b',"dst":{}}') == schedule


def test_a_policy_round_trips_through_json() -> None:
    schedule = sched(Weekdays(1, 30), "Europe/Dublin", SHIFT_BOTH)
    data = schedule.to_json()
    assert data.endswith(b',"dst":{"gap":"shift","overlap":"both"}}')
    assert Schedule.from_json(data) == schedule
    assert Schedule.from_json(data.decode()).dst == SHIFT_BOTH


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: DstPolicy(gap="later"), "dst.gap"),  # type: ignore[arg-type]
        (lambda: DstPolicy(overlap="second"), "dst.overlap"),  # type: ignore[arg-type]
        (lambda: DstPolicy(gap=1), "dst.gap"),  # type: ignore[arg-type]
        (lambda: sched(Daily(9, 0), "UTC", "shift"), "dst"),  # type: ignore[arg-type]
        (lambda: sched(Minutes(5), "Europe/Berlin", SHIFT), "dst"),
        (lambda: sched(Hours(1), "UTC", BOTH), "dst"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(build: object, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build()  # type: ignore[operator]
    assert caught.value.field == field


def test_interval_refusal_says_why() -> None:
    with pytest.raises(ValidationError, match=r"Minutes\(5\).*DST never moves"):
        sched(Minutes(5), "Europe/Berlin", SHIFT)
    # The default policy is fine for an interval.
    assert sched(Minutes(5), "Europe/Berlin", DstPolicy()).dst == DstPolicy()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b'"dst":{"gap":"later"}', "dst.gap 'later'"),
        (b'"dst":{"overlap":"second"}', "dst.overlap 'second'"),
        (b'"dst":{"gap":"skip","gap":"shift"}', "dst.gap given twice"),
        (b'"dst":{"gap":"shift","when":"now"}', "when"),
        (b'"dst":"shift"', "dst"),
    ],
)
def test_bad_policy_json_is_refused(document: bytes, message: str) -> None:
    data = b'{"name":"s","rate":{"kind":"daily","hour":9,"minute":0},"payload":"p",' + document
    with pytest.raises(ValidationError, match=message):
        Schedule.from_json(data + b"}")


def test_aws_refuses_every_policy_but_the_default() -> None:
    created = at(2026, 1, 1)
    for dst in (SHIFT, LAST, BOTH):
        for rate, zone in ((Daily(2, 30), "Europe/Berlin"), (Single(2030, 1, 1, 9, 0), "UTC")):
            with pytest.raises(ValidationError, match="EventBridge Scheduler") as caught:
                aws_schedule_fields(sched(rate, zone, dst), created_at=created)
            assert caught.value.field == "dst"
    fields = aws_schedule_fields(sched(Daily(2, 30), "Europe/Berlin"), created_at=created)
    assert fields.expression == "cron(30 2 * * ? *)"


# --- agreement with a minute-by-minute evaluator ----------------------------------------------


def _allowed(rate: Rate) -> range:
    return {Daily: range(7), Weekdays: range(5), WeekdaysAndSaturday: range(6)}[type(rate)]


def brute_force_occurrences(
    zone: ZoneInfo, start: datetime, end: datetime, hour: int, minute: int
) -> tuple[dict[date, list[datetime]], dict[date, datetime]]:
    """Walk every UTC minute from ``start`` to ``end``: the instants at which the clocks show
    hour:minute, by local date, and, for each local date whose hour:minute the clocks jumped
    over, the instant as far after the jump as the wall time is after where the jump began."""
    occurrences: dict[date, list[datetime]] = {}
    shifted: dict[date, datetime] = {}
    instant = start.replace(second=0, microsecond=0)
    previous = instant.astimezone(zone).replace(tzinfo=None)
    while instant <= end:
        instant += _MINUTE
        local = instant.astimezone(zone).replace(tzinfo=None)
        if (local.hour, local.minute) == (hour, minute):
            occurrences.setdefault(local.date(), []).append(instant)
        gap_start = previous + _MINUTE
        if local > gap_start:  # the clocks jumped forward over [gap_start, local)
            day = gap_start.date()
            while day <= local.date():
                wall = datetime(day.year, day.month, day.day, hour, minute)
                if gap_start <= wall < local:
                    shifted[day] = instant + (wall - gap_start)
                day += timedelta(days=1)
        previous = local
    return occurrences, shifted


def brute_force_fires(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """The fires in (start, end], found minute by minute (the slow, obvious way)."""
    rate = schedule.rate
    assert isinstance(rate, (Daily, Weekdays, WeekdaysAndSaturday, Single))
    zone = ZoneInfo(schedule.timezone)
    # Two days of margin each side: a day's fires lie within a day of its local date.
    occurrences, shifted = brute_force_occurrences(
        zone, start - timedelta(days=2), end + timedelta(days=2), rate.hour, rate.minute
    )
    dst = schedule.dst
    fires: set[datetime] = set()
    for day in sorted(occurrences.keys() | shifted.keys()):
        if isinstance(rate, Single):
            if day != date(rate.year, rate.month, rate.day):
                continue
        elif day.weekday() not in _allowed(rate):
            continue
        found = occurrences.get(day, [])
        assert not (found and day in shifted), day  # a wall time exists or is jumped over
        if not found:
            if dst.gap == "shift":
                fires.add(shifted[day])
        elif dst.overlap == "first":
            fires.add(found[0])
        elif dst.overlap == "last":
            fires.add(found[-1])
        else:
            fires.update(found)
    return sorted(fire for fire in fires if start < fire <= end)


@given(st.data(), dst_policies)
def test_wall_rates_agree_with_the_minute_by_minute_evaluator(
    data: st.DataObject, dst: DstPolicy
) -> None:
    zone, after = data.draw(zone_and_instant_near_transition())
    rate = data.draw(wall_rate_near(zone, after))
    schedule = sched(rate, zone, dst)
    end = after + timedelta(days=3)
    assert fires_between(schedule, after, end) == brute_force_fires(schedule, after, end)


@given(st.sampled_from(DST_ZONES), st.data(), dst_policies)
def test_singles_agree_with_the_minute_by_minute_evaluator(
    zone: str, data: st.DataObject, dst: DstPolicy
) -> None:
    centre = data.draw(st.sampled_from(transitions(zone)))
    local = (centre + timedelta(minutes=data.draw(st.integers(-240, 240)))).astimezone(
        ZoneInfo(zone)
    )
    rate = Single(local.year, local.month, local.day, local.hour, local.minute)
    try:
        schedule = sched(rate, zone, dst)
    except ValidationError:
        assert dst.gap == "skip"  # only a gap under skip is refused
        return
    start, end = centre - timedelta(days=2), centre + timedelta(days=2)
    expected = brute_force_fires(schedule, start, end)
    assert expected
    assert fires_between(schedule, start, end) == expected
    assert first_fire(schedule, start) == expected[0]


@given(st.data(), dst_policies)
def test_every_zone_transition_agrees_for_every_policy(data: st.DataObject, dst: DstPolicy) -> None:
    """The wall time right inside the change: the cases a random wall time rarely hits."""
    zone = data.draw(st.sampled_from(DST_ZONES))
    centre = data.draw(st.sampled_from(transitions(zone)))
    # The exact minute of the change (transitions() finds it to the hour).
    instant = centre - timedelta(hours=1)
    before = instant.astimezone(ZoneInfo(zone)).utcoffset()
    while instant.astimezone(ZoneInfo(zone)).utcoffset() == before:
        instant += _MINUTE
    local = (instant - _MINUTE).astimezone(ZoneInfo(zone)) + _MINUTE  # the clocks' reading
    offset = data.draw(st.integers(-5, 125))
    wall = local + timedelta(minutes=offset)
    schedule = sched(Daily(wall.hour, wall.minute), zone, dst)
    start = instant - timedelta(days=1, minutes=data.draw(st.integers(0, 1440)))
    end = start + timedelta(days=3)
    assert fires_between(schedule, start, end) == brute_force_fires(schedule, start, end)


# --- misfire planning under policies -----------------------------------------------------------


@given(
    st.data(),
    dst_policies,
    st.integers(0, 3 * 1440),
    st.integers(0, 4 * 1440),
    st.sampled_from(list(MisfirePolicy)),
    st.integers(1, 5),
)
def test_misfire_plans_match_enumeration_under_policies(
    data: st.DataObject,
    dst: DstPolicy,
    down_minutes: int,
    grace_minutes: int,
    policy: MisfirePolicy,
    limit: int,
) -> None:
    zone, instant = data.draw(zone_and_instant_near_transition())
    rate = data.draw(
        st.one_of(
            wall_rate_near(zone, instant),
            st.just(instant.astimezone(ZoneInfo(zone))).map(
                lambda t: Single(t.year, t.month, t.day, t.hour, t.minute)
            ),
        )
    )
    try:
        schedule = sched(rate, zone, dst)
    except ValidationError:
        return  # a Single in a gap under skip
    # Wall-clock rates and Singles have no anchor: CREATED plays no part in their fires.
    start = instant - timedelta(days=1)
    first_due = next(iter(fire_times(schedule, created_at=CREATED, after=start)), None)
    if first_due is None:
        return
    now = first_due + timedelta(minutes=down_minutes, seconds=data.draw(st.integers(0, 59)))
    grace = timedelta(minutes=grace_minutes)
    plan = plan_misfire(
        schedule, first_due, created_at=CREATED, now=now, grace=grace, policy=policy, limit=limit
    )
    assert plan == enumerate_plan(schedule, first_due, now, grace, policy, limit)
