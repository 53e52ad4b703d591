"""Event topics on SNS FIFO, and the entry point of a queue subscribed to one.

A message's group id is the aggregate id (order per aggregate instance; a fire's group is its
schedule) and its deduplication id the event id (a fire's: the fire id), so a message published
twice within SNS's five-minute window is delivered once, and later with the same id. The body
is JSON: an event as ``{"topic", "type", "source", "messageId", "eventId", "version",
"position", "event"}``, a fire as its envelope ``{"schedule", "scheduledTime", "payload"}``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from reventless.aggregate import AggregateSpec
from reventless.aggregate_adapter import AppendResult, NewEvent
from reventless.aws._arn import topic_arn as is_topic_arn
from reventless.aws._batch import BatchResponse, handle_records, record_id
from reventless.aws._errors import SNS_ERRORS, call_aws
from reventless.errors import DeliveryRefusedError, ValidationError
from reventless.event_topic import (
    EventMessage,
    EventTopic,
    FireMessage,
    TopicMessage,
    event_message,
    event_messages,
    fire_message,
)
from reventless.target import FireEnvelope

__all__ = (
    "MAX_SNS_MESSAGE",
    "SnsEventTopic",
    "SqsTopicSubscriber",
    "UnpublishableEventError",
    "decode_topic_message",
    "group_id",
)

logger = logging.getLogger("reventless.aws")

MAX_SNS_MESSAGE = 262_144  # bytes in one SNS message
# SNS FIFO group and deduplication ids: 1-128 of letters, digits and punctuation.
_SNS_ID = re.compile(r"[0-9A-Za-z!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}")
_ENCODER = msgspec.json.Encoder()


class UnpublishableEventError(DeliveryRefusedError):
    """An appended event that SNS can never take: its message is too big (an event stored by
    an older release, whose check counted less than SNS does), or SNS refused it as invalid.
    Retrying cannot help; the command queue's handler moves the command to the queue's dead
    letters with this message, so the message group goes on (``CommandDeadLetters``)."""


def group_id(value: str) -> str:
    """An SNS/SQS FIFO id for ``value``: itself when allowed, else its SHA-256 (the same for
    every message of the value, so order and deduplication still hold)."""
    if _SNS_ID.fullmatch(value):
        return value
    return hashlib.sha256(value.encode()).hexdigest()


class SnsEventTopic(EventTopic):
    """An event topic that publishes to an SNS FIFO topic (``topic_arn`` ends in ``.fifo``).

    Subscribers are SQS FIFO queues subscribed to the topic (raw message delivery), each
    consumed by ``SqsTopicSubscriber``. Handlers given to ``subscribe`` (a plugin's, unchanged)
    are not called when publishing: they run where the subscriber queue is consumed, through
    ``receive``. Publishing an
    aggregate's events raises when SNS refuses them, so the command fails and is delivered again,
    and its repeat publishes the same events again (``republishes_duplicates``). The topic is
    also a schedule target: on AWS, EventBridge Scheduler publishes the fire to SNS itself; the
    embedded engine publishes it through ``deliver``. ``client`` is an aioboto3 SNS client.
    """

    republishes_duplicates = True

    def __init__(self, name: str, topic_arn: str, client: Any) -> None:
        super().__init__(name)
        if not is_topic_arn(topic_arn, fifo=True):
            raise ValidationError(
                f"event topic {name!r}",
                topic_arn,
                "an SNS FIFO topic ARN, arn:aws:sns:REGION:ACCOUNT:NAME.fifo (a standard topic "
                "cannot keep order per aggregate)",
            )
        self.arn = topic_arn
        self._client = client
        # Set by the provider: where the command queue's handler puts a command whose events
        # can never be published (reventless.aws._command_dead_letters.CommandDeadLetters).
        self.command_dead_letters: Any = None

    async def receive(self, message: TopicMessage) -> None:
        """Hand a message that arrived from the topic (through a subscriber queue) to the
        in-process subscribers (``subscribe``), as ``EventTopic.publish`` does in process;
        PublishError when one failed, so the record is retried. The subscriber queue's entry
        point for a plugin: ``SqsTopicSubscriber(topic.receive, topic=topic.name)``."""
        await self.fan_out(message)

    def check_publishable(
        self,
        aggregate: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        *,
        version: int = 0,
        message_id: str | None = None,
    ) -> None:
        """Refuse, before the append, an event whose SNS message would be too big: counted as
        SNS counts it, the UTF-8 bytes of the body as ``publish`` encodes it plus every message
        attribute's name, data type and value. The event log on DynamoDB gives an event the
        position ``version`` (its version), as counted here."""
        source = f"{aggregate}/{aggregate_id}"
        for offset, event in enumerate(events, start=1):
            number = version + offset
            body = _event_body(
                event_message(
                    self.name,
                    aggregate,
                    aggregate_id,
                    msgspec.Raw(event.data),
                    version=number,
                    position=number,
                    message_id=message_id,
                    kind=event.type,
                )
            )
            size = len(body) + _attributes_size(_attributes(event.type))
            if size > MAX_SNS_MESSAGE:
                raise ValidationError(
                    f"{aggregate} event",
                    event.type,
                    f"an event whose SNS message (body and attributes) fits {MAX_SNS_MESSAGE} "
                    "bytes",
                    message=(
                        f"event {event.type} of {source} would make an SNS message of {size} "
                        f"bytes ({len(body)} of body, {size - len(body)} of attributes; "
                        f"{len(event.data)} of them the event's JSON); SNS takes at most "
                        f"{MAX_SNS_MESSAGE}, so it could never be published: nothing was appended"
                    ),
                )

    async def publish(self, message: TopicMessage) -> None:
        """Publish one message to SNS; BackendUnavailableError (or another ReventlessError)
        when SNS refused it after retries."""
        if isinstance(message, FireMessage):
            body = _fire_body(message).decode()
            group = message.source
            dedup = message.message_id
        else:
            body = _event_body(message).decode()
            group = message.source.split("/", 1)[-1]
            dedup = message.event_id
        await call_aws(
            f"publishing {message.type} to {self.arn}",
            self._client.publish,
            TopicArn=self.arn,
            Message=body,
            MessageGroupId=group_id(group),
            MessageDeduplicationId=group_id(dedup),
            MessageAttributes=_attributes(message.type),
            table=SNS_ERRORS,
        )
        self.published += 1

    async def publish_events(
        self,
        aggregate: str,
        aggregate_id: str,
        events: Sequence[Any],
        result: AppendResult,
        message_id: str | None,
    ) -> None:
        """Publish events that were appended, in order; unlike in process, a failure is raised:
        the command's repeat publishes them again. An event SNS can never take raises
        UnpublishableEventError (and the events after it are not published)."""
        for message in event_messages(
            self.name, aggregate, aggregate_id, events, result, message_id
        ):
            size = len(_event_body(message)) + _attributes_size(_attributes(message.type))
            if size > MAX_SNS_MESSAGE:
                raise UnpublishableEventError(
                    f"event {message.event_id} ({message.type}, log position "
                    f"{message.position}) makes an SNS message of {size} bytes; SNS takes at "
                    f"most {MAX_SNS_MESSAGE}, so it can never be published (it is kept in the "
                    "event log)"
                )
            try:
                await self.publish(message)
            except ValidationError as exc:  # SNS refused it as invalid: no retry will help
                raise UnpublishableEventError(
                    f"event {message.event_id} ({message.type}, log position "
                    f"{message.position}) was refused by SNS: {exc} (it is kept in the event log)"
                ) from exc


def _attributes(kind: str) -> dict[str, dict[str, str]]:
    """The message attributes of a published message: its type, for subscription filters."""
    return {"type": {"DataType": "String", "StringValue": kind}}


def _attributes_size(attributes: dict[str, dict[str, str]]) -> int:
    """What message attributes add to an SNS message's size: each one's name, data type and
    value, in UTF-8 bytes (SNS counts all three against its limit)."""
    return sum(
        len(name.encode()) + len(value["DataType"].encode()) + len(value["StringValue"].encode())
        for name, value in attributes.items()
    )


def _event_body(message: EventMessage) -> bytes:
    """The JSON body of an event's SNS message (what ``publish`` sends, and the size check
    counts)."""
    return _ENCODER.encode(
        {
            "topic": message.topic,
            "type": message.type,
            "source": message.source,
            "messageId": message.message_id,
            "eventId": message.event_id,
            "version": message.version,
            "position": message.position,
            "event": message.event,
        }
    )


def _fire_body(message: FireMessage) -> bytes:
    envelope = FireEnvelope(
        schedule=message.source, scheduled_time=message.scheduled_time, payload=message.data
    )
    return envelope.to_json()


def unwrap_notification(body: str) -> tuple[str, dict[str, Any], datetime | None]:
    """The message a subscriber queue's record body carries: the body itself (raw message
    delivery) or the ``Message`` of SNS's notification JSON around it. Returns the message's
    text, its JSON object, and the time SNS took it (None when raw: the record's own
    ``SentTimestamp`` tells then).
    :raises ValidationError: the body, or the message in it, is not a JSON object."""
    try:
        document = msgspec.json.decode(body)
        sent = None
        if isinstance(document, dict) and document.get("Type") == "Notification":
            if "Timestamp" in document:
                stamp = str(document["Timestamp"]).replace("Z", "+00:00")
                sent = datetime.fromisoformat(stamp)
            body = str(document["Message"])
            document = msgspec.json.decode(body)
    except (msgspec.DecodeError, KeyError, ValueError) as exc:
        raise ValidationError("record body", body, "JSON") from exc
    if not isinstance(document, dict):
        raise ValidationError("record body", body, "a JSON object")
    return body, document, sent


def decode_topic_message(
    body: str, topic: str, aggregates: Sequence[AggregateSpec[Any]] = ()
) -> TopicMessage:
    """The ``TopicMessage`` of a subscriber queue's record body (raw, or wrapped in SNS's
    notification JSON). An event of one of ``aggregates`` is decoded into its Struct; any
    other stays plain JSON data."""
    body, document, _ = unwrap_notification(body)
    if "scheduledTime" in document:
        return fire_message(topic, FireEnvelope.from_json(body))
    return _event_message(document, topic, aggregates)


def _event_message(
    document: dict[str, Any], topic: str, aggregates: Sequence[AggregateSpec[Any]]
) -> EventMessage:
    try:
        aggregate, slash, aggregate_id = str(document["source"]).partition("/")
        kind = str(document["type"])
        event = document["event"]
        version = int(document["version"])
        position = document.get("position")
        position = version if position is None else int(position)
        message_id = document.get("messageId")
        if not slash or not (message_id is None or isinstance(message_id, str)):
            raise ValueError("source or messageId")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError(
            "record body", document, "an event message or a fire envelope"
        ) from exc
    specs = {spec.name: spec for spec in aggregates}
    spec = specs.get(aggregate)
    if spec is not None and kind in spec.events:
        event = msgspec.convert(event, spec.events[kind], strict=True)
    return event_message(
        str(document.get("topic", topic)),
        aggregate,
        aggregate_id,
        event,
        version=version,
        position=position,
        message_id=message_id,
        kind=kind,
    )


Handler = Callable[[TopicMessage], Awaitable[None]]


class SqsTopicSubscriber:
    """Handles the records of a subscriber queue (a Lambda's SQS batch): each record becomes a
    ``TopicMessage`` for ``await handler(message)``.

    ``handle_batch(event)`` returns ``{"batchItemFailures": [...]}``; after a failure, later
    records of the same message group are reported failed too, untouched, so that order per
    aggregate survives the retry. A message can arrive more than once (at least once, the same
    ``event_id``): the handler deduplicates on it. ``aggregates`` are the specs whose events are
    decoded into their Structs.
    """

    def __init__(
        self, handler: Handler, *, topic: str = "", aggregates: Sequence[AggregateSpec[Any]] = ()
    ) -> None:
        self.handler = handler
        self.topic = topic
        self.aggregates = tuple(aggregates)

    async def handle_batch(self, event: dict[str, Any]) -> BatchResponse:
        return await handle_records(event, self._handle_record, self._record_failed)

    async def _handle_record(self, record: dict[str, Any]) -> None:
        await self.handler(
            decode_topic_message(record.get("body", ""), self.topic, self.aggregates)
        )

    async def _record_failed(self, record: dict[str, Any], exc: Exception) -> bool:
        logger.error("record %s failed: %s: %s", record_id(record), type(exc).__name__, exc)
        return False
