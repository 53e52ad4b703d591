"""Schedules from aware datetimes (Schedule.once, Single.at), ZoneInfo and fixed offsets as time
zones, constructor errors named with their class, and 'did you mean' for misspelt zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import example, given

from reventless import (
    ArgumentError,
    Daily,
    Days,
    Hours,
    Minutes,
    Schedule,
    Single,
    ValidationError,
    Weekdays,
    WeekdaysAndSaturday,
    aws_schedule_fields,
    fire_times,
)
from reventless._zones import fixed_offset_key, resolve_wall_time
from tests.strategies import reminder_moments

BERLIN = ZoneInfo("Europe/Berlin")


def _fires(schedule: Schedule, instant: datetime) -> list[datetime]:
    return list(fire_times(schedule, created_at=instant - timedelta(minutes=1)))


def _nameless(moment: datetime) -> bool:
    """Whether the moment's zone is a fixed offset that no zone name stands for."""
    return isinstance(moment.tzinfo, timezone) and fixed_offset_key(moment.utcoffset()) is None


def _between_utc_minutes(moment: datetime) -> bool:
    offset = moment.utcoffset()
    assert offset is not None
    return bool(offset % timedelta(minutes=1))


# -- Schedule.once and Single.at ------------------------------------------------------------------


@given(reminder_moments())
@example(datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN))  # the second 02:30
@example(datetime(2026, 3, 29, 2, 30, tzinfo=BERLIN))  # in the spring gap
@example(datetime(2026, 4, 5, 1, 45, fold=1, tzinfo=ZoneInfo("Australia/Lord_Howe")))
@example(datetime(1971, 6, 1, 12, 0, tzinfo=ZoneInfo("Africa/Monrovia")))  # offset -0:44:30
@example(datetime(2026, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))))
def test_once_fires_exactly_at_the_moment_or_is_refused_for_a_stated_reason(
    moment: datetime,
) -> None:
    instant = moment.astimezone(UTC)
    if _between_utc_minutes(moment) or _nameless(moment):
        with pytest.raises(ValidationError) as caught:
            Schedule.once("remind", at=moment, payload="p")
        reason = "whole UTC minute" if _between_utc_minutes(moment) else "fixed offset"
        assert reason in str(caught.value)
        return
    schedule = Schedule.once("remind", at=moment, payload="p")
    assert _fires(schedule, instant) == [instant]
    assert Schedule.from_json(schedule.to_json()) == schedule
    tz = moment.tzinfo
    if isinstance(tz, ZoneInfo) and schedule.timezone != tz.key:
        # Only for the second occurrence of a repeated wall time: the offset in force instead.
        wall = moment.replace(fold=0)
        first, _ = resolve_wall_time(tz, wall.year, wall.month, wall.day, wall.hour, wall.minute)
        assert first != instant
        assert schedule.timezone == (fixed_offset_key(moment.utcoffset()) or "UTC")
    elif isinstance(tz, timezone):
        assert schedule.timezone == fixed_offset_key(moment.utcoffset())


@given(reminder_moments())
def test_single_at_in_utc_fires_at_the_moment_with_the_default_timezone(moment: datetime) -> None:
    instant = moment.astimezone(UTC)
    if _between_utc_minutes(moment):
        with pytest.raises(ValidationError, match="whole UTC minute"):
            Single.at(moment)
        return
    schedule = Schedule(name="remind", rate=Single.at(moment), payload="p")
    assert schedule.timezone == "UTC"
    assert _fires(schedule, instant) == [instant]


@given(reminder_moments())
def test_single_at_in_the_moments_zone_fires_at_it_or_names_the_repeated_hour(
    moment: datetime,
) -> None:
    if _between_utc_minutes(moment) or _nameless(moment):
        return
    tz = moment.tzinfo
    assert tz is not None
    instant = moment.astimezone(UTC)
    wall = moment.astimezone(tz)
    first, _ = resolve_wall_time(tz, wall.year, wall.month, wall.day, wall.hour, wall.minute)
    if first != instant:
        with pytest.raises(ValidationError, match="second occurrence"):
            Single.at(moment, tz)
        return
    single = Single.at(moment, tz)
    schedule = Schedule(name="remind", rate=single, payload="p", timezone=tz)
    assert _fires(schedule, instant) == [instant]


def test_a_reminder_in_berlin_keeps_its_zone_and_wall_time() -> None:
    moment = datetime(2026, 12, 24, 18, 0, tzinfo=BERLIN)
    schedule = Schedule.once("remind-42", at=moment, payload='{"user": 42}')
    assert schedule == Schedule(
        name="remind-42",
        rate=Single(2026, 12, 24, 18, 0),
        payload='{"user": 42}',
        timezone="Europe/Berlin",
    )
    assert _fires(schedule, moment) == [datetime(2026, 12, 24, 17, 0, tzinfo=UTC)]


