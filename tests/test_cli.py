"""The ``reventless preview`` command, in-process and as a real subprocess."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert document["eventbridge_scheduler"]["StartDate"] == "2026-11-27T16:01:00Z"
    assert document["eventbridge_scheduler"]["ScheduleExpression"] == "rate(6 hours)"


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
        (["preview", "Daily(9, 0)", "--after", "2026-01-01T00:00:00"], "has no UTC offset"),
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


@pytest.mark.parametrize(
    ("start", "days"),
    [
        ("9999-12-30", "1"),  # was an OverflowError from the demo's meeting, two days in
        ("9999-12-30", "7"),
        ("0001-01-01", "1"),
        ("1969-12-31", "1"),  # was a store refusing its own instants before 1970
        ("1970-01-01", "1"),  # local midnight in Berlin is still 1969 in UTC
        ("2199-12-28", "1"),  # its meeting, two days in, would be in 2200
        ("2199-12-23", "7"),
    ],
)
def test_a_demo_it_cannot_cover_is_refused_in_one_line_naming_the_dates_it_can(
    start: str, days: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("demo", "--start", start, "--days", days) == (2, "")
    err = capsys.readouterr().err
    assert err.startswith(f"reventless: error: --start '{start}' is not allowed; expected a date ")
    assert "from 1970-01-02 to 2199-12-" in err and err.count("\n") == 1


@pytest.mark.parametrize(("start", "days"), [("1970-01-02", "1"), ("2199-12-27", "1")])
def test_the_demo_runs_on_the_first_and_last_start_it_allows(start: str, days: str) -> None:
    status, text = run("demo", "--start", start, "--days", days, "--timezone", "Pacific/Kiritimati")
    assert status == 0, text


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


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert run("--version") == (0, "")
    assert capsys.readouterr().out == f"reventless {version('reventless')}\n"


def test_messages_speak_shell_not_python(capsys: pytest.CaptureFixture[str]) -> None:
    """A naive --after is answered with an ISO 8601 example, not Python advice."""
    assert run("preview", "Daily(9, 0)", "--after", "2026-12-01T09:00:00")[0] == 2
    err = capsys.readouterr().err
    assert err == (
        "reventless: error: --after '2026-12-01T09:00:00' has no UTC offset (a naive local "
        "time); add one, e.g. 2026-12-01T09:00:00+01:00 or 2026-12-01T08:00:00Z\n"
    )
    assert run("preview", "Daily(9, 0)", "--count", "many")[0] == 2
    assert capsys.readouterr().err == (
        "reventless: error: --count 'many' is not allowed; expected a whole number from 1 to "
        "10,000\n"
    )
    assert run("schedules", "lst", "--db", "x.db")[0] == 2
    err = capsys.readouterr().err
    assert err.startswith("reventless: error: argument action: invalid choice: 'lst'")
    assert err.endswith("(see reventless schedules --help)\n")


@pytest.mark.parametrize(
    ("argv", "error", "status"),
    [
        (
            ["preview", "Daily(25, 0)"],
            {"error": "ValidationError", "field": "rate.hour", "value": 25},
            2,
        ),
        (["preview", "Daily(9, 0)", "--after", "noon"], {"field": "--after", "value": "noon"}, 2),
        (
            ["preview", "Minutes(1)", "--after", "9999-12-31T23:00-10:00"],
            {"error": "OutOfRangeError"},
            1,
        ),
        (["preview"], {"error": "ArgumentError"}, 2),
        (["preview", "Daily(9, 0)", "--bogus"], {"error": "ArgumentError"}, 2),
        (
            ["schedules", "list", "--db", "missing.db"],
            {"field": "--db", "allowed": "an existing store file"},
            2,
        ),
        (
            ["run", "no_such_module_x:plugin", "--db", "x.db", "--workers", "0"],
            {"field": "--workers", "value": 0},
            2,
        ),
    ],
)
def test_json_errors_are_one_object_on_stderr_with_the_same_status(
    argv: list[str], error: dict[str, object], status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*argv) == (status, "")
    text_err = capsys.readouterr().err
    assert run(*argv, "--json") == (status, "")
    captured = capsys.readouterr()
    assert captured.out == ""
    document = json.loads(captured.err)
    assert captured.err.count("\n") == 1
    assert error.items() <= document.items()
    assert document["exit_status"] == status
    assert text_err == f"reventless: error: {document['message']}\n"
    if document["error"] == "ValidationError":
        assert set(document) == {"error", "message", "field", "value", "allowed", "exit_status"}


_VALUES = [
    "",
    " ",
    "-1",
    "0",
    "7",
    "99999999999999999999",
    "1e9",
    "nan",
    "2026-01-01T00:00:00Z",
    "2026-13-01",
    "x" * 300,
    "\udcff",
    "\x00",
    "a\nb",
    "Daily(9, 0)",
    "Single(2030, 1, 1, 0, 0)",
    "Minutes(0)",
    "{}",
    '{"name": 1}',
    "Europe/Berlin",
    "localtime",
    "/",
    "missing.db",
    "app.db",
    "junk.db",
    "tick",
    "ping",
    "counters",
    "health",
    "10s",
    "31d",
    '{"command": "Tick"}',
    "9999-12-31T23:59:59+00:00",
    "0001-01-01T00:00:00-01:00",
    "Single(2026, 2, 30, 0, 0)",
    "-5s",
    "-",
    "--json",
    "tick@2026-01-01T00:00:00Z",
]
_COMMANDS = [
    ["preview", "V", "--timezone", "V", "--count", "V", "--after", "V"],
    ["schedules", "list", "--db", "V", "--scheduler", "V", "--limit", "V", "--after", "V"],
    ["schedules", "list", "--db", "V", "--prefix", "V"],
    ["schedules", "show", "V", "--db", "V", "--scheduler", "V", "--count", "V"],
    ["schedules", "create", "V", "V", "--payload", "V", "--db", "V", "--scheduler", "V"],
    ["schedules", "create", "V", "V", "--payload", "V", "--db", "V", "--timezone", "V"],
    ["schedules", "create", "V", "V", "--payload", "V", "--db", "V", "--new-scheduler"],
    ["schedules", "create", "V", "V", "--payload-file", "V", "--db", "V", "--new-scheduler"],
    ["schedules", "V", "V", "--db", "V", "--scheduler", "V"],
    ["schedules", "history", "V", "--db", "V", "--limit", "V"],
    ["schedules", "dead-letters", "--db", "V", "--limit", "V"],
    ["schedules", "backfill", "V", "--db", "V", "--start", "V", "--end", "V"],
    ["schedules", "redrive", "--db", "V", "--schedule", "V", "--fire-id", "V", "--fire-id", "V"],
    ["schedules", "prune", "--db", "V", "--history-age", "V", "--handled-age", "V"],
    ["schedulers", "--db", "V"],
    ["reactions", "V", "V", "--db", "V", "--position", "V", "--limit", "V"],
    ["run", "V", "--db", "V", "--workers", "V", "--misfire", "V", "--max-event-age", "V"],
    ["run", "V", "--db", "V", "--misfire-grace", "V", "--delivery-timeout", "V"],
    ["run", "V", "--db", "V", "--lease-ttl", "V", "--max-attempts", "V", "--log-level", "V"],
    ["demo", "--days", "V", "--timezone", "V", "--start", "V", "--speed", "V"],
]


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """A command with every value drawn from a list of awkward ones; options sometimes left out
    or repeated bare."""
    argv: list[str] = []
    for token in draw(st.sampled_from(_COMMANDS)):
        if token == "V":
            argv.append(draw(st.sampled_from(_VALUES) | st.text(max_size=8)))
        elif not token.startswith("--") or draw(st.integers(0, 5)):
            argv.append(token)
    if draw(st.booleans()):
        argv.append("--json")
    if argv[0] == "demo":
        argv[2] = "1"  # keep a demo that runs short
    if argv[0] == "run":  # never a module of the standard library: importing runs it
        argv[1] = draw(st.sampled_from(["no_such_module_zz:plugin", "os:path", ":", "a b", "x:"]))
    return argv


@given(argv=command_lines())
@settings(max_examples=300)
def test_no_input_gets_a_traceback_or_an_internal_error(argv: list[str], store_dir: Path) -> None:
    """Every refusal is a typed error with status 1 or 2; none is an internal error."""
    errors = io.StringIO()
    with contextlib.chdir(store_dir), contextlib.redirect_stderr(errors):
        status, _ = run(*argv)
    err = errors.getvalue()
    assert status in (0, 1, 2), (argv, err)
    assert "Traceback" not in err and "InternalError" not in err and "internal error" not in err
    assert err.count("\n") <= 2, err  # an error line, and at most one note


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a store of two schedulers, a file that is no store, and nothing else (the
    run command finds no plugin module there)."""
    from tests.test_cli_schedules import app_store

    folder = tmp_path_factory.mktemp("cli-inputs")
    app_store(folder / "app.db")
    (folder / "junk.db").write_text("not a database")
    return folder


