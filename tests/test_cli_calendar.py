"""The command line with calendar rates: ``preview`` and ``schedules create``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from reventless.cli import main


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


AFTER = "2026-12-01T00:00:00Z"


@pytest.mark.parametrize(
    ("rate", "first", "expression"),
    [
        ("Monthly(-1, 18, 0)", "2026-12-31 17:00", "cron(0 18 L * ? *)"),
        ("NthWeekday(2, 1, 9, 0)", "2026-12-08 08:00", "cron(0 9 ? * 3#2 *)"),
        ("Cron(0 9 ? * 3#2 *)", "2026-12-08 08:00", "cron(0 9 ? * 3#2 *)"),
        ("Cron('*/15 9-17 * * 1-5')", "2026-12-01 08:00", "cron(*/15 9-17 ? * 2-6 *)"),
    ],
)
def test_preview_shows_calendar_rates_and_their_aws_expression(
    rate: str, first: str, expression: str
) -> None:
    status, text = run("preview", rate, "--timezone", "Europe/Berlin", "--after", AFTER)
    assert status == 0
    lines = text.splitlines()
    assert lines[3].split()[1:3] == first.split()
    assert f"ScheduleExpression: {expression}" in text
    status, text = run("preview", rate, "--timezone", "Europe/Berlin", "--after", AFTER, "--json")
    document = json.loads(text)
    assert document["eventBridgeScheduler"]["ScheduleExpression"] == expression


def test_preview_of_a_cron_aws_cannot_express_says_why_and_still_previews() -> None:
    status, text = run("preview", "Cron(0 0 1,15 * MON)", "--after", AFTER, "--count", "3")
    assert status == 0
    assert "2026-12-07 00:00" in text
    assert "EventBridge Scheduler: not available: rate.expression '0 0 1,15 * MON'" in text
    status, text = run("preview", "Cron(0 0 1,15 * MON)", "--after", AFTER, "--json")
    aws = json.loads(text)["eventBridgeScheduler"]
    assert aws["refusedField"] == "rate.expression"
    assert "matching either" in aws["refused"]


def test_a_bad_cron_is_one_line_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("preview", "Cron(0 9 ? * 3#6 *)")[0] == 2
    error = capsys.readouterr().err
    assert error.startswith("reventless: error: rate.expression '0 9 ? * 3#6 *': day-of-week")
    assert "Traceback" not in error
    assert error.count("\n") == 1


def test_schedules_create_stores_calendar_rates(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    for name, rate in (
        ("month-end", "Monthly(-1, 18, 0)"),
        ("second-tue", "NthWeekday(2, 1, 9, 0)"),
        ("office", "Cron(*/15 9-17 * * 1-5)"),
    ):
        argv = ["schedules", "create", name, rate, "--payload", "p", "--db", db]
        argv += ["--timezone", "Europe/Berlin", "--new-scheduler"]
        assert run(*argv) == (0, "created\n")
    status, text = run("schedules", "list", "--db", db)
    assert status == 0
    assert "Monthly(-1, 18, 0)" in text
    assert "Cron(*/15 9-17 * * 1-5)" in text
    _, text = run("schedules", "show", "second-tue", "--db", db, "--json")
    rate = json.loads(text)["state"]["schedule"]["rate"]
    assert rate == {"kind": "nth_weekday", "nth": 2, "weekday": 1, "hour": 9, "minute": 0}


def test_schedules_create_with_its_own_misfire_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "m.db")
    argv = ["schedules", "create", "billing", "Hours(1)", "--payload", "p", "--db", db]
    assert run(*argv, "--misfire", "all", "--new-scheduler") == (0, "created\n")
    _, text = run("schedules", "show", "billing", "--db", db)
    assert "misfire:    all" in text
    capsys.readouterr()
    assert run(*argv, "--misfire", "sometimes")[0] == 2
    assert "misfire 'sometimes' is not allowed" in capsys.readouterr().err


def test_schedules_create_with_a_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "w.db")
    argv = ["schedules", "create", "campaign", "Daily(9, 0)", "--payload", "p", "--db", db]
    window = ["--not-before", "2099-12-01T00:00:00+01:00", "--not-after", "2099-12-24T09:00:00Z"]
    assert run(*argv, *window, "--new-scheduler") == (0, "created\n")
    _, text = run("schedules", "show", "campaign", "--db", db)
    assert "window:     2099-11-30 23:00:00 to 2099-12-24 09:00:00 (UTC, both included)" in text
    capsys.readouterr()
    assert run(*argv, "--not-before", "2099-12-01")[0] == 2  # no offset
    assert "--not-before" in capsys.readouterr().err


def test_schedules_create_with_jitter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "j.db")
    argv = ["schedules", "create", "nightly", "Daily(0, 0)", "--payload", "p", "--db", db]
    assert run(*argv, "--jitter", "30", "--new-scheduler") == (0, "created\n")
    _, text = run("schedules", "show", "nightly", "--db", db)
    assert "jitter:     up to 30 minutes after each fire" in text
    capsys.readouterr()
    assert run(*argv, "--jitter", "0")[0] == 2
    assert "--jitter" in capsys.readouterr().err


def test_schedules_update_keeps_the_anchor_and_the_pause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "u.db")
    create = ["schedules", "create", "tick", "Minutes(30)", "--payload", "one", "--db", db]
    assert run(*create, "--new-scheduler") == (0, "created\n")
    _, before = run("schedules", "show", "tick", "--db", db, "--json")
    run("schedules", "pause", "tick", "--db", db)
    update = ["schedules", "update", "tick", "Minutes(20)", "--payload", "two", "--db", db]
    assert run(*update) == (0, "updated\n")
    _, after = run("schedules", "show", "tick", "--db", db, "--json")
    old, new = json.loads(before)["state"], json.loads(after)["state"]
    assert new["created_at"] == old["created_at"]
    assert new["paused"] is True
    assert new["schedule"]["payload"] == "two"
    _, history = run("schedules", "history", "tick", "--db", db, "--json")
    assert "updated" in history
    capsys.readouterr()
    missing = ["schedules", "update", "other", "Minutes(20)", "--payload", "x", "--db", db]
    assert run(*missing)[0] == 1
    assert "no schedule named 'other'" in capsys.readouterr().err


def test_schedules_create_with_max_fires(tmp_path: Path) -> None:
    db = str(tmp_path / "m.db")
    argv = ["schedules", "create", "thrice", "Hours(1)", "--payload", "p", "--db", db]
    assert run(*argv, "--max-fires", "3", "--new-scheduler") == (0, "created\n")
    _, text = run("schedules", "show", "thrice", "--db", db)
    assert "max fires:  3 (from its creation)" in text
    assert run(*argv, "--max-fires", "0")[0] == 2
