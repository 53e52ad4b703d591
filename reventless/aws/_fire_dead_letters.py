"""The fires of EventBridge Scheduler that could not be delivered: read from the dead-letter queue,
matched, and the ids of extra fires (trigger, redrive)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from reventless.aws._errors import call_aws
from reventless.fire_times import (
    as_utc,
)
from reventless.scheduler_adapter import (
    DeadLetter,
)
from reventless.target import FireEnvelope, fire_id

__all__ = (
    "_MAX_REDRIVE",
    "_REDRIVE_VISIBILITY",
    "_dead_letter",
    "_dedup_id",
    "_envelope_of_letter",
    "_queue_url",
    "_wanted",
    "extra_fire_time",
)

_MAX_REDRIVE = 10_000  # dead-letter messages looked at by one redrive


_REDRIVE_VISIBILITY = 60


def extra_fire_time(at: datetime) -> datetime:
    """The scheduled time of an extra fire at ``at``: to the second, never a whole minute, so
    its fire id is none of a schedule's (they all fire on whole minutes)."""
    instant = as_utc(at, "at").replace(microsecond=0)
    return instant + timedelta(seconds=1) if instant.second == 0 else instant


def _dedup_id(envelope: FireEnvelope) -> str:
    # An SQS deduplication id is at most 128 of [!-~]; a fire id can be longer (a long name).
    text = envelope.fire_id
    return text if len(text) <= 128 else hashlib.sha256(text.encode()).hexdigest()


def _wanted(letter: DeadLetter, schedule: str | None, fire_ids: set[str] | None) -> bool:
    if schedule is not None and letter.schedule != schedule:
        return False
    return fire_ids is None or letter.fire_id in fire_ids


def _envelope_of_letter(letter: DeadLetter) -> FireEnvelope:
    return FireEnvelope(
        schedule=letter.schedule, scheduled_time=letter.scheduled_time, payload=letter.payload
    )


async def _queue_url(sqs: Any, arn: str) -> str:
    _, _, _, _, account, name = arn.split(":", 5)
    response = await call_aws(
        f"queue {name!r}", sqs.get_queue_url, QueueName=name, QueueOwnerAWSAccountId=account
    )
    return str(response["QueueUrl"])


def _dead_letter(message: dict[str, Any]) -> DeadLetter | None:
    """A dead letter from EventBridge Scheduler's DLQ message: the envelope as the body, the
    failure in message attributes (ERROR_CODE, ERROR_MESSAGE, RETRY_ATTEMPTS)."""
    try:
        envelope = msgspec.json.decode(message.get("Body", ""))
        scheduled = datetime.fromisoformat(str(envelope["scheduledTime"]).replace("Z", "+00:00"))
        name = str(envelope["schedule"])
        payload = str(envelope["payload"])
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        return None
    attributes = message.get("MessageAttributes", {})

    def attribute(key: str) -> str:
        return str(attributes.get(key, {}).get("StringValue", ""))

    attempts = attribute("RETRY_ATTEMPTS")
    sent = message.get("Attributes", {}).get("SentTimestamp")
    at = datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else scheduled
    return DeadLetter(
        schedule=name,
        fire_id=fire_id(name, scheduled),
        scheduled_time=scheduled,
        payload=payload,
        attempts=int(attempts) + 1 if attempts.isdigit() else 0,
        reason=f"{attribute('ERROR_CODE')}: {attribute('ERROR_MESSAGE')}".strip(": "),
        at=at,
    )
