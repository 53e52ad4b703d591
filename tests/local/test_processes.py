"""Real processes: SIGKILL at random moments loses no fire; two processes never both fire."""

from __future__ import annotations

import itertools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

import reventless.local
from reventless import Schedule, Scheduler, fire_times
from reventless.testing import RecordingTarget, VirtualClock

HERE = Path(__file__).resolve().parent
T0 = datetime(2026, 3, 28, 0, 0, tzinfo=UTC)  # the Berlin clock change is the next night


def start_engine(
    db: Path, log: Path, r0: float, speed: float, *extra: str
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "engine_process.py"),
            str(db),
            str(log),
            "--t0",
            T0.isoformat(),
            "--r0",
            str(r0),
            "--speed",
            str(speed),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "ready":
        _, errors = stop(process, signal.SIGKILL)
        raise AssertionError(f"engine process did not start: {line}{errors}")
    return process


def stop(process: subprocess.Popen[str], sig: int) -> tuple[int, str]:
    """Send ``sig``, wait, close the pipes; returns the exit status and what went to stderr."""
    process.send_signal(sig)
    status = process.wait(timeout=60)
    assert process.stdout is not None and process.stderr is not None
    errors = process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    return status, errors


def read_log(log: Path) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        fire, pid = line.rsplit(" ", 1)
        rows.append((fire, int(pid)))
    return rows


def stored_schedules(db: Path) -> dict[str, tuple[Schedule, datetime]]:
    async def read() -> dict[str, tuple[Schedule, datetime]]:
        async with reventless.local.provider(db, clock=VirtualClock(T0)) as provider:
            ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
            page = await ops.list_schedules(limit=1000)
            return {s.schedule.name: (s.schedule, s.created_at) for s in page.schedules}

    return anyio.run(read)


def expected_fires(schedule: Schedule, created_at: datetime, until: datetime) -> set[str]:
    instants = itertools.takewhile(
        lambda t: t <= until, fire_times(schedule, created_at=created_at)
    )
    return {f"{schedule.name}@{t:%Y-%m-%dT%H:%M:%SZ}" for t in instants}


@pytest.mark.timeout(180)
def test_sigkill_at_random_moments_loses_no_fire_and_corrupts_nothing(tmp_path: Path) -> None:
    from tests.local.engine_process import crash_schedules

    db, log = tmp_path / "crash.db", tmp_path / "fires.log"
    speed = 3600.0  # one simulated hour a second
    r0 = time.time()
    seed = int(os.environ.get("REVENTLESS_CHAOS_SEED", os.getpid()))
    print(f"chaos seed {seed} (rerun with REVENTLESS_CHAOS_SEED={seed})")
    rng = random.Random(seed)
    kills = 5
    for number in range(kills):
        process = start_engine(
            db, log, r0, speed, "--lease-ttl", "1", *(["--create"] if number == 0 else [])
        )
        time.sleep(rng.uniform(0.3, 2.5))
        stop(process, signal.SIGKILL)
    # The last run ends gracefully; everything due before it stops must be there.
    process = start_engine(db, log, r0, speed, "--lease-ttl", "1")
    time.sleep(5.0)  # the lease of the last one killed runs out after 1 + 0.5 + 1 s
    stop_real = time.time()
    status, errors = stop(process, signal.SIGTERM)
    assert status == 0, errors
    until = T0 + timedelta(seconds=(stop_real - r0) * speed) - timedelta(minutes=30)

    delivered = [fire for fire, _ in read_log(log)]
    originals = {s.name: s for s in crash_schedules(T0)}
    stored = stored_schedules(db)
    # No schedule lost or corrupted: all are there, unchanged, but the Single once it fired.
    single_done = T0 + timedelta(hours=4) <= until
    assert set(stored) == set(originals) - ({"once"} if single_done else set())
    created_at = next(iter(stored.values()))[1]
    expected: set[str] = set()
    for name, schedule in originals.items():
        assert name not in stored or stored[name][0] == schedule
        expected |= expected_fires(schedule, created_at, until)
    assert len(expected) > 500
    assert expected <= set(delivered), sorted(expected - set(delivered))[:10]
    # Nothing that was never due was delivered; repeats are repeats of the same fire id.
    latest_possible = T0 + timedelta(seconds=(time.time() - r0) * speed)
    beyond = set()
    for name, schedule in originals.items():
        beyond |= {fire for fire in delivered if fire.startswith(name + "@")} - expected_fires(
            schedule, created_at, latest_possible
        )
    assert beyond == set()
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    duplicates = {fire: n for fire, n in Counter(delivered).items() if n > 1}
    print(f"{len(set(delivered))} fires, {len(duplicates)} repeated after {kills} SIGKILLs")


@pytest.mark.timeout(120)
def test_two_processes_never_both_fire_and_the_standby_takes_over(tmp_path: Path) -> None:
    db, log = tmp_path / "lease.db", tmp_path / "fires.log"
    speed = 600.0  # ten simulated minutes a second
    r0 = time.time()
    first = start_engine(db, log, r0, speed, "--lease-ttl", "2", "--create")
    time.sleep(1.0)
    # The standby writes a schedule of its own; the leader must pick it up and fire it.
    second = start_engine(db, log, r0, speed, "--lease-ttl", "2", "--create-extra", "extra")
    time.sleep(3.0)
    before = read_log(log)
    leaders = {pid for _, pid in before}
    assert leaders == {first.pid}, "only the lease holder fires"
    assert any(fire.startswith("extra@") for fire, _ in before)
    killed_at = time.time()
    stop(first, signal.SIGKILL)
    deadline = killed_at + 10
    while time.time() < deadline:
        if any(pid == second.pid for _, pid in read_log(log)):
            break
        time.sleep(0.05)
    takeover = time.time() - killed_at
    status, errors = stop(second, signal.SIGTERM)
    assert status == 0, errors
    after = read_log(log)
    assert any(pid == second.pid for _, pid in after), "the standby never took over"
    # The fence: lease_ttl + delivery_timeout + 1 s after the last renewal, plus one poll.
    assert takeover < (2 + 0.5 + 1) + 2 / 3 + 1.5, f"takeover took {takeover:.1f} s"
    # While the first one led, the second fired nothing.
    first_lines = [i for i, (_, pid) in enumerate(after) if pid == first.pid]
    second_lines = [i for i, (_, pid) in enumerate(after) if pid == second.pid]
    assert max(first_lines) < min(second_lines)
