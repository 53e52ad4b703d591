"""docs/aws.md: its program runs as a user would run it, pointed at moto by the environment."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from reventless.aws import create_event_table
from tests.aws.conftest import ACCOUNT, REGION, CountingMotoServer, make_queue
from tests.docs_pages import PAGES, environment, lay_out

pytestmark = pytest.mark.anyio

PAGE = next(page for page in PAGES if page.name == "aws.md")


async def test_the_aws_page_program_schedules_into_the_group_and_restarts_unchanged(
    tmp_path: Path, moto: CountingMotoServer, session: Any, sqs: Any, scheduler_client: Any
) -> None:
    # What the page says to create once: the FIFO command queue, the dead-letter queue, the
    # event table and the aggregate's FIFO topic.
    _, orders_arn = await make_queue(sqs, "orders.fifo")
    _, dead_letters_arn = await make_queue(sqs, "shop-dead-letters")
    async with session.client("dynamodb", endpoint_url=moto.url, region_name=REGION) as dynamodb:
        await create_event_table(dynamodb, "shop-events")
    async with session.client("sns", endpoint_url=moto.url, region_name=REGION) as sns:
        await sns.create_topic(
            Name="orders-events.fifo",
            Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "false"},
        )
    assert orders_arn == f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders.fifo"
    program = lay_out(PAGE, tmp_path)
    assert program is not None
    # The example as printed: only the environment says where AWS is.
    env = environment(
        AWS_ENDPOINT_URL=moto.url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
    )
    outputs = []
    for _ in range(2):
        done = await anyio.run_process(
            [sys.executable, program.name], cwd=tmp_path, env=env, check=False
        )
        assert done.returncode == 0 and not done.stderr, done.stderr.decode()
        outputs.append(done.stdout.decode())
    assert outputs == ["process-orders: CREATED\n", "process-orders: UNCHANGED\n"]

    stored = await scheduler_client.get_schedule(Name="process-orders", GroupName="shop")
    assert stored["ScheduleExpression"] == "rate(1 hour)"
    target = stored["Target"]
    assert target["Arn"] == orders_arn
    assert target["DeadLetterConfig"]["Arn"] == dead_letters_arn
    assert target["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/shop-scheduler"
    assert target["SqsParameters"]["MessageGroupId"] == "order-processor"
