"""The IAM policy documents a deployment needs, as JSON-ready dicts, least privilege.

- ``execution_role_trust_policy``: who may assume the execution role: EventBridge Scheduler,
  only for schedules of this account's schedule group (the confused-deputy guard).
- ``execution_role_policy``: what the role may do: ``sqs:SendMessage`` to the target queue and
  the dead-letter queue, ``sns:Publish`` to target topics (the universal ``sns:Publish`` target
  of a schedule on an event topic), nothing else.
- ``caller_policy``: what the application needs: the schedule actions on the group's schedules
  only, ensuring the provider's group and the schedulers' groups, listing, and passing the
  execution role to EventBridge Scheduler only.
- ``handler_policy``: what the Lambda handlers need: the event log's item actions on its table,
  ``sns:Publish`` to the event topics, and consuming their queues.
- ``lambda_trust_policy``: who may assume the handlers' role: Lambda.
- ``subscriber_queue_policy``: the resource policy of a queue subscribed to an event topic: that
  topic may send to it, nothing else.

A plugin's schedulers each write to a schedule group of their own (``schedulers=`` names them;
``schedule_group_name`` says which group): the trust and caller policies name exactly those.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from reventless.aws._arn import GROUP, REGION, check
from reventless.aws._arn import kms_key_arn as is_kms_key_arn
from reventless.aws._arn import queue_arn as is_queue_arn
from reventless.aws._arn import role_arn as is_role_arn
from reventless.aws._arn import table_arn as is_table_arn
from reventless.aws._arn import topic_arn as is_topic_arn
from reventless.aws._groups import schedule_group_name
from reventless.errors import ValidationError

__all__ = (
    "caller_policy",
    "execution_role_policy",
    "execution_role_trust_policy",
    "handler_policy",
    "lambda_trust_policy",
    "schedule_group_name",
    "subscriber_queue_policy",
)


def _account(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(r"\d{12}", value) is not None


def _region(value: object) -> bool:
    return isinstance(value, str) and REGION.fullmatch(value) is not None


def _group(value: object) -> bool:
    return isinstance(value, str) and GROUP.fullmatch(value) is not None


def _check(field: str, value: object, valid: Callable[[object], bool], allowed: str) -> str:
    return check(field, value, valid(value), allowed)


def _group_arn(partition: str, region: str, account_id: str, group: str) -> str:
    return f"arn:{partition}:scheduler:{region}:{account_id}:schedule-group/{group}"


def _groups(group: str, schedulers: Sequence[str]) -> list[str]:
    """The schedule groups of ``schedulers`` (the provider's group alone when none is named),
    in order, each once."""
    _check("group", group, _group, "a schedule group name")
    if isinstance(schedulers, str):
        raise ValidationError("schedulers", schedulers, "a sequence of scheduler names")
    names = [
        _check("schedulers", name, _group, "scheduler names (letters, digits, '.', '_', '-')")
        for name in schedulers
    ]
    return list(dict.fromkeys(schedule_group_name(group, name) for name in names or ["default"]))


def _one_or_many(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def execution_role_trust_policy(
    *,
    account_id: str,
    region: str,
    group: str,
    schedulers: Sequence[str] = (),
    partition: str = "aws",
) -> dict[str, Any]:
    """Trust policy of the execution role: scheduler.amazonaws.com, for schedules of this
    account's groups only: ``group``, or the groups of the reventless ``schedulers`` named (a
    plugin's schedulers other than "default" each have a group of their own)."""
    _check("account_id", account_id, _account, "a 12-digit AWS account id")
    _check("region", region, _region, "an AWS region such as 'eu-west-1'")
    groups = [_group_arn(partition, region, account_id, g) for g in _groups(group, schedulers)]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "scheduler.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {
                        "aws:SourceAccount": account_id,
                        "aws:SourceArn": _one_or_many(groups),
                    }
                },
            }
        ],
    }


