"""reventless on AWS end to end, on a moto server: a schedule created by the AWS provider is
fired as EventBridge Scheduler would fire it; the command queue's handler runs the aggregate on
DynamoDB and publishes to SNS FIFO; a queue subscribed to the topic receives the event. A fire
delivered twice, and a crash between the append and the publish, change the aggregate once and
publish each event at least once with the same id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

import reventless.aws
from reventless import (
    Hours,
    Minutes,
    Plugin,
    Schedule,
    ScheduleNotFoundError,
    UsageError,
    ValidationError,
)
from reventless.aws import (
    SNS_PUBLISH,
    DynamoDbEventLog,
    create_event_table,
    handle_sqs_batch,
    handle_topic_batch,
)
from reventless.cli.demo import ORDERS, PendingOrdersProcessed
from reventless.event_topic import TopicMessage
from reventless.target import fire_id
from reventless.testing.aws import fire_as_eventbridge, receive_lambda_event
from tests.aws.conftest import REGION, ROLE_ARN, CountingMotoServer, make_queue

pytestmark = pytest.mark.anyio
T1 = datetime(2026, 3, 20, 7, 0, tzinfo=UTC)
T2 = datetime(2026, 3, 20, 8, 0, tzinfo=UTC)
TABLE = "shop-events"
PROCESS_ORDERS = Schedule(
    name="process-orders",
    rate=Hours(1),
    payload='{"aggregateId": "order-processor", "command": "ProcessPendingOrders"}',
)
HEALTH_CHECK = Schedule(name="health-check", rate=Minutes(5), payload='{"check": "ping"}')


def shop_plugin(received: list[TopicMessage]) -> Plugin:
    plugin = Plugin("shop")
    orders = plugin.aggregate(ORDERS)
    health = plugin.event_topic("health")
    plugin.scheduler("orders", target=orders, schedules=[PROCESS_ORDERS])
    plugin.scheduler("health", target=health, schedules=[HEALTH_CHECK])

    @plugin.on_start
    async def watch_health(running: Any) -> None:
        async def record(message: TopicMessage) -> None:
            received.append(message)

        running.event_topics["health"].subscribe(record, name="record")

    return plugin


@dataclass
class Stack:
    sqs: Any
    sns: Any
    dynamodb: Any
    scheduler: Any
    commands_url: str
    commands_arn: str
    topics: dict[str, str]
    subscriber_urls: dict[str, str]


@asynccontextmanager
async def aws_stack(session: Any, moto: CountingMotoServer) -> AsyncIterator[Stack]:
    """The resources a deployment creates once: the command queue, a FIFO topic per event topic
    with a FIFO queue subscribed (raw delivery), and the event table."""
    async with (
        session.client("sqs", endpoint_url=moto.url) as sqs,
        session.client("sns", endpoint_url=moto.url) as sns,
        session.client("dynamodb", endpoint_url=moto.url) as dynamodb,
        session.client("scheduler", endpoint_url=moto.url) as scheduler,
    ):
        commands_url, commands_arn = await make_queue(sqs, "orders-commands.fifo")
        topics: dict[str, str] = {}
        subscriber_urls: dict[str, str] = {}
        for name in ("orders", "health"):
            topic = await sns.create_topic(
                Name=f"{name}-events.fifo", Attributes={"FifoTopic": "true"}
            )
            url, arn = await make_queue(sqs, f"{name}-subscriber.fifo")
            await sns.subscribe(
                TopicArn=topic["TopicArn"],
                Protocol="sqs",
                Endpoint=arn,
                Attributes={"RawMessageDelivery": "true"},
            )
            topics[name] = topic["TopicArn"]
            subscriber_urls[name] = url
        await create_event_table(dynamodb, TABLE)
        yield Stack(
            sqs, sns, dynamodb, scheduler, commands_url, commands_arn, topics, subscriber_urls
        )


def aws_provider(session: Any, moto: CountingMotoServer, stack: Stack, **options: Any) -> Any:
    return reventless.aws.provider(
        session=session,
        group="shop",
        role_arn=ROLE_ARN,
        region=REGION,
        endpoint_url=moto.url,
        event_table=TABLE,
        event_topics=stack.topics,
        command_queues={"orders": stack.commands_arn},
        **options,
    )


async def subscriber_messages(stack: Stack, topic: str) -> list[TopicMessage]:
    seen: list[TopicMessage] = []

    async def record(message: TopicMessage) -> None:
        seen.append(message)

    event = await receive_lambda_event(stack.sqs, stack.subscriber_urls[topic])
    result = await handle_topic_batch(event, record, topic=topic, aggregates=[ORDERS])
    assert result == {"batchItemFailures": []}
    return seen


async def fire_orders(stack: Stack, at: datetime) -> dict[str, Any]:
    target = await fire_as_eventbridge(
        scheduler=stack.scheduler,
        group="shop.orders",
        name="process-orders",
        scheduled_time=at,
        sqs=stack.sqs,
    )
    assert target["Arn"] == stack.commands_arn
    assert target["SqsParameters"] == {"MessageGroupId": "order-processor"}
    event = await receive_lambda_event(stack.sqs, stack.commands_url)
    assert len(event["Records"]) == 1
    return event


async def test_a_fire_delivered_twice_changes_the_aggregate_once_and_reaches_the_subscriber(
    session: Any, moto: CountingMotoServer
) -> None:
    async with (
        aws_stack(session, moto) as stack,
        aws_provider(session, moto, stack) as provider,
        shop_plugin([]).start(provider) as running,
    ):
        orders = running.aggregates["orders"]
        event = await fire_orders(stack, T1)
        assert await handle_sqs_batch(event, orders) == {"batchItemFailures": []}
        # SQS delivers at least once: the same record again, as after a lost acknowledgement.
        assert await handle_sqs_batch(event, orders) == {"batchItemFailures": []}
        state, version = await orders.load("order-processor")
        assert (state.batches, version) == (1, 1)
        stored = await DynamoDbEventLog(stack.dynamodb, TABLE).load("orders", "order-processor")
        assert [(e.version, e.message_id) for e in stored] == [(1, fire_id("process-orders", T1))]
        seen = await subscriber_messages(stack, "orders")
    assert seen, "the subscriber queue received nothing"
    assert {m.event_id for m in seen} == {"orders/order-processor/1"}
    assert all(m.event == PendingOrdersProcessed(batch=1, for_time=T1) for m in seen)
    assert {m.message_id for m in seen} == {fire_id("process-orders", T1)}


class Crash(BaseException):
    """The process dies: nothing after this point runs, nothing is acknowledged."""


class CrashingSns:
    """The real SNS client, except that the process dies at its first publish."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        if name == "publish" and not self.crashed:

            async def crash(**_: Any) -> None:
                self.crashed = True
                raise Crash

            return crash
        return getattr(self._client, name)


