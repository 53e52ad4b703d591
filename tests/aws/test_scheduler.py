"""The EventBridge Scheduler adapter against moto in server mode, over real HTTP."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

import reventless.aws
import reventless.local
from reventless import (
    Daily,
    Days,
    ForeignScheduleError,
    Hours,
    Minutes,
    PutOutcome,
    Schedule,
    ScheduleNotFoundError,
    Scheduler,
    Single,
    ValidationError,
    Weekdays,
    WeekdaysAndSaturday,
    created_at_from_start_date,
    fire_times,
    from_expression,
)
from reventless.aws import SCHEDULED_TIME, SqsQueueTarget
from reventless.testing import RecordingTarget, VirtualClock
from tests.aws.conftest import ROLE_ARN, CountingMotoServer

pytestmark = pytest.mark.anyio
START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)
QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:commands.fifo"
DLQ_ARN = "arn:aws:sqs:eu-west-1:123456789012:dead-letters"


@asynccontextmanager
async def aws(
    session: Any, moto: CountingMotoServer, clock: VirtualClock | None = None, **options: Any
) -> AsyncIterator[Any]:
    clock = clock or VirtualClock(START)
    moto.use_clock(clock.now)  # AWS's limits are judged at the test's now
    async with reventless.aws.provider(
        session=session,
        group="shop",
        role_arn=ROLE_ARN,
        region="eu-west-1",
        endpoint_url=moto.url,
        clock=clock,
        **options,
    ) as provider:
        yield provider


VARIANTS = [
    Schedule(
        name="single", rate=Single(2026, 12, 25, 14, 30), payload="s", timezone="Europe/Berlin"
    ),
    Schedule(name="minutes-1", rate=Minutes(1), payload="m1"),
    Schedule(name="minutes-5", rate=Minutes(5), payload="m5", timezone="Asia/Tokyo"),
    Schedule(name="hours-1", rate=Hours(1), payload="h1"),
    Schedule(name="hours-6", rate=Hours(6), payload="h6"),
    Schedule(name="days-1", rate=Days(1), payload="d1", timezone="America/New_York"),
    Schedule(name="days-3", rate=Days(3), payload="d3"),
    Schedule(
        name="daily",
        rate=Daily(9, 0),
        payload='{"type": "GenerateReport"}',
        timezone="Europe/Berlin",
    ),
    Schedule(name="weekdays", rate=Weekdays(17, 0), payload="w", timezone="America/Santiago"),
    Schedule(
        name="mon-sat",
        rate=WeekdaysAndSaturday(2, 30),
        payload="ws",
        timezone="Australia/Lord_Howe",
    ),
]
EXPRESSIONS = {
    "single": "at(2026-12-25T14:30:00)",
    "minutes-1": "rate(1 minute)",
    "minutes-5": "rate(5 minutes)",
    "hours-1": "rate(1 hour)",
    "hours-6": "rate(6 hours)",
    "days-1": "rate(1 day)",
    "days-3": "rate(3 days)",
    "daily": "cron(0 9 * * ? *)",
    "weekdays": "cron(0 17 ? * MON-FRI *)",
    "mon-sat": "cron(30 2 ? * MON-SAT *)",
}


async def test_every_variant_is_written_with_the_exact_fields(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    async with aws(session, moto, dead_letter_arn=DLQ_ARN) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        for schedule in VARIANTS:
            assert await ops.create_schedule(schedule) is PutOutcome.CREATED
    for schedule in VARIANTS:
        raw = await scheduler_client.get_schedule(Name=schedule.name, GroupName="shop")
        assert raw["ScheduleExpression"] == EXPRESSIONS[schedule.name]
        assert raw["ScheduleExpressionTimezone"] == schedule.timezone
        assert raw["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert raw["State"] == "ENABLED"
        single = isinstance(schedule.rate, Single)
        assert raw["ActionAfterCompletion"] == ("DELETE" if single else "NONE")
        if isinstance(schedule.rate, (Minutes, Hours, Days)):
            interval = timedelta(minutes=schedule.rate.minutes)
            assert raw["StartDate"] == datetime(2026, 3, 20, 6, 1, tzinfo=UTC) + interval
        else:
            assert "StartDate" not in raw
        target = raw["Target"]
        assert target["Arn"] == QUEUE_ARN and target["RoleArn"] == ROLE_ARN
        assert json.loads(target["Input"]) == {
            "schedule": schedule.name,
            "scheduledTime": SCHEDULED_TIME,
            "payload": schedule.payload,
        }
        assert target["SqsParameters"] == {"MessageGroupId": schedule.name}
        assert target["RetryPolicy"] == {
            "MaximumRetryAttempts": 185,
            "MaximumEventAgeInSeconds": 86400,
        }
        assert target["DeadLetterConfig"] == {"Arn": DLQ_ARN}


async def test_replacing_sends_every_field_again(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        await ops.create_schedule(Schedule(name="job", rate=Minutes(5), payload="one"))
        await ops.pause_schedule("job")
        outcome = await ops.create_schedule(
            Schedule(name="job", rate=Daily(9, 0), payload="two", timezone="Europe/Berlin")
        )
        assert outcome is PutOutcome.REPLACED
    raw = await scheduler_client.get_schedule(Name="job", GroupName="shop")
    assert raw["ScheduleExpression"] == "cron(0 9 * * ? *)"
    assert raw["State"] == "ENABLED"
    assert "StartDate" not in raw or raw["StartDate"] is None
    assert json.loads(raw["Target"]["Input"])["payload"] == "two"
    assert raw["Target"]["SqsParameters"] == {"MessageGroupId": "job"}
    assert raw["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 185


async def test_pause_and_resume_flip_the_state(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        await ops.create_schedule(Schedule(name="tick", rate=Hours(1), payload="p"))
        await ops.pause_schedule("tick")
        assert (await scheduler_client.get_schedule(Name="tick", GroupName="shop"))[
            "State"
        ] == "DISABLED"
        state = await ops.resume_schedule("tick")
        assert state is not None and state.next_fire == datetime(2026, 3, 20, 7, 1, tzinfo=UTC)
        raw = await scheduler_client.get_schedule(Name="tick", GroupName="shop")
        assert raw["State"] == "ENABLED" and raw["ScheduleExpression"] == "rate(1 hour)"


@pytest.mark.slow
async def test_listing_pages_beyond_one_aws_page(session: Any, moto: CountingMotoServer) -> None:
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        names = [f"job-{number:03d}" for number in range(130)]
        await ops.create_schedules([Schedule(name=n, rate=Hours(2), payload="p") for n in names])
        seen, token = [], None
        while True:
            page = await ops.list_schedules(prefix="job-", limit=50, after=token)
            seen += [state.schedule.name for state in page.schedules]
            token = page.next_token
            if token is None:
                break
        assert seen == names


async def test_foreign_schedules_are_reported_not_guessed(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        await ops.create_schedule(Schedule(name="ours", rate=Hours(1), payload="p"))
        await scheduler_client.create_schedule(
            Name="theirs",
            GroupName="shop",
            ScheduleExpression="cron(0/5 * * * ? *)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": QUEUE_ARN, "RoleArn": ROLE_ARN},
        )
        page = await ops.list_schedules()
        assert [s.schedule.name for s in page.schedules] == ["ours"]
        assert page.foreign == ["theirs"]
        with pytest.raises(ForeignScheduleError, match="'theirs' was not written by reventless"):
            await ops.get_schedule("theirs")


async def test_delete_is_idempotent_and_get_after_delete_is_not_found(
    session: Any, moto: CountingMotoServer
) -> None:
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        await ops.create_schedule(Schedule(name="x", rate=Hours(1), payload="p"))
        assert await ops.delete_schedule("x") is True
        assert await ops.delete_schedule("x") is False
        with pytest.raises(ScheduleNotFoundError):
            await ops.get_schedule("x")


async def test_building_the_provider_ensures_the_group(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    async with aws(session, moto):
        pass
    group = await scheduler_client.get_schedule_group(Name="shop")
    assert group["Name"] == "shop"
    async with aws(session, moto):  # already there: fine
        pass


INVALID_INPUTS: list[tuple[str, Callable[[], Any]]] = [
    ("name too long", lambda: Schedule(name="x" * 65, rate=Hours(1), payload="p")),
    ("name with space", lambda: Schedule(name="a b", rate=Hours(1), payload="p")),
    ("empty payload", lambda: Schedule(name="a", rate=Hours(1), payload="")),
    ("payload over 256 KiB", lambda: Schedule(name="a", rate=Hours(1), payload="x" * 262_145)),
    ("unknown zone", lambda: Schedule(name="a", rate=Hours(1), payload="p", timezone="Mars/X")),
    ("hour 24", lambda: Daily(24, 0)),
    ("minute 60", lambda: Weekdays(9, 60)),
    ("zero minutes", lambda: Minutes(0)),
    ("more than 3650 days", lambda: Days(3651)),
    ("29 February 2027", lambda: Single(2027, 2, 29, 9, 0)),
    ("year 2200", lambda: Single(2200, 1, 1, 0, 0)),
    (
        "a Single in a DST gap",
        lambda: Schedule(
            name="a", rate=Single(2027, 3, 28, 2, 30), payload="p", timezone="Europe/Berlin"
        ),
    ),
    # Within 256 KiB, but JSON escaping of the quotes makes the envelope too big for SQS.
    (
        "an envelope over one SQS message",
        lambda: Schedule(name="a", rate=Hours(1), payload='"' * 200_000),
    ),
]


@pytest.mark.parametrize(("label", "build"), INVALID_INPUTS, ids=[i[0] for i in INVALID_INPUTS])
async def test_invalid_input_is_refused_before_any_request(
    session: Any, moto: CountingMotoServer, label: str, build: Callable[[], Any]
) -> None:
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        before = len(moto.requests)
        with pytest.raises(ValidationError):
            await ops.create_schedule(build())
        assert moto.requests[before:] == [], label


async def test_operations_refused_before_any_request(
    session: Any, moto: CountingMotoServer
) -> None:
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        before = len(moto.requests)
        for call in (
            lambda: ops.create_schedule(
                Schedule(name="past", rate=Single(2026, 3, 20, 5, 0), payload="p")
            ),
            lambda: ops.create_schedules([Schedule(name="d", rate=Hours(1), payload="p")] * 2),
            lambda: ops.delete_schedule("no spaces allowed"),
            lambda: ops.get_schedule(""),
            lambda: ops.list_schedules(limit=5000),
            lambda: ops.pause_schedule("x" * 65),
        ):
            with pytest.raises(ValidationError):
                await call()
        assert moto.requests[before:] == []


@pytest.mark.parametrize(
    ("field", "options"),
    [
        ("group", {"group": "no spaces"}),
        ("role_arn", {"role_arn": "arn:aws:iam::12:role/x"}),
        ("dead_letter_arn", {"dead_letter_arn": QUEUE_ARN}),  # FIFO DLQs are refused by AWS
        ("region", {"region": "mars"}),
    ],
)
async def test_provider_settings_are_refused_before_any_request(
    session: Any, moto: CountingMotoServer, field: str, options: dict[str, Any]
) -> None:
    settings: dict[str, Any] = {
        "session": session,
        "group": "shop",
        "role_arn": ROLE_ARN,
        "region": "eu-west-1",
        "endpoint_url": moto.url,
    }
    settings.update(options)
    with pytest.raises(ValidationError) as caught:
        async with reventless.aws.provider(**settings):
            pass
    assert caught.value.field == field
    assert moto.requests == []


@pytest.mark.slow
async def test_firing_parity_between_the_stored_expression_and_the_embedded_engine(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    """What AWS stores (expression, zone, start date) gives exactly the embedded engine's fires."""
    schedules = [s for s in VARIANTS if s.name != "minutes-1"]
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        await ops.create_schedules(schedules)
    clock = VirtualClock(START)
    target = RecordingTarget()
    async with reventless.local.provider(":memory:", clock=clock) as local:
        local_ops = (await Scheduler.make(local, target=target)).operations
        await local_ops.create_schedules(schedules)
        async with anyio.create_task_group() as group:
            await group.start(local.run)
            await clock.advance(timedelta(days=21))
            group.cancel_scope.cancel()
    end = clock.now()
    for schedule in schedules:
        raw = await scheduler_client.get_schedule(Name=schedule.name, GroupName="shop")
        rate = from_expression(raw["ScheduleExpression"])
        stored = Schedule(
            name=schedule.name, rate=rate, payload="p", timezone=raw["ScheduleExpressionTimezone"]
        )
        anchor = (
            created_at_from_start_date(rate, raw["StartDate"]) if raw.get("StartDate") else START
        )
        from_aws = list(
            itertools.takewhile(lambda t: t <= end, fire_times(stored, created_at=anchor))
        )
        embedded = [d.scheduled_time for d in target.for_schedule(schedule.name)]
        assert from_aws == embedded, schedule.name


