"""Calendar rates on EventBridge Scheduler (moto in server mode, the real aioboto3 client)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reventless import (
    LAST,
    Cron,
    Daily,
    DstPolicy,
    Monthly,
    NthWeekday,
    Schedule,
    Scheduler,
    ValidationError,
)
from reventless.aws import SqsQueueTarget
from tests.aws.conftest import CountingMotoServer
from tests.aws.test_scheduler import QUEUE_ARN, aws

pytestmark = pytest.mark.anyio

CALENDAR = [
    (Schedule(name="month-end", rate=Monthly(LAST, 18, 0), payload="m"), "cron(0 18 L * ? *)"),
    (
        Schedule(
            name="second-tue",
            rate=NthWeekday(2, 1, 9, 30),
            payload="n",
            timezone="Australia/Lord_Howe",
        ),
        "cron(30 9 ? * 3#2 *)",
    ),
    (
        Schedule(name="aws-cron", rate=Cron("0/15 8-17 1W * ? 2027-2030"), payload="c"),
        "cron(0/15 8-17 1W * ? 2027-2030)",
    ),
    (
        Schedule(
            name="unix-cron",
            rate=Cron("*/15 9-17 * * 1-5"),
            payload="u",
            timezone="America/St_Johns",
        ),
        "cron(*/15 9-17 ? * 2-6 *)",
    ),
    (Schedule(name="daily-cron", rate=Cron("0 9 * * ? *"), payload="d"), "cron(0 9 * * ? *)"),
]


async def test_calendar_rates_are_written_as_cron_and_read_back_as_written(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        await ops.create_schedules([schedule for schedule, _ in CALENDAR])
        for schedule, expression in CALENDAR:
            raw = await scheduler_client.get_schedule(Name=schedule.name, GroupName="shop")
            assert raw["ScheduleExpression"] == expression
            assert raw["ScheduleExpressionTimezone"] == schedule.timezone
            assert raw["ActionAfterCompletion"] == "NONE"
            assert "StartDate" not in raw
            state = await ops.get_schedule(schedule.name)
            assert state.schedule == schedule  # the five-field and Daily-like Cron too
            assert state.next_fire is not None


async def test_a_description_changed_outside_is_not_trusted_over_the_expression(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    """The expression is what AWS fires by: a rate text that no longer matches it is ignored."""
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        await ops.create_schedule(Schedule(name="d", rate=Cron("0 9 * * ? *"), payload="p"))
        raw = await scheduler_client.get_schedule(Name="d", GroupName="shop")
        request = {
            key: raw[key]
            for key in (
                "Name",
                "GroupName",
                "ScheduleExpressionTimezone",
                "FlexibleTimeWindow",
                "Description",
                "Target",
            )
        }
        await scheduler_client.update_schedule(ScheduleExpression="cron(0 10 * * ? *)", **request)
        state = await ops.get_schedule("d")
    assert state.schedule.rate == Daily(10, 0)


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        (
            Schedule(name="either", rate=Cron("0 0 1 * MON"), payload="p"),
            "restricts both day-of-month",
        ),
        (
            Schedule(
                name="dst",
                rate=Monthly(5, 2, 30),
                payload="p",
                timezone="Europe/Berlin",
                dst=DstPolicy(gap="shift"),
            ),
            "cannot be kept by EventBridge Scheduler",
        ),
        (
            Schedule(name="own-misfire", rate=Monthly(5, 2, 30), payload="p", misfire="all"),
            "no misfire policy",
        ),
    ],
)
async def test_what_eventbridge_cannot_express_is_refused_before_any_request(
    session: Any, moto: CountingMotoServer, schedule: Schedule, reason: str
) -> None:
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        before = len(moto.requests)
        with pytest.raises(ValidationError, match=reason):
            await ops.create_schedule(schedule)
        assert moto.requests[before:] == []


async def test_a_window_becomes_start_and_end_dates_and_reads_back(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    # Far ahead: moto checks a cron's StartDate against the machine's clock.
    low = datetime(2099, 4, 1, 8, 30, tzinfo=UTC)
    high = datetime(2099, 6, 30, 18, tzinfo=UTC)
    windowed = Schedule(
        name="spring",
        rate=Monthly(LAST, 18, 0),
        payload="p",
        timezone="Europe/Berlin",
        not_before=low,
        not_after=high,
    )
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        await ops.create_schedule(windowed)
        raw = await scheduler_client.get_schedule(Name="spring", GroupName="shop")
        state = await ops.get_schedule("spring")
    assert raw["StartDate"] == low
    assert raw["EndDate"] == high + timedelta(seconds=30)
    assert raw["ActionAfterCompletion"] == "DELETE"
    assert state.schedule == windowed
    assert state.next_fire == datetime(2099, 4, 30, 16, tzinfo=UTC)


async def test_jitter_becomes_a_flexible_time_window_and_reads_back(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    jittered = Schedule(name="spread", rate=Cron("0 0 * * *"), payload="p", jitter_minutes=45)
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        await ops.create_schedule(jittered)
        raw = await scheduler_client.get_schedule(Name="spread", GroupName="shop")
        state = await ops.get_schedule("spread")
    assert raw["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 45}
    assert state.schedule == jittered
