"""The AWS provider: EventBridge Scheduler for schedules, SQS FIFO queues for command topics.

asyncio only (aioboto3). Import this package only when you use it: it imports aioboto3.

::

    session = aioboto3.Session()
    async with reventless.aws.provider(
        session=session, group="shop", role_arn=EXECUTION_ROLE_ARN, region="eu-west-1",
        dead_letter_arn=DLQ_ARN,
    ) as provider:
        scheduler = await Scheduler.make(provider, target=SqsQueueTarget(COMMANDS_QUEUE_ARN))
        await scheduler.operations.create_schedule(schedule)

The provider and the schedulers made on it work inside the ``async with`` block only: used before
it (``provider(...)`` not entered) or after it, they raise UsageError saying so, also when the
client is yours and still open.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.abc

from reventless._provider_context import ProviderContext, provider_context
from reventless.aws._scheduler import SCHEDULED_TIME, AwsScheduledPublisher, SqsQueueTarget
from reventless.aws._sqs import SqsCommandConsumer, SqsCommandPublisher
from reventless.aws.iam import caller_policy, execution_role_policy, execution_role_trust_policy
from reventless.clock import Clock, SystemClock
from reventless.errors import UsageError, ValidationError
from reventless.scheduler_adapter import RetryPolicy

__all__ = (
    "SCHEDULED_TIME",
    "AwsProvider",
    "ProviderContext",
    "SqsCommandConsumer",
    "SqsCommandPublisher",
    "SqsQueueTarget",
    "caller_policy",
    "execution_role_policy",
    "execution_role_trust_policy",
    "handle_sqs_batch",
    "provider",
)

_GROUP = re.compile(r"[0-9A-Za-z._-]{1,64}")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_QUEUE_ARN = re.compile(r"arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,80}(\.fifo)?")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")


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
    ) -> None:
        self.clock = clock
        self._publisher = publisher
        self._clients = clients
        self._closed = False

    def scheduled_publisher(self) -> AwsScheduledPublisher:
        """The ScheduledPublisher adapter that schedulers made on this provider use."""
        if self._closed:
            raise UsageError(_CLOSED)
        return self._publisher

    def _close(self) -> None:
        self._closed = True
        for client in self._clients:
            client.closed = True

    def event_log(self) -> Any:
        raise UsageError(
            "the AWS provider has no event log yet; run aggregates on the embedded provider "
            "and feed them from the queue with reventless.aws.SqsCommandConsumer"
        )

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Nothing to run here: EventBridge Scheduler fires. Returns at once."""
        if self._closed:
            raise UsageError(_CLOSED)
        task_status.started()


async def handle_sqs_batch(event: dict[str, Any], aggregate: Any) -> dict[str, Any]:
    """The body of a Lambda handler for an SQS trigger: handle the batch on ``aggregate`` and
    return the partial-batch response (``SqsCommandConsumer.handle_batch``)."""
    return await SqsCommandConsumer(aggregate).handle_batch(event)


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
) -> AsyncIterator[AwsProvider]:
    """Yield the AWS provider for schedule group ``group`` (ensured to exist).

    Pass a ready aioboto3 ``session`` (the provider opens a ``scheduler`` client and closes it on
    exit) or a ready ``client`` (yours to close). ``role_arn`` is the execution role EventBridge
    Scheduler assumes to send to the target queue; ``dead_letter_arn`` a standard SQS queue for
    fires that exhaust ``retry_policy``; ``sqs_client`` lets ``dead_letters()`` read it.

    Use it as ``async with reventless.aws.provider(...) as provider:``; the returned
    ``ProviderContext`` raises UsageError with that fix when used without ``async with``.
    Arguments are checked on entering the block.
    """
    if not isinstance(group, str) or not _GROUP.fullmatch(group):
        raise ValidationError("group", group, "1-64 letters, digits, '.', '_' or '-'")
    if not isinstance(role_arn, str) or not _ROLE_ARN.fullmatch(role_arn):
        raise ValidationError(
            "role_arn", role_arn, "an IAM role ARN, arn:aws:iam::ACCOUNT:role/NAME"
        )
    if dead_letter_arn is not None and (
        not isinstance(dead_letter_arn, str)
        or not _QUEUE_ARN.fullmatch(dead_letter_arn)
        or dead_letter_arn.endswith(".fifo")
    ):
        raise ValidationError(
            "dead_letter_arn", dead_letter_arn, "a standard (not FIFO) SQS queue ARN"
        )
    if region is not None and (not isinstance(region, str) or not _REGION.fullmatch(region)):
        raise ValidationError("region", region, "an AWS region name such as 'eu-west-1'")
    if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
        raise ValidationError("retry_policy", retry_policy, "a RetryPolicy")
    if (session is None) == (client is None):
        raise ValidationError(
            "session/client", (session, client), "exactly one of session= and client="
        )
    clock = clock or SystemClock()
    async with AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(
                session.client("scheduler", region_name=region, endpoint_url=endpoint_url)
            )
        clients = (_ClientWhileOpen(client),) + (
            () if sqs_client is None else (_ClientWhileOpen(sqs_client),)
        )
        publisher = AwsScheduledPublisher(
            clients[0],
            group=group,
            role_arn=role_arn,
            dead_letter_arn=dead_letter_arn,
            retry_policy=retry_policy or RetryPolicy(),
            clock=clock,
            sqs_client=None if sqs_client is None else clients[1],
        )
        await publisher.ensure_group(group)
        opened = AwsProvider(publisher, clock, clients)
        try:
            yield opened
        finally:
            opened._close()