def test_the_second_occurrence_of_a_repeated_wall_time_gets_the_offset_then_in_force() -> None:
    second = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN)  # 01:30 UTC
    schedule = Schedule.once("r", at=second, payload="p")
    assert schedule.timezone == "Etc/GMT-1"
    assert schedule.rate == Single(2026, 10, 25, 2, 30)
    assert _fires(schedule, second) == [datetime(2026, 10, 25, 1, 30, tzinfo=UTC)]
    first = second.replace(fold=0)  # 00:30 UTC
    assert Schedule.once("r", at=first, payload="p").timezone == "Europe/Berlin"
    with pytest.raises(ValidationError, match="second occurrence"):
        Single.at(second, "Europe/Berlin")


@pytest.mark.parametrize(
    ("tz", "key"),
    [
        (UTC, "UTC"),
        (timezone(timedelta(hours=2)), "Etc/GMT-2"),
        (timezone(timedelta(hours=-5)), "Etc/GMT+5"),
        (timezone(timedelta(hours=14)), "Etc/GMT-14"),
        (timezone(timedelta(hours=-12)), "Etc/GMT+12"),
    ],
)
def test_fixed_offsets_of_whole_hours_map_to_zone_names_aws_accepts(tz: timezone, key: str) -> None:
    """The Etc names invert the sign (POSIX): Etc/GMT-2 is two hours east of UTC."""
    moment = datetime(2026, 7, 1, 9, 0, tzinfo=tz)
    schedule = Schedule.once("r", at=moment, payload="p")
    assert schedule.timezone == key
    assert schedule.rate == Single(2026, 7, 1, 9, 0)
    assert ZoneInfo(key).utcoffset(moment) == tz.utcoffset(moment)
    assert key in available_timezones() | {"UTC"}
    assert aws_schedule_fields(schedule, created_at=moment).timezone == key


def test_a_naive_datetime_is_refused_with_a_typed_error() -> None:
    with pytest.raises(ValidationError, match=r"at 2026-12-24T18:00:00 is naive"):
        Schedule.once("r", at=datetime(2026, 12, 24, 18, 0), payload="p")
    with pytest.raises(ValidationError, match="naive"):
        Single.at(datetime(2026, 12, 24, 18, 0))
    with pytest.raises(ValidationError, match="aware datetime"):
        Schedule.once("r", at="2026-12-24T18:00Z", payload="p")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 24, 18, 0, 30, tzinfo=UTC),
        datetime(2026, 12, 24, 18, 0, 0, 1, tzinfo=BERLIN),
    ],
)
def test_seconds_are_refused_not_cut(moment: datetime) -> None:
    with pytest.raises(ValidationError, match=r"has seconds.*replace\(second=0, microsecond=0\)"):
        Schedule.once("r", at=moment, payload="p")
    with pytest.raises(ValidationError, match="has seconds"):
        Single.at(moment)


