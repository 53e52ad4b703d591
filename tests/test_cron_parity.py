"""Cron parity: AWS's documented six-field examples, and Unix five fields against other evaluators.

The comparisons with cronsim and croniter run where those are importable (the benchmarks' ``bench``
environment has both; they are no dependency of reventless), in UTC, where every evaluator reads
the clocks alike. Where croniter's semantics differ from Unix cron's (see docs/fire-times.md,
"Parity with other evaluators"), those cases are left out of its comparison, and
``test_croniter_disagreements_are_the_documented_ones`` pins each difference down.
"""

from __future__ import annotations

import importlib
import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reventless import Cron, CronSyntaxError, Schedule, fire_times
from tests.strategies import unix_cron_texts

START = datetime(2026, 12, 1, tzinfo=UTC)  # a Tuesday


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def ours(text: str, start: datetime, count: int) -> list[datetime]:
    schedule = Schedule(name="s", rate=Cron(text), payload="p")
    return list(itertools.islice(fire_times(schedule, created_at=start), count))


# The examples in AWS's EventBridge documentation (the cron reference and the Lambda guide), with
# what they are documented to mean, as fires after Tuesday 1 December 2026 00:00 UTC.
AWS_EXAMPLES = [
    # "10:15 AM (UTC) every day"
    ("15 10 * * ? *", [at(2026, 12, 1, 10, 15), at(2026, 12, 2, 10, 15)]),
    # "Run at 10:00 am (UTC+0) every day"
    ("0 10 * * ? *", [at(2026, 12, 1, 10), at(2026, 12, 2, 10)]),
    # "6:00 PM Monday through Friday"
    (
        "0 18 ? * MON-FRI *",
        [at(2026, 12, d, 18) for d in (1, 2, 3, 4, 7)],
    ),
    # "8:00 AM on the first day of the month"
    ("0 8 1 * ? *", [at(2026, 12, 1, 8), at(2027, 1, 1, 8)]),
    # "Every 10 min on weekdays": Friday 23:50 is followed by Monday 00:00.
    ("0/10 * ? * MON-FRI *", [at(2026, 12, 1, 0, 10), at(2026, 12, 1, 0, 20)]),
    # "Every 5 minutes between 8:00 AM and 5:55 PM weekdays"
    ("0/5 8-17 ? * MON-FRI *", [at(2026, 12, 1, 8, 0), at(2026, 12, 1, 8, 5)]),
    # "9:00 AM on the first Monday of each month"
    ("0 9 ? * 2#1 *", [at(2026, 12, 7, 9), at(2027, 1, 4, 9)]),
    # "3#2 would be the second Tuesday of the month"
    ("0 9 ? * 3#2 *", [at(2026, 12, 8, 9), at(2027, 1, 12, 9)]),
    # "1/10 ... every tenth minute, starting from the first minute of the hour"
    ("1/10 0 1 12 ? 2026", [at(2026, 12, 1, 0, m) for m in (1, 11, 21, 31, 41, 51)]),
    # "3W specifies the weekday closest to the third day of the month": Thursday 3 December
    # 2026; Sunday 3 January 2027 gives Monday the 4th.
    ("0 9 3W * ? *", [at(2026, 12, 3, 9), at(2027, 1, 4, 9)]),
    # "L ... specifies the last day of the month"
    ("0 9 L * ? *", [at(2026, 12, 31, 9), at(2027, 1, 31, 9), at(2027, 2, 28, 9)]),
    # "JAN,FEB,MAR includes January, February, and March"
    ("0 9 1 JAN,FEB,MAR ? *", [at(2027, 1, 1, 9), at(2027, 2, 1, 9), at(2027, 3, 1, 9)]),
    # "1-15 includes days 1 through 15 of the specified month"
    ("0 9 1-15 * ? *", [at(2026, 12, d, 9) for d in range(1, 16)] + [at(2027, 1, 1, 9)]),
]


@pytest.mark.parametrize(("text", "expected"), AWS_EXAMPLES)
def test_aws_documented_examples(text: str, expected: list[datetime]) -> None:
    assert ours(text, START, len(expected)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "0 9 ? * 3#1,6#3 *",  # "you can define only one expression in the day-of-week field"
        "0 9 * * MON-FRI *",  # "If you use * in one, you must use ? in the other"
        "0 9 ? * ? *",  # ... and not ? in both
    ],
)
def test_aws_documented_refusals(text: str) -> None:
    with pytest.raises(CronSyntaxError):
        Cron(text)


def _peer(name: str) -> Any:
    return importlib.import_module(name)  # in the test extras: CI runs these, never skips


starts = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC)
)


def _valid(text: str) -> bool:
    try:
        Cron(text)
    except CronSyntaxError:
        return False
    return True


@given(unix_cron_texts().filter(_valid), starts)
def test_five_fields_agree_with_cronsim(text: str, start: datetime) -> None:
    cronsim = _peer("cronsim")
    theirs = list(itertools.islice(cronsim.CronSim(text, start), 12))
    assert ours(text, start, 12) == theirs


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _number(piece: str, names: tuple[str, ...], first: int) -> int:
    return int(piece) if piece.isdigit() else names.index(piece.lower()) + first


def croniter_differs(text: str) -> bool:
    """Whether ``text`` uses what croniter reads differently from Unix cron: a range whose ends
    are equal, a day field starting with ``*`` that is not ``*`` alone, a step in
    day-of-week."""
    fields = text.split()
    for index, field in enumerate(fields):
        names, first = {3: (_MONTHS, 1), 4: (_DAYS, 0)}.get(index, ((), 0))
        if index in (2, 4) and field.startswith("*") and field != "*":
            return True
        for item in field.split(","):
            base, slash, _ = item.partition("/")
            if index == 4 and slash:
                return True
            low, dash, high = base.partition("-")
            if dash and _number(low, names, first) == _number(high, names, first):
                return True
    return False


@given(unix_cron_texts().filter(_valid).filter(lambda t: not croniter_differs(t)), starts)
def test_five_fields_agree_with_croniter_where_its_semantics_agree(
    text: str, start: datetime
) -> None:
    croniter = _peer("croniter")
    iterator = croniter.croniter(text, start)
    theirs = [iterator.get_next(datetime) for _ in range(12)]
    assert ours(text, start, 12) == theirs


@pytest.mark.parametrize(
    ("text", "ours_first", "croniter_first"),
    [
        # A range whose ends are equal: croniter reads 57-57 as every minute.
        ("57-57 * * * *", at(2026, 12, 1, 0, 57), at(2026, 12, 1, 0, 1)),
        # Day-of-month */1 starts with *: Unix (and cronsim) require both day fields; croniter
        # takes either, since the field is not * alone.
        ("0 0 5 * */1", at(2026, 12, 5), at(2026, 12, 2)),
        # 7/2 in day-of-week is 7 alone, Sunday, to Unix; croniter (7.0.0) fires on Thursday.
        ("0 0 * * 7/2", at(2026, 12, 6), at(2026, 12, 3)),
    ],
)
def test_croniter_disagreements_are_the_documented_ones(
    text: str, ours_first: datetime, croniter_first: datetime
) -> None:
    croniter = _peer("croniter")
    cronsim = _peer("cronsim")
    assert ours(text, START, 1) == [ours_first]
    assert next(cronsim.CronSim(text, START)) == ours_first
    assert croniter.croniter(text, START).get_next(datetime) == croniter_first