@pytest.mark.parametrize(
    ("argv", "status", "says"),
    [
        (["preview", "Daily(9, 0)", "--after", "2026-12-01T09:00:00"], 2, "has no UTC offset"),
        (["schedules", "list", "--db", "/"], 2, "--db '/' is a folder"),
        (["schedules", "list", "--db", "junk.db"], 1, "not a SQLite database"),
        (["run", "os:path", "--db", "x.db"], 2, "not a reventless.Plugin"),
        (["nonsense"], 2, "invalid choice: 'nonsense'"),
    ],
)
def test_bad_input_as_a_real_process_is_one_line_and_a_status(
    argv: list[str], status: int, says: str, tmp_path: Path
) -> None:
    (tmp_path / "junk.db").write_text("not a database")
    done = subprocess.run(
        [sys.executable, "-m", "reventless", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=tmp_path,
    )
    assert (done.returncode, done.stdout) == (status, ""), done.stderr
    assert done.stderr.startswith("reventless: error: ") and says in done.stderr
    assert done.stderr.count("\n") == 1
    as_json = subprocess.run(
        [sys.executable, "-m", "reventless", *argv, "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=tmp_path,
    )
    assert as_json.returncode == status
    assert json.loads(as_json.stderr)["exit_status"] == status
    assert [p.name for p in tmp_path.iterdir()] == ["junk.db"]  # nothing was created


def test_preview_dst_shows_what_the_policy_does_and_that_aws_cannot() -> None:
    status, text = run(
        "preview",
        "Daily(2, 30)",
        "--timezone",
        "Europe/Berlin",
        "--dst",
        "gap=shift,overlap=both",
        "--count",
        "3",
        "--after",
        "2026-10-24T12:00:00Z",
    )
    assert status == 0
    assert text.startswith("Daily(2, 30) in Europe/Berlin, dst gap=shift,overlap=both, after")
    assert (
        "2026-10-25 00:30  Sun 2026-10-25 02:30 CEST  wall time occurs twice; fires at both "
        "(overlap=both), this is the first" in text
    )
    assert (
        "2026-10-25 01:30  Sun 2026-10-25 02:30 CET   wall time occurs twice; fires at both "
        "(overlap=both), this is the second" in text
    )
    assert "EventBridge Scheduler: not available with dst gap=shift,overlap=both" in text
    assert "ScheduleExpression" not in text
    status, text = run(
        "preview",
        "Daily(2, 30)",
        "--timezone",
        "Europe/Berlin",
        "--dst",
        "gap=shift",
        "--count",
        "1",
        "--after",
        "2026-03-28T12:00:00Z",
        "--json",
    )
    assert status == 0
    document = json.loads(text)
    assert document["schedule"]["dst"] == {"gap": "shift", "overlap": "first"}
    [fire] = document["fires"]
    assert fire["utc"] == "2026-03-29T01:30:00Z"
    assert fire["shifted"] is True
    assert fire["notes"] == ["2026-03-29 02:30 is in a DST gap; shifted to 03:30 (gap=shift)"]
    assert "dst gap=shift,overlap=first" in document["eventbridge_scheduler"]["refused"]


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["Daily(2, 30)", "--dst", "gap=later"], "--dst"),
        (["Daily(2, 30)", "--dst", "shift"], "--dst"),
        (["Daily(2, 30)", "--dst", "gap=shift,gap=skip"], "--dst"),
        (["Minutes(5)", "--dst", "gap=shift"], "dst"),
        (
            [
                '{"name": "r", "rate": {"kind": "daily", "hour": 9, "minute": 0}, "payload": "x"}',
                "--dst",
                "overlap=both",
            ],
            "--dst",
        ),
    ],
)
def test_preview_refuses_a_bad_dst(argv: list[str], field: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status, _ = run("preview", *argv, "--json")
    assert status == 2
    assert json.loads(err.getvalue())["field"] == field


@pytest.fixture
def one_schedule(tmp_path: Path) -> str:
    """A store with schedule 'tick' in scheduler 'default'."""
    db = str(tmp_path / "m.db")
    create = ["schedules", "create", "tick", "Minutes(5)", "--payload", "p", "--db", db]
    assert run(*create, "--new-scheduler")[0] == 0
    return db


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (
            ["schedules", "show", "n" * 1000],
            2,
            "schedule name '" + "n" * 59 + "... (1000 characters) is not allowed; expected 1 to "
            "64 characters of letters, digits, '.', '_' or '-'",
        ),
        (
            ["schedules", "show", "n" * 65],
            2,
            "schedule name '" + "n" * 65 + "' (65 characters) is not allowed; expected 1 to "
            "64 characters of letters, digits, '.', '_' or '-'",
        ),
        (
            [
                "schedules",
                "backfill",
                "tick",
                "--start",
                "2026-01-02T00:00Z",
                "--end",
                "2026-01-01T00:00Z",
            ],
            2,
            "--end 2026-01-01T00:00Z is before --start 2026-01-02T00:00Z; expected an instant at "
            "or after it",
        ),
        (
            ["schedules", "create", "tick", "Minutes(5)", "--payload", "p", "--if-exists", "error"],
            1,
            "schedule 'tick' already exists (--if-exists error); nothing was written. Use "
            "--if-exists replace to replace it, --if-exists keep to leave it, or `reventless "
            "schedules delete` it first",
        ),
        (
            [
                "schedules",
                "redrive",
                "--fire-id",
                "tick@2026-01-01T00:00:00Z",
                "--fire-id",
                "bad id!",
            ],
            2,
            "--fire-id 'bad id!' is not allowed; expected a fire id such as "
            "'daily-report@2026-11-27T09:00:00Z'",
        ),
        (
            ["reactions", "reset", "r" * 300, "--position", "0"],
            2,
            "reaction name '" + "r" * 59 + "... (300 characters) is not allowed; expected 1 to "
            "64 characters of letters, digits, '.', '_' or '-'",
        ),
        (
            ["schedules", "list", "--prefix", "a b"],
            2,
            "--prefix 'a b' is not allowed; expected up to 64 characters of letters, digits, "
            "'.', '_' or '-'",
        ),
        (
            ["schedules", "create", "once", "Single(2020, 1, 1, 0, 0)", "--payload", "p"],
            2,
            "rate Single(2020, 1, 1, 0, 0) in UTC is in the past (now is ",
        ),
        (
            ["schedules", "redrive", "--schedule", "bad id!"],
            2,
            "--schedule 'bad id!' is not allowed; expected 1 to 64 characters of letters, "
            "digits, '.', '_' or '-'",
        ),
        (
            ["schedules", "redrive", "--schedule", "tick", "--fire-id", "tick@2026-01-01T00:00Z"],
            2,
            "--schedule and --fire-id cannot be given together; give one or the other",
        ),
    ],
)
def test_refusals_speak_the_command_lines_terms(
    argv: list[str],
    status: int,
    message: str,
    one_schedule: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No Python spelling (if_exists='replace', fire_ids[0], datetime.datetime(...)), one
    wording for a name at every length, its own length counted (not its repr's)."""
    capsys.readouterr()
    assert run(*argv, "--db", one_schedule) == (status, "")
    err = capsys.readouterr().err
    if message.endswith("(now is "):  # then the current minute
        assert err.startswith(f"reventless: error: {message}") and err.count("\n") == 1
    else:
        assert err == f"reventless: error: {message}\n"


def test_years_before_1000_are_printed_with_four_digits(one_schedule: str) -> None:
    status, text = run("preview", "Daily(9, 0)", "--after", "0001-01-01T00:00:00Z", "--count", "1")
    assert status == 0
    assert "after 0001-01-01 00:00:00 UTC" in text
    assert "1  0001-01-01 09:00  Mon 0001-01-01 09:00 UTC" in text
    from reventless.cli._common import utc

    assert utc(datetime(999, 3, 4, 5, 6, 7)) == "0999-03-04 05:06:07"


_DB_COMMANDS = [
    ["run", "tests.test_cli_run:plugin"],
    ["schedules", "list"],
    ["schedules", "create", "tick", "Minutes(5)", "--payload", "p", "--new-scheduler"],
    ["schedules", "prune"],
    ["schedulers"],
    ["reactions", "list"],
    ["demo", "--days", "1"],
]
_BAD_DBS = [
    ("folder", "--db '{db}' is a folder, not a store file"),
    ("no-such-folder/app.db", "--db '{db}': there is no folder 'no-such-folder' to hold it"),
    ("", "--db '' is empty; expected the path of a store file, e.g. --db app.db"),
    (
        "/dev/null",
        "--db '/dev/null' is not a regular file (a device, a pipe or a socket); expected a store "
        "file",
    ),
]


@pytest.mark.parametrize("argv", _DB_COMMANDS, ids=lambda argv: " ".join(argv[:2]))
@pytest.mark.parametrize(("db", "says"), _BAD_DBS, ids=[db or "empty" for db, _ in _BAD_DBS])
def test_every_command_refuses_a_db_that_cannot_be_a_store_the_same_way(
    argv: list[str],
    db: str,
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before: `run --db FOLDER` was SQLITE_CANTOPEN and status 1 where `schedules` said "is a
    folder" and 2; `--db ''` "could not switch to WAL mode"; `/dev/null` "read_only=True"."""
    (tmp_path / "folder").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(__file__).parent.parent))
    assert run(*argv, "--db", db) == (2, "")
    assert capsys.readouterr().err == f"reventless: error: {says.format(db=db)}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]  # nothing was made
    assert not any((tmp_path / "folder").iterdir())


def test_a_bad_db_as_a_real_process_has_the_status_and_json_of_bad_input(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reventless", "run", "tests.test_cli_run:plugin", "--db", "."],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "reventless: error: --db '.' is a folder, not a store file\n"
    done = subprocess.run(
        [sys.executable, "-m", "reventless", "schedulers", "--db", "", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert json.loads(done.stderr) | {"message": "-"} == {
        "error": "ValidationError",
        "message": "-",
        "field": "--db",
        "value": "",
        "allowed": "the path of a store file",
        "exit_status": 2,
    }


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--misfire-grace", "-5s", "a duration from 0s to 30d"),
        ("--delivery-timeout", "-1.5h", "a duration from 10ms to 15m"),
        ("--lease-ttl", "-20", "a duration from 1s to 1h"),
        ("--max-event-age", "-1m", "a duration from 1m to 1d"),
    ],
)
def test_a_negative_duration_is_taken_as_the_options_value_and_refused_with_its_range(
    option: str, value: str, allowed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: argparse took -5s for an option ("expected one argument")."""
    argv = ["run", "tests.test_cli_run:plugin", "--db", "never-made.db", option, value]
    assert run(*argv) == (2, "")
    err = capsys.readouterr().err
    assert err.startswith(
        f"reventless: error: {option} {value!r} is not allowed; expected {allowed}"
    )
    assert not Path("never-made.db").exists()
    # A missing value is still a missing value, even when an option follows.
    assert run("run", "tests.test_cli_run:plugin", "--db", "x.db", option, "--json")[0] == 2
    assert "expected one argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        ([], "usage: reventless [-h] [--version]"),
        (["schedules"], "usage: reventless schedules [-h]"),
        (["reactions"], "usage: reventless reactions [-h]"),
    ],
)
def test_a_bare_command_group_prints_its_help(
    argv: list[str], usage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: `reventless` alone said "the following arguments are required: command"."""
    status, text = run(*argv)
    assert status == 0 and text.startswith(usage)
    assert capsys.readouterr().err == ""


def test_a_bare_reventless_prints_its_help_as_a_real_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reventless"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("usage: reventless")
    assert "preview" in done.stdout and "schedules" in done.stdout and "run" in done.stdout


def test_preview_json_keys_are_snake_case_with_the_old_camel_case_as_aliases() -> None:
    """Like `schedules --json`; the camelCase keys of 0.1.0 stay, deprecated, for a release."""
    argv = ["preview", "Daily(2, 30)", "--timezone", "Europe/Berlin", "--count", "1"]
    status, text = run(*argv, "--after", "2026-03-28T12:00:00Z", "--json")
    assert status == 0
    document = json.loads(text)
    assert list(document) == [
        "schedule",
        "after",
        "fires",
        "eventbridge_scheduler",
        "eventBridgeScheduler",
    ]
    fire = document["fires"][0]
    assert list(fire) == [
        "utc",
        "local",
        "repeated_wall_time",
        "skipped_days",
        "second_occurrence",
        "shifted",
        "notes",
        "repeatedWallTime",
        "skippedDays",
        "secondOccurrence",
    ]
    assert fire["skipped_days"] == fire["skippedDays"] == ["2026-03-29"]
    assert fire["repeated_wall_time"] is fire["repeatedWallTime"] is False
    assert fire["second_occurrence"] is fire["secondOccurrence"] is False
    assert document["eventbridge_scheduler"] == document["eventBridgeScheduler"]
    assert document["eventbridge_scheduler"]["ScheduleExpression"] == "cron(30 2 * * ? *)"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["schedules", "--db", "app.db", "list"],
            "--db is given before the action; it goes after it: reventless schedules ACTION ... "
            "--db ... (actions: list, show, create,",
        ),
        (
            ["reactions", "--db=app.db", "list"],
            "--db is given before the action; it goes after it: reventless reactions ACTION ... "
            "--db ... (actions: list, show, dead-letters, reset, resume; see reventless reactions "
            "--help)",
        ),
        (
            ["--db", "app.db", "schedulers"],
            "--db is given before the command; it goes after it: reventless COMMAND ... --db ... "
            "(commands: preview, schedules,",
        ),
    ],
)
def test_an_option_before_its_command_is_refused_saying_where_it_goes(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: argparse took the option's value for the action ("invalid choice: 'app.db'")."""
    assert run(*argv) == (2, "")
    err = capsys.readouterr().err
    assert err.startswith(f"reventless: error: {says}") and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv", [*_DB_COMMANDS, ["web"], ["check"]], ids=lambda argv: " ".join(argv[:2])
)
def test_schema_with_a_store_file_is_refused_naming_the_option(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(__file__).parent.parent))
    assert run(*argv, "--db", "app.db", "--schema", "orders") == (2, "")
    assert capsys.readouterr().err == (
        "reventless: error: --schema 'orders' is for a postgresql:// --db; 'app.db' is a store "
        "file, which has no schemas: leave --schema out\n"
    )
    assert not any(tmp_path.iterdir())  # nothing was made


def test_the_schema_variable_is_not_used_with_a_store_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVENTLESS_SCHEMA", "orders")
    db = str(tmp_path / "app.db")
    made = ("--payload", "p", "--new-scheduler", "--db", db)
    assert run("schedules", "create", "tick", "Minutes(5)", *made) == (0, "created\n")
