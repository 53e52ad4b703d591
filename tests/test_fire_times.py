"""Fire times: worked examples, properties, and agreement with independent evaluators."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from pyawscron import AWSCron

from reventless import (
    Daily,
    Days,
    Hours,
    Minutes,
    Rate,
    Schedule,
    Single,
    ValidationError,
    Weekdays,
    WeekdaysAndSaturday,
    fire_times,
    next_fire_after,
    preview,
    to_expression,
)
from reventless.fire_times import MAX_PREVIEW
from reventless.rate_translation import created_at_from_start_date
from tests.strategies import (
    any_aware_datetimes,
    instants,
    interval_rates,
    schedules,
    schedules_anywhere,
    wall_rate_near,
    wall_rates,
    zone_and_instant_near_transition,
)

UTC = UTC


def at(*parts: int, tz: timezone | ZoneInfo = UTC) -> datetime:
    return datetime(*parts, tzinfo=tz)


def sched(rate: Rate, zone: str = "UTC") -> Schedule:
    return Schedule(name="s", rate=rate, payload="p", timezone=zone)


def firsts(schedule: Schedule, start: datetime, count: int, **kw: datetime) -> list[datetime]:
    return list(itertools.islice(fire_times(schedule, created_at=start, **kw), count))


# --- worked examples -------------------------------------------------------------------------


def test_daily_fires_at_the_wall_time_every_day() -> None:
    assert firsts(sched(Daily(9, 0)), at(2026, 11, 27, 9, 0), 3) == [
        at(2026, 11, 28, 9),
        at(2026, 11, 29, 9),
        at(2026, 11, 30, 9),
    ]


def test_daily_before_its_time_fires_the_same_day() -> None:
    assert next_fire_after(sched(Daily(9, 0)), at(2026, 11, 27, 8, 59, 59)) == at(2026, 11, 27, 9)


def test_weekdays_skip_the_weekend_in_local_time() -> None:
    # Friday 2026-11-27 17:00 in Berlin is 16:00 UTC; the next is Monday.
    schedule = sched(Weekdays(17, 0), "Europe/Berlin")
    assert firsts(schedule, at(2026, 11, 27, 12), 2) == [at(2026, 11, 27, 16), at(2026, 11, 30, 16)]


def test_weekdays_judged_by_local_date_not_utc_date() -> None:
    # Monday 00:30 in Auckland (UTC+13) is Sunday 11:30 UTC: it fires on a UTC Sunday.
    schedule = sched(Weekdays(0, 30), "Pacific/Auckland")
    assert next_fire_after(schedule, at(2026, 11, 28, 12)) == at(2026, 11, 29, 11, 30)


def test_weekdays_and_saturday_fires_saturday_not_sunday() -> None:
    schedule = sched(WeekdaysAndSaturday(8, 0))
    assert firsts(schedule, at(2026, 11, 27, 9), 2) == [at(2026, 11, 28, 8), at(2026, 11, 30, 8)]


def test_spring_forward_gap_skips_that_day() -> None:
    # Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    schedule = sched(Daily(2, 30), "Europe/Berlin")
    assert firsts(schedule, at(2026, 3, 27, 12), 3) == [
        at(2026, 3, 28, 1, 30),
        at(2026, 3, 30, 0, 30),
        at(2026, 3, 31, 0, 30),
    ]


def test_fall_back_overlap_fires_once_at_first_occurrence() -> None:
    # Berlin 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    schedule = sched(Daily(2, 30), "Europe/Berlin")
    fires = firsts(schedule, at(2026, 10, 24, 12), 2)
    assert fires == [at(2026, 10, 25, 0, 30), at(2026, 10, 26, 1, 30)]


def test_lord_howe_half_hour_shift() -> None:
    # Lord Howe 2026-10-04: 02:00 +10:30 jumps to 02:30 +11:00; 02:15 is skipped.
    schedule = sched(Daily(2, 15), "Australia/Lord_Howe")
    fires = firsts(schedule, at(2026, 10, 2, 0), 2)
    assert fires == [at(2026, 10, 2, 15, 45), at(2026, 10, 4, 15, 15)]
    # 2027-04-04: 02:00 +11:00 falls back to 01:30 +10:30; 01:45 happens twice, fires once.
    schedule = sched(Daily(1, 45), "Australia/Lord_Howe")
    fires = firsts(schedule, at(2027, 4, 2, 0), 3)
    assert fires == [at(2027, 4, 2, 14, 45), at(2027, 4, 3, 14, 45), at(2027, 4, 4, 15, 15)]


def test_apia_skipped_calendar_day() -> None:
    # Samoa skipped Friday 2011-12-30 entirely when it moved across the date line.
    schedule = sched(Daily(9, 0), "Pacific/Apia")
    local = [
        f.astimezone(ZoneInfo("Pacific/Apia")).date().isoformat()
        for f in firsts(schedule, at(2011, 12, 28, 0), 3)
    ]
    assert local == ["2011-12-28", "2011-12-29", "2011-12-31"]


def test_interval_anchor_is_creation_rounded_up_to_the_minute() -> None:
    created = at(2026, 11, 27, 10, 0, 30)
    assert firsts(sched(Minutes(5)), created, 3) == [
        at(2026, 11, 27, 10, 6),
        at(2026, 11, 27, 10, 11),
        at(2026, 11, 27, 10, 16),
    ]
    # Exactly on the minute, the anchor is that minute.
    assert next_fire_after(sched(Hours(1)), at(2026, 1, 1, 0, 0)) == at(2026, 1, 1, 1, 0)


def test_interval_from_a_later_instant_keeps_the_anchor() -> None:
    schedule = sched(Minutes(7))
    created = at(2026, 1, 1, 0, 0)
    assert next_fire_after(schedule, at(2026, 1, 1, 0, 14), created_at=created) == at(
        2026, 1, 1, 0, 21
    )
    assert next_fire_after(schedule, at(2026, 1, 1, 0, 13, 59), created_at=created) == at(
        2026, 1, 1, 0, 14
    )


def test_intervals_created_at_the_same_instant_keep_their_own_grids() -> None:
    # The grid of an interval is remembered by its creation instant: two rates made at the same
    # instant, asked alternately, must each keep their own.
    created = at(2026, 1, 1, 0, 0, 30)
    seven, eleven = sched(Minutes(7)), sched(Hours(11))
    after = at(2026, 1, 2, 3, 4, 5)
    for _ in range(3):
        assert next_fire_after(seven, after, created_at=created) == at(2026, 1, 2, 3, 5)
        assert next_fire_after(eleven, after, created_at=created) == at(2026, 1, 2, 9, 1)
    # On a point of the grid: the next one.
    assert next_fire_after(seven, at(2026, 1, 1, 0, 8), created_at=created) == at(2026, 1, 1, 0, 15)


def test_days_are_24_hours_across_dst() -> None:
    schedule = sched(Days(1), "Europe/Berlin")
    fires = firsts(schedule, at(2026, 3, 28, 8, 0), 2)
    assert fires == [at(2026, 3, 29, 8, 0), at(2026, 3, 30, 8, 0)]


def test_single_fires_once_then_nothing() -> None:
    schedule = sched(Single(2030, 12, 25, 14, 30), "Europe/Berlin")
    assert firsts(schedule, at(2026, 1, 1), 5) == [at(2030, 12, 25, 13, 30)]
    assert next_fire_after(schedule, at(2030, 12, 25, 13, 30)) is None


def test_single_in_an_overlap_means_first_occurrence() -> None:
    schedule = sched(Single(2030, 10, 27, 2, 30), "Europe/Berlin")
    assert next_fire_after(schedule, at(2030, 1, 1)) == at(2030, 10, 27, 0, 30)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValidationError, match="naive"):
        next_fire_after(sched(Daily(9, 0)), datetime(2026, 1, 1))
    with pytest.raises(ValidationError, match="created_at"):
        next_fire_after(sched(Minutes(1)), at(2026, 1, 1), created_at=datetime(2026, 1, 1))
    with pytest.raises(ValidationError):
        next_fire_after(sched(Daily(9, 0)), "2026-01-01T00:00:00Z")  # type: ignore[arg-type]


def test_results_are_utc_whatever_zone_the_input_has() -> None:
    berlin = at(2026, 6, 1, 12, tz=ZoneInfo("Europe/Berlin"))
    result = next_fire_after(sched(Daily(9, 0)), berlin)
    assert result == at(2026, 6, 2, 9)
    assert result is not None
    assert result.tzinfo is UTC


def test_end_of_time_is_none_not_a_crash() -> None:
    end = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
    assert next_fire_after(sched(Daily(9, 0), "Europe/Berlin"), end) is None
    assert next_fire_after(sched(Days(3650)), end, created_at=at(2026, 1, 1)) is None
    assert next_fire_after(sched(Weekdays(0, 0)), datetime.max.replace(tzinfo=UTC)) is None
    assert next_fire_after(sched(Weekdays(0, 0)), end) == at(9999, 12, 31)  # a Friday


def local_offset(zone: str, instant: datetime) -> timedelta:
    offset = ZoneInfo(zone).utcoffset(instant.replace(tzinfo=None) - timedelta(days=1))
    assert offset is not None
    return offset


PLUS_14 = timezone(timedelta(hours=14))
MINUS_10 = timezone(timedelta(hours=-10))


@pytest.mark.parametrize(
    "after",
    [datetime(1, 1, 1, 0, 0, tzinfo=PLUS_14), datetime(9999, 12, 31, 23, 0, tzinfo=MINUS_10)],
)
@pytest.mark.parametrize("rate", [Daily(9, 0), Minutes(1), Single(2030, 1, 1, 0, 0)])
def test_instant_without_a_utc_equivalent_is_refused_naming_after(
    rate: Rate, after: datetime
) -> None:
    """Such an instant is a ValidationError naming `after` (or `created_at`), not OverflowError."""
    with pytest.raises(ValidationError) as caught:
        next_fire_after(sched(rate), after)
    assert caught.value.field == "after"
    with pytest.raises(ValidationError) as caught:
        next(fire_times(sched(rate), created_at=at(2026, 1, 1), after=after))
    assert caught.value.field == "after"
    with pytest.raises(ValidationError) as caught:
        preview(sched(rate), created_at=after)
    assert caught.value.field == "created_at"


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Pacific/Kiritimati", "Etc/GMT+12"])
@pytest.mark.parametrize("rate", [Minutes(1), Days(3650), Daily(0, 0), Weekdays(23, 59)])
def test_fires_run_out_at_the_end_of_time_without_overflow(zone: str, rate: Rate) -> None:
    """Near datetime.max every function ends (None, a finite iterator) instead of overflowing."""
    schedule = sched(rate, zone)
    latest = datetime.max.replace(tzinfo=UTC)
    assert next_fire_after(schedule, latest) is None
    for after in (latest - timedelta(days=2), latest - timedelta(hours=10)):
        fires = list(fire_times(schedule, created_at=after))
        assert all(after < fire <= latest and fire.second == 0 for fire in fires)
        rows = preview(schedule, created_at=after, count=MAX_PREVIEW)
        # Preview leaves out the interval fires whose local time is past 9999-12-31.
        assert [row.at for row in rows] == [
            fire for fire in fires if latest - fire >= local_offset(zone, fire)
        ]


def test_fires_near_the_start_of_time_are_found() -> None:
    """A local date before 0001-01-01 is skipped; the first representable fire is found."""
    earliest = datetime.min.replace(tzinfo=UTC)
    assert next_fire_after(sched(Daily(0, 0), "Etc/GMT-14"), earliest) == at(1, 1, 1, 10)
    assert next_fire_after(sched(Daily(20, 0), "Etc/GMT+12"), earliest) == at(1, 1, 2, 8)
    assert next_fire_after(sched(Minutes(1), "Etc/GMT+12"), earliest) == at(1, 1, 1, 0, 1)
    rows = preview(sched(Minutes(1), "Etc/GMT+12"), created_at=earliest, count=1)
    assert [row.at for row in rows] == [at(1, 1, 1, 12)]  # local 0001-01-01 00:00


def test_interval_anchor_before_the_start_of_time_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        created_at_from_start_date(Days(1), at(1, 1, 1))
    assert caught.value.field == "start_date"


def test_wall_times_in_local_mean_time_fire_on_whole_utc_minutes() -> None:
    """Monrovia kept UTC-0:44:30 until 1972: 09:00 there began at 09:44:30 UTC; fires at 09:45."""
    after = at(1971, 6, 1)
    assert next_fire_after(sched(Daily(9, 0), "Africa/Monrovia"), after) == at(1971, 6, 1, 9, 45)
    single = sched(Single(1971, 6, 1, 9, 0), "Africa/Monrovia")
    assert next_fire_after(single, after) == at(1971, 6, 1, 9, 45)
    assert next_fire_after(sched(Daily(0, 0), "Europe/Berlin"), at(1893, 1, 1)) == at(
        1893, 1, 1, 23, 7
    )


def test_preview_marks_gap_days_and_repeated_wall_times() -> None:
    rows = preview(sched(Daily(2, 30), "Europe/Berlin"), created_at=at(2026, 3, 28, 12), count=2)
    assert rows[0].skipped_days == (datetime(2026, 3, 29).date(),)
    rows = preview(sched(Daily(2, 30), "Europe/Berlin"), created_at=at(2026, 10, 24, 12), count=2)
    assert [row.repeated_wall_time for row in rows] == [True, False]


def test_preview_count_is_bounded() -> None:
    with pytest.raises(ValidationError, match="count"):
        preview(sched(Daily(9, 0)), created_at=at(2026, 1, 1), count=0)


# --- properties ------------------------------------------------------------------------------


@given(schedules(), instants, st.integers(0, 10**8))
def test_fires_increase_strictly_are_after_and_minute_aligned(
    schedule: Schedule, created: datetime, offset_seconds: int
) -> None:
    after = created + timedelta(seconds=offset_seconds)
    assume(after.year < 2195)
    previous = after
    for fire in itertools.islice(fire_times(schedule, created_at=created, after=after), 6):
        assert fire > previous
        assert fire.second == 0
        assert fire.microsecond == 0
        assert fire.tzinfo is UTC
        previous = fire


@given(schedules(wall_rates), instants)
def test_weekday_variants_never_fire_on_their_rest_days(
    schedule: Schedule, after: datetime
) -> None:
    zone = ZoneInfo(schedule.timezone)
    for fire in itertools.islice(fire_times(schedule, created_at=after), 8):
        local = fire.astimezone(zone)
        assert (local.hour, local.minute) == (schedule.rate.hour, schedule.rate.minute)
        if isinstance(schedule.rate, Weekdays):
            assert local.weekday() < 5
        elif isinstance(schedule.rate, WeekdaysAndSaturday):
            assert local.weekday() < 6


@given(
    st.integers(1, 3650), st.sampled_from(["UTC", "Europe/Berlin", "Australia/Lord_Howe"]), instants
)
def test_days_fire_exactly_n_times_24_hours_apart(n: int, zone: str, created: datetime) -> None:
    assume(created.year < 2150)
    fires = firsts(sched(Days(n), zone), created, 3)
    assert fires[0] - created >= timedelta(days=n)
    assert fires[0] - created < timedelta(days=n, minutes=1)
    assert fires[1] - fires[0] == fires[2] - fires[1] == timedelta(days=n)


@given(schedules(interval_rates), instants)
def test_first_interval_fire_is_one_full_interval_after_creation(
    schedule: Schedule, created: datetime
) -> None:
    assume(created.year < 2150)
    first = next_fire_after(schedule, created, created_at=created)
    assert first is not None
    interval = timedelta(minutes=schedule.rate.minutes)  # type: ignore[union-attr]
    assert interval <= first - created < interval + timedelta(minutes=1)


# --- agreement with independent evaluators ---------------------------------------------------


def brute_force_wall_fire(schedule: Schedule, after: datetime) -> datetime | None:
    """Walk UTC minutes forward and take the first whose local time matches, first occurrence."""
    rate = schedule.rate
    assert isinstance(rate, (Daily, Weekdays, WeekdaysAndSaturday))
    allowed = {Daily: range(7), Weekdays: range(5), WeekdaysAndSaturday: range(6)}[type(rate)]
    zone = ZoneInfo(schedule.timezone)
    minute = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(12 * 24 * 60):
        local = minute.astimezone(zone)
        if (
            local.hour == rate.hour
            and local.minute == rate.minute
            and local.fold == 0
            and local.weekday() in allowed
        ):
            return minute
        minute += timedelta(minutes=1)
    return None


@given(st.data())
def test_wall_variants_agree_with_brute_force_near_dst_transitions(data: st.DataObject) -> None:
    zone, after = data.draw(zone_and_instant_near_transition())
    rate = data.draw(wall_rate_near(zone, after))
    schedule = sched(rate, zone)
    assert next_fire_after(schedule, after) == brute_force_wall_fire(schedule, after)


def brute_force_single(schedule: Schedule) -> datetime:
    rate = schedule.rate
    assert isinstance(rate, Single)
    zone = ZoneInfo(schedule.timezone)
    guess = datetime(rate.year, rate.month, rate.day, rate.hour, rate.minute, tzinfo=UTC)
    minute = guess - timedelta(days=1)
    while True:
        local = minute.astimezone(zone)
        wanted = (rate.year, rate.month, rate.day, rate.hour, rate.minute)
        if (local.year, local.month, local.day, local.hour, local.minute) == wanted:
            return minute
        minute += timedelta(minutes=1)


@given(st.data())
def test_single_agrees_with_brute_force_near_dst_transitions(data: st.DataObject) -> None:
    zone, instant = data.draw(zone_and_instant_near_transition())
    local = instant.astimezone(ZoneInfo(zone))
    try:
        schedule = sched(Single(local.year, local.month, local.day, local.hour, local.minute), zone)
    except ValidationError:
        return
    assert next_fire_after(schedule, datetime(1970, 1, 1, tzinfo=UTC)) == brute_force_single(
        schedule
    )


@given(
    st.one_of(
        wall_rates,
        st.builds(
            Single,
            st.integers(2027, 2199),
            st.integers(1, 12),
            st.integers(1, 28),
            st.integers(0, 23),
            st.integers(0, 59),
        ),
    ),
    st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
    ),
)
def test_utc_cron_agrees_with_pyawscron(rate: Rate, after: datetime) -> None:
    """A third-party AWS cron evaluator runs our own rules-dialect expressions."""
    schedule = sched(rate)
    expression = to_expression(rate, dialect="rules")
    assert expression.startswith("cron(")
    assert expression.endswith(")")
    theirs = AWSCron(expression[5:-1]).occurrence(after).next()
    ours = next_fire_after(schedule, after)
    assert ours == theirs


def utc_or_none(value: datetime) -> datetime | None:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return None


@given(schedules_anywhere(), any_aware_datetimes, any_aware_datetimes)
@example(sched(Daily(9, 0)), datetime(1, 1, 1, tzinfo=PLUS_14), at(2026, 1, 1))
@example(sched(Daily(9, 0)), datetime(9999, 12, 31, 23, tzinfo=MINUS_10), at(2026, 1, 1))
@example(sched(Minutes(1)), datetime.max.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
@example(sched(Daily(23, 59), "Etc/GMT+12"), at(9999, 12, 30, 12), at(2026, 1, 1))
def test_next_fire_after_is_total_over_the_whole_datetime_range(
    schedule: Schedule, after: datetime, created: datetime
) -> None:
    """None or a whole UTC minute after `after`; ValidationError only for an unconvertible input."""
    if utc_or_none(after) is None or utc_or_none(created) is None:
        with pytest.raises(ValidationError) as caught:
            next_fire_after(schedule, after, created_at=created)
        assert caught.value.field in ("after", "created_at")
        return
    fire = next_fire_after(schedule, after, created_at=created)
    assert fire is None or (fire > after and fire.second == fire.microsecond == 0)
    assert fire is None or fire.tzinfo is UTC
    assert list(itertools.islice(fire_times(schedule, created_at=created, after=after), 1)) == (
        [] if fire is None else [fire]
    )
    preview(schedule, created_at=created, after=after, count=2)
