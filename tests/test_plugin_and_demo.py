"""Plugins, the demo, and ``reventless run`` as a real process."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

import reventless.local
from reventless import Hours, PutOutcome, Schedule, Scheduler, Single, ValidationError
from reventless.cli import main
from reventless.plugin import Plugin
from reventless.testing import RecordingTarget, VirtualClock
from tests.test_aggregate import TICK, counter_spec

START = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)


def make_plugin(payload: str = TICK) -> Plugin:
    plugin = Plugin("counting")
    counters = plugin.aggregate(counter_spec())
    plugin.scheduler(
        "counters",
        target=counters,
        schedules=[Schedule(name="tick", rate=Hours(1), payload=payload)],
    )
    return plugin


def test_declared_schedules_keep_their_anchor_across_starts(tmp_path: Path) -> None:
    path = tmp_path / "p.db"

    async def start_at(at: datetime, plugin: Plugin) -> tuple[datetime, int, int]:
        async with (
            reventless.local.provider(path, clock=VirtualClock(at)) as provider,
            plugin.start(provider) as running,
        ):
            ops = running.schedulers["counters"].operations
            state = await ops.get_schedule("tick")
            return state.created_at, state.version, len(await ops.history("tick"))

    first = anyio.run(start_at, START, make_plugin())
    again = anyio.run(start_at, START + timedelta(minutes=10), make_plugin())
    assert again == first  # unchanged: same anchor, same version, no new history
    changed = anyio.run(
        start_at,
        START + timedelta(minutes=20),
        make_plugin('{"aggregateId": "c-2", "command": "Tick"}'),
    )
    assert changed[0] == START + timedelta(minutes=20) and changed[1] == 2


@pytest.mark.anyio
async def test_ensure_schedule_reports_unchanged() -> None:
    async with (
        reventless.local.provider(":memory:", clock=VirtualClock(START)) as provider,
        make_plugin().start(provider) as running,
    ):
        ops = running.schedulers["counters"].operations
        schedule = Schedule(name="tick", rate=Hours(1), payload=TICK)
        assert await ops.ensure_schedule(schedule) is PutOutcome.UNCHANGED


def test_plugin_declarations_are_checked() -> None:
    plugin = Plugin("p")
    spec = plugin.aggregate(counter_spec())
    with pytest.raises(ValidationError, match="not declared yet"):
        plugin.aggregate(spec)
    with pytest.raises(ValidationError, match="target"):
        plugin.scheduler("s", target="no-such-topic")
    with pytest.raises(ValidationError, match="declared on this plugin"):
        plugin.scheduler("s", target=counter_spec())
    plugin.event_topic("health")
    plugin.scheduler("s", target="health")
    with pytest.raises(ValidationError, match="not declared yet"):
        plugin.scheduler("s", target="health")


def run_demo(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(["demo", *argv], out=out), out.getvalue()


@pytest.mark.slow
def test_the_demo_runs_deterministically_and_its_counts_equal_the_oracle() -> None:
    status, first = run_demo()
    assert status == 0
    assert run_demo() == (0, first)
    counts = re.findall(r"^  ([a-z-]+) +(\d+) / (\d+)", first, flags=re.M)
    assert {name for name, _, _ in counts} >= {
        "daily-report",
        "cleanup-task",
        "meeting-reminder",
        "process-orders",
        "health-check",
        "business-report",
        "daily-cleanup",
        "reminder-ada",
        "reminder-grace",
        "reminder-linus",
    }
    assert all(got == due for _, got, due in counts)
    assert {n: int(g) for n, g, _ in counts}["health-check"] == 7 * 24 * 12
    assert (
        "10:00 CET   meeting-reminder  users/team: ReminderSent(text=Sprint review at 10:00)"
        in first
    )
    assert "07:00 CEST  cleanup-task" in first  # six hours after 00:00 CET, across the change
    # The user-reminders reaction: reminders at 10:00 in each user's zone; grace's account is
    # closed before hers fires, so it is deleted and due 0 times.
    assert "(reaction) created reminder-ada: Single(2026, 3, 24, 10, 0) in Europe/London" in first
    assert "11:00 CET   reminder-ada      users/ada: ReminderSent" in first
    assert "20:30 CET   user-reminders    (reaction) deleted reminder-grace" in first
    assert {n: (int(g), int(d)) for n, g, d in counts}["reminder-grace"] == (0, 0)
    assert "0 delivery failures" in first


def test_the_demo_takes_its_flags() -> None:
    status, text = run_demo("--days", "2", "--timezone", "America/New_York", "--all")
    assert status == 0
    assert "(America/New_York)" in text
    assert text.count("process-orders    orders/order-processor") == 48
    status, _ = run_demo("--days", "0")
    assert status == 2


def test_the_demo_on_scaled_real_time_and_a_kept_store(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    status, text = run_demo("--days", "1", "--speed", "172800", "--db", str(db))
    assert status == 0, text
    assert "on 172800x real time" in text
    assert db.exists()
    listing = subprocess.run(
        [
            sys.executable,
            "-m",
            "reventless",
            "schedules",
            "list",
            "--db",
            str(db),
            "--scheduler",
            "reports",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "daily-report" in listing.stdout


@pytest.mark.timeout(120)
def test_reventless_run_fires_a_plugin_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "my_plugin.py").write_text(
        textwrap.dedent("""
        import time
        from datetime import datetime, timezone
        from reventless import Schedule, Single
        from reventless.plugin import Plugin
        from tests.test_aggregate import counter_spec

        # real clock: a Single due this minute, declared within it whatever the time of day
        now = datetime.now(timezone.utc)
        if now.second >= 55:  # a Single of a minute already gone is refused at create
            time.sleep(61 - now.second)
            now = datetime.now(timezone.utc)  # real clock: as above
        plugin = Plugin("example")
        counters = plugin.aggregate(counter_spec())
        plugin.scheduler("counters", target=counters, schedules=[
            Schedule(name="now", rate=Single(now.year, now.month, now.day, now.hour, now.minute),
                     payload='{"aggregateId": "c-1", "command": "Tick"}'),
        ])
    """)
    )
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{Path.cwd()}")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reventless",
            "run",
            "my_plugin:plugin",
            "--db",
            str(tmp_path / "run.db"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    lines = [process.stdout.readline(), process.stdout.readline()]
    assert lines[0].startswith("running plugin 'example'"), lines[0] + process.stderr.read()
    assert re.match(r"\S+Z counters now@\S+ ok$", lines[1].strip()), lines
    process.send_signal(signal.SIGTERM)
    rest = process.stdout.read()
    assert process.wait(timeout=60) == 0
    assert "stopping on SIGTERM" in rest and rest.rstrip().endswith("stopped")
    process.stdout.close()
    process.stderr.close()


def test_reventless_run_refuses_what_is_not_a_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "reventless.cli.demo:ORDERS", "--db", "x.db"]) == 2
    assert "a reventless.Plugin object" in capsys.readouterr().err
    assert main(["run", "no_such_module:plugin", "--db", "x.db"]) == 2
    assert not Path("x.db").exists()


def test_a_declared_single_that_fired_stays_completed_across_restarts(tmp_path: Path) -> None:
    """Restarting a plugin after its Single fired neither re-creates nor refuses it."""
    path = tmp_path / "single.db"
    once = Schedule(name="once", rate=Single(2026, 11, 27, 9, 0), payload=TICK)

    def plugin() -> Plugin:
        declared = Plugin("once")
        counters = declared.aggregate(counter_spec())
        declared.scheduler("counters", target=counters, schedules=[once])
        return declared

    async def start_at(at: datetime, run_for: timedelta) -> list[str]:
        clock = VirtualClock(at)
        async with (
            reventless.local.provider(path, clock=clock) as provider,
            plugin().start(provider) as running,
        ):
            async with anyio.create_task_group() as group:
                await group.start(provider.run)
                await clock.advance(run_for)
                group.cancel_scope.cancel()
            ops = running.schedulers["counters"].operations
            return [entry.kind.value for entry in await ops.history("once")]

    assert anyio.run(start_at, START, timedelta(hours=2)) == ["created", "fired", "completed"]
    # Started again after it fired: still completed, nothing new recorded.
    later = START + timedelta(days=1)
    assert anyio.run(start_at, later, timedelta(minutes=1)) == ["created", "fired", "completed"]


@pytest.mark.anyio
async def test_ensure_schedule_refuses_a_past_single_that_never_existed() -> None:
    async with reventless.local.provider(":memory:", clock=VirtualClock(START)) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        with pytest.raises(ValidationError, match="in the past"):
            await ops.ensure_schedule(
                Schedule(name="late", rate=Single(2026, 11, 27, 7, 0), payload="p")
            )
