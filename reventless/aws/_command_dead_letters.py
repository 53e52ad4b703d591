"""The dead letters of the aggregates' command queues (SQS FIFO dead-letter queues).

A command queue's redrive policy moves a record its handler failed ``maxReceiveCount`` times
to the queue's FIFO dead-letter queue, so a poison command stops holding its message group.
The handler moves a record there itself, at once and with the reason as message attributes
(``ERROR_CODE``, ``ERROR_MESSAGE``, as EventBridge Scheduler writes its dead letters), when
retrying can never help: an event the command appended that SNS can never take
(``UnpublishableEventError``). Redriving sends a record back to its command queue unchanged
(same body, message group and message id): the aggregate's own deduplication makes a command
that was handled a repeat, which publishes its events again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from reventless.aws._errors import call_aws
from reventless.errors import ReventlessError, UsageError, ValidationError
from reventless.target import FireEnvelope

__all__ = ("CommandDeadLetter", "CommandDeadLetters")

logger = logging.getLogger("reventless.aws")
_PAGES = 1000  # receives of one listing or redrive, at most (10 records each)
_VISIBILITY = 60  # seconds a record looked at stays hidden while the queue is paged through


class CommandDeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A record of an aggregate's command queue that its handler gave up on: ``message_id``
    is the command's message id (a fire's: its fire id), ``body`` the record as it was sent,
    ``reason`` why it is here, ``receives`` how often the queue handed it out."""

    aggregate: str
    aggregate_id: str | None
    message_id: str
    body: str
    reason: str
    receives: int
    at: datetime


class CommandDeadLetters:
    """The dead-letter queues of the command queues: ``command_queues`` and
    ``dead_letter_queues`` map aggregate names to queue ARNs; ``sqs`` is an aioboto3 client."""

    def __init__(
        self, sqs: Any, command_queues: Mapping[str, str], dead_letter_queues: Mapping[str, str]
    ) -> None:
        self._sqs = sqs
        self._queues = dict(command_queues)
        self._dead = dict(dead_letter_queues)
        self._urls: dict[str, str] = {}

    def dead_letter_arn(self, aggregate: str) -> str | None:
        """The ARN of the dead-letter queue of ``aggregate``'s command queue, if it has one."""
        return self._dead.get(aggregate)

    def aggregate_of_queue(self, queue_arn: str) -> str | None:
        """The aggregate whose command queue ``queue_arn`` is."""
        return next((name for name, arn in self._queues.items() if arn == queue_arn), None)

    def _arn(self, aggregate: str) -> str:
        arn = self._dead.get(aggregate)
        if arn is None:
            known = ", ".join(sorted(self._dead)) or "none"
            raise UsageError(
                f"aggregate {aggregate!r} has no command dead-letter queue on this provider "
                f"(known: {known}); pass command_dead_letters={{{aggregate!r}: QUEUE_ARN}} "
                "to reventless.aws.provider (a deployment's outputs name them)"
            )
        return arn

    async def _url(self, arn: str) -> str:
        if arn not in self._urls:
            _, _, _, _, account, name = arn.split(":", 5)
            response = await call_aws(
                f"queue {name!r}",
                self._sqs.get_queue_url,
                QueueName=name,
                QueueOwnerAWSAccountId=account,
            )
            self._urls[arn] = str(response["QueueUrl"])
        return self._urls[arn]

    async def put(self, aggregate: str, record: Mapping[str, Any], code: str, message: str) -> None:
        """Move one record of ``aggregate``'s command queue (a Lambda SQS record) to its
        dead-letter queue with the reason; the caller then acknowledges the record."""
        url = await self._url(self._arn(aggregate))
        attributes = record.get("attributes", {})
        group = str(attributes.get("MessageGroupId") or aggregate)
        record_id = str(record.get("messageId", ""))
        await call_aws(
            f"dead-lettering record {record_id!r} of {aggregate!r}",
            self._sqs.send_message,
            QueueUrl=url,
            MessageBody=str(record.get("body", "")),
            MessageGroupId=group,
            # The record's own id: the same record dead-lettered twice is one dead letter.
            MessageDeduplicationId=hashlib.sha256(record_id.encode()).hexdigest(),
            MessageAttributes={
                "ERROR_CODE": {"DataType": "String", "StringValue": code},
                # SQS's message attributes hold 256 KiB with the body; a reason is short.
                "ERROR_MESSAGE": {"DataType": "String", "StringValue": message[:4000] or "-"},
                "RECEIVES": {
                    "DataType": "Number",
                    "StringValue": str(attributes.get("ApproximateReceiveCount", "1")),
                },
            },
        )

    async def _page(self, url: str) -> tuple[list[dict[str, Any]], list[str]]:
        """Every message of the queue (up to _PAGES receives), hidden while paging; and their
        receipt handles, for releasing or deleting."""
        messages: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(_PAGES):
            response = await call_aws(
                "reading a command dead-letter queue",
                self._sqs.receive_message,
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=_VISIBILITY,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            )
            batch = response.get("Messages", [])
            if not batch:
                break
            for message in batch:
                if message["MessageId"] not in seen:
                    seen.add(message["MessageId"])
                    messages.append(message)
        return messages, [m["ReceiptHandle"] for m in messages]

    async def _release(self, url: str, handles: Sequence[str]) -> None:
        for handle in handles:
            with contextlib.suppress(ReventlessError):  # it shows again after the timeout
                await call_aws(
                    "releasing a dead letter",
                    self._sqs.change_message_visibility,
                    QueueUrl=url,
                    ReceiptHandle=handle,
                    VisibilityTimeout=0,
                )

    async def messages(self, aggregate: str) -> list[tuple[CommandDeadLetter, dict[str, Any]]]:
        """Each dead letter of ``aggregate`` with its SQS message (left in the queue)."""
        url = await self._url(self._arn(aggregate))
        messages, handles = await self._page(url)
        await self._release(url, handles)
        return [(_letter(aggregate, message), message) for message in messages]

    async def dead_letters(self, aggregate: str, *, limit: int = 100) -> list[CommandDeadLetter]:
        """The dead letters of ``aggregate``'s command queue, oldest first (at most
        ``limit``); they stay in the queue."""
        if type(limit) is not int or not 1 <= limit <= 10_000:
            raise ValidationError("limit", limit, "a whole number from 1 to 10,000")
        letters = [letter for letter, _ in await self.messages(aggregate)]
        return sorted(letters, key=lambda letter: letter.at)[:limit]

    async def redrive(
        self, aggregate: str, *, message_ids: Sequence[str] | None = None
    ) -> list[str]:
        """Send dead letters of ``aggregate`` (all, or those of ``message_ids``) back to its
        command queue, unchanged, and remove them from the dead letters; their message ids."""
        if isinstance(message_ids, str):
            raise ValidationError("message_ids", message_ids, "a sequence of message ids")
        wanted = None if message_ids is None else set(message_ids)

        def choose(message: Mapping[str, Any]) -> str | None:
            letter = _letter(aggregate, message)
            return letter.message_id if wanted is None or letter.message_id in wanted else None

        return await self.redrive_matching(aggregate, choose)

    async def redrive_matching(
        self, aggregate: str, choose: Callable[[Mapping[str, Any]], str | None]
    ) -> list[str]:
        """Send back to ``aggregate``'s command queue each dead letter for which ``choose``
        gives an id, and remove it from the dead letters; those ids, in order."""
        queue = self._queues.get(aggregate)
        if queue is None:
            raise UsageError(f"aggregate {aggregate!r} has no command queue on this provider")
        url = await self._url(self._arn(aggregate))
        target = await self._url(queue)
        messages, _ = await self._page(url)
        sent: list[str] = []
        skipped: list[str] = []
        for message in messages:
            chosen = choose(message)
            if chosen is None:
                skipped.append(message["ReceiptHandle"])
                continue
            await self.send_back(target, message)
            await call_aws(
                "deleting a redriven dead letter",
                self._sqs.delete_message,
                QueueUrl=url,
                ReceiptHandle=message["ReceiptHandle"],
            )
            sent.append(chosen)
        await self._release(url, skipped)
        return sent

    async def send_back(self, queue_url: str, message: Mapping[str, Any]) -> None:
        """Send a dead-letter message to the command queue at ``queue_url`` as it was."""
        attributes = message.get("Attributes", {})
        await call_aws(
            "redriving a dead letter",
            self._sqs.send_message,
            QueueUrl=queue_url,
            MessageBody=message["Body"],
            MessageGroupId=attributes.get("MessageGroupId", "redriven"),
            # Not the original deduplication id: SQS would drop a redrive within five minutes
            # of the first send as a repeat.
            MessageDeduplicationId=hashlib.sha256(
                f"redrive:{message['MessageId']}".encode()
            ).hexdigest(),
        )


