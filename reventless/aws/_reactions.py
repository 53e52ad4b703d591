"""Reactions on AWS: each one is the handler of an SQS FIFO queue subscribed to the SNS FIFO
topics of the aggregates it follows.

Nothing runs inside the provider: SQS keeps the position (a message is deleted once handled),
its redrive policy does the retries and the dead letters, and FIFO message groups (one per
stream, the aggregate id) keep the order per stream. ``handle_reaction_batch`` is the body of
the queue's Lambda function; the reaction's handler code is the same as on the embedded provider.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from reventless.aggregate_adapter import StoredEvent
from reventless.aws._batch import BatchResponse, handle_records, record_group, record_id
from reventless.aws._sns import unwrap_notification
from reventless.errors import UsageError, ValidationError
from reventless.provider import ProvidesReactions
from reventless.reaction import (
    Components,
    Reaction,
    ReactionDeadLetter,
    ReactionOperation,
    ReactionStatus,
)

if TYPE_CHECKING:
    from reventless.plugin import RunningPlugin

__all__ = ("AwsReactions", "handle_reaction_batch")

logger = logging.getLogger("reventless.aws.reactions")
_QUEUE_KEEPS = (
    "on AWS a reaction's SQS queue keeps its {what}: see the queue in the SQS console or "
    "with the AWS CLI"
)


class AwsReactions:
    """The reactions of plugins started on the AWS provider, by name, for their queue handlers.

    ``Plugin.start`` registers them; ``handle_reaction_batch(event, running, name)`` handles a
    batch of the queue of one of them."""

    def __init__(self) -> None:
        self._registered: dict[str, tuple[Reaction, Components]] = {}

    def register(self, reaction: Reaction, running: Components) -> None:
        if reaction.name in self._registered:
            raise UsageError(
                f"reaction {reaction.name!r} is already registered on this provider; a name is "
                "declared once (its queue feeds one handler)"
            )
        self._registered[reaction.name] = (reaction, running)

    def unregister(self, name: str) -> None:
        self._registered.pop(name, None)

    # Each reaction's position, retries and dead letters are its SQS queue's (see the module's
    # docstring): what the port asks of them is told by the queue, not here.

    async def statuses(self) -> list[ReactionStatus]:
        raise UsageError(_QUEUE_KEEPS.format(what="position and lag"))

    async def dead_letters(self, name: str, *, limit: int = 100) -> list[ReactionDeadLetter]:
        raise UsageError(_QUEUE_KEEPS.format(what="dead letters (its dead-letter queue)"))

    async def reset(
        self, name: str, position: int, *, reason: str | None = None, by: str | None = None
    ) -> None:
        raise UsageError(_QUEUE_KEEPS.format(what="position, which cannot be moved back"))

    async def resume(
        self, name: str, *, skip: bool = False, reason: str | None = None, by: str | None = None
    ) -> int:
        raise UsageError(
            _QUEUE_KEEPS.format(
                what="failures: it never stops, a failed event goes to its dead-letter queue"
            )
        )

    async def operations(self, name: str, *, limit: int = 100) -> list[ReactionOperation]:
        raise UsageError(
            "not available on AWS: a reaction is its SQS queue's handler, whose position is "
            "never reset and which never stops, so there are no operations to record; "
            "CloudTrail records the API calls made to the queue"
        )

    def registered(self, name: str) -> Reaction:
        """The reaction registered as ``name``.
        :raises UsageError: none is (the plugin declaring it was not started on this provider)."""
        if name not in self._registered:
            known = ", ".join(sorted(self._registered)) or "none"
            raise UsageError(
                f"reaction {name!r} is not registered on this provider (registered: {known}); "
                "start the plugin that declares it with plugin.start(provider) first"
            )
        return self._registered[name][0]


def _stored_event(record: dict[str, Any]) -> StoredEvent | None:
    """The event a subscriber-queue record carries (raw or wrapped in SNS's notification), or
    None for a record that is no aggregate event (a scheduled fire published on the topic).
    :raises ValidationError: the body is not a message an SNS event topic publishes."""
    body = str(record.get("body", ""))
    try:
        _, document, sent = unwrap_notification(body)
        if sent is None:
            sent = datetime.fromtimestamp(
                int(record.get("attributes", {}).get("SentTimestamp", "0")) / 1000, UTC
            )
        if "scheduledTime" in document:
            return None
        aggregate, aggregate_id = str(document["source"]).split("/", 1)
        version = int(document["version"])
        return StoredEvent(
            position=int(document.get("position") or version),
            aggregate=aggregate,
            aggregate_id=aggregate_id,
            version=version,
            type=str(document["type"]),
            data=msgspec.json.encode(document["event"]),
            message_id=document.get("messageId"),
            # The event's own time is not in the message: the time SNS took it (or SQS did).
            recorded_at=sent,
        )
    except (ValidationError, KeyError, TypeError, ValueError) as exc:
        raise ValidationError(
            "record body", body, "an event message of an SNS event topic"
        ) from exc


async def handle_reaction_batch(
    event: dict[str, Any], running: RunningPlugin, name: str
) -> BatchResponse:
    """The body of the Lambda function of reaction ``name``'s queue (an SQS FIFO queue subscribed
    to the SNS FIFO topics of the aggregates it follows): ``reaction.handle`` per record, in
    order, with the record's receive count as the attempt; returns the partial-batch response.

    A record whose handler fails is reported in ``batchItemFailures``, and so is every later
    record of its message group (its stream), untouched, so the stream's order survives the
    retry. Retries and dead letters are the queue's: give it a redrive policy whose
    ``maxReceiveCount`` is the reaction's ``max_attempts``; SQS then moves the event to the
    dead-letter queue and the stream goes on (``on_failure="skip"``'s behaviour, per stream; a
    FIFO queue cannot stop the other streams). Records of aggregates the reaction does not
    follow, and scheduled fires, are acknowledged without a call.
    """
    reactions = (
        running.provider.reactions() if isinstance(running.provider, ProvidesReactions) else None
    )
    if not isinstance(reactions, AwsReactions):
        raise UsageError(
            "handle_reaction_batch takes a plugin running on reventless.aws.provider; on the "
            "embedded provider, provider.run() runs the reactions"
        )
    reaction = reactions.registered(name)

    async def handle(record: dict[str, Any]) -> None:
        stored = _stored_event(record)
        if stored is not None and stored.aggregate in reaction.follows:
            attempt = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
            await reaction.handle(stored, running, attempt=attempt)

    async def failed(record: dict[str, Any], exc: Exception) -> bool:
        # Reported to SQS, which retries it and then dead-letters it; the reason goes to the
        # function's log, the one place AWS keeps it.
        logger.warning(
            "reaction %r failed on record %s (group %r): %s: %s",
            name,
            record_id(record),
            record_group(record),
            type(exc).__name__,
            exc,
            extra={"reaction": name, "record": record_id(record)},
        )
        return False

    return await handle_records(event, handle, failed)
