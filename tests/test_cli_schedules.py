"""``reventless schedules ...`` on a real store file, in-process and as a real process."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

import reventless.local
from reventless import Minutes, Schedule, Scheduler
from reventless.cli import main
from reventless.testing import FailingTarget, VirtualClock


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_create_list_show_pause_resume_delete(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    assert run(
        "schedules",
        "create",
        "daily-report",
        "Daily(9, 0)",
        "--payload",
        "{}",
        "--timezone",
        "Europe/Berlin",
        "--db",
        db,
    ) == (0, "created\n")
    assert run("schedules", "create", "tick", "Minutes(5)", "--payload", "x", "--db", db)[0] == 0
    assert run("schedules", "create", "tick", "Minutes(10)", "--payload", "y", "--db", db) == (
        0,
        "replaced\n",
    )
    status, text = run("schedules", "list", "--db", db)
    assert status == 0
    lines = text.splitlines()
    assert lines[0].split() == ["name", "rate", "timezone", "state", "next", "fire", "(UTC)"]
    assert lines[1].startswith("daily-report  Daily(9, 0)  Europe/Berlin  active")
    assert lines[2].startswith("tick          Minutes(10)  UTC            active")
    status, text = run("schedules", "show", "daily-report", "--db", db, "--count", "2")
    assert "rate:       Daily(9, 0)" in text and text.count("next fire:") == 2
    assert run("schedules", "pause", "tick", "--db", db) == (0, "paused; next fire -\n")
    status, text = run("schedules", "resume", "tick", "--db", db)
    assert text.startswith("active; next fire 20")
    status, text = run("schedules", "history", "tick", "--db", db, "--json")
    assert [entry["kind"] for entry in json.loads(text)] == [
        "created",
        "replaced",
        "paused",
        "resumed",
    ]
    assert run("schedules", "delete", "tick", "--db", db) == (0, "deleted\n")
    assert run("schedules", "delete", "tick", "--db", db) == (0, "nothing to delete\n")
    status, text = run("schedules", "list", "--db", db, "--json")
    names = [s["schedule"]["name"] for s in json.loads(text)["schedules"]]
    assert names == ["daily-report"]


def test_errors_are_one_line_with_an_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "e.db")
    assert run("schedules", "list", "--db", db)[0] == 2
    assert "no such file" in capsys.readouterr().err
    assert not Path(db).exists()  # reading never creates a store
    run("schedules", "create", "a", "Daily(9, 0)", "--payload", "p", "--db", db)
    assert run("schedules", "show", "missing", "--db", db)[0] == 1
    assert capsys.readouterr().err == "reventless: error: no schedule named 'missing'\n"
    assert run("schedules", "create", "b", "Daily(99, 0)", "--payload", "p", "--db", db)[0] == 2
    assert "rate.hour 99" in capsys.readouterr().err
    assert (
        run("schedules", "create", "bad name", "Daily(9, 0)", "--payload", "p", "--db", db)[0] == 2
    )


def test_dead_letters_and_fired_history_of_an_engine_run(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    start = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)

    async def fire_and_fail() -> None:
        clock = VirtualClock(start)
        async with reventless.local.provider(
            db, clock=clock, retry_policy=reventless.RetryPolicy(max_attempts=0)
        ) as provider:
            ops = (await Scheduler.make(provider, target=FailingTarget(failures=1))).operations
            await ops.create_schedule(Schedule(name="tick", rate=Minutes(1), payload="p"))
            async with anyio.create_task_group() as group:
                await group.start(provider.run)
                await clock.advance(timedelta(minutes=2, seconds=30))
                group.cancel_scope.cancel()

    anyio.run(fire_and_fail)
    status, text = run("schedules", "dead-letters", "--db", str(db))
    assert status == 0
    assert "tick@2026-11-27T08:02:00Z" in text and "ConnectionError" in text
    status, text = run("schedules", "history", "tick", "--db", str(db))
    assert re.search(r"fired +tick@2026-11-27T08:03:00Z", text)


def test_schedules_command_as_a_real_process(tmp_path: Path) -> None:
    db = str(tmp_path / "p.db")
    command = [sys.executable, "-m", "reventless", "schedules"]
    done = subprocess.run(
        [*command, "create", "x", "Hours(6)", "--payload", "p", "--db", db],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "created\n"), done.stderr
    done = subprocess.run(
        [*command, "list", "--db", db, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(done.stdout)["schedules"][0]["schedule"]["rate"] == {"kind": "hours", "n": 6}
