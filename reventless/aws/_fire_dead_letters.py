"""The fires of EventBridge Scheduler that could not be delivered, and fires sent by hand.

``FireDeadLetters`` reads them from the scheduler's dead-letter queue (``dead_letter_arn``) and,
when the target is a command queue with a dead-letter queue of its own, from there too (the
fires its handler gave up on, with the handler's reason); it redrives the matching ones to the
target, and sends a fire as EventBridge would (``trigger``: ``reventless._repairs.extra_fire_time``
gives it an id no scheduled fire has)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from reventless.aws._command_dead_letters import CommandDeadLetters, reason_of
from reventless.aws._errors import call_aws
from reventless.aws._sns import SnsEventTopic
from reventless.aws._targets import SqsQueueTarget
from reventless.errors import ReventlessError, UsageError
from reventless.scheduler_adapter import DeadLetter
from reventless.target import FireEnvelope, fire_id

__all__ = ("FireDeadLetters",)

_MAX_REDRIVE = 10_000  # dead-letter messages looked at by one redrive


_REDRIVE_VISIBILITY = 60


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


class FireDeadLetters:
    """The dead-lettered fires of the schedulers of one provider (see the module's docstring).
    ``sqs`` is an aioboto3 SQS client or None (then only what needs none works)."""

    def __init__(
        self,
        sqs: Any,
        dead_letter_arn: str | None,
        command_dead_letters: CommandDeadLetters | None,
    ) -> None:
        self._sqs = sqs
        self._dead_letter_arn = dead_letter_arn
        self._command_dead = command_dead_letters

    def _target_dead_letters(self, target: SqsQueueTarget | SnsEventTopic | None) -> str | None:
        """The aggregate whose command dead-letter queue holds the fires to ``target`` that its
        handler gave up on (the target is that aggregate's command queue)."""
        if not isinstance(target, SqsQueueTarget) or self._command_dead is None:
            return None
        aggregate = self._command_dead.aggregate_of_queue(target.arn)
        if aggregate is None or self._command_dead.dead_letter_arn(aggregate) is None:
            return None
        return aggregate

    async def dead_letters(
        self, target: SqsQueueTarget | SnsEventTopic | None, limit: int
    ) -> list[DeadLetter]:
        """The fires EventBridge could not deliver and, when ``target`` is a command queue with
        a dead-letter queue, the fires its handler gave up on, at most ``limit``."""
        aggregate = self._target_dead_letters(target)
        if (self._dead_letter_arn is None or self._sqs is None) and aggregate is None:
            raise UsageError(
                "dead letters on AWS are read from the dead-letter queue: pass dead_letter_arn "
                "and sqs_client to reventless.aws.provider"
            )
        letters: list[DeadLetter] = []
        if self._dead_letter_arn is not None and self._sqs is not None:
            letters = await self._undelivered(limit)
        if aggregate is not None and self._command_dead is not None:
            for _, message in await self._command_dead.messages(aggregate):
                letter = _dead_letter(message)
                if letter is None:  # a command, not a fire: command_dead_letters() has it
                    continue
                reason, receives = reason_of(message)
                letters.append(msgspec.structs.replace(letter, reason=reason, attempts=receives))
        return letters[:limit]

    async def _undelivered(self, limit: int) -> list[DeadLetter]:
        assert self._dead_letter_arn is not None
        url = await _queue_url(self._sqs, self._dead_letter_arn)
        letters: list[DeadLetter] = []
        while len(letters) < limit:
            response = await call_aws(
                "reading the dead-letter queue",
                self._sqs.receive_message,
                QueueUrl=url,
                MaxNumberOfMessages=min(10, limit - len(letters)),
                VisibilityTimeout=0,  # a look, not a take: the messages stay for others
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            for message in messages:
                letter = _dead_letter(message)
                if letter is not None and letter.fire_id not in {d.fire_id for d in letters}:
                    letters.append(letter)
            if len(messages) < 10:
                break
        return letters

    async def send(self, target: SqsQueueTarget | SnsEventTopic, envelope: FireEnvelope) -> None:
        """Send ``envelope`` to ``target`` as EventBridge Scheduler would."""
        if isinstance(target, SnsEventTopic):
            await target.deliver(envelope)  # publishes as the sns:Publish target does
            return
        if self._sqs is None:
            raise UsageError(
                "sending a fire to an SQS target needs an SQS client: pass sqs_client to "
                "reventless.aws.provider"
            )
        extra: dict[str, Any] = {}
        group = target.group_for(envelope.schedule, envelope.payload)
        if group is not None:
            extra = {"MessageGroupId": group, "MessageDeduplicationId": _dedup_id(envelope)}
        await call_aws(
            f"sending fire {envelope.fire_id!r}",
            self._sqs.send_message,
            QueueUrl=await _queue_url(self._sqs, target.arn),
            MessageBody=envelope.to_json().decode(),
            **extra,
        )

    async def redrive(
        self,
        target: SqsQueueTarget | SnsEventTopic,
        schedule: str | None,
        fire_ids: Sequence[str] | None,
    ) -> list[str]:
        """Move matching messages of the dead-letter queue back to ``target``, and the
        matching fires of the target command queue's dead letters back to it."""
        aggregate = self._target_dead_letters(target)
        if (self._dead_letter_arn is None or self._sqs is None) and aggregate is None:
            raise UsageError(
                "redrive on AWS reads the dead-letter queue: pass dead_letter_arn and sqs_client "
                "to reventless.aws.provider"
            )
        wanted = None if fire_ids is None else set(fire_ids)
        sent: list[str] = []
        if aggregate is not None and self._command_dead is not None:

            def choose(message: Any) -> str | None:
                letter = _dead_letter(message)
                if letter is None or not _wanted(letter, schedule, wanted):
                    return None
                return letter.fire_id

            sent += await self._command_dead.redrive_matching(aggregate, choose)
        if self._dead_letter_arn is None or self._sqs is None:
            return sent
        return await self._redrive_undelivered(target, schedule, wanted, sent)

    async def _redrive_undelivered(
        self,
        target: SqsQueueTarget | SnsEventTopic,
        schedule: str | None,
        wanted: set[str] | None,
        sent: list[str],
    ) -> list[str]:
        """Send the matching fires EventBridge could not deliver to ``target`` again."""
        assert self._dead_letter_arn is not None
        url = await _queue_url(self._sqs, self._dead_letter_arn)
        skipped: list[str] = []  # receipt handles to make visible again
        for _ in range(_MAX_REDRIVE // 10):
            response = await call_aws(
                "reading the dead-letter queue",
                self._sqs.receive_message,
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=_REDRIVE_VISIBILITY,  # not seen again while paging through
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            for message in messages:
                letter = _dead_letter(message)
                if letter is None or not _wanted(letter, schedule, wanted):
                    skipped.append(message["ReceiptHandle"])
                    continue
                if letter.fire_id not in sent:
                    await self.send(target, _envelope_of_letter(letter))
                    sent.append(letter.fire_id)
                await call_aws(
                    "deleting a redriven dead letter",
                    self._sqs.delete_message,
                    QueueUrl=url,
                    ReceiptHandle=message["ReceiptHandle"],
                )
        for handle in skipped:
            with contextlib.suppress(ReventlessError):  # it shows again after the timeout
                await call_aws(
                    "releasing a dead letter",
                    self._sqs.change_message_visibility,
                    QueueUrl=url,
                    ReceiptHandle=handle,
                    VisibilityTimeout=0,
                )
        return sent
