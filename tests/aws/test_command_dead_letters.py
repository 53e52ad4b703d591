"""The dead letters of the aggregates' command queues, on a moto server.

A poison command (or fire) fails on every receive; the command queue's redrive policy moves it
to the queue's FIFO dead-letter queue after ``maxReceiveCount`` receives, so its message group
goes on. It is listed (``provider.command_dead_letters()``, and a fire among its scheduler's
dead letters), redriven, and handled once the handler is fixed.

An event that is stored but can never be published (written by an older release whose size
check counted less than SNS does, or refused by SNS) makes its command a dead letter at once,
with the reason, instead of failing at every redelivery and holding its message group.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

import reventless.aws
import reventless.aws._sns
from reventless import AggregateSpec, Minutes, Plugin, Schedule
from reventless.aggregate_adapter import NewEvent
from reventless.aws import DynamoDbEventLog, SqsCommandPublisher, create_event_table
from reventless.aws import handle_sqs_batch as handle
from reventless.target import fire_id
from reventless.testing.aws import fire_as_eventbridge
from tests.aws.conftest import REGION, ROLE_ARN, CountingMotoServer

pytestmark = pytest.mark.anyio
TABLE = "jobs-events"
T1 = datetime(2026, 3, 20, 7, 0, tzinfo=UTC)
RECEIVES = 2  # the command queue's maxReceiveCount


class Run(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    size: int = 1


class Ran(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    blob: str


class Broken:
    """The handler's bug, switched off by the fix."""

    on = False


def decide(state: int, command: Run, context: Any) -> list[Ran]:
    if Broken.on:
        raise RuntimeError("the handler's bug")
    return [Ran(blob="x" * command.size)]


JOBS: AggregateSpec[int] = AggregateSpec(
    "jobs",
    commands=[Run],
    events=[Ran],
    initial=0,
    decide=decide,
    evolve=lambda state, event: state + 1,
)
TICK = Schedule(name="tick", rate=Minutes(5), payload='{"aggregateId": "j-1", "command": "Run"}')


@dataclass
class Stack:
    sqs: Any
    dynamodb: Any
    scheduler: Any
    commands_url: str
    commands_arn: str
    dead_url: str
    dead_arn: str
    topic_arn: str
    subscriber_url: str


