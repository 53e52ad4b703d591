"""Pulumi components for reventless on AWS: ``pip install "reventless[pulumi]"``.

The only module of reventless that imports ``pulumi``: import it from a Pulumi program, never
from a handler. Each component mirrors a reventless component and creates what it needs:

- ``SchedulerInfrastructure``: the schedule group of each reventless scheduler, the standard
  dead-letter queue, the execution role EventBridge Scheduler assumes (trust scoped to the
  account and those groups) with its policy, and the caller policy, attached to a role you name
  or given as an output;
- ``EventLogTable``: the DynamoDB table of the event log (``pk`` string, ``sk`` number);
- ``EventTopicInfrastructure``: an SNS FIFO topic; ``subscribe`` adds a FIFO queue subscribed
  with raw delivery and its mapping to a Lambda function;
- ``AggregateInfrastructure``: an aggregate's FIFO command queue (content-based deduplication)
  with its FIFO dead-letter queue, and its event topic; ``handle_with`` maps the queue to a
  Lambda function;
- ``PluginInfrastructure``: all of these for a plugin's aggregates, topics and schedulers, and
  ``provider_arguments``: the keyword arguments of ``reventless.aws.provider``.

Every IAM document comes from ``reventless.aws.iam``. At runtime, ``reventless.aws.
provider_from_environment()`` (or ``provider_from_outputs``) reads ``provider_arguments`` back,
without Pulumi.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from reventless.aws import iam
from reventless.aws._arn import GROUP
from reventless.aws._groups import schedule_group_name
from reventless.aws._outputs import ENVIRONMENT_VARIABLE
from reventless.errors import ValidationError

__all__ = (
    "AggregateInfrastructure",
    "EventLogTable",
    "EventTopicInfrastructure",
    "PluginInfrastructure",
    "SchedulerInfrastructure",
)

_QUEUE_BASE = re.compile(r"[A-Za-z0-9_-]{1,75}")  # SQS: 80 characters with ".fifo"
_TOPIC_BASE = re.compile(r"[A-Za-z0-9_-]{1,251}")  # SNS: 256 characters with ".fifo"
_TABLE = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_BATCH_ITEM_FAILURES = ["ReportBatchItemFailures"]  # the handlers report failed records only

Function = Any  # an aws.lambda_.Function, or its name or ARN as a pulumi Input


def _check(field: str, value: object, pattern: re.Pattern[str], allowed: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationError(field, value, allowed)
    return value


def _check_receive_count(count: object) -> None:
    if type(count) is not int or not 1 <= count <= 1000:
        raise ValidationError("max_receive_count", count, "a whole number from 1 to 1000")


def _child(parent: pulumi.Resource) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent)


def _function_arn(function: Function) -> Any:
    return function.arn if isinstance(function, aws.lambda_.Function) else function


def _json(document: tuple[Callable[..., dict[str, Any]], list[Any]]) -> pulumi.Output[str]:
    """The JSON text of ``make(*values)`` for ``document = (make, inputs)``, once the inputs
    (outputs of other resources: ARNs, the account) have values."""
    make, inputs = document
    text: pulumi.Output[str] = pulumi.Output.all(*inputs).apply(
        lambda values: json.dumps(make(*values))
    )
    return text


class EventLogTable(pulumi.ComponentResource):
    """The event log's DynamoDB table, on demand capacity: ``pk`` string hash key, ``sk``
    number range key, as ``reventless.aws.create_event_table`` makes it. Outputs ``name`` and
    ``arn``."""

    def __init__(
        self, name: str, *, table_name: str, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        _check("table_name", table_name, _TABLE, "a DynamoDB table name (3-255 characters)")
        super().__init__("reventless:aws:EventLogTable", name, None, opts)
        self.table = aws.dynamodb.Table(
            name,
            name=table_name,
            billing_mode="PAY_PER_REQUEST",
            hash_key="pk",
            range_key="sk",
            attributes=[
                aws.dynamodb.TableAttributeArgs(name="pk", type="S"),
                aws.dynamodb.TableAttributeArgs(name="sk", type="N"),
            ],
            opts=_child(self),
        )
        self.name: pulumi.Output[str] = self.table.name
        self.arn: pulumi.Output[str] = self.table.arn
        self.register_outputs({"name": self.name, "arn": self.arn})


class EventTopicInfrastructure(pulumi.ComponentResource):
    """An event topic: the SNS FIFO topic ``<topic_name>.fifo`` (the publisher sets each
    message's deduplication id, the event id). Outputs ``arn``; ``subscribe`` adds subscribers."""

    def __init__(
        self, name: str, *, topic_name: str, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        self._base = _check(
            "topic_name", topic_name, _TOPIC_BASE, "1-251 letters, digits, '_' or '-'"
        )
        super().__init__("reventless:aws:EventTopicInfrastructure", name, None, opts)
        self._name = name
        self.topic = aws.sns.Topic(
            name, name=f"{topic_name}.fifo", fifo_topic=True, opts=_child(self)
        )
        self.arn: pulumi.Output[str] = self.topic.arn
        self.subscriber_queues: dict[str, aws.sqs.Queue] = {}
        self.register_outputs({"arn": self.arn})

    def subscribe(
        self,
        subscriber: str,
        function: Function,
        *,
        batch_size: int = 10,
        max_receive_count: int | None = None,
    ) -> aws.sqs.Queue:
        """Subscribe the FIFO queue ``<topic_name>-<subscriber>.fifo`` (raw message delivery;
        only this topic may send to it) and have ``function`` consume it, reporting batch item
        failures (``reventless.aws.handle_topic_batch`` or ``handle_reaction_batch``). Returns
        the queue.

        ``max_receive_count`` (1-1000) gives the queue the FIFO dead-letter queue
        ``<topic_name>-<subscriber>-dead-letters.fifo`` after that many receives of a message;
        for a reaction's queue, pass the reaction's ``max_attempts``."""
        if subscriber in self.subscriber_queues:
            raise ValidationError("subscriber", subscriber, "a name not subscribed yet")
        base = f"{self._base}-{subscriber}"
        _check("subscriber", base, _QUEUE_BASE, "topic and subscriber names within 75 characters")
        key = f"{self._name}-{subscriber}"
        redrive: pulumi.Input[str] | None = None
        if max_receive_count is not None:
            _check_receive_count(max_receive_count)
            _check("subscriber", f"{base}-dead-letters", _QUEUE_BASE, "names within 75 characters")
            dead_letters = aws.sqs.Queue(
                f"{key}-dead-letters",
                name=f"{base}-dead-letters.fifo",
                fifo_queue=True,
                message_retention_seconds=14 * 24 * 3600,
                opts=_child(self),
            )
            redrive = pulumi.Output.json_dumps(
                {"deadLetterTargetArn": dead_letters.arn, "maxReceiveCount": max_receive_count}
            )
        queue = aws.sqs.Queue(
            key, name=f"{base}.fifo", fifo_queue=True, redrive_policy=redrive, opts=_child(self)
        )
        policy = aws.sqs.QueuePolicy(
            key,
            queue_url=queue.url,
            policy=_json(
                (
                    lambda queue_arn, topic_arn: iam.subscriber_queue_policy(
                        queue_arn=queue_arn, topic_arn=topic_arn
                    ),
                    [queue.arn, self.topic.arn],
                )
            ),
            opts=_child(self),
        )
        aws.sns.TopicSubscription(
            key,
            topic=self.topic.arn,
            protocol="sqs",
            endpoint=queue.arn,
            raw_message_delivery=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        aws.lambda_.EventSourceMapping(
            key,
            event_source_arn=queue.arn,
            function_name=_function_arn(function),
            batch_size=batch_size,
            function_response_types=_BATCH_ITEM_FAILURES,
            opts=_child(self),
        )
        self.subscriber_queues[subscriber] = queue
        return queue


class AggregateInfrastructure(pulumi.ComponentResource):
    """An aggregate's command queue, the SQS FIFO queue ``<prefix>-<aggregate>.fifo`` with
    content-based deduplication, its FIFO dead-letter queue
    ``<prefix>-<aggregate>-dead-letters.fifo`` (14 days' retention) and its event topic
    ``<prefix>-<aggregate>-events.fifo``. A command the handler failed ``max_receive_count``
    times (1-1000, default 5) moves to the dead-letter queue, so its message group goes on.
    Outputs ``queue_arn``, ``dead_letter_arn`` and ``topic_arn``. ``handler``, or
    ``handle_with`` later (when the function's settings need these outputs), maps the queue to
    a Lambda function."""

    def __init__(
        self,
        name: str,
        *,
        aggregate: str,
        prefix: str,
        handler: Function | None = None,
        max_receive_count: int = 5,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        base = f"{prefix}-{aggregate}"
        _check("aggregate", base, _QUEUE_BASE, "prefix and aggregate: letters, digits, '_', '-'")
        _check(
            "aggregate",
            f"{base}-dead-letters",
            _QUEUE_BASE,
            "prefix and aggregate within 62 characters (the dead-letter queue's name)",
        )
        _check_receive_count(max_receive_count)
        super().__init__("reventless:aws:AggregateInfrastructure", name, None, opts)
        self._name = name
        self.aggregate = aggregate
        self.dead_letters = aws.sqs.Queue(
            f"{name}-dead-letters",
            name=f"{base}-dead-letters.fifo",
            fifo_queue=True,
            message_retention_seconds=14 * 24 * 3600,
            opts=_child(self),
        )
        self.queue = aws.sqs.Queue(
            f"{name}-commands",
            name=f"{base}.fifo",
            fifo_queue=True,
            content_based_deduplication=True,
            redrive_policy=pulumi.Output.json_dumps(
                {"deadLetterTargetArn": self.dead_letters.arn, "maxReceiveCount": max_receive_count}
            ),
            opts=_child(self),
        )
        self.dead_letter_arn: pulumi.Output[str] = self.dead_letters.arn
        self.event_topic = EventTopicInfrastructure(
            f"{name}-events", topic_name=f"{base}-events", opts=_child(self)
        )
        self.queue_arn: pulumi.Output[str] = self.queue.arn
        self.topic_arn: pulumi.Output[str] = self.event_topic.arn
        self.register_outputs(
            {
                "queue_arn": self.queue_arn,
                "dead_letter_arn": self.dead_letter_arn,
                "topic_arn": self.topic_arn,
            }
        )
        if handler is not None:
            self.handle_with(handler)

    def handle_with(
        self, function: Function, *, batch_size: int = 10
    ) -> aws.lambda_.EventSourceMapping:
        """Have ``function`` consume the command queue, reporting batch item failures
        (``reventless.aws.handle_sqs_batch``)."""
        return aws.lambda_.EventSourceMapping(
            f"{self._name}-handler",
            event_source_arn=self.queue.arn,
            function_name=_function_arn(function),
            batch_size=batch_size,
            function_response_types=_BATCH_ITEM_FAILURES,
            opts=_child(self),
        )


class SchedulerInfrastructure(pulumi.ComponentResource):
    """What EventBridge Scheduler needs for the reventless ``schedulers`` on provider group
    ``group``: a schedule group each (``schedule_group_name``) and ``group`` itself (which the
    provider ensures when it starts), the standard dead-letter queue
    ``<group>-dead-letters`` (14 days' retention), the execution role ``<group>-scheduler``
    (``execution_role_trust_policy`` for those groups, ``execution_role_policy`` for the targets
    and the dead-letter queue) and the caller policy, attached to ``caller_role`` (a role name)
    when given. Outputs ``group``, ``role_arn``, ``dead_letter_arn``, ``region`` and
    ``caller_policy`` (JSON)."""

    def __init__(
        self,
        name: str,
        *,
        group: str,
        schedulers: Sequence[str] = ("default",),
        target_queue_arns: Sequence[pulumi.Input[str]] = (),
        target_topic_arns: Sequence[pulumi.Input[str]] = (),
        caller_role: pulumi.Input[str] | None = None,
        kms_key_arn: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        _check("group", group, GROUP, "1-64 letters, digits, '.', '_' or '-'")
        dead_letter_name = f"{group}-dead-letters".replace(".", "-")
        _check("group", dead_letter_name, _QUEUE_BASE, "a group within 63 characters")
        if isinstance(schedulers, str) or not schedulers:
            raise ValidationError("schedulers", schedulers, "a non-empty sequence of names")
        for scheduler in schedulers:
            _check(
                "schedulers", scheduler, GROUP, "scheduler names (letters, digits, '.', '_', '-')"
            )
        groups = [schedule_group_name(group, scheduler) for scheduler in schedulers]
        super().__init__("reventless:aws:SchedulerInfrastructure", name, None, opts)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region
        partition = aws.get_partition_output(opts=invoke).partition
        self.schedule_groups = {
            scheduler: aws.scheduler.ScheduleGroup(
                f"{name}-{scheduler}", name=group_name, opts=_child(self)
            )
            for scheduler, group_name in zip(schedulers, groups, strict=True)
        }
        if group not in groups:
            # The provider ensures its own group whenever it starts: made here, the runtime
            # finds it (and never creates a group that `pulumi destroy` would not remove).
            self.provider_group: aws.scheduler.ScheduleGroup | None = aws.scheduler.ScheduleGroup(
                f"{name}-provider", name=group, opts=_child(self)
            )
        else:
            self.provider_group = None
        self.dead_letters = aws.sqs.Queue(
            f"{name}-dead-letters",
            name=dead_letter_name,
            message_retention_seconds=14 * 24 * 3600,
            opts=_child(self),
        )
        names = list(schedulers)
        self.role = aws.iam.Role(
            f"{name}-execution",
            name=f"{group}-scheduler",
            assume_role_policy=_json(
                (
                    lambda account_id, region, partition: iam.execution_role_trust_policy(
                        account_id=account_id,
                        region=region,
                        group=group,
                        schedulers=names,
                        partition=partition,
                    ),
                    [account, region, partition],
                )
            ),
            opts=_child(self),
        )
        queues, topics = list(target_queue_arns), list(target_topic_arns)
        aws.iam.RolePolicy(
            f"{name}-execution",
            name="reventless-execution",
            role=self.role.id,
            policy=_json(
                (
                    lambda dead_letter_arn, *targets: iam.execution_role_policy(
                        target_queue_arns=targets[: len(queues)],
                        target_topic_arns=targets[len(queues) :],
                        dead_letter_arn=dead_letter_arn,
                        kms_key_arn=kms_key_arn,
                    ),
                    [self.dead_letters.arn, *queues, *topics],
                )
            ),
            opts=_child(self),
        )
        self.caller_policy: pulumi.Output[str] = _json(
            (
                lambda account_id, region, partition, role_arn: iam.caller_policy(
                    account_id=account_id,
                    region=region,
                    group=group,
                    execution_role_arn=role_arn,
                    schedulers=names,
                    partition=partition,
                ),
                [account, region, partition, self.role.arn],
            )
        )
        if caller_role is not None:
            aws.iam.RolePolicy(
                f"{name}-caller",
                name=f"reventless-caller-{group}",
                role=caller_role,
                policy=self.caller_policy,
                opts=_child(self),
            )
        self.group = group
        self.role_arn: pulumi.Output[str] = self.role.arn
        self.dead_letter_arn: pulumi.Output[str] = self.dead_letters.arn
        self.region: pulumi.Output[str] = region
        self.register_outputs(
            {
                "group": group,
                "role_arn": self.role_arn,
                "dead_letter_arn": self.dead_letter_arn,
                "region": region,
                "caller_policy": self.caller_policy,
            }
        )


class PluginInfrastructure(pulumi.ComponentResource):
    """Everything a plugin needs on AWS: the event table ``<prefix>-events``, an
    ``AggregateInfrastructure`` per aggregate, an ``EventTopicInfrastructure`` per standalone
    topic (``<prefix>-<topic>-events.fifo``) and a ``SchedulerInfrastructure`` whose targets
    are the queues and topics ``schedulers`` (scheduler name -> aggregate or topic name) send to.

    ``provider_arguments`` is the keyword arguments of ``reventless.aws.provider`` for it
    (export it as ``reventless``); ``environment`` the variables a handler function needs for
    ``reventless.aws.provider_from_environment()``; ``handler_policy()`` the handlers' IAM
    policy for what exists when it is called (subscribe first).
    """

    def __init__(
        self,
        name: str,
        *,
        group: str,
        aggregates: Sequence[str],
        event_topics: Sequence[str] = (),
        schedulers: Mapping[str, str],
        prefix: str | None = None,
        caller_role: pulumi.Input[str] | None = None,
        kms_key_arn: str | None = None,
        max_receive_count: int = 5,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        prefix = name if prefix is None else prefix
        known = [*aggregates, *event_topics]
        if len(set(known)) != len(known):
            raise ValidationError("aggregates/event_topics", known, "names each given once")
        for scheduler, target in schedulers.items():
            if target not in known:
                raise ValidationError(f"schedulers[{scheduler!r}]", target, f"one of {known}")
        super().__init__("reventless:aws:PluginInfrastructure", name, None, opts)
        self.table = EventLogTable(
            f"{name}-events", table_name=f"{prefix}-events", opts=_child(self)
        )
        self.aggregates = {
            aggregate: AggregateInfrastructure(
                f"{name}-{aggregate}",
                aggregate=aggregate,
                prefix=prefix,
                max_receive_count=max_receive_count,
                opts=_child(self),
            )
            for aggregate in aggregates
        }
        self.event_topics = {
            topic: EventTopicInfrastructure(
                f"{name}-{topic}", topic_name=f"{prefix}-{topic}-events", opts=_child(self)
            )
            for topic in event_topics
        }
        targets = list(dict.fromkeys(schedulers.values()))
        self.scheduler = SchedulerInfrastructure(
            f"{name}-scheduler",
            group=group,
            schedulers=list(schedulers),
            target_queue_arns=[self.aggregates[t].queue_arn for t in targets if t in aggregates],
            target_topic_arns=[self.event_topics[t].arn for t in targets if t in event_topics],
            caller_role=caller_role,
            kms_key_arn=kms_key_arn,
            opts=_child(self),
        )
        topic_arns = {
            **{a: infra.topic_arn for a, infra in self.aggregates.items()},
            **{t: infra.arn for t, infra in self.event_topics.items()},
        }
        self.provider_arguments: pulumi.Output[dict[str, Any]] = pulumi.Output.all(
            group=group,
            role_arn=self.scheduler.role_arn,
            region=self.scheduler.region,
            dead_letter_arn=self.scheduler.dead_letter_arn,
            event_table=self.table.name,
            event_topics=pulumi.Output.all(**topic_arns),
            command_queues=pulumi.Output.all(
                **{a: infra.queue_arn for a, infra in self.aggregates.items()}
            ),
            command_dead_letters=pulumi.Output.all(
                **{a: infra.dead_letter_arn for a, infra in self.aggregates.items()}
            ),
        )
        self.environment: pulumi.Output[dict[str, str]] = self.provider_arguments.apply(
            lambda arguments: {ENVIRONMENT_VARIABLE: json.dumps(arguments, sort_keys=True)}
        )
        self.register_outputs({"provider_arguments": self.provider_arguments})

    def _topics(self) -> list[EventTopicInfrastructure]:
        return [
            *(infra.event_topic for infra in self.aggregates.values()),
            *self.event_topics.values(),
        ]

    def handler_policy(self) -> pulumi.Output[str]:
        """The handlers' policy (``reventless.aws.iam.handler_policy``, JSON): the event table,
        publishing to every topic, consuming the command queues and the subscriber queues made
        so far, and moving a command to its queue's dead letters."""
        topics = [topic.arn for topic in self._topics()]
        queues = [
            *(infra.queue_arn for infra in self.aggregates.values()),
            *(queue.arn for topic in self._topics() for queue in topic.subscriber_queues.values()),
        ]
        dead = [infra.dead_letter_arn for infra in self.aggregates.values()]
        return _json(
            (
                lambda table_arn, *arns: iam.handler_policy(
                    table_arn=table_arn,
                    topic_arns=arns[: len(topics)],
                    queue_arns=arns[len(topics) : len(topics) + len(queues)],
                    dead_letter_queue_arns=arns[len(topics) + len(queues) :],
                ),
                [self.table.arn, *topics, *queues, *dead],
            )
        )
