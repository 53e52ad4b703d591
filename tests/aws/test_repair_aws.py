"""Repair on AWS against moto: trigger sends the fire envelope to the target queue, redrive
moves dead-letter-queue messages back to it, backfill is refused with the reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

import reventless.aws
from reventless import Daily, Schedule, ScheduleNotFoundError, Scheduler
from reventless.aws import SqsQueueTarget
from reventless.errors import UsageError
from reventless.testing import VirtualClock
from tests.aws.conftest import ROLE_ARN, CountingMotoServer, make_queue

pytestmark = pytest.mark.anyio
START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)


async def _bodies(sqs: Any, url: str) -> list[dict[str, Any]]:
    response = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in response.get("Messages", [])]


def _letter(name: str, when: str, payload: str) -> dict[str, Any]:
    return {
        "MessageBody": json.dumps({"schedule": name, "scheduledTime": when, "payload": payload}),
        "MessageAttributes": {
            "ERROR_CODE": {"DataType": "String", "StringValue": "SQS.Throttled"},
            "RETRY_ATTEMPTS": {"DataType": "String", "StringValue": "185"},
        },
    }


async def test_trigger_redrive_and_backfill(
    session: Any, moto: CountingMotoServer, sqs: Any
) -> None:
    queue_url, queue_arn = await make_queue(sqs, "commands.fifo")
    dlq_url, dlq_arn = await make_queue(sqs, "dead-letters")
    for letter in (
        _letter("report", "2026-03-19T09:00:00Z", "r"),
        _letter("other", "2026-03-19T10:00:00Z", "o"),
        _letter("report", "2026-03-18T09:00:00Z", "r"),
    ):
        await sqs.send_message(QueueUrl=dlq_url, **letter)
    clock = VirtualClock(START)
    moto.use_clock(clock.now)
    async with (
        session.client("sqs", endpoint_url=moto.url) as provider_sqs,
        reventless.aws.provider(
            session=session,
            group="shop",
            role_arn=ROLE_ARN,
            region="eu-west-1",
            endpoint_url=moto.url,
            clock=clock,
            dead_letter_arn=dlq_arn,
            sqs_client=provider_sqs,
        ) as provider,
    ):
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(queue_arn))).operations
        await ops.create_schedule(Schedule(name="report", rate=Daily(9, 0), payload="r"))
        assert await ops.trigger_schedule("report") == "report@2026-03-20T06:00:30Z"
        with pytest.raises(ScheduleNotFoundError):
            await ops.trigger_schedule("missing")
        with pytest.raises(UsageError, match="keeps no record"):
            await ops.backfill("report", START, START)
        redriven = await ops.redrive(fire_ids=["report@2026-03-19T09:00:00Z"])
        assert redriven == ["report@2026-03-19T09:00:00Z"]
        assert sorted(await ops.redrive(schedule="report")) == ["report@2026-03-18T09:00:00Z"]
        assert await ops.redrive(schedule="report") == []
        left = [letter.fire_id for letter in await ops.dead_letters()]
        assert left == ["other@2026-03-19T10:00:00Z"]  # released again, not taken
    bodies = await _bodies(sqs, queue_url)
    assert [(b["schedule"], b["scheduledTime"]) for b in bodies] == [
        ("report", "2026-03-20T06:00:30Z"),
        ("report", "2026-03-19T09:00:00Z"),
        ("report", "2026-03-18T09:00:00Z"),
    ]


async def test_redrive_and_trigger_say_what_they_need(
    session: Any, moto: CountingMotoServer, sqs: Any
) -> None:
    _, queue_arn = await make_queue(sqs, "plain")
    clock = VirtualClock(START)
    moto.use_clock(clock.now)
    async with reventless.aws.provider(
        session=session,
        group="shop",
        role_arn=ROLE_ARN,
        region="eu-west-1",
        endpoint_url=moto.url,
        clock=clock,
    ) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(queue_arn))).operations
        await ops.create_schedule(Schedule(name="report", rate=Daily(9, 0), payload="r"))
        with pytest.raises(UsageError, match="dead_letter_arn and sqs_client"):
            await ops.redrive()
        with pytest.raises(UsageError, match="sqs_client"):
            await ops.trigger_schedule("report")