async def test_a_crash_between_append_and_publish_is_mended_by_the_redelivery(
    session: Any, moto: CountingMotoServer
) -> None:
    async with aws_stack(session, moto) as stack:
        crashing = CrashingSns(stack.sns)
        async with (
            aws_provider(session, moto, stack, sns_client=crashing) as provider,
            shop_plugin([]).start(provider) as running,
        ):
            event = await fire_orders(stack, T2)
            with pytest.raises(Crash):
                await handle_sqs_batch(event, running.aggregates["orders"])
        assert crashing.crashed
        # The append committed; the publish never happened.
        log = DynamoDbEventLog(stack.dynamodb, TABLE)
        assert [e.version for e in await log.load("orders", "order-processor")] == [1]
        assert await receive_lambda_event(stack.sqs, stack.subscriber_urls["orders"]) == {
            "Records": []
        }
        # A new process gets the record again (its visibility timeout ran out).
        async with (
            aws_provider(session, moto, stack) as provider,
            shop_plugin([]).start(provider) as running,
        ):
            assert await handle_sqs_batch(event, running.aggregates["orders"]) == {
                "batchItemFailures": []
            }
            assert (await running.aggregates["orders"].load("order-processor"))[1] == 1
        seen = await subscriber_messages(stack, "orders")
    assert [(m.event_id, m.message_id) for m in seen] == [
        ("orders/order-processor/1", fire_id("process-orders", T2))
    ]