def execution_role_policy(
    *,
    target_queue_arn: str | None = None,
    dead_letter_arn: str | None = None,
    kms_key_arn: str | None = None,
    target_topic_arns: Sequence[str] = (),
    target_queue_arns: Sequence[str] = (),
) -> dict[str, Any]:
    """Permissions of the execution role: send to the target and dead-letter queues and publish
    to the target topics, only. At least one target (queue or topic) is required;
    ``target_queue_arns`` are more target queues (a plugin's command queues).

    ``kms_key_arn``: the key of encrypted queues or topics, which sending also needs.
    """
    queues = []
    if target_queue_arn is not None:
        queues.append(
            _check("target_queue_arn", target_queue_arn, is_queue_arn, "an SQS queue ARN")
        )
    queues += [
        _check("target_queue_arns", arn, is_queue_arn, "an SQS queue ARN")
        for arn in target_queue_arns
    ]
    topics = [
        _check("target_topic_arns", arn, is_topic_arn, "an SNS topic ARN")
        for arn in target_topic_arns
    ]
    if not queues and not topics:
        raise ValidationError(
            "target_queue_arn/target_topic_arns", None, "at least one target queue or topic"
        )
    if dead_letter_arn is not None:
        queues.append(_check("dead_letter_arn", dead_letter_arn, is_queue_arn, "an SQS queue ARN"))
    statements: list[dict[str, Any]] = []
    if queues:
        statements.append({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queues})
    if topics:
        statements.append({"Effect": "Allow", "Action": "sns:Publish", "Resource": topics})
    if kms_key_arn is not None:
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": _check("kms_key_arn", kms_key_arn, is_kms_key_arn, "a KMS key ARN"),
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def caller_policy(
    *,
    account_id: str,
    region: str,
    group: str,
    execution_role_arn: str,
    schedulers: Sequence[str] = (),
    partition: str = "aws",
) -> dict[str, Any]:
    """Permissions of the application that manages schedules through reventless: in ``group``,
    or in the groups of the reventless ``schedulers`` named (as for the trust policy). The
    provider ensures its own ``group`` whenever it starts (``GetScheduleGroup``, and
    ``CreateScheduleGroup`` when it is missing), so that group is always among those it may
    ensure, even when no scheduler named ``default`` writes to it."""
    _check("account_id", account_id, _account, "a 12-digit AWS account id")
    _check("region", region, _region, "an AWS region such as 'eu-west-1'")
    _check("execution_role_arn", execution_role_arn, is_role_arn, "an IAM role ARN")
    groups = _groups(group, schedulers)
    prefix = f"arn:{partition}:scheduler:{region}:{account_id}"
    schedules = _one_or_many([f"{prefix}:schedule/{g}/*" for g in groups])
    ensured = dict.fromkeys([group, *groups])
    group_arns = _one_or_many([_group_arn(partition, region, account_id, g) for g in ensured])
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ManageTheGroupsSchedules",
                "Effect": "Allow",
                "Action": [
                    "scheduler:CreateSchedule",
                    "scheduler:UpdateSchedule",
                    "scheduler:DeleteSchedule",
                    "scheduler:GetSchedule",
                ],
                "Resource": schedules,
            },
            {
                "Sid": "EnsureTheGroup",
                "Effect": "Allow",
                "Action": ["scheduler:GetScheduleGroup", "scheduler:CreateScheduleGroup"],
                "Resource": group_arns,
            },
            {
                # ListSchedules cannot be scoped to a resource in IAM.
                "Sid": "ListSchedules",
                "Effect": "Allow",
                "Action": "scheduler:ListSchedules",
                "Resource": "*",
            },
            {
                "Sid": "PassTheExecutionRoleToSchedulerOnly",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": execution_role_arn,
                "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
            },
        ],
    }


def handler_policy(
    *,
    table_arn: str,
    topic_arns: Sequence[str] = (),
    queue_arns: Sequence[str] = (),
    dead_letter_queue_arns: Sequence[str] = (),
) -> dict[str, Any]:
    """Permissions of the Lambda handlers of command and subscriber queues.

    The event log reads with ``GetItem`` and ``Query`` and appends with ``TransactWriteItems``,
    which IAM authorises per item action (``PutItem``, ``UpdateItem``, ``ConditionCheckItem``);
    nothing is ever deleted or scanned. Events are published to ``topic_arns``; ``queue_arns``
    are the queues the handlers consume (what Lambda's event source mapping calls);
    ``dead_letter_queue_arns`` the command queues' dead-letter queues, where a handler moves a
    command whose events SNS can never take (``sqs:GetQueueUrl`` and ``sqs:SendMessage``
    only).
    """
    table = _check("table_arn", table_arn, is_table_arn, "a DynamoDB table ARN")
    statements: list[dict[str, Any]] = [
        {
            "Sid": "EventLogOnItsTableOnly",
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:ConditionCheckItem",
            ],
            "Resource": table,
        }
    ]
    topics = [_check("topic_arns", arn, is_topic_arn, "an SNS topic ARN") for arn in topic_arns]
    if topics:
        statements.append(
            {"Sid": "PublishEvents", "Effect": "Allow", "Action": "sns:Publish", "Resource": topics}
        )
    queues = [_check("queue_arns", arn, is_queue_arn, "an SQS queue ARN") for arn in queue_arns]
    if queues:
        statements.append(
            {
                "Sid": "ConsumeTheQueues",
                "Effect": "Allow",
                "Action": [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                ],
                "Resource": queues,
            }
        )
    dead = [
        _check("dead_letter_queue_arns", arn, is_queue_arn, "an SQS queue ARN")
        for arn in dead_letter_queue_arns
    ]
    if dead:
        statements.append(
            {
                "Sid": "DeadLetterCommands",
                "Effect": "Allow",
                # The handler finds the queue by name, then sends the command there.
                "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"],
                "Resource": dead,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def lambda_trust_policy() -> dict[str, Any]:
    """Trust policy of the handlers' role: the Lambda service may assume it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def subscriber_queue_policy(*, queue_arn: str, topic_arn: str) -> dict[str, Any]:
    """Resource policy of a queue subscribed to an event topic: SNS may send to it for that
    topic only (``aws:SourceArn``), nothing else."""
    queue = _check("queue_arn", queue_arn, is_queue_arn, "an SQS queue ARN")
    topic = _check("topic_arn", topic_arn, is_topic_arn, "an SNS topic ARN")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TheTopicMaySend",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic}},
            }
        ],
    }
