"""A console listening beyond the loopback (``open_reads=False``): every read needs the token
too, by a signed-in session or a bearer header. Served by a real uvicorn server in the test's
event loop on a real store."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
import uvicorn

import reventless.local
from reventless import Minutes, Schedule, Scheduler
from reventless.testing import RecordingTarget
from reventless.web import create_app
from tests.web.console_store import TOKEN, free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # uvicorn runs on asyncio


async def test_reads_need_the_token_when_reads_are_not_open(tmp_path: Path) -> None:
    async with reventless.local.provider(tmp_path / "a.db") as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(5), payload="x"))
        port = free_port()
        app = create_app(provider, token=TOKEN, open_reads=False, loopback=False)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve)
            for _ in range(500):  # uvicorn says it started through a flag only
                if server.started:
                    break
                await anyio.sleep(0.02)
            url = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=url) as client:
                for path in ("/schedules", "/schedules/default/tick", "/reactions", "/timeline"):
                    refused = await client.get(path)
                    assert refused.status_code == 401, path
                    assert "<table" not in refused.text and "<h1>tick" not in refused.text
                assert (await client.get("/healthz")).status_code == 401
                assert (await client.get("/metrics")).status_code == 401
                # Any host name is served here (not a loopback listener)...
                named = await client.get("/login", headers={"Host": "console.example"})
                assert named.status_code == 200
                bearer = {"Authorization": f"Bearer {TOKEN}"}
                health = await client.get("/healthz", headers=bearer)
                assert health.status_code == 503  # no engine runs here while "tick" waits
                assert [p["kind"] for p in health.json()["problems"]] == ["no_engine"]
                signed = await client.post("/login", data={"token": TOKEN})
                assert signed.status_code == 303
                page = await client.get("/schedules")
                assert page.status_code == 200 and "/schedules/default/tick" in page.text
                assert "Sign out" in page.text
                await client.post("/logout")
                assert (await client.get("/schedules")).status_code == 401
            server.should_exit = True
