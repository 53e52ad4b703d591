"""The size of an event's SNS message, on a moto server: the check before the append counts
what SNS counts (the body's UTF-8 bytes and every message attribute's name, data type and
value), so the largest event it lets through is published and delivered, and one byte more is
refused before anything is written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

import reventless.aws
from reventless import Aggregate, AggregateSpec, ValidationError
from reventless.aws import create_event_table
from reventless.aws._sns import MAX_SNS_MESSAGE
from tests.aws.conftest import REGION, ROLE_ARN, CountingMotoServer, make_queue

pytestmark = pytest.mark.anyio
TABLE = "blob-events"
# The longest aggregate id there is, and a long message id (a fire id of a long schedule name
# is one): both are in the body, and a fixed allowance for them let too big an event through.
AGGREGATE_ID = "b" * 200
MESSAGE_ID = "m" * 1408


class Store(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    size: int


class Stored(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    blob: str


BLOBS: AggregateSpec[int] = AggregateSpec(
    "blobs",
    commands=[Store],
    events=[Stored],
    initial=0,
    # Two-byte characters, counted in bytes, and one-byte ones to reach any size exactly.
    decide=lambda state, command, context: [Stored(blob="é" * 1000 + "x" * command.size)],
    evolve=lambda state, event: state + 1,
)


@dataclass
class Stack:
    sqs: Any
    dynamodb: Any
    topic_arn: str
    subscriber_url: str


@asynccontextmanager
async def blob_stack(session: Any, moto: CountingMotoServer) -> AsyncIterator[Stack]:
    async with (
        session.client("sqs", endpoint_url=moto.url) as sqs,
        session.client("sns", endpoint_url=moto.url) as sns,
        session.client("dynamodb", endpoint_url=moto.url) as dynamodb,
    ):
        topic = await sns.create_topic(Name="blobs-events.fifo", Attributes={"FifoTopic": "true"})
        url, arn = await make_queue(sqs, "blobs-subscriber.fifo")
        await sns.subscribe(
            TopicArn=topic["TopicArn"],
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        await create_event_table(dynamodb, TABLE)
        yield Stack(sqs, dynamodb, topic["TopicArn"], url)


def blob_provider(session: Any, moto: CountingMotoServer, stack: Stack) -> Any:
    return reventless.aws.provider(
        session=session,
        group="blobs",
        role_arn=ROLE_ARN,
        region=REGION,
        endpoint_url=moto.url,
        event_table=TABLE,
        event_topics={"blobs": stack.topic_arn},
    )


def sns_size(body: str, attributes: dict[str, Any]) -> int:
    """A message's size as SNS counts it (its documentation of MessageAttributeValue: every
    part of an attribute, name, type and value, counts with the body)."""
    return len(body.encode()) + sum(
        len(name.encode()) + len(value["DataType"].encode()) + len(value["StringValue"].encode())
        for name, value in attributes.items()
    )


def largest_accepted(blobs: Aggregate[int]) -> int:
    """The largest ``Store.size`` the check before the append lets through."""
    low, high = 1, MAX_SNS_MESSAGE
    while low < high:
        middle = (low + high + 1) // 2
        event = blobs.spec.encode_event(Stored(blob="é" * 1000 + "x" * middle))
        try:
            blobs.event_topic.check_publishable(
                "blobs", AGGREGATE_ID, [event], version=0, message_id=MESSAGE_ID
            )
        except ValidationError:
            high = middle - 1
        else:
            low = middle
    return low


async def test_the_largest_event_the_check_allows_is_exactly_snss_limit_and_is_delivered(
    session: Any, moto: CountingMotoServer
) -> None:
    async with blob_stack(session, moto) as stack, blob_provider(session, moto, stack) as provider:
        blobs = await Aggregate.make(provider, BLOBS)
        size = largest_accepted(blobs)
        with pytest.raises(ValidationError) as refused:
            await blobs.handle(AGGREGATE_ID, Store(size=size + 1), message_id=MESSAGE_ID)
        text = str(refused.value)
        assert "nothing was appended" in text and str(MAX_SNS_MESSAGE) in text
        assert "Stored" in text and f"blobs/{AGGREGATE_ID}" in text
        # Nothing written: no event, no head, no handled message.
        scan = await stack.dynamodb.scan(TableName=TABLE)
        assert scan["Items"] == []

        await blobs.handle(AGGREGATE_ID, Store(size=size), message_id=MESSAGE_ID)
        received = await stack.sqs.receive_message(
            QueueUrl=stack.subscriber_url, MessageAttributeNames=["All"], MaxNumberOfMessages=10
        )
    [message] = received["Messages"]
    body = message["Body"]
    assert msgspec.json.decode(body)["event"] == {"type": "Stored", "blob": "é" * 1000 + "x" * size}
    # What SNS counted: the body and the "type" attribute that publishing set, to the byte.
    assert message["MessageAttributes"]["type"]["StringValue"] == "Stored"
    assert sns_size(body, {"type": {"DataType": "String", "StringValue": "Stored"}}) == (
        MAX_SNS_MESSAGE
    )