async def _queue(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    url = (await sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true", **attributes}))[
        "QueueUrl"
    ]
    got = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, got["Attributes"]["QueueArn"]


@asynccontextmanager
async def jobs_stack(session: Any, moto: CountingMotoServer) -> AsyncIterator[Stack]:
    """What AggregateInfrastructure makes: the command queue with its FIFO dead-letter queue
    and redrive policy, the event topic with a subscriber queue, and the event table."""
    async with (
        session.client("sqs", endpoint_url=moto.url) as sqs,
        session.client("sns", endpoint_url=moto.url) as sns,
        session.client("dynamodb", endpoint_url=moto.url) as dynamodb,
        session.client("scheduler", endpoint_url=moto.url) as scheduler,
    ):
        dead_url, dead_arn = await _queue(sqs, "jobs-dead-letters.fifo")
        redrive = msgspec.json.encode(
            {"deadLetterTargetArn": dead_arn, "maxReceiveCount": RECEIVES}
        ).decode()
        # No visibility timeout: a failed record is received again at once, as after Lambda's.
        commands_url, commands_arn = await _queue(
            sqs,
            "jobs.fifo",
            ContentBasedDeduplication="true",
            RedrivePolicy=redrive,
            VisibilityTimeout="0",
        )
        topic = await sns.create_topic(Name="jobs-events.fifo", Attributes={"FifoTopic": "true"})
        subscriber_url, subscriber_arn = await _queue(sqs, "jobs-subscriber.fifo")
        await sns.subscribe(
            TopicArn=topic["TopicArn"],
            Protocol="sqs",
            Endpoint=subscriber_arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        await create_event_table(dynamodb, TABLE)
        yield Stack(
            sqs,
            dynamodb,
            scheduler,
            commands_url,
            commands_arn,
            dead_url,
            dead_arn,
            topic["TopicArn"],
            subscriber_url,
        )


def jobs_provider(session: Any, moto: CountingMotoServer, stack: Stack) -> Any:
    return reventless.aws.provider(
        session=session,
        group="jobs",
        role_arn=ROLE_ARN,
        region=REGION,
        endpoint_url=moto.url,
        event_table=TABLE,
        event_topics={"jobs": stack.topic_arn},
        command_queues={"jobs": stack.commands_arn},
        command_dead_letters={"jobs": stack.dead_arn},
    )


def jobs_plugin() -> Plugin:
    plugin = Plugin("jobs")
    jobs = plugin.aggregate(JOBS)
    plugin.scheduler("jobs", target=jobs, schedules=[TICK])
    return plugin


async def lambda_round(stack: Stack, aggregate: Any) -> tuple[int, int]:
    """One receive of the command queue handled as Lambda does (successful records deleted,
    failed ones left); (records, failures)."""
    response = await stack.sqs.receive_message(
        QueueUrl=stack.commands_url, MaxNumberOfMessages=10, AttributeNames=["All"]
    )
    messages = response.get("Messages", [])
    event = {
        "Records": [
            {
                "messageId": m["MessageId"],
                "body": m["Body"],
                "attributes": {k: str(v) for k, v in m.get("Attributes", {}).items()},
                "eventSourceARN": stack.commands_arn,
            }
            for m in messages
        ]
    }
    result = await handle(event, aggregate)
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    for message in messages:
        if message["MessageId"] not in failed:
            await stack.sqs.delete_message(
                QueueUrl=stack.commands_url, ReceiptHandle=message["ReceiptHandle"]
            )
    return len(messages), len(failed)


async def queue_length(sqs: Any, url: str) -> int:
    got = await sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    return sum(int(value) for value in got["Attributes"].values())


async def test_a_poison_command_ends_in_the_dead_letters_is_listed_redriven_and_handled(
    session: Any, moto: CountingMotoServer
) -> None:
    Broken.on = True
    try:
        async with (
            jobs_stack(session, moto) as stack,
            jobs_provider(session, moto, stack) as provider,
            jobs_plugin().start(provider) as running,
        ):
            jobs = running.aggregates["jobs"]
            await SqsCommandPublisher(stack.sqs, stack.commands_url, jobs).publish(
                "j-2", Run(size=3), message_id="cmd-1"
            )
            await fire_as_eventbridge(
                scheduler=stack.scheduler,
                group="jobs.jobs",
                name="tick",
                scheduled_time=T1,
                sqs=stack.sqs,
            )
            rounds = []
            for _ in range(RECEIVES + 2):
                rounds.append(await lambda_round(stack, jobs))
            # Each failed on every receive, then the redrive policy took both away.
            assert rounds[:RECEIVES] == [(2, 2)] * RECEIVES
            assert rounds[RECEIVES:] == [(0, 0), (0, 0)]
            assert await queue_length(stack.sqs, stack.commands_url) == 0

            letters = await provider.command_dead_letters().dead_letters("jobs")
            tick = fire_id("tick", T1)
            assert sorted(letter.message_id for letter in letters) == sorted(["cmd-1", tick])
            command = next(letter for letter in letters if letter.message_id == "cmd-1")
            assert command.aggregate == "jobs" and command.aggregate_id == "j-2"
            assert command.receives >= RECEIVES and "maxReceiveCount" in command.reason
            operations = running.schedulers["jobs"].operations
            [fire] = await operations.dead_letters()
            assert (fire.schedule, fire.fire_id, fire.scheduled_time) == ("tick", tick, T1)
            # Listing leaves them there.
            assert len(await provider.command_dead_letters().dead_letters("jobs")) == 2

            Broken.on = False  # the fix is deployed
            assert await operations.redrive(schedule="tick") == [tick]
            assert await provider.command_dead_letters().redrive("jobs") == ["cmd-1"]
            assert await provider.command_dead_letters().dead_letters("jobs") == []
            assert await lambda_round(stack, jobs) == (2, 0)
            assert (await jobs.load("j-1"))[1] == 1
            assert (await jobs.load("j-2"))[1] == 1
    finally:
        Broken.on = False


async def append_as_an_older_release(stack: Stack, size: int) -> None:
    """What a release whose size check counted less than SNS does left in the table: a command
    handled, its event appended, its publish refused ever since."""
    log = DynamoDbEventLog(stack.dynamodb, TABLE)
    data = msgspec.json.encode(Ran(blob="x" * size))
    await log.append(
        "jobs",
        "j-1",
        expected_version=0,
        events=[NewEvent(type="Ran", data=data)],
        message_id="big-1",
        recorded_at=T1,
    )


@pytest.mark.parametrize("refused_by", ["our check before publishing", "SNS"])
async def test_a_stored_event_that_can_never_be_published_ends_in_the_dead_letters(
    session: Any, moto: CountingMotoServer, monkeypatch: pytest.MonkeyPatch, refused_by: str
) -> None:
    if refused_by == "SNS":
        # Let it through to moto, which refuses a message over 262,144 characters itself.
        monkeypatch.setattr(reventless.aws._sns, "MAX_SNS_MESSAGE", 10**9)
    async with (
        jobs_stack(session, moto) as stack,
        jobs_provider(session, moto, stack) as provider,
        jobs_plugin().start(provider) as running,
    ):
        jobs = running.aggregates["jobs"]
        await append_as_an_older_release(stack, 270_000)
        publisher = SqsCommandPublisher(stack.sqs, stack.commands_url, jobs)
        # The redelivery of the handled command, then the next command of the same group.
        await publisher.publish("j-1", Run(size=270_000), message_id="big-1")
        assert await lambda_round(stack, jobs) == (1, 0)  # acknowledged: in the dead letters
        await publisher.publish("j-1", Run(size=5), message_id="small-2")
        assert await lambda_round(stack, jobs) == (1, 0)
        assert await queue_length(stack.sqs, stack.commands_url) == 0

        [letter] = await provider.command_dead_letters().dead_letters("jobs")
        assert (letter.message_id, letter.aggregate_id) == ("big-1", "j-1")
        assert letter.reason.startswith("UnpublishableEventError: event jobs/j-1/1 (Ran")
        if refused_by == "SNS":
            assert "refused by SNS" in letter.reason and "InvalidParameter" in letter.reason
        else:
            assert "SNS takes at most 262144" in letter.reason
        assert "kept in the event log" in letter.reason
        # The group went on: the next event was published and delivered.
        received = await stack.sqs.receive_message(
            QueueUrl=stack.subscriber_url, MaxNumberOfMessages=10
        )
        bodies = [msgspec.json.decode(m["Body"]) for m in received["Messages"]]
        assert [(b["eventId"], b["messageId"]) for b in bodies] == [("jobs/j-1/2", "small-2")]
        # Nothing dropped: the stored event is still in the log.
        stored = await DynamoDbEventLog(stack.dynamodb, TABLE).load("jobs", "j-1")
        assert [(e.version, e.message_id) for e in stored] == [(1, "big-1"), (2, "small-2")]
