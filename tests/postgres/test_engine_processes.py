"""``reventless run --db postgresql://...`` in real processes on one database: three engines
deliver a burst once each; a SIGKILLed engine's claimed fires are delivered by another (the
server rolls its transaction back, so its row locks go, and so does the half-done effect); an
unreachable server is waited for with backoff; a newer release's schema is refused, typed.

The fires are Singles of a past minute (created on a virtual clock five minutes back), so they
are due at once whatever the hour (delivered late under the misfire policy ``latest``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

import reventless.postgres
from reventless import Schedule, Scheduler, Single
from reventless.aggregate import command_payload
from reventless.testing import RecordingTarget, VirtualClock
from reventless.testing.ports import Note

WORKTREE = Path(__file__).resolve().parent.parent.parent
APP = "tests.pg_engine_app:plugin"


async def _create_burst(dsn: str, count: int) -> set[str]:
    """``count`` Singles of the minute five minutes ago, to aggregate ids of their own; their
    fire ids."""
    now = datetime.now(UTC)  # real clock: the engines run on it; any minute will do
    past = (now - timedelta(minutes=5)).replace(second=0, microsecond=0)
    async with reventless.postgres.provider(dsn, clock=VirtualClock(past)) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget(), name="burst")).operations
        minute = Single(past.year, past.month, past.day, past.hour, past.minute)
        schedules = [
            Schedule(name=f"n{n}", rate=minute, payload=command_payload(f"n-{n}", Note(text="x")))
            for n in range(count)
        ]
        await ops.create_schedules(schedules)
    return {f"n{n}@{past:%Y-%m-%dT%H:%M}:00Z" for n in range(count)}


def _engine(dsn: str, tmp: Path, number: int, *, delay: float = 0) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(WORKTREE),
        "REVENTLESS_TEST_DELIVERIES": str(tmp / f"deliveries-{number}.txt"),
        "REVENTLESS_TEST_DELAY": str(delay),
        "REVENTLESS_DB": dsn,  # --db from the environment
    }
    with (tmp / f"out-{number}.txt").open("w") as out, (tmp / f"err-{number}.txt").open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "reventless", "run", APP, "--json"],
            cwd=WORKTREE,
            env=env,
            stdout=out,
            stderr=err,
            text=True,
        )


def _deliveries(tmp: Path) -> list[tuple[str, str]]:
    lines = []
    for path in sorted(tmp.glob("deliveries-*.txt")):
        lines += [tuple(line.split()[:2]) for line in path.read_text().splitlines()]
    return lines  # type: ignore[return-value]


async def _events(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT message_id FROM reventless.events")
    finally:
        await conn.close()
    return [row[0] for row in rows]


async def _wait_for_events(dsn: str, count: int, limit: float = 90) -> list[str]:
    with anyio.fail_after(limit):
        while len(found := await _events(dsn)) < count:  # noqa: ASYNC110 - another process
            await anyio.sleep(0.2)
    return found


def _running(tmp: Path, number: int, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    path = tmp / f"out-{number}.txt"
    while '"event": "running"' not in path.read_text():
        assert time.monotonic() < deadline, (tmp / f"err-{number}.txt").read_text()
        time.sleep(0.05)


async def _served(dsn: str) -> dict[str, Any]:
    """``reventless schedulers --json``'s scheduler ``burst`` once every engine has said it
    runs (each says so as its engine starts)."""
    with anyio.fail_after(30):
        while True:
            done = await anyio.run_process(
                [sys.executable, "-m", "reventless", "schedulers", "--json", "--db", dsn],
                cwd=WORKTREE,
                env={**os.environ, "PYTHONPATH": str(WORKTREE)},
            )
            [burst] = json.loads(done.stdout)["schedulers"]
            if sum(a["engine_running"] for a in burst["attachments"]) == 3:
                return dict(burst)
            await anyio.sleep(0.2)


@pytest.fixture
def engines() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.anyio
@pytest.mark.timeout(180)
async def test_three_processes_deliver_a_burst_once(
    postgres_dsn: str, tmp_path: Path, engines: list[subprocess.Popen[str]]
) -> None:
    for number in range(3):
        engines.append(_engine(postgres_dsn, tmp_path, number))
    for number in range(3):
        _running(tmp_path, number)
    burst = await _served(postgres_dsn)
    assert len(burst["attachments"]) == 3
    assert all(a["engine_running"] for a in burst["attachments"])
    expected = await _create_burst(postgres_dsn, 1500)
    events = await _wait_for_events(postgres_dsn, len(expected))
    await anyio.sleep(1)  # anything delivered twice would show by now
    events = await _events(postgres_dsn)
    delivered = [fire for fire, _ in _deliveries(tmp_path)]
    assert sorted(events) == sorted(expected)  # each effect once
    assert [fire for fire, count in Counter(delivered).items() if count > 1] == []
    assert set(delivered) == expected
    for process in engines:
        process.send_signal(signal.SIGTERM)
    assert [process.wait(timeout=60) for process in engines] == [0, 0, 0]


@pytest.mark.anyio
@pytest.mark.timeout(180)
async def test_the_fires_a_killed_process_claimed_are_delivered_by_another(
    postgres_dsn: str, tmp_path: Path, engines: list[subprocess.Popen[str]]
) -> None:
    expected = await _create_burst(postgres_dsn, 100)
    engines.append(_engine(postgres_dsn, tmp_path, 0, delay=0.05))
    with anyio.fail_after(60):
        # Mid-batch: some delivered, none committed (another process: nothing to wait on).
        while len(_deliveries(tmp_path)) < 5:  # noqa: ASYNC110
            await anyio.sleep(0.02)
    engines[0].send_signal(signal.SIGKILL)
    engines[0].wait(timeout=30)
    killed = {fire for fire, _ in _deliveries(tmp_path)}
    assert await _events(postgres_dsn) == []  # its half-done batch was rolled back whole
    engines.append(_engine(postgres_dsn, tmp_path, 1))
    events = await _wait_for_events(postgres_dsn, len(expected))
    assert sorted(events) == sorted(expected)
    taken_over = {fire for fire, pid in _deliveries(tmp_path) if pid == str(engines[1].pid)}
    assert killed <= taken_over
    assert taken_over == expected


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.timeout(120)
def test_run_waits_for_an_unreachable_server_with_backoff(tmp_path: Path) -> None:
    url = f"postgresql://app:s3cret-pw@127.0.0.1:{_free_port()}/app"
    process = subprocess.Popen(
        [sys.executable, "-m", "reventless", "run", APP, "--db", url, "--json"],
        cwd=WORKTREE,
        env={**os.environ, "PYTHONPATH": str(WORKTREE)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    waits = [json.loads(process.stdout.readline()) for _ in range(2)]
    process.send_signal(signal.SIGTERM)
    rest, log = process.communicate(timeout=60)
    assert [(w["event"], w["retry_in"]) for w in waits] == [("waiting", 1), ("waiting", 2)]
    assert "server cannot be reached" in waits[0]["error"] or "connection" in waits[0]["error"]
    assert process.returncode == 0
    assert [json.loads(line)["event"] for line in rest.splitlines()] == ["stopping", "stopped"]
    assert "s3cret-pw" not in json.dumps(waits) + rest + log


def test_a_command_on_an_unreachable_server_fails_typed_without_the_password() -> None:
    url = f"postgresql://app:s3cret-pw@127.0.0.1:{_free_port()}/app"
    done = subprocess.run(
        [sys.executable, "-m", "reventless", "schedules", "list", "--db", url],
        cwd=WORKTREE,
        env={**os.environ, "PYTHONPATH": str(WORKTREE)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "PostgreSQL store" in done.stderr + done.stdout
    assert "s3cret-pw" not in done.stderr + done.stdout


@pytest.mark.anyio
async def test_a_store_of_a_newer_schema_is_refused_by_the_command(postgres_dsn: str) -> None:
    async with reventless.postgres.provider(postgres_dsn):
        pass
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute("UPDATE reventless.meta SET value = '2' WHERE key = 'schema_version'")
    finally:
        await conn.close()
    done = await anyio.run_process(
        [sys.executable, "-m", "reventless", "schedules", "list", "--db", postgres_dsn],
        cwd=WORKTREE,
        env={**os.environ, "PYTHONPATH": str(WORKTREE)},
        check=False,
    )
    said = (done.stdout + done.stderr).decode()
    assert done.returncode == 1
    assert "schema version 2 was written by a newer release" in said
