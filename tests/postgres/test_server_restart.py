"""The server restarted under running engines: two ``reventless run`` processes deliver a burst
to a command topic of the same database; the server is stopped mid-batch (immediate: as a
crash; fast: a clean shutdown) and started again a few seconds later. The engines stay up, say
what failed without a traceback, connect again and deliver every fire once: the batch cut off
was rolled back whole, and a burst created after the restart is delivered too.

The test runs a server of its own (the session's server is shared by the other tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

import reventless.postgres
from tests.pg_chaos import APP, RECORDER, WORKTREE, create_burst
from tests.postgres_server import PostgresServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    # Durable: the tests' usual server commits without waiting for the WAL (synchronous_commit
    # off), so an immediate stop may lose the last commits, as a real server so set would.
    server = PostgresServer(durable=True).start()
    try:
        yield server
    finally:
        server.stop()


def _engine(dsn: str, folder: Path, number: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(WORKTREE),
        "REVENTLESS_TEST_DELIVERIES": str(folder / f"attempts-{number}.txt"),
        "REVENTLESS_TEST_DELAY": "0.005",  # a batch of a few hundred stays in flight a while
        "REVENTLESS_DB": f"{dsn}?application_name=engine-{number}",
    }
    with (
        (folder / f"out-{number}.txt").open("w") as out,
        (folder / f"err-{number}.txt").open("w") as err,
    ):
        return subprocess.Popen(
            [sys.executable, "-m", "reventless", "run", APP, "--json"],
            cwd=WORKTREE,
            env=env,
            stdout=out,
            stderr=err,
            text=True,
        )


def _attempts(folder: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in folder.glob("attempts-*.txt"))


async def _recorded(dsn: str) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch("SELECT name, scheduled_time FROM chaos.recorded"))
    finally:
        await conn.close()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("mode", ["immediate", "fast"])
async def test_engines_reconnect_after_a_server_restart_and_lose_nothing(
    own_server: PostgresServer, tmp_path: Path, mode: str
) -> None:
    dsn = own_server.create_database()
    async with reventless.postgres.provider(dsn):  # the schema, then the recorder on it
        pass
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(RECORDER)
    finally:
        await conn.close()
    engines = [_engine(dsn, tmp_path, number) for number in range(2)]
    try:
        for number in range(2):
            deadline = time.monotonic() + 60
            while '"event": "running"' not in (tmp_path / f"out-{number}.txt").read_text():
                assert time.monotonic() < deadline, (tmp_path / f"err-{number}.txt").read_text()
                await anyio.sleep(0.05)
        before = await create_burst(dsn, "before", 400)
        with anyio.fail_after(60):
            while _attempts(tmp_path) < 20:  # noqa: ASYNC110 - other processes' files
                await anyio.sleep(0.01)
        committed_before_stop = len(await _recorded(dsn))
        own_server.halt(mode)  # mid-batch: some delivered, not committed
        await anyio.sleep(3)  # the engines fail, and try again with backoff
        assert [engine.poll() for engine in engines] == [None, None]
        own_server.resume()
        after = await create_burst(dsn, "after", 200)  # its opening retries inside asyncpg
        expected = set(before) | set(after)
        with anyio.fail_after(120):
            while len(await _recorded(dsn)) < len(expected):  # noqa: ASYNC110
                await anyio.sleep(0.2)
        await anyio.sleep(1)  # anything delivered twice would show by now
        recorded = await _recorded(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            events = [
                row[0] for row in await conn.fetch("SELECT message_id FROM reventless.events")
            ]
        finally:
            await conn.close()
    finally:
        for engine in engines:
            if engine.poll() is None:
                engine.send_signal(signal.SIGTERM)
        exits = [engine.wait(timeout=60) for engine in engines]
    assert committed_before_stop < len(before)  # the stop did land mid-run
    assert [key for key, count in Counter(map(tuple, recorded)).items() if count > 1] == []
    assert sorted(events) == sorted(expected)  # each effect once, none lost
    assert exits == [0, 0]
    logs = [(tmp_path / f"err-{number}.txt").read_text() for number in range(2)]
    assert not any("Traceback" in log for log in logs), logs
