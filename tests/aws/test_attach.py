"""The AWS adapter refuses a second scheduler of one name on one provider, as the local one does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import reventless.aws
from reventless import Hours, Schedule, Scheduler, UsageError
from reventless.aws import SqsQueueTarget
from reventless.testing import VirtualClock
from tests.aws.conftest import ROLE_ARN, CountingMotoServer

pytestmark = pytest.mark.anyio
QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:commands"
OTHER_ARN = "arn:aws:sqs:eu-west-1:123456789012:other"


async def test_a_second_scheduler_of_one_name_is_refused(
    session: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    clock = VirtualClock(datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC))
    moto.use_clock(clock.now)
    async with reventless.aws.provider(
        session=session,
        group="shop",
        role_arn=ROLE_ARN,
        region="eu-west-1",
        endpoint_url=moto.url,
        clock=clock,
    ) as provider:
        billing = await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN), name="billing")
        with pytest.raises(UsageError, match="distinct name") as refused:
            await Scheduler.make(provider, target=SqsQueueTarget(OTHER_ARN), name="billing")
        assert "scheduler named 'billing' is already made on this provider" in str(refused.value)
        await Scheduler.make(provider, target=SqsQueueTarget(OTHER_ARN), name="billing-2")
        await billing.operations.create_schedule(Schedule(name="r", rate=Hours(1), payload="p"))
    stored = await scheduler_client.get_schedule(Name="r", GroupName="shop.billing")
    assert stored["Target"]["Arn"] == QUEUE_ARN  # the first target keeps the fires
