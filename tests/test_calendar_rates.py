"""Calendar rates (Monthly, NthWeekday, Cron): validation, the days they pick, JSON, parsing."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reventless import (
    LAST,
    ArgumentError,
    Cron,
    CronSyntaxError,
    Daily,
    Monthly,
    NthWeekday,
    Rate,
    Schedule,
    ValidationError,
    fire_times,
    next_fire_after,
    parse_rate,
    preview,
    rate_text,
)
from reventless._calendar_fires import next_calendar_day, previous_calendar_day
from tests.strategies import calendar_rates, cron_rates


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def sched(rate: Rate, zone: str = "UTC") -> Schedule:
    return Schedule(name="s", rate=rate, payload="p", timezone=zone)


def fires(rate: Rate, start: datetime, count: int, zone: str = "UTC") -> list[datetime]:
    return list(itertools.islice(fire_times(sched(rate, zone), created_at=start), count))


# --- which days -----------------------------------------------------------------------------


def test_monthly_skips_months_without_the_day() -> None:
    assert fires(Monthly(31, 9, 0), at(2026, 1, 1), 4) == [
        at(2026, 1, 31, 9),
        at(2026, 3, 31, 9),
        at(2026, 5, 31, 9),
        at(2026, 7, 31, 9),
    ]
    # The 29th of February only in leap years.
    leap = [f for f in fires(Monthly(29, 0, 0), at(2027, 1, 1), 70) if f.month == 2]
    assert leap == [at(2028, 2, 29), at(2032, 2, 29)]


def test_monthly_last_is_the_last_day_of_every_month() -> None:
    got = fires(Monthly(LAST, 18, 30), at(2028, 1, 1), 3, "Europe/Berlin")
    assert got == [at(2028, 1, 31, 17, 30), at(2028, 2, 29, 17, 30), at(2028, 3, 31, 16, 30)]


def test_nth_weekday_picks_the_nth_and_skips_months_without_a_fifth() -> None:
    second_tuesday = fires(NthWeekday(2, 1, 9, 0), at(2026, 12, 1), 2)
    assert second_tuesday == [at(2026, 12, 8, 9), at(2027, 1, 12, 9)]
    fifth_friday = fires(NthWeekday(5, 4, 9, 0), at(2026, 1, 1), 4)
    assert fifth_friday == [
        at(2026, 1, 30, 9),
        at(2026, 5, 29, 9),
        at(2026, 7, 31, 9),
        at(2026, 10, 30, 9),
    ]
    last_sunday = fires(NthWeekday(LAST, 6, 1, 0), at(2026, 3, 1), 2)
    assert last_sunday == [at(2026, 3, 29, 1), at(2026, 4, 26, 1)]


CRON_DAYS = [
    # EventBridge's six fields.
    (
        "0 9 ? * MON-FRI *",
        2026,
        12,
        (1, 2, 3, 4, 7, 8, 9, 10, 11, 14, 15, 16, 17, 18, 21, 22, 23, 24, 25, 28, 29, 30, 31),
    ),
    ("0 9 L * ? *", 2028, 2, (29,)),
    ("0 9 ? * 3#2 *", 2026, 12, (8,)),  # 3 = Tuesday
    ("0 9 ? * 6#5 *", 2026, 12, ()),  # December 2026 has four Fridays
    ("0 9 ? * 6L *", 2026, 12, (25,)),  # the last Friday
    ("0 9 ? * L *", 2026, 12, (5, 12, 19, 26)),  # L alone: the last day of the week, Saturday
    ("0 9 1W * ? *", 2026, 8, (3,)),  # the 1st is a Saturday: Monday the 3rd
    ("0 9 15W * ? *", 2026, 8, (14,)),  # the 15th is a Saturday: Friday the 14th
    ("0 9 16W * ? *", 2026, 8, (17,)),  # the 16th is a Sunday: Monday the 17th
    ("0 9 31W * ? *", 2027, 10, (29,)),  # the 31st is a Sunday, the last day: Friday the 29th
    ("0 9 31W * ? *", 2027, 9, ()),  # no 31st in September: none
    ("0 9 31 * ? *", 2026, 4, ()),
    ("0 9 1-31/10 * ? *", 2026, 4, (1, 11, 21)),
    ("0 9 ? JAN,MAR * *", 2026, 2, ()),
    ("0 9 ? * * 2027", 2026, 12, ()),
    ("0 9 5 * ? 2026-2027", 2027, 6, (5,)),
    # Unix's five: both day fields restricted, so either matches.
    ("0 0 1,15 * MON", 2026, 12, (1, 7, 14, 15, 21, 28)),
    # A field starting with * is unrestricted for that rule: both must match.
    ("0 0 */2 * MON", 2026, 12, (7, 21)),
    ("0 0 * * 0", 2026, 12, (6, 13, 20, 27)),
    ("0 0 * * 7", 2026, 12, (6, 13, 20, 27)),  # 7 is Sunday too
    ("0 0 * * sun-tue", 2026, 12, (1, 6, 7, 8, 13, 14, 15, 20, 21, 22, 27, 28, 29)),
]


@pytest.mark.parametrize(("text", "year", "month", "days"), CRON_DAYS)
def test_cron_days(text: str, year: int, month: int, days: tuple[int, ...]) -> None:
    assert Cron(text).month_days(year, month) == days


def test_cron_minutes_and_hours() -> None:
    got = fires(Cron("*/20 9-10 ? * MON *"), at(2026, 12, 7), 7)
    assert got == [
        at(2026, 12, 7, 9, 0),
        at(2026, 12, 7, 9, 20),
        at(2026, 12, 7, 9, 40),
        at(2026, 12, 7, 10, 0),
        at(2026, 12, 7, 10, 20),
        at(2026, 12, 7, 10, 40),
        at(2026, 12, 14, 9, 0),
    ]
    assert fires(Cron("5/20 0 1 1 ? *"), at(2026, 12, 7), 3) == [
        at(2027, 1, 1, 0, 5),
        at(2027, 1, 1, 0, 25),
        at(2027, 1, 1, 0, 45),
    ]


def test_a_cron_whose_years_are_over_has_no_next_fire() -> None:
    schedule = sched(Cron("0 9 1 1 ? 2027"))
    assert next_fire_after(schedule, at(2026, 1, 1)) == at(2027, 1, 1, 9)
    assert next_fire_after(schedule, at(2027, 1, 1, 9)) is None
    assert list(fire_times(schedule, created_at=at(2030, 1, 1))) == []


def test_a_rare_day_is_found_across_years() -> None:
    # 29 February that is a Monday: 2016, 2044.
    rate = Cron("0 0 29 2 1")  # Unix: both restricted, so the 29th OR Mondays: restrict by AND
    assert rate.month_days(2044, 2)[0] == 1
    rare = Cron("0 0 ? 2 2#5 *")  # the fifth Monday of February: only when the 29th is one
    assert fires(rare, at(2017, 1, 1), 1) == [at(2044, 2, 29)]
    assert next_calendar_day(rare, date(2017, 1, 1)) == date(2044, 2, 29)
    assert previous_calendar_day(rare, date(2043, 1, 1)) == date(2016, 2, 29)


def test_days_at_the_ends_of_the_calendar_do_not_overflow() -> None:
    rate = Monthly(LAST, 23, 59)
    assert next_calendar_day(rate, date(9999, 12, 31)) == date(9999, 12, 31)
    # 23:59 on the last day in Los Angeles would be in the year 10000 UTC: no such fire.
    assert next_fire_after(sched(rate, "America/Los_Angeles"), at(9999, 12, 30)) is None
    # In Kiritimati (+14) it is 09:59 UTC.
    assert next_fire_after(sched(rate, "Pacific/Kiritimati"), at(9999, 12, 31)) == at(
        9999, 12, 31, 9, 59
    )
    assert previous_calendar_day(rate, date(1, 1, 15)) is None
    assert fires(rate, at(9999, 11, 1), 5) == [at(9999, 11, 30, 23, 59), at(9999, 12, 31, 23, 59)]


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field", "value"),
    [
        (lambda: Monthly(0, 9, 0), "rate.day", 0),
        (lambda: Monthly(32, 9, 0), "rate.day", 32),
        (lambda: Monthly(-2, 9, 0), "rate.day", -2),
        (lambda: Monthly(True, 9, 0), "rate.day", True),
        (lambda: Monthly(1, 24, 0), "rate.hour", 24),
        (lambda: Monthly(1, 9, 60), "rate.minute", 60),
        (lambda: NthWeekday(6, 0, 9, 0), "rate.nth", 6),
        (lambda: NthWeekday(0, 0, 9, 0), "rate.nth", 0),
        (lambda: NthWeekday(1, 7, 9, 0), "rate.weekday", 7),
        (lambda: NthWeekday(1, "MON", 9, 0), "rate.weekday", "MON"),
        (lambda: NthWeekday(1, 0, -1, 0), "rate.hour", -1),
    ],
)
def test_calendar_fields_are_refused_naming_field_value_and_range(
    build: Any, field: str, value: object
) -> None:
    with pytest.raises(ValidationError) as caught:
        build()
    assert caught.value.field == field
    assert caught.value.value == value
    assert repr(value) in str(caught.value)


def test_wrong_arguments_name_the_call_form() -> None:
    with pytest.raises(ArgumentError, match=r"Monthly\(day, hour, minute\), e.g. Monthly"):
        Monthly(1, 9)  # type: ignore[call-arg]
    with pytest.raises(ArgumentError, match=r"NthWeekday\(nth, weekday, hour, minute\)"):
        NthWeekday(1, 2, 3, 4, 5)  # type: ignore[call-arg]


BAD_CRON = [
    ("0 9 * * MON *", "day-of-month", "exactly one of the two to be ?"),
    ("0 9 ? * ? *", "day-of-month", "exactly one"),
    ("60 9 * * ? *", "minutes", "60 is outside 0-59"),
    ("0 24 * * ? *", "hours", "24 is outside 0-23"),
    ("0 9 32 * ? *", "day-of-month", "32 is outside 1-31"),
    ("0 9 * 13 ? *", "month", "13 is outside 1-12"),
    ("0 9 * FOO ? *", "month", "'FOO' is not a number or a name"),
    ("0 9 ? * 8 *", "day-of-week", "8 is outside 1-7"),
    ("0 9 ? * 0 *", "day-of-week", "0 is outside 1-7"),
    ("0 9 ? * MON#6 *", "day-of-week", "the week after # must be 1 to 5"),
    ("0 9 ? * 2#1,3#1 *", "day-of-week", "stand alone"),
    ("0 9 L,15 * ? *", "day-of-month", "stand alone"),
    ("0 9 * * ? 1969", "year", "1969 is outside 1970-2199"),
    ("0 9 * * ? 2200", "year", "2200 is outside 1970-2199"),
    ("0 ? * * ? *", "hours", "? is for day-of-month or day-of-week only"),
    ("0 9 5-1 * ? *", "day-of-month", "the range runs backwards"),
    ("*/0 9 * * ? *", "minutes", "the step must be 1 to 59"),
    ("0,,1 9 * * ? *", "minutes", "an empty list item"),
    ("0 9 30 2 ? *", "expression", "matches no day"),
    ("0 9 * *", "expression", "has 4 fields"),
    ("0 9 * * * * *", "expression", "has 7 fields"),
    ("0 9 L * *", "day-of-month", "a five-field (Unix) cron has no ?, L, W or #"),
    ("0 9 * * 5#2", "day-of-week", "a five-field (Unix) cron has no ?, L, W or #"),
    ("0 9 * * 8", "day-of-week", "8 is outside 0-7"),
    ("0 9 \uff13 * ? *", "day-of-month", "is not a number"),  # a full-width digit
    ("0 9 ² * ? *", "day-of-month", "is not a number"),  # a superscript that isdigit() accepts
]


@pytest.mark.parametrize(("text", "cron_field", "why"), BAD_CRON)
def test_bad_cron_is_refused_naming_the_field_value_and_allowed(
    text: str, cron_field: str, why: str
) -> None:
    with pytest.raises(CronSyntaxError) as caught:
        Cron(text)
    error = caught.value
    assert isinstance(error, ValidationError)
    assert error.field == "rate.expression"
    assert error.cron_field == cron_field
    assert why in str(error)
    assert repr(text) in str(error)
    assert error.allowed


def test_an_overlong_cron_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(CronSyntaxError, match="at most 250 are allowed"):
        Cron("0," * 200 + "0 9 * * ? *")


@given(st.text(alphabet="0123456789*/,-?LW#MONTUEJAN ", max_size=250))
def test_any_text_parses_or_is_refused_with_the_typed_error(text: str) -> None:
    try:
        rate = Cron(text)
    except CronSyntaxError as error:
        refused: CronSyntaxError | None = error
    else:
        refused = None
        assert Cron(rate.expression) == rate
    assert refused is None or refused.field == "rate.expression"


@given(st.integers(1, 120))
def test_parsing_work_is_linear_in_the_text(items: int) -> None:
    """A long list parses in one pass: the number of values it touches grows with the text, and
    a pathological text of the full length is refused or parsed without blow-up (the parser has
    no regular expression to backtrack)."""
    minutes = ",".join(["1-2"] * items)
    text = f"{minutes} 9 * * ? *"
    if len(text) > 250:
        with pytest.raises(CronSyntaxError):
            Cron(text)
        return
    assert Cron(text).wall_times == ((9, 1), (9, 2))


def test_cron_text_is_kept_with_single_spaces() -> None:
    assert Cron("  0   9 ?\t* MON-FRI *  ").expression == "0 9 ? * MON-FRI *"


# --- JSON and the rate's text -----------------------------------------------------------------

SEVEN = [
    b'{"name":"a","rate":{"kind":"single","year":2030,"month":1,"day":2,"hour":3,"minute":4},'
    b'"payload":"p","timezone":"UTC"}',
    b'{"name":"a","rate":{"kind":"minutes","n":5},"payload":"p","timezone":"UTC"}',
    b'{"name":"a","rate":{"kind":"hours","n":2},"payload":"p","timezone":"UTC"}',
    b'{"name":"a","rate":{"kind":"days","n":3},"payload":"p","timezone":"UTC"}',
    b'{"name":"a","rate":{"kind":"daily","hour":9,"minute":0},"payload":"p","timezone":"UTC"}',
    b'{"name":"a","rate":{"kind":"weekdays","hour":17,"minute":0},"payload":"p",'
    b'"timezone":"Europe/Berlin","dst":{"gap":"shift","overlap":"both"}}',
    b'{"name":"a","rate":{"kind":"weekdays_and_saturday","hour":8,"minute":30},"payload":"p",'
    b'"timezone":"UTC"}',
]


@pytest.mark.parametrize("document", SEVEN)
def test_stored_documents_of_the_seven_decode_and_encode_unchanged(document: bytes) -> None:
    schedule = Schedule.from_json(document)
    assert type(schedule.rate).__name__ in {
        "Single",
        "Minutes",
        "Hours",
        "Days",
        "Daily",
        "Weekdays",
        "WeekdaysAndSaturday",
    }
    assert schedule.to_json() == document


def test_calendar_rates_have_stable_tags() -> None:
    documents = [sched(rate).to_json() for rate in CALENDAR_EXAMPLES]
    assert documents == [
        b'{"name":"s","rate":{"kind":"monthly","day":-1,"hour":18,"minute":0},"payload":"p",'
        b'"timezone":"UTC"}',
        b'{"name":"s","rate":{"kind":"nth_weekday","nth":2,"weekday":1,"hour":9,"minute":0},'
        b'"payload":"p","timezone":"UTC"}',
        b'{"name":"s","rate":{"kind":"cron","expression":"0 9 ? * 3#2 *"},"payload":"p",'
        b'"timezone":"UTC"}',
    ]


CALENDAR_EXAMPLES: list[Rate] = [
    Monthly(LAST, 18, 0),
    NthWeekday(2, 1, 9, 0),
    Cron("0 9 ? * 3#2 *"),
]


@given(calendar_rates, st.sampled_from(["UTC", "Europe/Berlin", "Australia/Lord_Howe"]))
def test_calendar_schedules_round_trip_through_json(rate: Rate, zone: str) -> None:
    schedule = sched(rate, zone)
    assert Schedule.from_json(schedule.to_json()) == schedule


@given(calendar_rates)
def test_rate_text_parses_back(rate: Rate) -> None:
    assert parse_rate(rate_text(rate)) == rate


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (
            b'{"name":"a","rate":{"kind":"monthly","day":0,"hour":9,"minute":0},"payload":"p"}',
            "rate.day",
        ),
        (
            b'{"name":"a","rate":{"kind":"cron","expression":"0 9 * * * *"},"payload":"p"}',
            "rate.expression",
        ),
        (
            b'{"name":"a","rate":{"kind":"nth_weekday","nth":1,"weekday":9,"hour":9,"minute":0},'
            b'"payload":"p"}',
            "rate.weekday",
        ),
    ],
)
def test_invalid_calendar_json_is_refused_naming_the_field(document: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Schedule.from_json(document)
    assert field in str(caught.value)


def test_parse_rate_reads_cron_quoted_or_not() -> None:
    assert parse_rate("Cron(0 9 ? * MON-FRI *)") == Cron("0 9 ? * MON-FRI *")
    assert parse_rate("Cron('0 9 * * 1-5')") == Cron("0 9 * * 1-5")
    assert parse_rate("Monthly(-1, 18, 0)") == Monthly(LAST, 18, 0)
    with pytest.raises(CronSyntaxError):
        parse_rate("Cron(0 9 * * 1-5 * *)")


@given(cron_rates)
def test_cron_fires_are_on_the_times_and_days_it_names(rate: Cron) -> None:
    start = at(2026, 12, 31, 20)
    for fire in fires(rate, start, 5):
        assert fire.second == 0
        assert (fire.hour, fire.minute) in rate.wall_times
        assert fire.day in rate.month_days(fire.year, fire.month)


def test_preview_of_a_calendar_rate_notes_a_skipped_gap() -> None:
    schedule = Schedule(
        name="s", rate=Cron("30 2 ? * SUN *"), payload="p", timezone="Europe/Berlin"
    )
    rows = preview(schedule, created_at=at(2026, 3, 23), count=1)
    rows = preview(schedule, created_at=at(2026, 3, 20), count=2)
    assert [row.at for row in rows] == [at(2026, 3, 22, 1, 30), at(2026, 4, 5, 0, 30)]
    assert rows[1].skipped_days == (date(2026, 3, 29),)
    assert rows[1].notes == ("skipped 2026-03-29: wall time in a DST gap",)


def test_a_daily_cron_and_daily_fire_alike() -> None:
    start = at(2026, 3, 1)
    for zone in ("Europe/Berlin", "America/Santiago", "Australia/Lord_Howe"):
        assert fires(Cron("30 2 * * ? *"), start, 60, zone) == fires(Daily(2, 30), start, 60, zone)
    assert timedelta(0) == timedelta(0)
