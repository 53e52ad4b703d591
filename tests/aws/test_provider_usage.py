"""The AWS provider used the wrong way round: without ``async with``, or after its block ended
(with the client it opened, and with a client of the caller's that is still open)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import reventless.aws
from reventless import Minutes, Schedule, Scheduler, UsageError
from reventless.aws import SqsQueueTarget
from reventless.testing import VirtualClock
from tests.aws.conftest import ROLE_ARN, CountingMotoServer, make_queue

pytestmark = pytest.mark.anyio
START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)
QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:commands.fifo"
FIX = "async with reventless.aws.provider(...) as provider:"


async def test_the_aws_provider_used_without_async_with_says_how(
    session: Any, moto: CountingMotoServer
) -> None:
    context = reventless.aws.provider(
        session=session, group="shop", role_arn=ROLE_ARN, endpoint_url=moto.url
    )
    with pytest.raises(UsageError) as caught:
        context.scheduled_publisher()  # type: ignore[attr-defined]
    assert FIX in str(caught.value)
    with pytest.raises(UsageError, match="async with"):
        await Scheduler.make(context, target=SqsQueueTarget(QUEUE_ARN))  # type: ignore[arg-type]
    assert moto.requests == []  # nothing reached AWS


async def _ops_after_close(provider_context: Any) -> tuple[Any, Any]:
    async with provider_context as provider:
        scheduler = await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))
        await scheduler.operations.create_schedule(
            Schedule(name="before", rate=Minutes(5), payload="p")
        )
    return provider, scheduler.operations


async def _assert_closed(
    provider: Any, ops: Any, moto: CountingMotoServer, *, dead_letters: bool
) -> None:
    sent = len(moto.requests)
    uses = [
        lambda: ops.create_schedule(Schedule(name="after", rate=Minutes(5), payload="p")),
        lambda: ops.get_schedule("before"),
        lambda: ops.list_schedules(),
        lambda: ops.delete_schedule("before"),
        lambda: ops.pause_schedule("before"),
        lambda: provider.run(),
    ]
    if dead_letters:  # read from the dead-letter queue, through the SQS client
        uses.append(lambda: ops.dead_letters())
    for use in uses:
        with pytest.raises(UsageError) as caught:
            await use()
        assert "closed" in str(caught.value)
        assert FIX in str(caught.value)
    with pytest.raises(UsageError, match="closed"):
        provider.scheduled_publisher()
    assert len(moto.requests) == sent  # refused before any request


async def test_a_scheduler_used_after_the_provider_closed_its_client_is_a_usage_error(
    session: Any, moto: CountingMotoServer, sqs: Any
) -> None:
    _, dead_letter_arn = await make_queue(sqs, "dead-letters")
    clock = VirtualClock(START)
    moto.use_clock(clock.now)
    provider, ops = await _ops_after_close(
        reventless.aws.provider(
            session=session,
            group="shop",
            role_arn=ROLE_ARN,
            region="eu-west-1",
            endpoint_url=moto.url,
            clock=clock,
            dead_letter_arn=dead_letter_arn,
            sqs_client=sqs,
        )
    )
    await _assert_closed(provider, ops, moto, dead_letters=True)


async def test_a_scheduler_used_after_the_provider_closed_is_refused_on_the_callers_client_too(
    scheduler_client: Any, moto: CountingMotoServer
) -> None:
    """The caller's client is still open, but the provider's block has ended."""
    clock = VirtualClock(START)
    moto.use_clock(clock.now)
    provider, ops = await _ops_after_close(
        reventless.aws.provider(
            client=scheduler_client, group="shop", role_arn=ROLE_ARN, clock=clock
        )
    )
    await _assert_closed(provider, ops, moto, dead_letters=False)
    # The client itself is the caller's and still works.
    groups = await scheduler_client.list_schedule_groups()
    assert any(group["Name"] == "shop" for group in groups["ScheduleGroups"])
