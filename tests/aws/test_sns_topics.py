"""Event topics on SNS FIFO, their subscriber queues' entry point, and the IAM documents of the
AWS stack: what is SNS's own, apart from the end-to-end path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from botocore.exceptions import ClientError

import reventless.local
from reventless import Aggregate, AggregateSpec, ValidationError
from reventless.aws import SnsEventTopic, SqsTopicSubscriber, decode_topic_message
from reventless.aws.iam import execution_role_policy, handler_policy
from reventless.cli.demo import ORDERS, PendingOrdersProcessed
from reventless.errors import BackendUnavailableError
from reventless.event_topic import EventMessage, FireMessage, TopicMessage
from reventless.target import FireEnvelope
from reventless.testing import VirtualClock
from tests.aws.conftest import ACCOUNT, REGION

pytestmark = pytest.mark.anyio
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:orders-events.fifo"
T1 = datetime(2026, 3, 20, 7, 0, tzinfo=UTC)


class RecordingSns:
    """An SNS client that records what is published, failing first with ``faults``."""

    def __init__(self, faults: list[BaseException] = ()) -> None:  # type: ignore[assignment]
        self.faults = list(faults)
        self.published: list[dict[str, Any]] = []
        self.calls = 0

    async def publish(self, **request: Any) -> dict[str, Any]:
        self.calls += 1
        if self.faults:
            raise self.faults.pop(0)
        self.published.append(request)
        return {"MessageId": str(len(self.published))}


def throttled() -> ClientError:
    return ClientError(
        {"Error": {"Code": "Throttled", "Message": "slow down"}, "ResponseMetadata": {}},
        "Publish",
    )


def test_a_standard_topic_is_refused() -> None:
    with pytest.raises(ValidationError, match="FIFO"):
        SnsEventTopic("orders", f"arn:aws:sns:{REGION}:{ACCOUNT}:orders-events", RecordingSns())


async def test_events_are_published_with_the_aggregate_as_group_and_the_event_id_as_dedup() -> None:
    sns = RecordingSns([throttled()])
    topic = SnsEventTopic("orders", TOPIC_ARN, sns)
    async with reventless.local.provider(":memory:", clock=VirtualClock(T1)) as provider:
        orders = Aggregate(ORDERS, provider.event_log(), provider.clock, topic)
        await orders.handle(
            "order-processor",
            ORDERS.commands["ProcessPendingOrders"](),
            message_id="m1",
            scheduled_time=T1,
        )
    assert sns.calls == 2  # throttled once, retried
    [request] = sns.published
    assert request["TopicArn"] == TOPIC_ARN
    assert request["MessageGroupId"] == "order-processor"
    assert request["MessageDeduplicationId"] == "orders/order-processor/1"
    body = msgspec.json.decode(request["Message"])
    assert body["eventId"] == "orders/order-processor/1" and body["messageId"] == "m1"
    decoded = decode_topic_message(request["Message"], "orders", [ORDERS])
    assert decoded.event == PendingOrdersProcessed(batch=1, for_time=T1)
    # Wrapped in SNS's notification JSON (raw delivery off), it decodes the same.
    wrapped = msgspec.json.encode({"Type": "Notification", "Message": request["Message"]})
    assert decode_topic_message(wrapped.decode(), "orders", [ORDERS]) == decoded


async def test_a_publish_that_keeps_failing_fails_the_command_after_the_append() -> None:
    """The command's redelivery then republishes (test_end_to_end)."""
    sns = RecordingSns([throttled()] * 10)
    topic = SnsEventTopic("orders", TOPIC_ARN, sns)
    async with reventless.local.provider(":memory:", clock=VirtualClock(T1)) as provider:
        orders = Aggregate(ORDERS, provider.event_log(), provider.clock, topic)
        command = ORDERS.commands["ProcessPendingOrders"]()
        with pytest.raises(BackendUnavailableError, match="Throttled"):
            await orders.handle("order-processor", command, message_id="m1")
        assert await provider.event_log().was_handled("orders", "order-processor", "m1")
        sns.faults.clear()
        again = await orders.handle("order-processor", command, message_id="m1")
    assert again.duplicate
    assert [r["MessageDeduplicationId"] for r in sns.published] == ["orders/order-processor/1"]