def test_offsets_with_no_zone_name_are_refused_with_the_fix() -> None:
    moment = datetime(2026, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    with pytest.raises(ValidationError, match=r"fixed offset with no zone name.*Asia/Kolkata"):
        Schedule.once("r", at=moment, payload="p")
    # The fix in the message works.
    schedule = Schedule.once("r", at=moment.astimezone(UTC), payload="p")
    assert _fires(schedule, moment) == [moment.astimezone(UTC)]


def test_years_outside_a_singles_range_are_refused() -> None:
    with pytest.raises(ValidationError, match="1970 to 2199"):
        Schedule.once("r", at=datetime(2300, 1, 1, tzinfo=UTC), payload="p")


def test_name_and_payload_are_checked_as_by_the_constructor() -> None:
    moment = datetime(2026, 12, 24, 18, 0, tzinfo=UTC)
    with pytest.raises(ValidationError, match="schedule name"):
        Schedule.once("a b", at=moment, payload="p")
    with pytest.raises(ValidationError, match="payload"):
        Schedule.once("r", at=moment, payload="")


# -- ZoneInfo as a timezone ------------------------------------------------------------------------


def test_a_zoneinfo_is_accepted_and_stored_as_its_key() -> None:
    with_object = Schedule(name="r", rate=Daily(9, 0), payload="p", timezone=BERLIN)
    with_name = Schedule(name="r", rate=Daily(9, 0), payload="p", timezone="Europe/Berlin")
    assert with_object == with_name
    assert with_object.timezone == "Europe/Berlin"
    assert isinstance(with_object.timezone, str)
    assert b'"timezone":"Europe/Berlin"' in with_object.to_json()
    assert hash(with_object) == hash(with_name)


def test_a_zoneinfo_without_a_key_is_refused(tmp_path: Path) -> None:
    source = Path("/usr/share/zoneinfo/Europe/Berlin")
    if not source.exists():  # pragma: no cover - machines without a system zone database
        pytest.skip("no system zone database to read a zone file from")
    with source.open("rb") as file:
        zone = ZoneInfo.from_file(file)
    with pytest.raises(ValidationError, match="ZoneInfo without a key"):
        Schedule(name="r", rate=Daily(9, 0), payload="p", timezone=zone)


@pytest.mark.parametrize("bad", [[1], 2, None, timezone(timedelta(hours=15))])
def test_other_timezone_values_are_refused_as_validation_errors(bad: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        Schedule(name="r", rate=Daily(9, 0), payload="p", timezone=bad)
    assert caught.value.field == "timezone"


# -- constructor errors named with their class ----------------------------------------------------


@pytest.mark.parametrize(
    ("build", "start", "form"),
    [
        (lambda: Daily(9), "Daily: missing required argument 'minute'", "Daily(hour, minute)"),
        (
            lambda: Single(2026, 1),
            "Single: missing required argument 'day'",
            "Single(year, month, day, hour, minute), e.g. Single(2026, 12, 25, 14, 30)",
        ),
        (lambda: Daily(9, 0, 1), "Daily: takes at most 2 arguments, got 3", "Daily(hour, minute)"),
        (
            lambda: Weekdays(hour=9, minutes=0),
            "Weekdays: unexpected keyword argument 'minutes' (did you mean 'minute'?)",
            "Weekdays(hour, minute)",
        ),
        (lambda: Minutes(), "Minutes: missing required argument 'n'", "Minutes(n)"),
        (lambda: Hours(1, 2), "Hours: takes at most 1 arguments, got 2", "Hours(n)"),
        (lambda: Days(n=1, m=2), "Days: unexpected keyword argument 'm'", "Days(n)"),
        (
            lambda: WeekdaysAndSaturday(9, hour=9),
            "WeekdaysAndSaturday: argument 'hour' given by name and position",
            "WeekdaysAndSaturday(hour, minute)",
        ),
        (
            lambda: Schedule(name="x", rate=Daily(9, 0)),
            "Schedule: missing required argument 'payload'",
            "Schedule(name=..., rate=..., payload=..., timezone=..., dst=...)",
        ),
        (
            lambda: Schedule("x", Daily(9, 0), "p"),
            "Schedule: takes keyword arguments only, got 3 positional",
            "Schedule(name=..., rate=..., payload=..., timezone=..., dst=...)",
        ),
        (
            lambda: Schedule(name="x", rate=Daily(9, 0), payload="p", time_zone="UTC"),
            "Schedule: unexpected keyword argument 'time_zone' (did you mean 'timezone'?)",
            "Schedule(name=..., rate=..., payload=..., timezone=..., dst=...)",
        ),
    ],
)
def test_wrong_arguments_name_the_class_and_its_call_form(
    build: Any, start: str, form: str
) -> None:
    with pytest.raises(ArgumentError) as caught:
        build()
    error = caught.value
    assert str(error).startswith(start)
    assert form in str(error)
    # A ValidationError for callers that catch ours, a TypeError for those that caught msgspec's.
    assert isinstance(error, ValidationError)
    assert isinstance(error, TypeError)
    assert error.field == start.split(":")[0]


def test_range_errors_are_unchanged_and_decoding_is_not_affected() -> None:
    with pytest.raises(ValidationError) as caught:
        Daily(24, 0)
    assert not isinstance(caught.value, ArgumentError)
    assert str(caught.value).startswith("rate.hour 24 is not allowed")
    schedule = Schedule(name="r", rate=Daily(9, 0), payload="p")
    assert Schedule.from_json(schedule.to_json()) == schedule


# -- did you mean, for zones ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("Europe/Berln", "Europe/Berlin"),
        ("europe/berlin", "Europe/Berlin"),
        ("EUROPE/BERLIN", "Europe/Berlin"),
        ("Europe/Berlin ", "Europe/Berlin"),
        ("America/New York", "America/New_York"),
        ("Amerika/New_York", "America/New_York"),
        ("Berlin", "Europe/Berlin"),
        ("Asia/Calcuta", "Asia/Calcutta"),
    ],
)
def test_a_misspelt_zone_names_the_zone_it_nearly_is(typed: str, meant: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Schedule(name="r", rate=Daily(9, 0), payload="p", timezone=typed)
    assert f"did you mean {meant!r}?" in str(caught.value)
    assert caught.value.field == "timezone"
    assert caught.value.value == typed
    # The suggestion is a zone that works.
    Schedule(name="r", rate=Daily(9, 0), payload="p", timezone=meant)


@pytest.mark.parametrize("typed", ["Xq/Zzzz", "", "Nowhere/At_All_Here", "localtime"])
def test_no_guess_when_nothing_is_near(typed: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Schedule(name="r", rate=Daily(9, 0), payload="p", timezone=typed)
    assert "did you mean" not in str(caught.value)


@pytest.mark.parametrize(
    "moment",
    [
        datetime.min.replace(tzinfo=timezone(timedelta(hours=14))),  # before 0001-01-01 in UTC
        datetime.max.replace(second=0, microsecond=0, tzinfo=timezone(timedelta(hours=-12))),
    ],
)
def test_a_moment_past_the_ends_of_the_datetime_range_in_utc_is_refused_by_name(
    moment: datetime,
) -> None:
    with pytest.raises(ValidationError, match=r"^moment .* expected an instant whose date is in"):
        Single.at(moment)
