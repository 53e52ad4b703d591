"""The chaos run of the PostgreSQL engine, shared by ``tests/postgres/test_chaos.py`` (short) and
``benchmarks/bench_pg_chaos.py`` (minutes long, figures): real ``reventless run`` processes on one
database, killed (SIGKILL) at random moments and started again, while fires fall due.

What falls due (``ChaosPlan``): bursts of Singles of a past minute, each created at a random moment
of the run and due at once; and, when ``minutes`` > 0, Singles at each of the next ``minutes``
minute boundaries and minute rates (``Minutes(1)``, ``max_fires=minutes``, a one-minute jitter:
their fires spread over each minute). The app is ``tests/pg_engine_app.py``: the scheduler sends
every fire to the ``notes`` aggregate, a command topic of the same database, so the command's
event and the fire's record commit in one transaction; its decide notes each delivery attempt in
a file of the process (``FIRE_ID PID TIME``) and may block ``delay`` s (a slower target).

What proves the outcome, all read from the database:

- ``chaos.recorded``: a ``BEFORE INSERT`` trigger on the history writes one row for every
  delivered-fire record an engine commits, before the history's ``ON CONFLICT DO NOTHING`` can
  drop a repeat, with the process that wrote it (``application_name``) and the database's clock
  at that moment (just before the batch's commit: the fire's delivered time). A fire claimed
  and committed twice would show here twice, whatever deduplicates downstream.
- the events: one per fire id (the command's message id).
- the attempt files: a fire attempted by a process that was killed, and committed by another,
  was among the killed process's claimed fires; its lateness (delivered minus due, by the
  database's clock) and its takeover (delivered minus the instant of the kill) are measured.
"""

from __future__ import annotations

import inspect
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import asyncpg

import reventless.postgres
from reventless import Minutes, Schedule, Scheduler, Single
from reventless.aggregate import command_payload
from reventless.fire_times import fire_jitter, fire_times
from reventless.target import fire_id
from reventless.testing import RecordingTarget, VirtualClock
from reventless.testing.ports import Note

__all__ = ("RECORDER", "ChaosPlan", "ChaosReport", "create_burst", "run_chaos")

WORKTREE = Path(__file__).resolve().parent.parent
APP = "tests.pg_engine_app:plugin"

RECORDER = """
CREATE SCHEMA chaos;
CREATE TABLE chaos.recorded (
    name text NOT NULL, scheduled_time bigint NOT NULL, kind text NOT NULL,
    by text NOT NULL, at timestamptz NOT NULL
);
CREATE FUNCTION chaos.note_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind IN ('fired', 'fired+completed') THEN
        INSERT INTO chaos.recorded VALUES (NEW.name, NEW.scheduled_time, NEW.kind,
            current_setting('application_name'), clock_timestamp());
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER chaos_note_record BEFORE INSERT ON reventless.history
    FOR EACH ROW EXECUTE FUNCTION chaos.note_record();
"""


@dataclass
class ChaosPlan:
    engines: int = 3
    bursts: tuple[int, ...] = (800, 800)  # created at random moments, each due at once
    burst_window: float = 20.0  # the bursts are created within this many seconds of the start
    minutes: int = 0  # minute-boundary Singles and minute rates over this many minutes
    singles: int = 300  # Singles at each minute boundary
    rates: int = 600  # Minutes(1) rates, jittered over the minute, max_fires=minutes
    kill_gap: tuple[float, float] = (3.0, 8.0)  # seconds between random kills
    # After each burst, the process that delivered last is killed (its batch in flight).
    kill_after_burst: tuple[float, float] = (0.1, 1.5)
    restart_after: tuple[float, float] = (0.2, 2.0)
    delay: float = 0.0  # each delivery blocks this long (a slower target)
    seed: int = 0
    deadline: float = 300.0  # for every fire to be delivered, from the start


@dataclass
class Kill:
    launch: int
    at: datetime  # the database's clock just before the signal
    released: datetime | None = None  # when the server had ended the process's sessions
    due: int = 0  # fires due then (the killed process's among them)


