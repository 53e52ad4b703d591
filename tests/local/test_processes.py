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


def read_timed_log(log: Path) -> list[tuple[str, int, float]]:
    """(fire id, pid, unix time of the delivery) per line of the delivery log."""
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        fire, pid, at = line.split(" ")
        rows.append((fire, int(pid), float(at)))
    return rows


def read_log(log: Path) -> list[tuple[str, int]]:
    return [(fire, pid) for fire, pid, _ in read_timed_log(log)]


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


@pytest.mark.slow
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


@pytest.mark.slow
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
    time.sleep(random.uniform(0, 2 / 3))  # any phase of the leader's renewals
    killed_at = time.time()
    stop(first, signal.SIGKILL)
    deadline = killed_at + 10
    while time.time() < deadline:
        if any(pid == second.pid for _, pid in read_log(log)):
            break
        time.sleep(0.05)
    status, errors = stop(second, signal.SIGTERM)
    assert status == 0, errors
    after = read_log(log)
    assert any(pid == second.pid for _, pid in after), "the standby never took over"
    # docs/local-engine.md: a standby takes over within lease_ttl + delivery_timeout + 1 s, and
    # delivers what is due within a poll interval (50 ms) more; the fires here are always due.
    takeover = min(at for _, pid, at in read_timed_log(log) if pid == second.pid) - killed_at
    print(f"takeover after SIGKILL: {takeover:.3f} s")
    assert takeover <= (2 + 0.5 + 1) + 0.05, f"takeover took {takeover:.3f} s"
    # While the first one led, the second fired nothing.
    first_lines = [i for i, (_, pid) in enumerate(after) if pid == first.pid]
    second_lines = [i for i, (_, pid) in enumerate(after) if pid == second.pid]
    assert max(first_lines) < min(second_lines)


class Chaos:
    """Engine processes on one store, started and ended by the test, with their end times."""

    def __init__(self, db: Path, log: Path, r0: float, speed: float) -> None:
        self.db, self.log, self.r0, self.speed = db, log, r0, speed
        self.running: list[subprocess.Popen[str]] = []
        self.ended: dict[int, float] = {}  # pid -> real time by which it had surely ended

    def start(self, *extra: str) -> None:
        self.running.append(
            start_engine(self.db, self.log, self.r0, self.speed, "--lease-ttl", "1", *extra)
        )

    def end(self, process: subprocess.Popen[str], sig: int) -> tuple[int, str]:
        self.running.remove(process)
        result = stop(process, sig)
        self.ended[process.pid] = time.time()
        return result

    def wait_for_all_to_exit(self, within: float) -> list[int]:
        deadline = time.time() + within
        statuses = []
        for process in list(self.running):
            try:
                process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                continue
            statuses.append(self.end(process, signal.SIGKILL)[0])
        return statuses


def mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    if os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass  # the disk is full
    finally:
        os.close(fd)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_chaos_of_sigkills_downtime_and_a_full_disk_loses_no_fire_and_never_overlaps(
    tmp_path: Path,
) -> None:
    """Two processes under random SIGKILLs, a downtime and its catch-up, then a full disk: every
    due fire is delivered, and a fire id delivered by two processes was delivered again only
    after the first process had ended (the lease's fence: never by two at once)."""

    seed = int(os.environ.get("REVENTLESS_CHAOS_SEED", os.getpid()))
    print(f"chaos seed {seed} (rerun with REVENTLESS_CHAOS_SEED={seed})")
    rng = random.Random(seed)
    disk = tmp_path / "disk"
    full_disk = mount_tmpfs(disk, "16m")
    chaos = Chaos(disk / "chaos.db", tmp_path / "fires.log", time.time(), 1800.0)
    try:
        chaos.start("--create")
        chaos.start()
        for _ in range(6):  # random SIGKILLs of leader or standby
            time.sleep(rng.uniform(0.3, 2.0))
            chaos.end(rng.choice(chaos.running), signal.SIGKILL)
            chaos.start()
        for process in list(chaos.running):  # downtime: both gone for 90 simulated minutes
            chaos.end(process, signal.SIGKILL)
        time.sleep(3.0)
        chaos.start()
        chaos.start()
        time.sleep(5.0)  # takeover after the fence, then the catch-up
        if full_disk:
            with sqlite3.connect(chaos.db) as raw:  # the WAL must grow again: it will not fit
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            fill(disk / "filler")
            statuses = chaos.wait_for_all_to_exit(within=20)
            assert statuses and all(status == 1 for status in statuses), statuses
            (disk / "filler").unlink()
            chaos.start()
            chaos.start()
            time.sleep(5.0)
        else:
            print("no full-disk phase: mounting a tmpfs needs root")
        stop_real = time.time()
        for process in list(chaos.running):
            status, errors = chaos.end(process, signal.SIGTERM)
            assert status == 0, errors
        with sqlite3.connect(chaos.db) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = stored_schedules(chaos.db)
    finally:
        for process in list(chaos.running):
            chaos.end(process, signal.SIGKILL)
        if full_disk:
            subprocess.run(["umount", "-l", str(disk)], check=False)

    check_chaos_log(chaos, stored, stop_real)


def check_chaos_log(
    chaos: Chaos, stored: dict[str, tuple[Schedule, datetime]], stop_real: float
) -> None:
    """Every fire due is in the log; a fire id logged by two processes was logged again only
    after the first one had ended."""
    from tests.local.engine_process import crash_schedules

    timed = read_timed_log(chaos.log)
    delivered = {fire for fire, _, _ in timed}
    until = T0 + timedelta(seconds=(stop_real - chaos.r0) * chaos.speed) - timedelta(minutes=30)
    created_at = next(iter(stored.values()))[1]
    expected: set[str] = set()
    for schedule in crash_schedules(T0):
        expected |= expected_fires(schedule, created_at, until)
    assert len(expected) > 500
    assert expected <= delivered, sorted(expected - delivered)[:10]
    first_by: dict[str, tuple[int, float]] = {}
    overlaps = []
    for fire, pid, at in timed:
        if fire not in first_by:
            first_by[fire] = (pid, at)
            continue
        first_pid, _ = first_by[fire]
        if first_pid != pid and chaos.ended.get(first_pid, float("inf")) > at:
            overlaps.append((fire, first_pid, pid))
    assert overlaps == [], overlaps[:10]
    repeats = len(timed) - len(delivered)
    print(f"{len(delivered)} fires, {repeats} repeated after a process ended, 0 overlapping")