async def test_a_schedule_on_an_event_topic_is_published_by_eventbridge_with_the_fire_id(
    session: Any, moto: CountingMotoServer
) -> None:
    received: list[TopicMessage] = []
    async with (
        aws_stack(session, moto) as stack,
        aws_provider(session, moto, stack) as provider,
        shop_plugin(received).start(provider) as running,
    ):
        target = await fire_as_eventbridge(
            scheduler=stack.scheduler,
            group="shop.health",
            name="health-check",
            scheduled_time=T1,
            sns=stack.sns,
        )
        assert target["Arn"] == SNS_PUBLISH
        health = running.event_topics["health"]
        event = await receive_lambda_event(stack.sqs, stack.subscriber_urls["health"])
        assert len(event["Records"]) == 1
        assert event["Records"][0]["attributes"]["MessageGroupId"] == "health-check"
        assert await handle_topic_batch(event, health.receive) == {"batchItemFailures": []}
        # Read back through the adapter, the schedule is the one that was created.
        state = await running.schedulers["health"].operations.get_schedule("health-check")
        assert state.schedule == HEALTH_CHECK
    assert [(m.type, m.source, m.message_id, m.data) for m in received] == [
        ("ScheduledFire", "health-check", fire_id("health-check", T1), '{"check": "ping"}')
    ]
    assert received[0].scheduled_time == T1


async def test_payloads_are_checked_at_create_for_a_command_topic_on_a_queue(
    session: Any, moto: CountingMotoServer
) -> None:
    async with (
        aws_stack(session, moto) as stack,
        aws_provider(session, moto, stack) as provider,
        shop_plugin([]).start(provider) as running,
    ):
        ops = running.schedulers["orders"].operations
        bad = Schedule(
            name="bad",
            rate=Hours(1),
            payload='{"aggregateId": "order-processor", "command": "ProcessPendingOrder"}',
        )
        with pytest.raises(ValidationError, match="ProcessPendingOrders"):
            await ops.create_schedule(bad)
        with pytest.raises(ScheduleNotFoundError):
            await ops.get_schedule("bad")


async def test_a_plugin_needs_its_topics_and_queues_wired_and_is_told_which(
    session: Any, moto: CountingMotoServer
) -> None:
    async with aws_stack(session, moto) as stack:
        async with reventless.aws.provider(
            session=session,
            group="shop",
            role_arn=ROLE_ARN,
            region=REGION,
            endpoint_url=moto.url,
            event_table=TABLE,
        ) as provider:
            with pytest.raises(UsageError, match="event_topics"):
                await shop_plugin([]).start(provider).__aenter__()
        async with reventless.aws.provider(
            session=session,
            group="shop",
            role_arn=ROLE_ARN,
            region=REGION,
            endpoint_url=moto.url,
            event_table=TABLE,
            event_topics=stack.topics,
        ) as provider:
            with pytest.raises(ValidationError, match="command_queues"):
                await shop_plugin([]).start(provider).__aenter__()
        async with reventless.aws.provider(
            session=session,
            group="shop",
            role_arn=ROLE_ARN,
            region=REGION,
            endpoint_url=moto.url,
        ) as provider:
            with pytest.raises(UsageError, match="event_table"):
                provider.event_log()
    bad_wiring: list[dict[str, Any]] = [
        {"event_topics": {"orders": "arn:aws:sns:eu-west-1:123456789012:orders"}},
        {"command_queues": {"orders": "arn:aws:sqs:eu-west-1:123456789012:orders"}},
        {"event_table": "x"},
    ]
    for wiring in bad_wiring:
        with pytest.raises(ValidationError):
            async with reventless.aws.provider(
                session=session,
                group="shop",
                role_arn=ROLE_ARN,
                endpoint_url=moto.url,
                **wiring,
            ):
                pass