def reason_of(message: Mapping[str, Any]) -> tuple[str, int]:
    """(reason, receives) of a dead-letter message: the handler's, or the queue's count."""
    attributes = message.get("MessageAttributes", {})

    def attribute(key: str) -> str:
        return str(attributes.get(key, {}).get("StringValue", ""))

    system = message.get("Attributes", {})
    code, text, counted = attribute("ERROR_CODE"), attribute("ERROR_MESSAGE"), attribute("RECEIVES")
    if code:
        receives = int(counted) if counted.isdigit() else 1
        return f"{code}: {text}", receives
    receives_text = str(system.get("ApproximateReceiveCount", "0"))
    receives = int(receives_text) if receives_text.isdigit() else 0
    return (
        "the handler failed on every receive until the queue's maxReceiveCount moved it here "
        "(the handler's log says why)",
        receives,
    )


def _letter(aggregate: str, message: Mapping[str, Any]) -> CommandDeadLetter:
    body = str(message.get("Body", ""))
    aggregate_id: str | None = None
    message_id = str(message.get("MessageId", ""))
    with contextlib.suppress(msgspec.DecodeError, TypeError, ValueError, KeyError):
        document = msgspec.json.decode(body)
        if isinstance(document, dict) and "scheduledTime" in document:
            envelope = FireEnvelope.from_json(body)
            message_id = envelope.fire_id
        elif isinstance(document, dict):
            aggregate_id = document.get("aggregateId")
            message_id = str(document.get("messageId") or message_id)
    reason, receives = reason_of(message)
    sent = message.get("Attributes", {}).get("SentTimestamp")
    at = datetime.fromtimestamp(int(sent) / 1000 if sent else 0, UTC)
    return CommandDeadLetter(
        aggregate=aggregate,
        aggregate_id=aggregate_id if isinstance(aggregate_id, str) else None,
        message_id=message_id,
        body=body,
        reason=reason,
        receives=receives,
        at=at,
    )
