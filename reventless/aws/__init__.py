"""The AWS provider: EventBridge Scheduler for schedules, SQS FIFO queues for command topics,
DynamoDB for the event log and SNS FIFO topics for event topics.

asyncio only (aioboto3). Import this package only when you use it: it imports aioboto3.

::

    session = aioboto3.Session()
    async with reventless.aws.provider(
        session=session, group="shop", role_arn=EXECUTION_ROLE_ARN, region="eu-west-1",
        dead_letter_arn=DLQ_ARN,
    ) as provider:
        scheduler = await Scheduler.make(provider, target=SqsQueueTarget(COMMANDS_QUEUE_ARN))
        await scheduler.operations.create_schedule(schedule)

With ``event_table``, ``event_topics`` and ``command_queues`` it also gives aggregates their event
log and topics, and maps a command topic target to its aggregate's queue, so that a plugin runs
unchanged on the embedded provider and here (``docs/aws.md``).

The provider and the schedulers made on it work inside the ``async with`` block only: used before
it (``provider(...)`` not entered) or after it, they raise UsageError saying so, also when the
client is yours and still open.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.abc

from reventless._engine_settings import check_retry_policy
from reventless._provider_context import ProviderContext, provider_context
from reventless.aws._arn import GROUP, REGION, queue_arn, topic_arn
from reventless.aws._arn import role_arn as is_role_arn
from reventless.aws._command_dead_letters import CommandDeadLetter, CommandDeadLetters
from reventless.aws._dynamodb import DynamoDbEventLog, create_event_table
from reventless.aws._outputs import (
    ENVIRONMENT_VARIABLE,
    arguments_from_environment,
    provider_arguments,
)
from reventless.aws._reactions import AwsReactions, handle_reaction_batch
from reventless.aws._scheduler import AwsScheduledPublisher
from reventless.aws._sns import (
    SnsEventTopic,
    SqsTopicSubscriber,
    UnpublishableEventError,
    decode_topic_message,
)
from reventless.aws._sqs import SqsCommandConsumer, SqsCommandPublisher
from reventless.aws._targets import SCHEDULED_TIME, SNS_PUBLISH, SqsQueueTarget
from reventless.aws.iam import (
    caller_policy,
    execution_role_policy,
    execution_role_trust_policy,
    handler_policy,
)
from reventless.clock import Clock, SystemClock
from reventless.errors import UsageError, ValidationError
from reventless.reaction_adapter import Reactions
from reventless.scheduler_adapter import RetryPolicy

__all__ = (
    "ENVIRONMENT_VARIABLE",
    "SCHEDULED_TIME",
    "SNS_PUBLISH",
    "AwsProvider",
    "AwsScheduledPublisher",
    "CommandDeadLetter",
    "CommandDeadLetters",
    "DynamoDbEventLog",
    "ProviderContext",
    "SnsEventTopic",
    "SqsCommandConsumer",
    "SqsCommandPublisher",
    "SqsQueueTarget",
    "SqsTopicSubscriber",
    "UnpublishableEventError",
    "caller_policy",
    "create_event_table",
    "decode_topic_message",
    "execution_role_policy",
    "execution_role_trust_policy",
    "handle_reaction_batch",
    "handle_sqs_batch",
    "handle_topic_batch",
    "handler_policy",
    "provider",
    "provider_from_environment",
    "provider_from_outputs",
)

_CLOSED = (
    "this AWS provider is closed (its 'async with' block has ended); use it, and the schedulers "
    "made on it, inside 'async with reventless.aws.provider(...) as provider:'"
)


class _ClientWhileOpen:
    """Stands in for a client the provider's publisher uses: once the provider is closed, any
    use raises UsageError (a closed session client would fail as an unreachable service, and a
    client of the caller's would go on working for a scheduler whose provider has ended)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        if self.closed:
            raise UsageError(_CLOSED)
        return getattr(self._client, name)


class AwsProvider:
    """The AWS provider; make it with ``async with reventless.aws.provider(...)``."""

    clock: Clock

    def __init__(
        self,
        publisher: AwsScheduledPublisher,
        clock: Clock,
        clients: tuple[_ClientWhileOpen, ...] = (),
        *,
        event_log: DynamoDbEventLog | None = None,
        event_topics: Mapping[str, str] | None = None,
        sns_client: Any = None,
        command_dead_letters: CommandDeadLetters | None = None,
    ) -> None:
        self.clock = clock
        self._command_dead_letters = command_dead_letters
        self._publisher = publisher
        self._clients = clients
        self._closed = False
        self._event_log = event_log
        self._topic_arns = dict(event_topics or {})
        self._sns = sns_client
        self._topics: dict[str, SnsEventTopic] = {}
        self._reactions = AwsReactions()

    def scheduled_publisher(self) -> AwsScheduledPublisher:
        """The ScheduledPublisher adapter that schedulers made on this provider use."""
        if self._closed:
            raise UsageError(_CLOSED)
        return self._publisher

    def _close(self) -> None:
        self._closed = True
        for client in self._clients:
            client.closed = True

    def reactions(self) -> Reactions:
        """The reactions of plugins started on this provider. On AWS none runs here: each is the
        handler of its own queue (``handle_reaction_batch``)."""
        if self._closed:
            raise UsageError(_CLOSED)
        return self._reactions

    def event_log(self) -> DynamoDbEventLog:
        """The DynamoDB event log (``event_table``) that aggregates made on this provider use."""
        if self._closed:
            raise UsageError(_CLOSED)
        if self._event_log is None:
            raise UsageError(
                "this AWS provider has no event log: pass event_table=TABLE (and a session or "
                "dynamodb_client) to reventless.aws.provider"
            )
        return self._event_log

    def event_topic(self, name: str) -> SnsEventTopic:
        """The SNS FIFO event topic ``name`` (an aggregate's is named after it), from
        ``event_topics``; one instance per name."""
        if self._closed:
            raise UsageError(_CLOSED)
        topic = self._topics.get(name)
        if topic is not None:
            return topic
        arn = self._topic_arns.get(name)
        if arn is None or self._sns is None:
            raise UsageError(
                f"this AWS provider has no event topic {name!r}: pass "
                f"event_topics={{{name!r}: SNS_FIFO_TOPIC_ARN}} (and a session or sns_client) "
                "to reventless.aws.provider; an aggregate's topic is named after the aggregate"
            )
        topic = self._topics[name] = SnsEventTopic(name, arn, self._sns)
        topic.command_dead_letters = self._command_dead_letters
        return topic

    def command_dead_letters(self) -> CommandDeadLetters:
        """The dead letters of the aggregates' command queues (``command_dead_letters``):
        ``await .dead_letters(aggregate)``, ``await .redrive(aggregate, message_ids=...)``. A fire's
        dead letters are also among its scheduler's (``operations.dead_letters()``).
        :raises UsageError: the provider was given none."""
        if self._closed:
            raise UsageError(_CLOSED)
        if self._command_dead_letters is None:
            raise UsageError(
                "this AWS provider has no command dead-letter queues: pass "
                "command_dead_letters={AGGREGATE: FIFO_QUEUE_ARN} (and a session or sqs_client) "
                "to reventless.aws.provider; a deployment's outputs name them"
            )
        return self._command_dead_letters

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Nothing to run here: EventBridge Scheduler fires. Returns at once."""
        if self._closed:
            raise UsageError(_CLOSED)
        task_status.started()


async def handle_sqs_batch(event: dict[str, Any], aggregate: Any) -> dict[str, Any]:
    """The body of a Lambda handler for a command queue: handle the batch on ``aggregate`` (on
    the AWS provider: DynamoDB, then SNS) and return the partial-batch response
    (``SqsCommandConsumer.handle_batch``)."""
    return await SqsCommandConsumer(aggregate).handle_batch(event)


async def handle_topic_batch(
    event: dict[str, Any], handler: Any, *, topic: str = "", aggregates: Any = ()
) -> dict[str, Any]:
    """The body of a Lambda handler for a queue subscribed to an event topic: ``await
    handler(message)`` per record, and the partial-batch response
    (``SqsTopicSubscriber.handle_batch``)."""
    return await SqsTopicSubscriber(handler, topic=topic, aggregates=aggregates).handle_batch(event)


@provider_context("reventless.aws.provider", AwsProvider)
async def provider(
    *,
    group: str,
    role_arn: str,
    session: Any = None,
    client: Any = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    dead_letter_arn: str | None = None,
    retry_policy: RetryPolicy | None = None,
    clock: Clock | None = None,
    sqs_client: Any = None,
    event_table: str | None = None,
    event_topics: Mapping[str, str] | None = None,
    command_queues: Mapping[str, str] | None = None,
    command_dead_letters: Mapping[str, str] | None = None,
    dynamodb_client: Any = None,
    sns_client: Any = None,
) -> AsyncIterator[AwsProvider]:
    """Yield the AWS provider for schedule group ``group`` (ensured to exist).

    Pass a ready aioboto3 ``session`` (the provider opens a ``scheduler`` client and closes it on
    exit) or a ready ``client`` (yours to close). ``role_arn`` is the execution role EventBridge
    Scheduler assumes to send to the target queue; ``dead_letter_arn`` a standard SQS queue for
    fires that exhaust ``retry_policy``; ``sqs_client`` lets ``dead_letters()`` read it.

    For aggregates: ``event_table`` names the DynamoDB table of the event log
    (``create_event_table``), ``event_topics`` maps topic names to SNS FIFO topic ARNs (an
    aggregate's topic is named after the aggregate) and ``command_queues`` maps aggregate names
    to their FIFO command queue ARNs, the target of a scheduler made on a command topic;
    ``command_dead_letters`` maps aggregate names to the FIFO dead-letter queues of those
    queues (``command_dead_letters()``; a scheduler's dead letters include its fires found
    there). With a session the provider opens the DynamoDB, SNS and SQS clients they need;
    ``dynamodb_client``, ``sns_client`` and ``sqs_client`` are clients of yours instead.

    Use it as ``async with reventless.aws.provider(...) as provider:``; the returned
    ``ProviderContext`` raises UsageError with that fix when used without ``async with``.
    Arguments are checked on entering the block.
    """
    _check_arguments(group, role_arn, dead_letter_arn, region, retry_policy)
    if (session is None) == (client is None):
        raise ValidationError(
            "session/client", (session, client), "exactly one of session= and client="
        )
    _check_wiring(event_table, event_topics, command_queues, command_dead_letters)
    clock = clock or SystemClock()
    async with AsyncExitStack() as stack:

        async def opened_client(service: str) -> Any:
            if session is None:
                raise ValidationError(
                    f"{service}_client", None, f"a {service} client, or session= to open one"
                )
            return await stack.enter_async_context(
                session.client(service, region_name=region, endpoint_url=endpoint_url)
            )

        if client is None:
            client = await opened_client("scheduler")
        if event_table is not None and dynamodb_client is None:
            dynamodb_client = await opened_client("dynamodb")
        if event_topics and sns_client is None:
            sns_client = await opened_client("sns")
        if command_dead_letters and sqs_client is None:
            sqs_client = await opened_client("sqs")
        wrapped = [
            None if c is None else _ClientWhileOpen(c)
            for c in (client, sqs_client, dynamodb_client, sns_client)
        ]
        scheduler_client, sqs, dynamodb, sns = wrapped
        assert scheduler_client is not None
        dead_commands = (
            CommandDeadLetters(sqs, dict(command_queues or {}), dict(command_dead_letters))
            if command_dead_letters
            else None
        )
        publisher = AwsScheduledPublisher(
            scheduler_client,
            group=group,
            role_arn=role_arn,
            dead_letter_arn=dead_letter_arn,
            retry_policy=retry_policy or RetryPolicy(),
            clock=clock,
            sqs_client=sqs,
            command_queues=dict(command_queues or {}),
            command_dead_letters=dead_commands,
        )
        await publisher.ensure_group(group)
        opened = AwsProvider(
            publisher,
            clock,
            tuple(c for c in wrapped if c is not None),
            event_log=None if event_table is None else DynamoDbEventLog(dynamodb, event_table),
            event_topics=event_topics,
            sns_client=sns,
            command_dead_letters=dead_commands,
        )
        try:
            yield opened
        finally:
            opened._close()


def provider_from_outputs(
    outputs: Mapping[str, Any], **arguments: Any
) -> ProviderContext[AwsProvider]:
    """``reventless.aws.provider`` with what a deployment created: ``outputs`` is its
    ``reventless`` output (``pulumi stack output reventless --json``: group, role ARN,
    dead-letter ARN, region, event table, topics, queues); ``arguments`` add the rest (session or
    clients, clock, ...) and win over ``outputs``. Use it as ``async with``."""
    return provider(**{**provider_arguments(outputs), **arguments})


def provider_from_environment(
    environ: Mapping[str, str] | None = None, **arguments: Any
) -> ProviderContext[AwsProvider]:
    """``provider_from_outputs`` with the outputs a deployment set as JSON in the environment
    variable ``REVENTLESS_AWS`` (``environ``, else ``os.environ``): what a deployed Lambda
    handler calls."""
    return provider(**{**arguments_from_environment(environ), **arguments})


def _check_wiring(
    event_table: object, event_topics: object, command_queues: object, dead_letters: object
) -> None:
    """Refuse, on entering the block, a table name, topic ARN or queue ARN that AWS never
    could accept, and a command dead-letter queue of an aggregate without a command queue."""
    if event_table is not None and (
        not isinstance(event_table, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", event_table)
    ):
        raise ValidationError("event_table", event_table, "a DynamoDB table name (3-255 chars)")
    for field, mapping, kind in (
        ("event_topics", event_topics, "an SNS FIFO topic ARN"),
        ("command_queues", command_queues, "an SQS FIFO queue ARN"),
        ("command_dead_letters", dead_letters, "an SQS FIFO queue ARN"),
    ):
        if mapping is None:
            continue
        if not isinstance(mapping, Mapping):
            raise ValidationError(field, mapping, "a mapping of names to ARNs")
        for name, arn in mapping.items():
            valid = topic_arn(arn, fifo=True) if "SNS" in kind else queue_arn(arn, fifo=True)
            if not valid:
                raise ValidationError(f"{field}[{name!r}]", arn, kind + " (its name ends in .fifo)")
    if isinstance(dead_letters, Mapping):
        queues = command_queues if isinstance(command_queues, Mapping) else {}
        for name in dead_letters:
            if name not in queues:
                raise ValidationError(
                    "command_dead_letters",
                    name,
                    f"aggregates with a command queue in command_queues: {sorted(queues)}",
                )


def _check_arguments(
    group: object, role_arn: object, dead_letter_arn: object, region: object, retry_policy: object
) -> None:
    if not isinstance(group, str) or not GROUP.fullmatch(group):
        raise ValidationError("group", group, "1-64 letters, digits, '.', '_' or '-'")
    if not is_role_arn(role_arn):
        raise ValidationError(
            "role_arn", role_arn, "an IAM role ARN, arn:aws:iam::ACCOUNT:role/NAME"
        )
    if dead_letter_arn is not None and not queue_arn(dead_letter_arn, fifo=False):
        raise ValidationError(
            "dead_letter_arn", dead_letter_arn, "a standard (not FIFO) SQS queue ARN"
        )
    if region is not None and (not isinstance(region, str) or not REGION.fullmatch(region)):
        raise ValidationError("region", region, "an AWS region name such as 'eu-west-1'")
    check_retry_policy(retry_policy)