async def test_a_pause_rides_in_the_description_and_reads_back_in_another_process(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    reason = "db migration 'v2' reason= by=9: rate=Hours(2) ✓"
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        await ops.create_schedule(Schedule(name="tick", rate=Hours(1), payload="p"))
        await ops.pause_schedule("tick", reason=reason, by="ana")
    raw = await scheduler_client.get_schedule(Name="tick", GroupName="shop")
    assert raw["State"] == "DISABLED"
    assert raw["Description"].endswith(
        f" paused_at=2026-03-20T06:00:30.000000Z by=3:ana reason={reason}"
    )
    async with aws(session, moto) as provider:  # another process: only AWS remembers
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        state = await ops.get_schedule("tick")
        assert (state.paused_at, state.paused_by, state.pause_reason) == (START, "ana", reason)
        assert state.schedule.rate == Hours(1) and state.created_at == START
        resumed = await ops.resume_schedule("tick", reason="done")
        assert resumed is not None and resumed.pause_reason is None
    raw = await scheduler_client.get_schedule(Name="tick", GroupName="shop")
    assert "paused_at" not in raw["Description"] and raw["State"] == "ENABLED"


async def test_a_pause_reason_that_does_not_fit_the_description_is_refused_before_any_write(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    window = {"not_before": START + timedelta(days=1), "not_after": START + timedelta(days=30)}
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        await ops.create_schedule(Schedule(name="tick", rate=Hours(1), payload="p", **window))
        before = len(moto.requests)
        with pytest.raises(ValidationError) as refused:
            await ops.pause_schedule("tick", reason="r" * 256, by="b" * 100)
        assert refused.value.field == "reason"
        assert refused.value.allowed.startswith("at most 253 characters for schedule 'tick'")
        assert [r for r in moto.requests[before:] if not r.startswith("GET ")] == []
        state = await ops.pause_schedule("tick", reason="r" * 253, by="b" * 100)
        assert state.pause_reason == "r" * 253
    raw = await scheduler_client.get_schedule(Name="tick", GroupName="shop")
    assert len(raw["Description"]) == 512


async def test_a_pause_mark_edited_outside_reventless_reads_as_not_known_and_resumes(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    async with aws(session, moto) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        await ops.create_schedule(Schedule(name="tick", rate=Hours(1), payload="p"))
        await ops.pause_schedule("tick", reason="why", by="ana")
        raw = await scheduler_client.get_schedule(Name="tick", GroupName="shop")
        keys = ("Name", "GroupName", "ScheduleExpression", "FlexibleTimeWindow", "State", "Target")
        edited = raw["Description"].replace(" by=3:ana", " by=ana")  # no length: not ours
        await scheduler_client.update_schedule(
            **{key: raw[key] for key in keys},
            ScheduleExpressionTimezone=raw["ScheduleExpressionTimezone"],
            StartDate=raw["StartDate"],
            Description=edited,
        )
        state = await ops.get_schedule("tick")
        assert state.paused is True and state.schedule.rate == Hours(1)
        assert (state.paused_at, state.paused_by, state.pause_reason) == (None, None, None)
        resumed = await ops.resume_schedule("tick")
        assert resumed is not None and resumed.paused is False
