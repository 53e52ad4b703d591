"""Windows: not before / not after bound a schedule's fires, inclusively, on every kind."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reventless import (
    Cron,
    Daily,
    Hours,
    Minutes,
    Monthly,
    Rate,
    Schedule,
    Single,
    ValidationError,
    aws_schedule_fields,
    fire_times,
    next_fire_after,
    preview,
)
from reventless.fire_times import first_fire
from reventless.misfire import plan_misfire
from reventless.scheduler_adapter import MisfirePolicy
from tests.strategies import calendar_rates, wall_rates
from tests.test_misfire import CREATED, enumerate_plan


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def windowed(rate: Rate, lo: datetime | None, hi: datetime | None, zone: str = "UTC") -> Schedule:
    return Schedule(name="w", rate=rate, payload="p", timezone=zone, not_before=lo, not_after=hi)


def test_bounds_are_inclusive() -> None:
    schedule = windowed(Daily(9, 0), at(2026, 12, 2, 9), at(2026, 12, 4, 9))
    fires = list(fire_times(schedule, created_at=at(2026, 12, 1)))
    assert fires == [at(2026, 12, 2, 9), at(2026, 12, 3, 9), at(2026, 12, 4, 9)]


def test_an_interval_keeps_its_grid_inside_the_window() -> None:
    schedule = windowed(Hours(6), at(2026, 12, 2), at(2026, 12, 3))
    fires = list(fire_times(schedule, created_at=at(2026, 12, 1, 1, 0, 30)))
    # The grid from 01:01 on the 1st, every six hours: 01:01, 07:01, ...
    assert fires == [at(2026, 12, 2, h, 1) for h in (1, 7, 13, 19)]
    assert first_fire(schedule, at(2026, 12, 1, 1, 0, 30)) == at(2026, 12, 2, 1, 1)


def test_no_fire_after_the_end() -> None:
    schedule = windowed(Minutes(1), None, at(2026, 12, 1, 0, 3))
    assert list(fire_times(schedule, created_at=at(2026, 12, 1))) == [
        at(2026, 12, 1, 0, 1),
        at(2026, 12, 1, 0, 2),
        at(2026, 12, 1, 0, 3),
    ]
    assert next_fire_after(schedule, at(2026, 12, 1, 0, 3), created_at=at(2026, 12, 1)) is None


@given(
    st.one_of(calendar_rates, wall_rates),
    st.sampled_from(["UTC", "Europe/Berlin", "Australia/Lord_Howe"]),
    st.integers(0, 40 * 1440),
    st.integers(0, 40 * 1440),
)
def test_a_window_keeps_exactly_the_unbounded_fires_inside_it(
    rate: Rate, zone: str, start_minutes: int, length_minutes: int
) -> None:
    created = at(2026, 1, 1)
    lo = created + timedelta(minutes=start_minutes)
    hi = lo + timedelta(minutes=length_minutes)
    free = Schedule(name="w", rate=rate, payload="p", timezone=zone)
    bounded = windowed(rate, lo, hi, zone)
    expected = [
        fire
        for fire in itertools.takewhile(lambda t: t <= hi, fire_times(free, created_at=created))
        if fire >= lo
    ]
    assert list(fire_times(bounded, created_at=created)) == expected
    assert [row.at for row in preview(bounded, created_at=created, count=10)] == expected[:10]


@given(
    st.one_of(calendar_rates.filter(lambda r: not isinstance(r, Cron) or len(r.wall_times) < 100)),
    st.integers(0, 10 * 1440),
    st.integers(0, 10 * 1440),
    st.integers(0, 20 * 1440),
    st.sampled_from(list(MisfirePolicy)),
)
def test_misfire_plans_respect_the_window(
    rate: Rate, start: int, length: int, down: int, policy: MisfirePolicy
) -> None:
    lo = CREATED + timedelta(minutes=start)
    schedule = windowed(rate, lo, lo + timedelta(minutes=length), "Europe/Berlin")
    first_due = next(iter(fire_times(schedule, created_at=CREATED)), None)
    if first_due is None:
        return
    now = first_due + timedelta(minutes=down)
    grace = timedelta(hours=30)
    plan = plan_misfire(
        schedule, first_due, created_at=CREATED, now=now, grace=grace, policy=policy, limit=3
    )
    assert plan == enumerate_plan(schedule, first_due, now, grace, policy, 3)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"not_before": datetime(2026, 12, 1, 9)}, "not_before"),  # naive
        ({"not_after": "2026-12-01"}, "not_after"),
        ({"not_before": at(2026, 12, 2), "not_after": at(2026, 12, 1)}, "not_after"),
    ],
)
def test_bad_windows_are_refused_naming_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Schedule(name="w", rate=Daily(9, 0), payload="p", **options)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_a_single_takes_no_window() -> None:
    with pytest.raises(ValidationError, match="Single") as caught:
        windowed(Single(2030, 1, 1, 9, 0), at(2029, 1, 1), None)
    assert caught.value.field == "not_before"


def test_bounds_are_kept_in_utc_and_json_leaves_them_out_unless_set() -> None:
    berlin = timezone(timedelta(hours=1))
    schedule = windowed(
        Monthly(1, 9, 0), datetime(2027, 1, 1, 10, tzinfo=berlin), at(2027, 12, 31, 23, 59)
    )
    assert schedule.not_before == at(2027, 1, 1, 9)
    document = schedule.to_json()
    assert document.endswith(
        b',"not_before":"2027-01-01T09:00:00Z","not_after":"2027-12-31T23:59:00Z"}'
    )
    assert Schedule.from_json(document) == schedule
    plain = Schedule(name="w", rate=Daily(9, 0), payload="p")
    assert plain.to_json() == (
        b'{"name":"w","rate":{"kind":"daily","hour":9,"minute":0},"payload":"p","timezone":"UTC"}'
    )


def test_aws_gets_start_and_end_dates_and_deletes_after_the_end() -> None:
    schedule = windowed(Daily(9, 0), at(2027, 1, 1, 8, 30), at(2027, 3, 1, 9))
    fields = aws_schedule_fields(schedule, created_at=at(2026, 12, 1))
    assert fields.start_date == at(2027, 1, 1, 8, 30)
    # Half a minute after the last bound: EventBridge fires before its EndDate, so 09:00 on the
    # last day fires, whether it reads the end inclusively or not; no whole minute lies between.
    assert fields.end_date == at(2027, 3, 1, 9, 0, 30)
    assert fields.action_after_completion == "DELETE"
    interval = windowed(Hours(6), at(2027, 1, 1), None)
    fields = aws_schedule_fields(interval, created_at=at(2026, 12, 1, 1, 0, 30))
    assert fields.start_date == at(2027, 1, 1, 1, 1)  # the first fire on the grid in the window
    assert fields.end_date is None and fields.action_after_completion == "NONE"


# --- max_fires ---------------------------------------------------------------------------------


@given(
    st.one_of(calendar_rates, wall_rates, st.builds(Minutes, st.integers(1, 3000))),
    st.sampled_from(["UTC", "Europe/Berlin"]),
    st.integers(1, 40),
    st.integers(0, 10 * 1440),
)
def test_max_fires_keeps_the_first_n_fires_from_creation(
    rate: Rate, zone: str, count: int, start_minutes: int
) -> None:
    created = at(2026, 1, 1, 0, 0, 30)
    low = created + timedelta(minutes=start_minutes)
    free = Schedule(name="w", rate=rate, payload="p", timezone=zone, not_before=low)
    counted = Schedule(
        name="w", rate=rate, payload="p", timezone=zone, not_before=low, max_fires=count
    )
    expected = list(itertools.islice(fire_times(free, created_at=created), count))
    assert list(fire_times(counted, created_at=created)) == expected
    # Asked from any later instant, the count still runs from the creation.
    middle = expected[len(expected) // 2]
    assert list(fire_times(counted, created_at=created, after=middle)) == [
        fire for fire in expected if fire > middle
    ]


@given(st.integers(1, 30), st.integers(0, 3 * 1440), st.sampled_from(list(MisfirePolicy)))
def test_misfire_plans_stop_at_the_last_counted_fire(
    count: int, down: int, policy: MisfirePolicy
) -> None:
    schedule = Schedule(name="w", rate=Hours(1), payload="p", max_fires=count)
    first_due = next(iter(fire_times(schedule, created_at=CREATED)))
    now = first_due + timedelta(minutes=down)
    grace = timedelta(hours=10)
    plan = plan_misfire(
        schedule, first_due, created_at=CREATED, now=now, grace=grace, policy=policy, limit=5
    )
    assert plan == enumerate_plan(schedule, first_due, now, grace, policy, 5)


def test_max_fires_is_checked_and_refused_on_aws() -> None:
    for bad in (0, 100_001, True):
        with pytest.raises(ValidationError) as caught:
            Schedule(name="w", rate=Hours(1), payload="p", max_fires=bad)  # type: ignore[arg-type]
        assert caught.value.field == "max_fires"
    with pytest.raises(ValidationError, match="a Single fires once"):
        Schedule(name="w", rate=Single(2030, 1, 1, 9, 0), payload="p", max_fires=1)
    counted = Schedule(name="w", rate=Hours(1), payload="p", max_fires=3)
    assert counted.to_json().endswith(b',"max_fires":3}')
    assert Schedule.from_json(counted.to_json()) == counted
    with pytest.raises(ValidationError, match="does not count fires") as refused:
        aws_schedule_fields(counted, created_at=CREATED)
    assert refused.value.field == "max_fires"