class Store(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    size: int


class Stored(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    blob: str


BLOBS: AggregateSpec[int] = AggregateSpec(
    "blobs",
    commands=[Store],
    events=[Stored],
    initial=0,
    decide=lambda state, command, context: [Stored(blob="x" * command.size)],
    evolve=lambda state, event: state + 1,
)


async def test_an_event_too_big_for_sns_is_refused_before_the_append() -> None:
    sns = RecordingSns()
    topic = SnsEventTopic("blobs", TOPIC_ARN, sns)
    async with reventless.local.provider(":memory:", clock=VirtualClock(T1)) as provider:
        blobs = Aggregate(BLOBS, provider.event_log(), provider.clock, topic)
        with pytest.raises(ValidationError, match="SNS message"):
            await blobs.handle("b-1", Store(size=262_000), message_id="m1")
        assert await provider.event_log().load("blobs", "b-1") == []
        assert not await provider.event_log().was_handled("blobs", "b-1", "m1")
        await blobs.handle("b-1", Store(size=1000), message_id="m2")
    assert sns.calls == 1


def record(group: str, body: str, index: int) -> dict[str, Any]:
    return {"messageId": f"r{index}", "body": body, "attributes": {"MessageGroupId": group}}


def event_body(aggregate_id: str, version: int) -> str:
    return msgspec.json.encode(
        {
            "topic": "orders",
            "type": "PendingOrdersProcessed",
            "source": f"orders/{aggregate_id}",
            "messageId": "m",
            "eventId": f"orders/{aggregate_id}/{version}",
            "version": version,
            "position": version,
            "event": {"type": "PendingOrdersProcessed", "batch": version, "for_time": None},
        }
    ).decode()


def test_a_body_decodes_into_the_message_of_its_kind() -> None:
    """An event's body is an EventMessage, a fire envelope a FireMessage; unknown events stay
    plain JSON data."""
    decoded = decode_topic_message(event_body("a", 2), "orders", [ORDERS])
    assert decoded == EventMessage(
        topic="orders",
        type="PendingOrdersProcessed",
        source="orders/a",
        message_id="m",
        event=PendingOrdersProcessed(batch=2, for_time=None),
        position=2,
        version=2,
        event_id="orders/a/2",
    )
    assert decode_topic_message(event_body("a", 2), "orders").event == {
        "type": "PendingOrdersProcessed",
        "batch": 2,
        "for_time": None,
    }
    fire = FireEnvelope(schedule="health-check", scheduled_time=T1, payload="ping")
    assert decode_topic_message(fire.to_json().decode(), "health") == FireMessage(
        topic="health",
        source="health-check",
        message_id=fire.fire_id,
        scheduled_time=T1,
        data="ping",
    )


DROP = object()


@pytest.mark.parametrize(
    "change",
    [{"source": "orders"}, {"version": "two"}, {"messageId": 7}, {"type": DROP}],
    ids=["source-without-id", "version-not-a-number", "message-id-not-text", "no-type"],
)
def test_a_malformed_event_body_is_refused_naming_the_body(change: dict[str, Any]) -> None:
    body = {**msgspec.json.decode(event_body("a", 1)), **change}
    kept = {name: value for name, value in body.items() if value is not DROP}
    with pytest.raises(ValidationError, match="record body"):
        decode_topic_message(msgspec.json.encode(kept).decode(), "orders", [ORDERS])


async def test_a_failed_subscriber_record_holds_back_the_rest_of_its_group_only() -> None:
    seen: list[str | None] = []

    async def handler(message: TopicMessage) -> None:
        if message.event_id == "orders/a/1":
            raise RuntimeError("the handler failed")
        seen.append(message.event_id)

    event = {
        "Records": [
            record("a", event_body("a", 1), 1),
            record("b", event_body("b", 1), 2),
            record("a", event_body("a", 2), 3),
            record("b", "not json", 4),
            record("b", event_body("b", 2), 5),
        ]
    }
    result = await SqsTopicSubscriber(handler, aggregates=[ORDERS]).handle_batch(event)
    assert result == {
        "batchItemFailures": [{"itemIdentifier": r} for r in ("r1", "r3", "r4", "r5")]
    }
    assert seen == ["orders/b/1"]


def test_the_execution_role_may_publish_to_target_topics_only() -> None:
    policy = execution_role_policy(target_topic_arns=[TOPIC_ARN])
    assert policy["Statement"] == [
        {"Effect": "Allow", "Action": "sns:Publish", "Resource": [TOPIC_ARN]}
    ]
    with pytest.raises(ValidationError):
        execution_role_policy()


def test_the_handler_policy_holds_the_event_log_item_actions_on_its_table_only() -> None:
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/shop-events"
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders-commands.fifo"
    policy = handler_policy(table_arn=table, topic_arns=[TOPIC_ARN], queue_arns=[queue])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    log = statements["EventLogOnItsTableOnly"]
    assert log["Resource"] == table
    assert set(log["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
    }
    assert statements["PublishEvents"]["Resource"] == [TOPIC_ARN]
    assert statements["ConsumeTheQueues"]["Resource"] == [queue]
    actions = [
        action
        for s in policy["Statement"]
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert not any("*" in action for action in actions)
    with pytest.raises(ValidationError) as caught:
        handler_policy(table_arn="shop-events")
    assert caught.value.field == "table_arn"
