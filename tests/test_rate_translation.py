"""Rates to AWS expressions and back, in both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given

from reventless import (
    Cron,
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
    aws_schedule_fields,
    created_at_from_start_date,
    fire_times,
    from_expression,
    next_fire_after,
    to_expression,
)
from tests.strategies import instants, interval_rates, rates, schedules

UTC = UTC

TABLE: list[tuple[Rate, str, str]] = [
    (Single(2024, 12, 25, 14, 30), "at(2024-12-25T14:30:00)", "cron(30 14 25 12 ? 2024)"),
    (Single(2030, 1, 2, 3, 4), "at(2030-01-02T03:04:00)", "cron(4 3 2 1 ? 2030)"),
    (Minutes(1), "rate(1 minute)", "rate(1 minute)"),
    (Minutes(5), "rate(5 minutes)", "rate(5 minutes)"),
    (Hours(1), "rate(1 hour)", "rate(1 hour)"),
    (Hours(6), "rate(6 hours)", "rate(6 hours)"),
    (Days(1), "rate(1 day)", "rate(1 day)"),
    (Days(3650), "rate(3650 days)", "rate(3650 days)"),
    (Daily(9, 0), "cron(0 9 * * ? *)", "cron(0 9 * * ? *)"),
    (Daily(0, 5), "cron(5 0 * * ? *)", "cron(5 0 * * ? *)"),
    (Weekdays(17, 0), "cron(0 17 ? * MON-FRI *)", "cron(0 17 ? * MON-FRI *)"),
    (WeekdaysAndSaturday(8, 30), "cron(30 8 ? * MON-SAT *)", "cron(30 8 ? * MON-SAT *)"),
]


@pytest.mark.parametrize(("rate", "scheduler", "rules"), TABLE)
def test_translation_table(rate: Rate, scheduler: str, rules: str) -> None:
    assert to_expression(rate) == scheduler
    assert to_expression(rate, dialect="rules") == rules
    assert from_expression(scheduler) == rate
    assert from_expression(rules, dialect="rules") == rate


def test_daily_is_not_the_original_invalid_expression() -> None:
    """The original emitted cron(0 9 * * * *), which AWS rejects (both day fields set)."""
    assert to_expression(Daily(9, 0)) != "cron(0 9 * * * *)"
    with pytest.raises(ValidationError, match="expression"):
        from_expression("cron(0 9 * * * *)")


@given(rates)
def test_round_trip_scheduler_dialect(rate: Rate) -> None:
    assert from_expression(to_expression(rate)) == rate


@given(rates)
def test_round_trip_rules_dialect(rate: Rate) -> None:
    assert from_expression(to_expression(rate, dialect="rules"), dialect="rules") == rate


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(0 minutes)",
        "rate(05 minutes)",
        "rate(5256001 minutes)",
        "rate(3651 days)",
        "rate(2 weeks)",
        "rate( 5 minutes)",
        "cron(0 9 * * * *)",
        "cron(0 9 * * ?)",
        "cron(0 24 * * ? *)",
        "cron(60 9 * * ? *)",
        "cron(0 9 ? * MON-SUN *)",
        "at(2024-12-25T14:30:00",
        "at(2024-12-25T14:30:15)",
        "at(2024-02-30T14:30:00)",
        "at(1969-12-31T23:59:00)",
        "at(2024-12-25 14:30:00)",
        " cron(0 9 * * ? *)",
        "",
    ],
)
def test_other_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValidationError) as caught:
        from_expression(expression)
    assert caught.value.field == "expression"
    assert repr(expression) in str(caught.value)


@pytest.mark.parametrize(
    "expression",
    [
        "cron(00 9 * * ? *)",
        "cron(0 9 ? * SAT *)",
        "cron(0/5 * * * ? *)",
        "cron(30 14 25 12 ? 2024)",
    ],
)
def test_other_valid_cron_expressions_read_as_cron(expression: str) -> None:
    rate = from_expression(expression)
    assert rate == Cron(expression[5:-1])
    assert to_expression(rate) == expression


def test_rules_dialect_refuses_at_and_non_utc_zones() -> None:
    with pytest.raises(ValidationError):
        from_expression("at(2024-12-25T14:30:00)", dialect="rules")
    with pytest.raises(ValidationError, match="Europe/Berlin") as caught:
        to_expression(Daily(9, 0), dialect="rules", timezone="Europe/Berlin")
    assert caught.value.field == "timezone"
    assert to_expression(Daily(9, 0), dialect="rules", timezone="Etc/UTC") == "cron(0 9 * * ? *)"


def test_unknown_dialect_is_refused() -> None:
    with pytest.raises(ValidationError, match="dialect"):
        to_expression(Daily(9, 0), dialect="cron")  # type: ignore[arg-type]


def test_aws_fields_for_each_kind() -> None:
    created = datetime(2026, 11, 27, 10, 0, 30, tzinfo=UTC)
    single = aws_schedule_fields(
        Schedule(name="m", rate=Single(2030, 1, 1, 9, 0), payload="p", timezone="Europe/Berlin"),
        created_at=created,
    )
    assert single.action_after_completion == "DELETE"
    assert single.start_date is None
    assert single.timezone == "Europe/Berlin"
    interval = aws_schedule_fields(
        Schedule(name="h", rate=Hours(6), payload="p"), created_at=created
    )
    assert interval.expression == "rate(6 hours)"
    assert interval.start_date == datetime(2026, 11, 27, 16, 1, tzinfo=UTC)
    assert interval.action_after_completion == "NONE"
    daily = aws_schedule_fields(
        Schedule(name="d", rate=Daily(9, 0), payload="p"), created_at=created
    )
    assert (daily.expression, daily.start_date) == ("cron(0 9 * * ? *)", None)


@given(schedules(interval_rates), instants)
def test_start_date_reads_back_to_the_same_fires(schedule: Schedule, created: datetime) -> None:
    """What the AWS engine stores (expression + StartDate) gives the embedded engine's fires."""
    fields = aws_schedule_fields(schedule, created_at=created)
    assert fields.start_date is not None
    rate = from_expression(fields.expression)
    anchor = created_at_from_start_date(rate, fields.start_date)
    rebuilt = Schedule(name=schedule.name, rate=rate, payload=schedule.payload)
    probe = created + timedelta(days=3)
    if probe.year < 9000:
        assert next_fire_after(rebuilt, probe, created_at=anchor) == next_fire_after(
            schedule, probe, created_at=created
        )
    assert next(fire_times(rebuilt, created_at=anchor)) == fields.start_date
