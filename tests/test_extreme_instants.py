"""Every public function that takes an instant answers the ends of the datetime range with a
result or a ReventlessError naming the field, never an OverflowError."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from reventless import (
    Daily,
    Days,
    Hours,
    Minutes,
    ReventlessError,
    Schedule,
    Single,
    Weekdays,
    WeekdaysAndSaturday,
)
from reventless.clock import VirtualClock
from reventless.fire_times import fire_times, next_fire_after, preview

EXTREMES = [
    datetime.min.replace(tzinfo=UTC),
    datetime.max.replace(tzinfo=UTC),
    datetime.min.replace(tzinfo=timezone(timedelta(hours=14))),
    datetime.max.replace(tzinfo=timezone(timedelta(hours=-12))),
]
RATES = [
    Minutes(5),
    Hours(3),
    Days(2),
    Daily(9, 0),
    Weekdays(17, 0),
    WeekdaysAndSaturday(8, 30),
    Single(2199, 12, 31, 23, 59),
    Single(1970, 1, 1, 0, 0),
]
ZONES = ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"]
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def _answers(call: Callable[[], object]) -> None:
    try:
        result = call()
        if hasattr(result, "__next__"):
            list(itertools.islice(result, 3))  # type: ignore[call-overload]
    except ReventlessError:
        pass


def _schedules() -> list[Schedule]:
    found = []
    for rate, zone in itertools.product(RATES, ZONES):
        try:
            found.append(Schedule(name="s", rate=rate, payload="p", timezone=zone))
        except ReventlessError:
            continue  # a Single its zone cannot hold
    return found


@pytest.mark.parametrize("schedule", _schedules(), ids=lambda s: f"{s.rate!r}-{s.timezone}")
@pytest.mark.parametrize("instant", EXTREMES, ids=lambda x: x.isoformat())
def test_fire_times_next_fire_and_preview_at_the_ends(
    schedule: Schedule, instant: datetime
) -> None:
    _answers(lambda: fire_times(schedule, created_at=instant))
    _answers(lambda: fire_times(schedule, created_at=CREATED, after=instant))
    _answers(lambda: next_fire_after(schedule, instant))
    _answers(lambda: preview(schedule, created_at=instant, count=3))
    _answers(lambda: preview(schedule, created_at=CREATED, after=instant, count=3))


@pytest.mark.parametrize("instant", EXTREMES, ids=lambda x: x.isoformat())
def test_single_at_and_clocks_at_the_ends(instant: datetime) -> None:
    _answers(lambda: Single.at(instant))
    _answers(lambda: Single.at(instant, "Pacific/Kiritimati"))
    _answers(lambda: VirtualClock(instant).now())
