"""The console on the AWS provider (moto in server mode), served by a real uvicorn server in
the test's event loop: it shows what EventBridge Scheduler can say (the schedules, a pause's
reason and who, from the schedule's Description) and marks the rest as not available (the
engine, the history, the dead letters without a queue, the reactions' positions)."""

from __future__ import annotations

import anyio
import httpx
import pytest
import uvicorn

import reventless.aws
from reventless import Daily, Schedule, Scheduler
from reventless.aws import SqsQueueTarget
from reventless.web import create_app
from tests.aws.conftest import REGION, ROLE_ARN, CountingMotoServer
from tests.web.console_store import free_port

TOKEN = "aws-console-token-0123456789"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:commands.fifo"


@pytest.mark.anyio
async def test_the_console_shows_what_eventbridge_can_say(
    session: object, moto: CountingMotoServer
) -> None:
    async with reventless.aws.provider(
        session=session, group="console", role_arn=ROLE_ARN, region=REGION, endpoint_url=moto.url
    ) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        await ops.create_schedule(Schedule(name="report", rate=Daily(9, 0), payload="<b>x</b>"))
        await ops.pause_schedule("report", reason="vendor <down>", by="ana")
        port = free_port()
        app = create_app(provider, token=TOKEN, schedulers=["default"])
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve)
            for _ in range(500):  # uvicorn says it started through a flag only
                if server.started:
                    break
                await anyio.sleep(0.02)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                listing = (await client.get("/schedules")).text
                assert "/schedules/default/report" in listing
                assert "vendor &lt;down&gt;" in listing and "by ana" in listing
                assert "Not available here: not available on AWS" in listing
                page = await client.get("/schedules/default/report")
                assert page.status_code == 200
                assert page.text.count("Not available here") == 2  # history, dead letters
                reactions = (await client.get("/reactions")).text
                assert "Not available here" in reactions
                health = await client.get("/healthz")
                assert health.status_code == 200
                assert health.json()["not_available"]
                resumed = await client.post(
                    "/schedules/default/report/resume",
                    data={"reason": "back"},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                assert resumed.status_code == 303
            server.should_exit = True
        assert (await ops.get_schedule("report")).paused is False
