"""``reventless run`` on PostgreSQL says what the embedded engine's says, as real processes:
at its start, the fires found overdue (by the database's clock) and what the misfire policy
does with them; while it runs, fires left undelivered more than a minute past their due time;
and code that blocks the event loop ends the process (status 3), as on a store file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import asyncpg
import pytest

import reventless.postgres
from reventless import Schedule, Scheduler, Single
from reventless.testing import RecordingTarget, VirtualClock
from tests.test_cli_run_blocking import BOUND_S, TIMEOUT_S, finish
from tests.test_cli_run_signals import wait_for

ROOT = Path(__file__).resolve().parent.parent.parent


async def _overdue_singles(dsn: str, count: int) -> None:
    """``count`` Singles of the minute five minutes ago, in scheduler ``slow`` of schema
    ``orders``, made as of that minute."""
    # real clock: the engine runs on it; any minute will do (the Single takes that minute's date)
    now = datetime.now(UTC)
    past = (now - timedelta(minutes=5)).replace(second=0, microsecond=0)
    async with reventless.postgres.provider(
        dsn, schema="orders", clock=VirtualClock(past)
    ) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget(), name="slow")).operations
        minute = Single(past.year, past.month, past.day, past.hour, past.minute)
        await ops.create_schedules(
            [Schedule(name=f"s{n}", rate=minute, payload="p") for n in range(count)]
        )


def _start(
    dsn: str, app: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reventless", "run", app, "--db", dsn, *extra],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.timeout(120)
def test_run_says_the_overdue_fires_at_start_and_warns_of_fires_left_late(
    postgres_dsn: str, tmp_path: Path
) -> None:
    anyio.run(_overdue_singles, postgres_dsn, 3, backend="asyncio")
    process = _start(
        postgres_dsn, "tests.pg_slow_app", "--schema", "orders", "--delivery-timeout", "600s"
    )
    try:
        warned = ""
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "past their due time" not in warned:
            warned += process.stderr.readline()
    finally:
        process.send_signal(signal.SIGKILL)
        out, err = process.communicate(timeout=30)
    lines = out.splitlines()
    assert lines[0].startswith("running plugin 'slow' on postgresql://"), out
    assert lines[1] == (
        "found 3 missed fire(s) from while no engine ran: the misfire policy 'latest' (the most "
        "recent of each schedule) delivers 3"
    ), out
    late = re.search(r"(\d+) fire\(s\) are more than 60 s past their due time", warned)
    assert late and int(late[1]) == 3, warned + err
    assert "schema 'orders'" in warned


@pytest.mark.timeout(120)
def test_a_run_without_overdue_fires_says_none(postgres_dsn: str) -> None:
    process = _start(postgres_dsn, "tests.minutes_app")
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("running plugin 'minutes'")
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "missed" not in out and "past their due time" not in err, (out, err)


async def _fired(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM reventless.history WHERE kind LIKE 'fired%'")
        )
    finally:
        await conn.close()


@pytest.mark.timeout(120)
def test_a_blocked_loop_ends_the_process_with_status_3_as_on_a_file(
    postgres_dsn: str, tmp_path: Path
) -> None:
    env = {"BLOCKING_APP_MARK": str(tmp_path / "mark"), "BLOCKING_APP_SLEEP": "3600"}
    process = _start(
        postgres_dsn, "tests.blocking_app", "--delivery-timeout", f"{TIMEOUT_S}s", env=env
    )
    wait_for(tmp_path / "mark", process)
    status, out, err, took = finish(process, time.monotonic())
    assert status == 3, (status, out, err)
    assert took < BOUND_S, took
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith("reventless: error: the event loop has been held for "), line
    assert "in decide at " in line and "blocking_app.py:" in line, line
    assert "handling Work on aggregate 'worker' id 'w1'" in line, line
    # Not recorded: the server rolled the batch back with the process's connection.
    assert anyio.run(_fired, postgres_dsn, backend="asyncio") == 0
