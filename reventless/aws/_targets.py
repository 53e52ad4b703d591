"""The targets a schedule on EventBridge Scheduler delivers to: an SQS queue (``SqsQueueTarget``)
or an SNS topic, and the templates of the envelope EventBridge fills in at each fire."""

from __future__ import annotations

from typing import Any

import msgspec

from reventless.aws._arn import queue_arn as is_queue_arn
from reventless.aws._description import TIME_WIDTH
from reventless.aws._sns import MAX_SNS_MESSAGE, SnsEventTopic
from reventless.errors import (
    UsageError,
    ValidationError,
)
from reventless.schedule import Schedule

_ENCODER = msgspec.json.Encoder()

__all__ = (
    "MAX_GROUP_ID",
    "MAX_SQS_MESSAGE",
    "SCHEDULED_TIME",
    "SNS_PUBLISH",
    "SqsQueueTarget",
    "check_envelope_size",
    "envelope_of",
    "envelope_template",
    "sns_publish_template",
)

SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"


# EventBridge Scheduler's Target has no SnsParameters, and SqsParameters.MessageGroupId is for
# FIFO queues: a templated SNS target cannot publish to a FIFO topic, which needs a group id.
# The universal target calls sns:Publish with the request written in Input, where the context
# attributes are replaced in string values: group and deduplication ids included.
SNS_PUBLISH = "arn:aws:scheduler:::aws-sdk:sns:publish"


MAX_GROUP_ID = 128  # SqsParameters.MessageGroupId


MAX_SQS_MESSAGE = 262_144  # bytes in one SQS message


class SqsQueueTarget:
    """An SQS queue as the target of an AWS scheduler.

    For a FIFO queue (its name ends in ``.fifo``) each fire carries a ``MessageGroupId``:
    ``message_group_id`` when given; with a ``command_topic``, the aggregate id the payload names
    (so commands keep their order per aggregate); otherwise the schedule's name. With a
    ``command_topic`` the scheduler also refuses, at create time, payloads the aggregate cannot
    decode. Fires are delivered by EventBridge Scheduler, never by this process.
    """

    def __init__(
        self,
        queue_arn: str,
        *,
        message_group_id: str | None = None,
        command_topic: Any = None,
    ) -> None:
        if not is_queue_arn(queue_arn):
            raise ValidationError(
                "queue_arn", queue_arn, "an SQS queue ARN, arn:aws:sqs:REGION:ACCOUNT:NAME"
            )
        if message_group_id is not None and (
            not isinstance(message_group_id, str) or not 1 <= len(message_group_id) <= 128
        ):
            raise ValidationError("message_group_id", message_group_id, "1-128 characters")
        self.arn = queue_arn
        self.fifo = queue_arn.endswith(".fifo")
        self.message_group_id = message_group_id
        self.command_topic = command_topic

    def check_payload(self, payload: str) -> None:
        if self.command_topic is not None:
            self.command_topic.check_payload(payload)

    def group_id(self, schedule: Schedule) -> str | None:
        return self.group_for(schedule.name, schedule.payload)

    def group_for(self, name: str, payload: str) -> str | None:
        """The MessageGroupId of a fire of schedule ``name`` with ``payload`` (None: standard)."""
        if not self.fifo:
            return None
        if self.message_group_id is not None:
            return self.message_group_id
        if self.command_topic is not None:
            aggregate_id, _ = self.command_topic.aggregate.spec.decode_payload(payload)
            if len(aggregate_id) > MAX_GROUP_ID:
                raise ValidationError(
                    f"{name} payload aggregateId",
                    aggregate_id,
                    f"at most {MAX_GROUP_ID} characters: it becomes the SQS MessageGroupId",
                )
            return str(aggregate_id)
        return name

    async def deliver(self, envelope: Any) -> None:
        raise UsageError(
            "fires of an AWS scheduler are delivered by EventBridge Scheduler to the queue; "
            "consume the queue (reventless.aws.SqsCommandConsumer) instead of calling deliver"
        )


def envelope_template(schedule: Schedule) -> str:
    """The Target Input: the fire envelope with EventBridge's scheduled-time placeholder."""
    return _ENCODER.encode(
        {"schedule": schedule.name, "scheduledTime": SCHEDULED_TIME, "payload": schedule.payload}
    ).decode()


def sns_publish_template(topic: SnsEventTopic, schedule: Schedule) -> str:
    """The Input of the universal ``sns:Publish`` target: the envelope as the message, the
    schedule as the message group (fires in order), the fire id as the deduplication id."""
    return _ENCODER.encode(
        {
            "TopicArn": topic.arn,
            "Message": envelope_template(schedule),
            "MessageGroupId": schedule.name,
            "MessageDeduplicationId": f"{schedule.name}@{SCHEDULED_TIME}",
        }
    ).decode()


def envelope_of(target: dict[str, Any]) -> Any:
    """The fire envelope a stored target carries: its Input, or, for the universal sns:Publish
    target, the Input's Message."""
    document = msgspec.json.decode(target.get("Input", ""))
    if target.get("Arn") == SNS_PUBLISH:
        if not isinstance(document, dict) or not isinstance(document.get("Message"), str):
            raise ValueError("its sns:Publish Input has no Message")
        return msgspec.json.decode(document["Message"])
    return document


def check_envelope_size(schedule: Schedule, target: SqsQueueTarget | SnsEventTopic) -> None:
    """Refuse a payload whose fire envelope could never be delivered: JSON escaping can make a
    payload within 256 KiB too big for one SQS or SNS message."""
    size = len(envelope_template(schedule).encode()) - len(SCHEDULED_TIME) + TIME_WIDTH
    kind, limit = (
        ("SNS", MAX_SNS_MESSAGE) if isinstance(target, SnsEventTopic) else ("SQS", MAX_SQS_MESSAGE)
    )
    if size > limit:
        raise ValidationError(
            "payload",
            schedule.payload,
            f"a payload whose fire envelope fits one {kind} message ({limit} bytes)",
            message=(
                f"payload of {schedule.name!r} makes a {size}-byte fire envelope; an {kind} "
                f"message holds {limit} bytes, so EventBridge could never deliver it"
            ),
        )
