"""Calendar rates to EventBridge expressions and back."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given

from reventless import (
    LAST,
    Cron,
    Daily,
    Monthly,
    NthWeekday,
    Rate,
    Schedule,
    ValidationError,
    aws_schedule_fields,
    fire_times,
    from_expression,
    to_expression,
)
from reventless.rate_translation import rate_from_description
from tests.strategies import aws_cron_texts, calendar_rates

CREATED = datetime(2026, 12, 7, 10, 0, 30, tzinfo=UTC)

TABLE: list[tuple[Rate, str]] = [
    (Monthly(1, 9, 0), "cron(0 9 1 * ? *)"),
    (Monthly(31, 23, 59), "cron(59 23 31 * ? *)"),
    (Monthly(LAST, 18, 30), "cron(30 18 L * ? *)"),
    (NthWeekday(2, 1, 9, 0), "cron(0 9 ? * 3#2 *)"),  # the second Tuesday
    (NthWeekday(5, 6, 0, 0), "cron(0 0 ? * 1#5 *)"),  # the fifth Sunday
    (NthWeekday(LAST, 4, 17, 0), "cron(0 17 ? * 6L *)"),  # the last Friday
    (Cron("0 9 ? * MON-FRI 2027"), "cron(0 9 ? * MON-FRI 2027)"),
    (Cron("0/15 8-17 1W * ? *"), "cron(0/15 8-17 1W * ? *)"),
]
# Five fields become the six that fire alike.
FIVE: list[tuple[str, str]] = [
    ("*/15 9-17 * * 1-5", "cron(*/15 9-17 ? * 2-6 *)"),
    ("0 0 * * 0", "cron(0 0 ? * 1 *)"),
    ("0 0 * * 7", "cron(0 0 ? * 1 *)"),
    ("0 0 * * 5-7", "cron(0 0 ? * 1,6-7 *)"),
    ("0 0 * * sat,sun", "cron(0 0 ? * 1,7 *)"),
    ("30 2 1,15 * *", "cron(30 2 1,15 * ? *)"),
    ("30 2 * JAN-MAR *", "cron(30 2 * JAN-MAR ? *)"),
    ("30 2 */2 * *", "cron(30 2 */2 * ? *)"),
]


@pytest.mark.parametrize(("rate", "expression"), TABLE)
def test_calendar_translation_table(rate: Rate, expression: str) -> None:
    assert to_expression(rate) == expression
    assert to_expression(rate, dialect="rules") == expression
    assert from_expression(expression) == rate or isinstance(rate, Cron)


@pytest.mark.parametrize(("text", "expression"), FIVE)
def test_five_fields_become_six_that_fire_alike(text: str, expression: str) -> None:
    rate = Cron(text)
    assert to_expression(rate) == expression
    back = from_expression(expression)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ours = itertools.islice(fire_times(_schedule(rate), created_at=start), 400)
    theirs = itertools.islice(fire_times(_schedule(back), created_at=start), 400)
    assert list(ours) == list(theirs)


@pytest.mark.parametrize(
    ("text", "rule"),
    [("0 0 1 * 1", "either day field"), ("0 0 */2 * 1", "both day fields")],
)
def test_five_fields_restricting_both_days_are_refused_with_the_reason(
    text: str, rule: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        to_expression(Cron(text))
    assert caught.value.field == "rate.expression"
    assert rule in str(caught.value)
    assert "EventBridge" in str(caught.value)


def test_a_five_field_cron_too_long_for_aws_is_refused() -> None:
    minutes = ",".join(str(m) for m in range(60))
    hours = ",".join(str(h) for h in range(24))
    text = f"{minutes} {hours} * 1,2,3,4,5,6,7 *"
    assert len(text) == 249  # a Cron takes 250; six fields add " ?" and " *", then "cron()"
    with pytest.raises(ValidationError, match="at most 256") as caught:
        to_expression(Cron(text))
    assert caught.value.field == "rate.expression"


def _schedule(rate: Rate) -> Schedule:
    return Schedule(name="s", rate=rate, payload="p", timezone="Europe/Berlin")


def _refused_by_aws(rate: Rate) -> bool:
    if not isinstance(rate, Cron) or not rate.five_fields:
        return False
    _, _, dom, _, dow = rate.expression.split()
    return dom != "*" and dow != "*"


@given(calendar_rates)
def test_rate_to_expression_and_back(rate: Rate) -> None:
    """Each calendar rate reads back from its expression as itself or, for a Cron spelled like
    a fixed form or in five fields, as a rate with the same expression and fires; the
    description's rate text then gives back the rate as written."""
    if _refused_by_aws(rate):
        with pytest.raises(ValidationError):
            to_expression(rate)
        return
    expression = to_expression(rate)
    back = from_expression(expression)
    assert to_expression(back) == expression
    fields = aws_schedule_fields(_schedule(rate), created_at=CREATED)
    if back == rate:
        assert fields.rate_text is None
    else:
        assert isinstance(rate, Cron)
        assert fields.rate_text is not None
        assert rate_from_description(expression, fields.rate_text) == rate
        ours = itertools.islice(fire_times(_schedule(rate), created_at=CREATED), 50)
        theirs = itertools.islice(fire_times(_schedule(back), created_at=CREATED), 50)
        assert list(ours) == list(theirs)


@given(aws_cron_texts())
def test_expression_to_rate_and_back(text: str) -> None:
    """Every valid six-field expression reads as a rate that writes it back unchanged."""
    expression = f"cron({text})"
    try:
        Cron(text)
    except ValidationError:
        with pytest.raises(ValidationError, match="matches no day"):
            from_expression(expression)
        return
    assert to_expression(from_expression(expression)) == expression


def test_a_cron_spelled_like_daily_reads_back_as_daily_and_its_text_keeps_it() -> None:
    fields = aws_schedule_fields(_schedule(Cron("0 9 * * ? *")), created_at=CREATED)
    assert fields.expression == "cron(0 9 * * ? *)"
    assert from_expression(fields.expression) == Daily(9, 0)
    assert fields.rate_text == "Cron(0 9 * * ? *)"


def test_a_stale_description_is_ignored() -> None:
    # Changed outside reventless: the expression no longer matches the text.
    assert rate_from_description("cron(0 10 * * ? *)", "Cron(0 9 * * ? *)") is None
    assert rate_from_description("cron(0 9 * * ? *)", "Cron(garbage)") is None


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 9 * * MON *)",  # both day fields
        "cron(0 9 ? * MON#6 *)",
        "cron(0  9 ? * MON *)",  # two spaces: not as written here
        "cron(0 9 * * *)",  # five fields are not EventBridge's
        "cron(0 9 30 2 ? *)",
        "cron(0 9 32 * ? *)",
    ],
)
def test_invalid_cron_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValidationError) as caught:
        from_expression(expression)
    assert caught.value.field == "expression"
    assert repr(expression) in str(caught.value)