@dataclass
class ChaosReport:
    expected: int
    delivered: int  # fires whose delivery was committed once, as expected
    lost: list[str]
    doubled: list[str]  # committed twice (chaos.recorded) or two events
    unexpected: list[str]  # committed without being expected
    not_fired_kinds: dict[str, int]  # history rows other than delivered fires (missed ...)
    tracebacks: list[str]  # stderr of a process that printed one
    exits: list[int | None]  # of the processes stopped at the end (SIGTERM)
    kills: int
    launches: int
    lateness_s: list[float] = field(default_factory=list)  # of every fire
    killed_lateness_s: list[float] = field(default_factory=list)  # of a killed process's fires
    takeover_s: list[float] = field(default_factory=list)  # kill -> re-delivered, per such fire
    kills_with_claims: int = 0
    # Per kill that had claimed fires: from the kill to another process's first attempt of one
    # of them (the attempt files' time.time(): the same machine's clock as the server's here),
    # from the kill to the server's ending its sessions, and the fires due then.
    retake_s: list[float] = field(default_factory=list)
    release_s: list[float] = field(default_factory=list)
    due_at_release: list[int] = field(default_factory=list)
    poll_interval: float = 1.0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.unexpected or self.tracebacks)

    def summary(self) -> dict[str, Any]:
        def quantiles(values: list[float]) -> dict[str, float | None]:
            if not values:
                return {"p50": None, "p99": None, "max": None}
            ordered = sorted(values)
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            return {"p50": statistics.median(ordered), "p99": p99, "max": ordered[-1]}

        return {
            "expected": self.expected,
            "delivered": self.delivered,
            "lost": len(self.lost),
            "doubled": len(self.doubled),
            "unexpected": len(self.unexpected),
            "not_fired_kinds": self.not_fired_kinds,
            "tracebacks": len(self.tracebacks),
            "kills": self.kills,
            "kills_with_claims": self.kills_with_claims,
            "launches": self.launches,
            "killed_claimed_fires": len(self.killed_lateness_s),
            "lateness_all_s": quantiles(self.lateness_s),
            "lateness_killed_s": quantiles(self.killed_lateness_s),
            "takeover_s": quantiles(self.takeover_s),
            "retake_s": [round(value, 2) for value in self.retake_s],
            "release_s": [round(value, 2) for value in self.release_s],
            "due_at_release": self.due_at_release,
            "seconds": round(self.seconds, 1),
        }


class _Run:
    def __init__(self, dsn: str, folder: Path, plan: ChaosPlan) -> None:
        self.dsn = dsn
        self.folder = folder
        self.plan = plan
        self.random = random.Random(plan.seed)
        self.processes: dict[int, subprocess.Popen[str]] = {}  # launch -> process
        self.running: dict[int, int] = {}  # slot -> launch
        self.kills: list[Kill] = []
        self.due: dict[str, datetime] = {}  # fire id -> due instant
        self.launches = 0
        self.killing = anyio.Lock()  # one kill at a time (and one query on the admin connection)

    def start(self, slot: int) -> None:
        launch = self.launches
        self.launches += 1
        separator = "&" if "?" in self.dsn else "?"
        env = {
            **os.environ,
            "PYTHONPATH": str(WORKTREE),
            "REVENTLESS_TEST_DELIVERIES": str(self.folder / f"attempts-{launch}.txt"),
            "REVENTLESS_TEST_DELAY": str(self.plan.delay),
            "REVENTLESS_DB": f"{self.dsn}{separator}application_name=chaos-{launch}",
        }
        out = (self.folder / f"out-{launch}.txt").open("w")
        err = (self.folder / f"err-{launch}.txt").open("w")
        with out, err:
            self.processes[launch] = subprocess.Popen(
                [sys.executable, "-m", "reventless", "run", APP, "--json"],
                cwd=WORKTREE,
                env=env,
                stdout=out,
                stderr=err,
                text=True,
            )
        self.running[slot] = launch

    async def kill(self, admin: Any, slot: int) -> None:
        launch = self.running.pop(slot)
        at = await admin.fetchval("SELECT clock_timestamp()")
        process = self.processes[launch]
        process.send_signal(signal.SIGKILL)
        await anyio.to_thread.run_sync(process.wait)
        kill = Kill(launch, at)
        self.kills.append(kill)
        with anyio.move_on_after(30):
            sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
            while await admin.fetchval(sessions, f"chaos-{launch}"):  # noqa: ASYNC110 - polled
                await anyio.sleep(0.01)
            kill.released, kill.due = await admin.fetchrow(
                "SELECT clock_timestamp(), (SELECT count(*) FROM reventless.schedules WHERE"
                " due_at <= (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)"
            )

    def last_attempt(self, slot: int) -> float:
        path = self.folder / f"attempts-{self.running[slot]}.txt"
        return path.stat().st_mtime if path.exists() else 0.0

    async def all_running(self, limit: float = 60.0) -> None:
        """Until every live process has said it runs (a process still starting when told to
        stop has no handler yet, and ends by the signal)."""
        with anyio.move_on_after(limit):
            for launch in self.running.values():
                path = self.folder / f"out-{launch}.txt"
                while '"event": "running"' not in path.read_text():  # noqa: ASYNC110
                    await anyio.sleep(0.1)

    async def chaos(self, admin: Any, stop: anyio.Event) -> None:
        """Kill a random running process every so often, and start it again a bit later."""
        async with anyio.create_task_group() as group:
            while not stop.is_set():
                with anyio.move_on_after(self.random.uniform(*self.plan.kill_gap)):
                    await stop.wait()
                if stop.is_set():
                    break
                await self.kill_one(admin, group)

    async def kill_one(self, admin: Any, group: anyio.abc.TaskGroup, busy: bool = False) -> None:
        """Kill a random process, or (``busy``) the one that attempted a delivery last."""
        async with self.killing:
            if not self.running:
                return
            slot = self.random.choice(sorted(self.running))
            if busy:
                slot = max(self.running, key=self.last_attempt)
            await self.kill(admin, slot)
        group.start_soon(self.restart, slot, self.random.uniform(*self.plan.restart_after))

    async def restart(self, slot: int, after: float) -> None:
        await anyio.sleep(after)
        self.start(slot)

    def stop_all(self) -> list[int | None]:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        exits: list[int | None] = []
        for launch, process in self.processes.items():
            if launch in self.running.values():
                try:
                    exits.append(process.wait(timeout=60))
                except subprocess.TimeoutExpired:
                    process.kill()
                    exits.append(None)
        return exits


