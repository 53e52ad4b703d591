"""Every write keeps EventBridge Scheduler's limits, batch creates are all or none even when
the rollback is throttled, and schedulers never share a schedule group. Against moto over HTTP;
faults are injected by the server front (``moto.inject``), never by mocking the adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import reventless.aws
from reventless import (
    BackendUnavailableError,
    Hours,
    Minutes,
    Schedule,
    ScheduleNotFoundError,
    Scheduler,
    ValidationError,
    next_fire_after,
)
from reventless.aws import SqsQueueTarget
from reventless.testing import VirtualClock
from tests.aws.conftest import ROLE_ARN, CountingMotoServer

pytestmark = pytest.mark.anyio
START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)
QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:commands.fifo"
GROUP_NAME = "[0-9a-zA-Z-_.]{1,64}"


@asynccontextmanager
async def aws(session: Any, moto: CountingMotoServer, clock: VirtualClock) -> AsyncIterator[Any]:
    """A provider on a client without botocore's own retries: each adapter attempt is one HTTP
    request, so injected faults count exactly."""
    moto.use_clock(clock.now)
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    async with (
        session.client("scheduler", endpoint_url=moto.url, config=config) as client,
        reventless.aws.provider(client=client, group="shop", role_arn=ROLE_ARN, clock=clock) as p,
    ):
        yield p


async def make_ops(provider: Any, name: str = "default") -> Any:
    return (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN), name=name)).operations


def assert_on_grid(start: datetime, first: datetime, interval: timedelta, now: datetime) -> None:
    assert (start - first) % interval == timedelta(0), (start, first)
    assert start >= now - timedelta(minutes=5), (start, now)


# -- the test-side check itself ---------------------------------------------------------------


async def test_the_limit_check_refuses_what_aws_would_and_fails_the_test(
    moto: CountingMotoServer, scheduler_client: Any
) -> None:
    moto.use_clock(lambda: START)
    common: dict[str, Any] = {
        "GroupName": "default",
        "ScheduleExpression": "rate(1 hour)",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": QUEUE_ARN, "RoleArn": ROLE_ARN},
    }
    bad = [
        {"StartDate": START - timedelta(minutes=6)},
        {"Description": "d" * 513},
        {"ClientToken": "t" * 65},
        {"ClientToken": "no spaces"},
    ]
    for number, fields in enumerate(bad):
        with pytest.raises(ClientError, match="ValidationException"):
            await scheduler_client.create_schedule(Name=f"bad-{number}", **common, **fields)
    await scheduler_client.create_schedule(
        Name="ok", StartDate=START - timedelta(minutes=4), ClientToken="once", **common
    )
    with pytest.raises(ClientError, match="already used"):
        await scheduler_client.update_schedule(Name="ok", ClientToken="once", **common)
    assert len(moto.violations) == len(bad) + 1
    moto.violations.clear()  # seen: the fixture would fail this test otherwise


# -- 11: StartDate and ClientToken on pause, resume and rollback -----------------------------


async def test_pause_and_resume_long_after_creation_keep_the_grid_with_fresh_tokens(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    clock = VirtualClock(START)
    schedule = Schedule(name="tick", rate=Hours(1), payload="p")
    first = datetime(2026, 3, 20, 7, 1, tzinfo=UTC)
    async with aws(session, moto, clock) as provider:
        ops = await make_ops(provider)
        await ops.create_schedule(schedule)
        await clock.advance(timedelta(days=3, minutes=17))
        await ops.pause_schedule("tick")
        await ops.resume_schedule("tick")
        await ops.pause_schedule("tick")  # the same request as the first pause: a new token
        raw = await scheduler_client.get_schedule(Name="tick", GroupName="shop")
        assert raw["State"] == "DISABLED"
        await clock.advance(timedelta(hours=5, minutes=2))
        state = await ops.resume_schedule("tick")
        raw = await scheduler_client.get_schedule(Name="tick", GroupName="shop")
    assert raw["State"] == "ENABLED"
    assert_on_grid(raw["StartDate"], first, timedelta(hours=1), clock.now())
    assert state is not None and state.created_at == START  # the anchor is kept
    assert state.next_fire == next_fire_after(schedule, clock.now(), created_at=START)
    assert raw["StartDate"] == state.next_fire  # AWS fires next exactly when we say


async def test_a_rolled_back_replacement_is_restored_on_its_original_grid(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    clock = VirtualClock(START)
    async with aws(session, moto, clock) as provider:
        ops = await make_ops(provider)
        await ops.create_schedule(Schedule(name="a", rate=Minutes(10), payload="old"))
        await clock.advance(timedelta(days=2, minutes=3))
        moto.inject("CreateSchedule", code="ValidationException", name="b")
        with pytest.raises(ValidationError, match="injected"):
            await ops.create_schedules(
                [
                    Schedule(name="a", rate=Hours(2), payload="new"),
                    Schedule(name="b", rate=Hours(1), payload="p"),
                ]
            )
        restored = await ops.get_schedule("a")
        raw = await scheduler_client.get_schedule(Name="a", GroupName="shop")
    assert restored.schedule == Schedule(name="a", rate=Minutes(10), payload="old")
    assert restored.created_at == START
    first = datetime(2026, 3, 20, 6, 11, tzinfo=UTC)
    assert_on_grid(raw["StartDate"], first, timedelta(minutes=10), clock.now())


# -- 12: a throttled rollback ----------------------------------------------------------------


async def test_a_throttled_rollback_is_retried_until_nothing_remains(
    session: Any, moto: CountingMotoServer
) -> None:
    async with aws(session, moto, VirtualClock(START)) as provider:
        ops = await make_ops(provider)
        moto.inject("CreateSchedule", code="ValidationException", name="c")
        moto.inject("DeleteSchedule", code="ThrottlingException", times=6)
        batch = [Schedule(name=n, rate=Hours(1), payload="p") for n in "abc"]
        with pytest.raises(ValidationError, match="injected"):
            await ops.create_schedules(batch)
        assert moto.injected.count("DeleteSchedule b: ThrottlingException") == 6
        assert (await ops.list_schedules()).schedules == []


@pytest.mark.slow
async def test_a_rollback_that_keeps_failing_names_exactly_what_remains(
    session: Any, moto: CountingMotoServer
) -> None:
    async with aws(session, moto, VirtualClock(START)) as provider:
        ops = await make_ops(provider)
        await ops.create_schedule(Schedule(name="kept", rate=Hours(1), payload="p"))
        moto.inject("CreateSchedule", code="ValidationException", name="c")
        moto.inject("DeleteSchedule", code="ThrottlingException", times=1000)
        batch = [Schedule(name=n, rate=Hours(1), payload="p") for n in ("a", "kept", "c")]
        with pytest.raises(BackendUnavailableError) as caught:
            await ops.create_schedules(batch)
        message = str(caught.value)
        assert "'shop'" in message and "injected by the test" in message  # where, and why
        assert message.endswith("these schedules remain as the batch wrote them: 'a'")
        assert isinstance(caught.value.__cause__, ValidationError)  # the write that failed
        names = [state.schedule.name for state in (await ops.list_schedules()).schedules]
        assert names == ["a", "kept"]  # exactly what the error said remains, and the old one


# -- 13: schedule groups per scheduler -------------------------------------------------------


async def test_long_scheduler_names_get_distinct_groups(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    north, south = "x" * 58 + "-north", "x" * 58 + "-south"  # 64 characters each
    async with aws(session, moto, VirtualClock(START)) as provider:
        publisher = provider.scheduled_publisher()
        groups = {publisher.group_name(name) for name in (north, south)}
        assert len(groups) == 2
        assert all(len(group) <= 64 for group in groups)
        ops_north, ops_south = await make_ops(provider, north), await make_ops(provider, south)
        await ops_north.create_schedule(Schedule(name="job", rate=Hours(1), payload="north"))
        await ops_south.create_schedule(Schedule(name="job", rate=Hours(1), payload="south"))
        assert await ops_north.delete_schedule("job") is True
        assert (await ops_south.get_schedule("job")).schedule.payload == "south"
        with pytest.raises(ScheduleNotFoundError):
            await ops_north.get_schedule("job")
    listed = await scheduler_client.list_schedule_groups(NamePrefix="shop.")
    assert {group["Name"] for group in listed["ScheduleGroups"]} == groups


async def test_group_names_that_fit_are_kept_and_hashed_ones_are_stable(
    session: Any, moto: CountingMotoServer
) -> None:
    async with aws(session, moto, VirtualClock(START)) as provider:
        publisher = provider.scheduled_publisher()
        assert publisher.group_name("default") == "shop"
        assert publisher.group_name("reports") == "shop.reports"
        fits = "y" * 59  # "shop." + 59 = 64 characters: unchanged, as before
        assert publisher.group_name(fits) == f"shop.{fits}"
        long = "y" * 60
        hashed = publisher.group_name(long)
        assert len(hashed) == 64 and hashed.startswith("shop.yyy")
        assert hashed == publisher.group_name(long)  # stable
        assert hashed != publisher.group_name(fits)
        assert hashed != f"shop.{long}"[:64]
