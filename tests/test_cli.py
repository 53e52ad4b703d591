"""The ``reventless preview`` command, in-process and as a real subprocess."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from reventless.cli import main


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(argv), out=out)
    return status, out.getvalue()


def test_preview_table_shows_utc_local_and_expression() -> None:
    status, text = run(
        "preview",
        "Weekdays(17, 0)",
        "--timezone",
        "Europe/Berlin",
        "--count",
        "3",
        "--after",
        "2026-03-27T00:00:00Z",
    )
    assert status == 0
    assert "2026-03-27 16:00  Fri 2026-03-27 17:00 CET" in text
    assert "2026-03-30 15:00  Mon 2026-03-30 17:00 CEST" in text
    assert "ScheduleExpression: cron(0 17 ? * MON-FRI *)" in text
    assert "ScheduleExpressionTimezone: Europe/Berlin" in text


def test_preview_marks_gap_and_repeated_wall_time() -> None:
    _, text = run(
        "preview",
        "Daily(2, 30)",
        "--timezone",
        "Europe/Berlin",
        "--count",
        "2",
        "--after",
        "2026-03-28T12:00:00Z",
    )
    assert "skipped 2026-03-29: wall time in a DST gap" in text
    _, text = run(
        "preview",
        "Daily(2, 30)",
        "--timezone",
        "Europe/Berlin",
        "--count",
        "1",
        "--after",
        "2026-10-24T12:00:00Z",
    )
    assert "wall time occurs twice; fires at the first" in text


def test_preview_json_schedule_and_json_output() -> None:
    schedule = json.dumps({"name": "cleanup", "rate": {"kind": "hours", "n": 6}, "payload": "{}"})
    status, text = run(
        "preview", schedule, "--count", "2", "--after", "2026-11-27T10:00:30Z", "--json"
    )
    assert status == 0
    document = json.loads(text)
    assert [fire["utc"] for fire in document["fires"]] == [
        "2026-11-27T16:01:00Z",
        "2026-11-27T22:01:00Z",
    ]
    assert document["eventBridgeScheduler"]["StartDate"] == "2026-11-27T16:01:00Z"
    assert document["eventBridgeScheduler"]["ScheduleExpression"] == "rate(6 hours)"


def test_preview_single_has_action_after_completion_delete() -> None:
    _, text = run("preview", "Single(2030, 12, 25, 14, 30)", "--after", "2026-01-01T00:00:00Z")
    assert "ActionAfterCompletion: DELETE" in text
    assert "at(2030-12-25T14:30:00)" in text


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["preview", "Daily(25, 0)"], "rate.hour 25"),
        (["preview", "Daily(9, 0)", "--timezone", "Mars/Base"], "timezone 'Mars/Base'"),
        (["preview", "Daily(9, 0)", "--count", "0"], "count 0"),
        (["preview", "Daily(9, 0)", "--after", "yesterday"], "--after 'yesterday'"),
        (["preview", "Daily(9, 0)", "--after", "2026-01-01T00:00:00"], "naive"),
        (["preview", "{not json"], "schedule JSON"),
    ],
)
def test_bad_input_prints_one_line_and_exits_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*argv)[0] == 2
    err = capsys.readouterr().err
    assert says in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["preview", "Daily(9, 0)", "--timezone", ""], "timezone ''"),
        (["preview", "Minutes(5)", "--timezone", ""], "timezone ''"),
        (["preview", "Daily(9, 0)", "--timezone", "localtime"], "timezone 'localtime'"),
        (["preview", "Daily(9, 0)", "--timezone", "posix/Europe/Berlin"], "posix/"),
        (
            [
                "preview",
                '{"name": "r", "rate": {"kind": "daily", "hour": 9, "minute": 0}, "payload": "x"}',
                "--timezone",
                "",
            ],
            "--timezone ''",
        ),
        (
            [
                "preview",
                '{"name": "r", "name": "s", "rate": {"kind": "daily", "hour": 9, "minute": 0}, '
                '"payload": "x"}',
            ],
            "name given twice",
        ),
        (["preview", "Daily(9 0)"], "rate 'Daily(9 0)'"),
        (["preview", "Daily(" + "1" * 28 + "!"], "rate 'Daily(111"),
        (["demo", "--timezone", ""], "timezone ''"),
    ],
)
def test_refused_zone_rate_or_json_prints_one_line_and_exits_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty --timezone is refused (it used to mean UTC), like any other bad zone."""
    assert run(*argv) == (2, "")
    err = capsys.readouterr().err
    assert says in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["preview", "Daily(9, 0)", "--after", "0001-01-01T00:00+14:00"], "--after 0001-01-01"),
        (["preview", "Minutes(1)", "--after", "9999-12-31T23:00-10:00"], "--after 9999-12-31"),
        (["preview", "Daily(9, 0)", "--json", "--after", "9999-12-31T23:00-10:00"], "--after"),
        (["demo", "--start", "9999-12-30"], "--start 9999-12-30"),
        (["demo", "--start", "0001-01-01"], "--start 0001-01-01"),
    ],
)
def test_dates_beyond_the_datetime_range_print_one_line_and_exit_1(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No OverflowError traceback: one line on stderr and status 1."""
    assert run(*argv) == (1, "")
    err = capsys.readouterr().err
    assert err.startswith(f"reventless: error: {says}")
    assert err.count("\n") == 1


def test_preview_at_the_end_of_time_lists_what_fits() -> None:
    status, text = run("preview", "Minutes(1)", "--after", "9999-12-31T23:57:30Z", "--count", "5")
    assert status == 0
    assert "1  9999-12-31 23:59  Fri 9999-12-31 23:59 UTC" in text
    status, text = run("preview", "Minutes(1)", "--after", "9999-12-31T23:59:00Z")
    assert status == 0
    assert "(no fires after this instant)" in text


def test_command_runs_as_a_real_process() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "reventless",
            "preview",
            "Minutes(5)",
            "--count",
            "2",
            "--after",
            "2026-11-27T10:00:00Z",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "2026-11-27 10:05" in done.stdout
    assert "2026-11-27 10:10" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "reventless", "preview", "Hourly(1)"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("reventless: error: rate 'Hourly(1)'")