async def create_burst(dsn: str, tag: str, count: int) -> list[str]:
    """``count`` Singles of the minute five minutes past (due at once), each to its own
    aggregate id; their fire ids."""
    now = datetime.now(UTC)  # real clock: the engines run on it; any minute will do
    past = (now - timedelta(minutes=5)).replace(second=0, microsecond=0)
    async with reventless.postgres.provider(dsn, clock=VirtualClock(past)) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget(), name="burst")).operations
        minute = Single(past.year, past.month, past.day, past.hour, past.minute)
        names = [f"{tag}-{n}" for n in range(count)]
        await ops.create_schedules(
            [
                Schedule(name=name, rate=minute, payload=command_payload(name, Note(text="b")))
                for name in names
            ]
        )
    return [fire_id(name, past) for name in names]


async def _create_timed(dsn: str, plan: ChaosPlan) -> dict[str, datetime]:
    """The minute-boundary Singles and the jittered minute rates; their fire ids and due
    instants."""
    due: dict[str, datetime] = {}
    if plan.minutes <= 0:
        return due
    now = datetime.now(UTC)  # real clock: the engines run on it
    first = (now + timedelta(seconds=80)).replace(second=0, microsecond=0)
    schedules: list[Schedule] = []
    for k in range(plan.minutes):
        minute = first + timedelta(minutes=k)
        rate = Single(minute.year, minute.month, minute.day, minute.hour, minute.minute)
        for n in range(plan.singles):
            name = f"single{k}-{n}"
            payload = command_payload(name, Note(text="s"))
            schedules.append(Schedule(name=name, rate=rate, payload=payload))
            due[fire_id(name, minute)] = minute
    rates = [
        Schedule(
            name=f"rate-{n}",
            rate=Minutes(1),
            payload=command_payload(f"rate-{n}", Note(text="r")),
            jitter_minutes=1,
            max_fires=plan.minutes,
        )
        for n in range(plan.rates)
    ]
    async with reventless.postgres.provider(dsn) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget(), name="burst")).operations
        for start in range(0, len(schedules), 500):
            await ops.create_schedules(schedules[start : start + 500])
        for start in range(0, len(rates), 500):
            await ops.create_schedules(rates[start : start + 500])
        conn = await asyncpg.connect(dsn)
        try:
            created = dict(
                await conn.fetch(
                    "SELECT name, created_at FROM reventless.schedules WHERE name LIKE 'rate-%'"
                )
            )
        finally:
            await conn.close()
    for schedule in rates:
        created_at = datetime.fromtimestamp(created[schedule.name] / 1e6, UTC)
        for instant in fire_times(schedule, created_at=created_at):
            due[fire_id(schedule.name, instant)] = instant + fire_jitter(schedule.name, instant, 1)
    return due


def _attempts(folder: Path) -> dict[int, dict[str, float]]:
    """Each launch's delivery attempts, from its file: fire id -> the first attempt's time."""
    found: dict[int, dict[str, float]] = {}
    for path in folder.glob("attempts-*.txt"):
        launch = found.setdefault(int(path.stem.split("-")[1]), {})
        for line in path.read_text().splitlines():
            fire, _, at = line.split()
            launch.setdefault(fire, float(at))
    return found


