"""The one loop that handles a Lambda function's SQS batch and answers ``batchItemFailures``.

Every queue handler (commands, topic subscribers, reactions) runs its records through it:
records in order; a record that fails is reported (SQS retries only those), and so is every
later record of its FIFO message group, untouched, so a group's order survives the retry;
records of a standard queue (no group) do not hold each other up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ("BatchResponse", "handle_records", "record_group", "record_id")

BatchResponse = dict[str, list[dict[str, str]]]
# Handles one record; raises to report it failed.
RecordHandler = Callable[[dict[str, Any]], Awaitable[None]]
# Told of a record's failure (it logs); True when it settled the record (moved it to a dead-letter
# queue, say): the record is then not reported, and its group goes on.
FailureHandler = Callable[[dict[str, Any], Exception], Awaitable[bool]]


def record_id(record: dict[str, Any]) -> str:
    return str(record.get("messageId"))


def record_group(record: dict[str, Any]) -> str:
    """The record's FIFO message group; '' on a standard queue."""
    return str(record.get("attributes", {}).get("MessageGroupId", ""))


async def handle_records(
    event: dict[str, Any], handle: RecordHandler, failed: FailureHandler
) -> BatchResponse:
    """Run ``handle`` on each record of the batch ``event``; the partial-batch response."""
    failures: list[dict[str, str]] = []
    failed_groups: set[str] = set()
    for record in event.get("Records", []):
        group = record_group(record)
        if group and group in failed_groups:
            failures.append({"itemIdentifier": record_id(record)})
            continue
        try:
            await handle(record)
        except Exception as exc:
            if await failed(record, exc):
                continue
            failures.append({"itemIdentifier": record_id(record)})
            if group:
                failed_groups.add(group)
    return {"batchItemFailures": failures}
