"""``reventless schedules import``: a crontab or ``schedules list --json``, all or none."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from reventless import Cron, Daily, Schedule
from reventless.cli import main
from reventless.cli._import import read_import

CRONTAB = """\
SHELL=/bin/sh
CRON_TZ=Europe/Berlin
# nightly report
30 2 * * * /usr/bin/report --all

# every quarter hour in office hours!
*/15 9-17 * * 1-5 /usr/bin/poll --fast
@weekly /usr/bin/cleanup
0 0 1,15 * MON /usr/bin/either
"""


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_a_crontab_reads_as_named_schedules_in_its_zone() -> None:
    plan = read_import(CRONTAB)
    assert plan.refused == []
    assert plan.notes == ["line 1: SHELL= is a setting, not a schedule: skipped"]
    assert plan.schedules == [
        Schedule(
            name="nightly-report",
            rate=Cron("30 2 * * *"),
            payload="/usr/bin/report --all",
            timezone="Europe/Berlin",
        ),
        Schedule(
            name="every-quarter-hour-in-office-hours",
            rate=Cron("*/15 9-17 * * 1-5"),
            payload="/usr/bin/poll --fast",
            timezone="Europe/Berlin",
        ),
        Schedule(
            name="line-8",
            rate=Cron("0 0 * * 0"),
            payload="/usr/bin/cleanup",
            timezone="Europe/Berlin",
        ),
        Schedule(
            name="line-9",
            rate=Cron("0 0 1,15 * MON"),
            payload="/usr/bin/either",
            timezone="Europe/Berlin",
        ),
    ]


def test_lines_that_cannot_be_expressed_are_listed_with_the_reason() -> None:
    text = (
        "@reboot /bin/boot\n"
        "0 9 * * * \n"
        "0 9 L * * /bin/last\n"
        "CRON_TZ=Europe/Berln\n"
        "# same\n0 1 * * * /bin/a\n# same\n0 2 * * * /bin/b\n"
        "@often /bin/c\n"
    )
    plan = read_import(text)
    reasons = {refused.line: refused.reason for refused in plan.refused}
    assert reasons[1] == "@reboot runs at boot, not at a time"
    assert reasons[2] == "expected five time fields and a command"
    assert "a five-field (Unix) cron has no ?, L, W or #" in reasons[3]
    assert "did you mean 'Europe/Berlin'" in reasons[4]
    assert reasons[8] == "name 'same' is taken by line 6"
    assert reasons[9].startswith("'@often' is not one of @reboot, @hourly")


def test_progress_is_reported_for_large_files() -> None:
    seen: list[tuple[int, int]] = []
    text = "".join(f"{m % 60} * * * * /bin/job-{m}\n" for m in range(2500))
    plan = read_import(text, progress=lambda done, total: seen.append((done, total)))
    assert len(plan.schedules) == 2500
    assert seen == [(1000, 2500), (2000, 2500)]


def test_import_creates_all_and_the_dry_run_nothing(tmp_path: Path) -> None:
    crontab = tmp_path / "crontab"
    crontab.write_text(CRONTAB)
    db = str(tmp_path / "s.db")
    status, text = run("schedules", "import", str(crontab), "--db", db, "--dry-run")
    assert status == 0
    assert "nightly-report" in text and "Cron(30 2 * * *)" in text
    assert text.splitlines()[-1] == "4 schedules would be imported (dry run; nothing was written)"
    assert not Path(db).exists()
    status, text = run("schedules", "import", str(crontab), "--db", db, "--new-scheduler")
    assert (status, text.splitlines()[-1]) == (0, "imported 4 schedules: 4 created")
    _, listing = run("schedules", "list", "--db", db, "--json")
    names = [entry["schedule"]["name"] for entry in json.loads(listing)["schedules"]]
    assert names == sorted(
        ["nightly-report", "every-quarter-hour-in-office-hours", "line-8", "line-9"]
    )


def test_one_bad_line_imports_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    run(
        "schedules",
        "create",
        "kept",
        "Daily(9, 0)",
        "--payload",
        "p",
        "--db",
        db,
        "--new-scheduler",
    )
    crontab = tmp_path / "crontab"
    crontab.write_text("0 1 * * * /bin/a\n@reboot /bin/b\n")
    status, text = run("schedules", "import", str(crontab), "--db", db)
    assert status == 1
    assert "line 2: @reboot /bin/b\n  refused: @reboot runs at boot" in text
    assert text.splitlines()[-1] == "1 refused; nothing was imported"
    _, listing = run("schedules", "list", "--db", db, "--json")
    assert [e["schedule"]["name"] for e in json.loads(listing)["schedules"]] == ["kept"]


def test_the_json_of_schedules_list_imports_back_the_same_schedules(tmp_path: Path) -> None:
    first, second = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    run(
        "schedules",
        "create",
        "d",
        "Daily(9, 0)",
        "--payload",
        "p",
        "--db",
        first,
        "--new-scheduler",
        "--timezone",
        "Europe/Berlin",
        "--dst",
        "gap=shift",
    )
    run(
        "schedules",
        "create",
        "m",
        "Monthly(-1, 18, 0)",
        "--payload",
        "q",
        "--db",
        first,
        "--misfire",
        "all",
    )
    run("schedules", "pause", "m", "--db", first, "--reason", "vendor down")
    _, listing = run("schedules", "list", "--db", first, "--json")
    exported = tmp_path / "schedules.json"
    exported.write_text(listing)
    status, text = run("schedules", "import", str(exported), "--db", second, "--new-scheduler")
    assert status == 0
    assert "note: entry 2: m was paused (vendor down); it is imported active" in text
    _, again = run("schedules", "list", "--db", second, "--json")
    before = [e["schedule"] for e in json.loads(listing)["schedules"]]
    after = [e["schedule"] for e in json.loads(again)["schedules"]]
    assert after == before
    assert Schedule.from_json(json.dumps(after[0])).rate == Daily(9, 0)


def test_a_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    status, _ = run("schedules", "import", str(tmp_path / "missing"), "--db", str(tmp_path / "x"))
    assert status == 2


def test_a_file_name_no_file_can_have_is_refused_like_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "s.db")
    for extra in ([], ["--dry-run"]):
        assert main(["schedules", "import", "a\x00b", "--db", db, "--new-scheduler", *extra]) == 2
        assert "FILE 'a\\x00b' is not allowed; expected a readable UTF-8 file" in (
            capsys.readouterr().err
        )