async def run_chaos(dsn: str, folder: Path, plan: ChaosPlan, say: Any = None) -> ChaosReport:
    """One chaos run on the empty database ``dsn`` (files in ``folder``); the report."""
    say = say or (lambda message: None)
    async with reventless.postgres.provider(dsn):  # makes the schema
        pass
    # What ``reventless run`` polls at: the provider's default.
    poll_interval = inspect.signature(reventless.postgres.provider).parameters["poll_interval"]
    admin: Any = await asyncpg.connect(dsn)
    try:
        await admin.execute(RECORDER)
        run = _Run(dsn, folder, plan)
        started = time.monotonic()
        run.due.update(await _create_timed(dsn, plan))
        for slot in range(plan.engines):
            run.start(slot)
        say(f"{plan.engines} engines started; {len(run.due)} timed fires")
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(run.chaos, admin, stop)
            burst_times = sorted(run.random.uniform(1.0, plan.burst_window) for _ in plan.bursts)
            for number, (when, count) in enumerate(zip(burst_times, plan.bursts, strict=True)):
                await anyio.sleep(max(0.0, started + when - time.monotonic()))
                async with run.killing:
                    at = await admin.fetchval("SELECT clock_timestamp()")
                for fire in await create_burst(dsn, f"burst{number}", count):
                    run.due[fire] = at
                say(f"burst {number}: {count} fires due at once")
                await anyio.sleep(run.random.uniform(*plan.kill_after_burst))
                await run.kill_one(admin, group, busy=True)
            expected = set(run.due)
            deadline = started + plan.deadline
            while time.monotonic() < deadline:
                async with run.killing:
                    committed = await admin.fetchval("SELECT count(*) FROM chaos.recorded")
                if committed >= len(expected):
                    break
                await anyio.sleep(0.5)
            await anyio.sleep(2.0)  # anything delivered twice would show by now
            stop.set()
        seconds = time.monotonic() - started
        await run.all_running()
        exits = await anyio.to_thread.run_sync(run.stop_all)
        recorded = await admin.fetch("SELECT name, scheduled_time, by, at FROM chaos.recorded")
        events = await admin.fetch(
            "SELECT message_id, count(*) FROM reventless.events GROUP BY message_id"
        )
        kinds = await admin.fetch(
            "SELECT kind, count(*) FROM reventless.history"
            " WHERE kind NOT IN ('created', 'fired', 'fired+completed') GROUP BY kind"
        )
    finally:
        await admin.close()
    return _report(run, recorded, events, kinds, exits, float(poll_interval.default), seconds)


def _report(
    run: _Run,
    recorded: list[Any],
    events: list[Any],
    kinds: list[Any],
    exits: list[int | None],
    poll_interval: float,
    seconds: float,
) -> ChaosReport:
    expected = set(run.due)
    committed: dict[str, list[tuple[int, datetime]]] = {}
    for name, scheduled_us, by, at in recorded:
        fire = fire_id(name, datetime.fromtimestamp(scheduled_us / 1e6, UTC))
        committed.setdefault(fire, []).append((int(by.removeprefix("chaos-")), at))
    event_counts = dict(events)
    doubled = sorted(
        {f for f, rows in committed.items() if len(rows) > 1}
        | {f for f, count in event_counts.items() if count > 1}
    )
    tracebacks = [
        path.name
        for path in sorted(run.folder.glob("err-*.txt"))
        if "Traceback" in path.read_text()
    ]
    report = ChaosReport(
        expected=len(expected),
        delivered=sum(1 for f in expected if len(committed.get(f, ())) == 1),
        lost=sorted(expected - set(committed) | (expected - set(event_counts))),
        doubled=doubled,
        unexpected=sorted(set(committed) - expected),
        not_fired_kinds=dict(kinds),
        tracebacks=tracebacks,
        exits=exits,
        kills=len(run.kills),
        launches=run.launches,
        poll_interval=poll_interval,
        seconds=seconds,
    )
    for fire, rows in committed.items():
        if fire in run.due:
            report.lateness_s.append((rows[0][1] - run.due[fire]).total_seconds())
    attempts = _attempts(run.folder)
    for kill in run.kills:
        claimed = [
            fire
            for fire in attempts.get(kill.launch, set())
            if fire in committed and committed[fire][0][0] != kill.launch
        ]
        if claimed:
            report.kills_with_claims += 1
            # Taken over: the first attempt of one of them by the process that committed it.
            retaken = min(attempts[committed[fire][0][0]][fire] for fire in claimed)
            report.retake_s.append(retaken - kill.at.timestamp())
            released = kill.released or datetime.max.replace(tzinfo=UTC)
            report.release_s.append((released - kill.at).total_seconds())
            report.due_at_release.append(kill.due)
        for fire in claimed:
            at = committed[fire][0][1]
            report.killed_lateness_s.append((at - run.due[fire]).total_seconds())
            report.takeover_s.append((at - kill.at).total_seconds())
    return report
