"""Playing AWS's part against a local emulator (moto) that never fires schedules nor runs Lambdas.

- ``fire_as_eventbridge``: read a stored schedule's target and do what EventBridge Scheduler
  does at ``scheduled_time``: replace ``<aws.scheduler.scheduled-time>`` in its ``Input`` and
  send it to the queue (with the stored ``MessageGroupId``) or, for the universal
  ``sns:Publish`` target, call ``Publish`` with the Input as its request.
- ``receive_lambda_event``: receive a queue's messages and shape them as the event an
  SQS-triggered Lambda gets, ready for ``handle_sqs_batch`` or ``handle_topic_batch``.

Clients are aioboto3 clients of yours. These helpers are for tests and local runs only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = ("fire_as_eventbridge", "receive_lambda_event")

_SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
_SNS_PUBLISH = "arn:aws:scheduler:::aws-sdk:sns:publish"


async def fire_as_eventbridge(
    *,
    scheduler: Any,
    group: str,
    name: str,
    scheduled_time: datetime,
    sqs: Any = None,
    sns: Any = None,
) -> dict[str, Any]:
    """Fire schedule ``name`` of ``group`` once for ``scheduled_time`` (aware), as EventBridge
    Scheduler would; returns the stored target. ``sqs`` is needed for queue targets, ``sns``
    for topic targets."""
    stored = await scheduler.get_schedule(Name=name, GroupName=group)
    target: dict[str, Any] = stored["Target"]
    when = scheduled_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(target.get("Input", "")).replace(_SCHEDULED_TIME, when)
    if target["Arn"] == _SNS_PUBLISH:
        if sns is None:
            raise ValueError(f"schedule {name!r} publishes to SNS: pass sns=")
        await sns.publish(**msgspec.json.decode(text))
        return target
    if sqs is None:
        raise ValueError(f"schedule {name!r} sends to SQS: pass sqs=")
    _, _, _, _, account, queue = target["Arn"].split(":", 5)
    url = (await sqs.get_queue_url(QueueName=queue, QueueOwnerAWSAccountId=account))["QueueUrl"]
    request: dict[str, Any] = {"QueueUrl": url, "MessageBody": text}
    group_id = target.get("SqsParameters", {}).get("MessageGroupId")
    if group_id is not None:
        request["MessageGroupId"] = group_id
    await sqs.send_message(**request)
    return target


async def receive_lambda_event(
    sqs: Any, queue_url: str, *, max_messages: int = 10, delete: bool = True
) -> dict[str, Any]:
    """Receive up to ``max_messages`` from the queue as a Lambda SQS event (``Records`` with
    ``messageId``, ``body``, ``attributes`` and ``eventSourceARN``); deleted when ``delete``,
    as Lambda deletes a batch's successful records."""
    response = await sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=max_messages,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        WaitTimeSeconds=0,
    )
    messages = response.get("Messages", [])
    arn = (await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    if delete:
        for message in messages:
            await sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {k: str(v) for k, v in message.get("Attributes", {}).items()},
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
            }
            for message in messages
        ]
    }
