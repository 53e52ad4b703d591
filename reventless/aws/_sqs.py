"""Command topics on SQS FIFO: publishing commands, and consuming a queue's records."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime
from typing import Any, Union

import msgspec

from reventless._observe import Observer
from reventless.aggregate import Aggregate
from reventless.aws._batch import BatchResponse, handle_records, record_id
from reventless.aws._errors import call_aws
from reventless.aws._sns import UnpublishableEventError
from reventless.errors import ValidationError
from reventless.target import FireEnvelope

__all__ = ("SqsCommandConsumer", "SqsCommandPublisher", "deduplication_id")

logger = logging.getLogger("reventless.aws")
_OBSERVER = Observer("aws")
_DEDUP = re.compile(r"[0-9A-Za-z!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}")


def deduplication_id(message_id: str) -> str:
    """The SQS MessageDeduplicationId for a message id: the id itself when SQS allows it,
    otherwise its SHA-256 (still the same for every repeat of the message)."""
    if _DEDUP.fullmatch(message_id):
        return message_id
    return hashlib.sha256(message_id.encode()).hexdigest()


class SqsCommandPublisher:
    """Sends commands of one aggregate to its FIFO queue: ``MessageGroupId`` is the aggregate id
    (order per aggregate), ``MessageDeduplicationId`` the message id (SQS drops repeats within its
    five-minute window; the aggregate's own dedupe covers the rest). The client is yours."""

    def __init__(self, client: Any, queue_url: str, aggregate: Aggregate[Any]) -> None:
        if not queue_url.endswith(".fifo"):
            raise ValidationError("queue_url", queue_url, "the URL of a FIFO queue (.fifo)")
        self._client = client
        self._queue_url = queue_url
        self._aggregate = aggregate

    async def publish(self, aggregate_id: str, command: Any, *, message_id: str) -> None:
        self._aggregate.spec.check_id(aggregate_id)
        if len(aggregate_id) > 128:
            raise ValidationError(
                "aggregate_id", aggregate_id, "at most 128 characters: it is the MessageGroupId"
            )
        if not isinstance(command, tuple(self._aggregate.spec.commands.values())):
            raise ValidationError(
                "command", command, f"one of {', '.join(sorted(self._aggregate.spec.commands))}"
            )
        body = msgspec.json.encode(
            {
                "aggregate": self._aggregate.name,
                "aggregateId": aggregate_id,
                "messageId": message_id,
                "command": msgspec.to_builtins(command),
            }
        ).decode()
        await call_aws(
            f"sending a command to {self._queue_url}",
            self._client.send_message,
            QueueUrl=self._queue_url,
            MessageBody=body,
            MessageGroupId=aggregate_id,
            MessageDeduplicationId=deduplication_id(message_id),
        )


class SqsCommandConsumer:
    """Handles the records of an SQS event (a Lambda's batch) on one aggregate.

    A record is either a scheduled fire (the envelope EventBridge Scheduler sent) or a command
    from ``SqsCommandPublisher``. ``await handle_batch(event)`` returns the partial-batch response
    ``{"batchItemFailures": [...]}``: only failed records are retried. After a failure, later
    records of the same message group are reported failed too, untouched, so that FIFO order per
    aggregate survives the retry. A record delivered twice changes the aggregate once.

    A record whose events can never be published (``UnpublishableEventError``) is moved at
    once to the command queue's dead-letter queue with the reason and acknowledged, so its
    message group goes on: ``dead_letters`` (a ``CommandDeadLetters``; by default the one the
    AWS provider gave the aggregate's event topic). Without a dead-letter queue it is reported
    failed, as any failure.
    """

    def __init__(self, aggregate: Aggregate[Any], *, dead_letters: Any = None) -> None:
        self.aggregate = aggregate
        self.dead_letters = (
            dead_letters
            if dead_letters is not None
            else getattr(aggregate.event_topic, "command_dead_letters", None)
        )
        commands = tuple(aggregate.spec.commands.values())
        self._command_type: Any = Union[commands] if len(commands) > 1 else commands[0]  # noqa: UP007

    def decode(self, body: str) -> tuple[str, Any, str, datetime | None]:
        """(aggregate id, command, message id, scheduled time) of one record body."""
        try:
            document = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise ValidationError("record body", body, "JSON") from exc
        if not isinstance(document, dict):
            raise ValidationError("record body", body, "a JSON object")
        if "scheduledTime" in document:
            envelope = FireEnvelope.from_json(body)
            aggregate_id, command = self.aggregate.spec.decode_payload(envelope.payload)
            return aggregate_id, command, envelope.fire_id, envelope.scheduled_time
        if document.get("aggregate") != self.aggregate.name:
            raise ValidationError(
                "record aggregate", document.get("aggregate"), repr(self.aggregate.name)
            )
        try:
            command = msgspec.convert(document.get("command"), self._command_type, strict=True)
        except msgspec.ValidationError as exc:
            raise ValidationError("record command", document.get("command"), str(exc)) from exc
        aggregate_id = self.aggregate.spec.check_id(document.get("aggregateId"))
        message_id = document.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            raise ValidationError("record messageId", message_id, "a non-empty string")
        return aggregate_id, command, message_id, None

    async def handle_batch(self, event: dict[str, Any]) -> BatchResponse:
        return await handle_records(event, self._handle_record, self._record_failed)

    async def _handle_record(self, record: dict[str, Any]) -> None:
        aggregate_id, command, message_id, scheduled = self.decode(record.get("body", ""))
        sending = self.aggregate.command_topic.send(
            aggregate_id, command, message_id=message_id, scheduled_time=scheduled
        )
        if scheduled is None:
            await sending
        else:  # a fire: reported as the local engine reports its deliveries
            await _OBSERVER.received(
                sending,
                schedule=message_id.rpartition("@")[0],
                scheduled_time=scheduled,
                now=self.aggregate.clock.now(),
            )

    async def _record_failed(self, record: dict[str, Any], exc: Exception) -> bool:
        if isinstance(exc, UnpublishableEventError):
            return await self._dead_letter(record, exc)
        logger.error("record %s failed: %s: %s", record_id(record), type(exc).__name__, exc)
        return False

    async def _dead_letter(self, record: dict[str, Any], exc: UnpublishableEventError) -> bool:
        """Move ``record`` to the dead letters with ``exc`` as the reason; False when there
        is nowhere to move it (or moving failed): the record is then reported failed."""
        record_id = str(record.get("messageId"))
        name = self.aggregate.name
        if self.dead_letters is None or self.dead_letters.dead_letter_arn(name) is None:
            logger.error(
                "record %s failed: %s (no dead-letter queue for %r's command queue: it is "
                "retried until the queue's redrive policy or retention ends it)",
                record_id,
                exc,
                name,
            )
            return False
        try:
            await self.dead_letters.put(name, record, type(exc).__name__, str(exc))
        except Exception as error:
            logger.error(
                "record %s failed: %s; moving it to the dead letters failed too: %s",
                record_id,
                exc,
                error,
            )
            return False
        logger.error("record %s moved to %r's command dead letters: %s", record_id, name, exc)
        return True
