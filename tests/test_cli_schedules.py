"""``reventless schedules ...`` on a real store file, in-process and as a real process."""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import reventless.local
from reventless import Minutes, Schedule, Scheduler, ValidationError
from reventless.aggregate import Aggregate
from reventless.cli import main
from reventless.event_topic import EventTopic
from reventless.testing import FailingTarget, VirtualClock
from tests.test_aggregate import counter_spec


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
        "--new-scheduler",
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
    # No engine runs on this store: the schedules wait, and the list says so.
    assert lines[1].startswith("daily-report  Daily(9, 0)  Europe/Berlin  waiting")
    assert lines[2].startswith("tick          Minutes(10)  UTC            waiting")
    assert lines[3].startswith("scheduler 'default': no engine is running on this store")
    status, text = run("schedules", "show", "daily-report", "--db", db, "--count", "2")
    assert "rate:       Daily(9, 0)" in text and text.count("next fire:") == 2
    status, text = run("schedules", "pause", "tick", "--db", db, "--by", "ana")
    assert status == 0 and re.fullmatch(r"paused since 20\S+ \S+ UTC by ana\n", text), text
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


def test_pause_and_resume_say_who_and_why_in_show_list_and_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import getpass

    db = str(tmp_path / "p.db")
    run(
        "schedules", "create", "tick", "Minutes(5)", "--payload", "x", "--db", db, "--new-scheduler"
    )
    capsys.readouterr()
    for bad, flag in (("two\nlines", "--reason"), ("x" * 257, "--reason")):
        assert run("schedules", "pause", "tick", "--db", db, "--reason", bad)[0] == 2
        error = capsys.readouterr().err
        assert error.startswith(f"reventless: error: {flag} ") and error.count("\n") == 1, error
    assert run("schedules", "pause", "tick", "--db", db, "--by", "b" * 101)[0] == 2
    assert capsys.readouterr().err.startswith("reventless: error: --by ")
    status, text = run("schedules", "show", "tick", "--db", db, "--json")
    assert json.loads(text)["state"]["paused"] is False  # nothing was written

    status, text = run("schedules", "pause", "tick", "--db", db, "--reason", "db <migration>")
    assert status == 0 and text.endswith(f" by {getpass.getuser()}: db <migration>\n"), text
    status, text = run("schedules", "show", "tick", "--db", db)
    line = next(line for line in text.splitlines() if line.startswith("paused:"))
    assert re.fullmatch(
        rf"paused: +since 20\S+ \S+ UTC by {getpass.getuser()}: db <migration>", line
    )
    status, text = run("schedules", "list", "--db", db, "--json")
    (listed,) = json.loads(text)["schedules"]
    assert (listed["paused_by"], listed["pause_reason"]) == (getpass.getuser(), "db <migration>")
    assert datetime.fromisoformat(listed["paused_at"]).tzinfo is not None
    status, text = run("schedules", "resume", "tick", "--db", db, "--reason", "done", "--by", "bo")
    assert status == 0 and text.startswith("active; next fire 20")
    status, text = run("schedules", "show", "tick", "--db", db, "--json")
    assert json.loads(text)["state"]["pause_reason"] is None
    status, text = run("schedules", "history", "tick", "--db", db, "--json")
    details = [(e["kind"], e.get("detail")) for e in json.loads(text)][1:]
    assert details == [
        ("paused", f"by {getpass.getuser()}: db <migration>"),
        ("resumed", "by bo: done"),
    ]


def test_trigger_and_redrive_record_why_and_who_in_the_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "p.db")
    run(
        "schedules", "create", "tick", "Minutes(5)", "--payload", "x", "--db", db, "--new-scheduler"
    )
    capsys.readouterr()
    assert run("schedules", "trigger", "tick", "--db", db, "--reason", "a\tb")[0] == 2
    assert capsys.readouterr().err.startswith("reventless: error: --reason ")
    status, _ = run("schedules", "trigger", "tick", "--db", db, "--reason", "rerun", "--by", "bo")
    assert status == 0
    status, _ = run("schedules", "redrive", "--db", db, "--reason", "fixed", "--by", "bo")
    assert status == 0  # nothing to redrive: nothing recorded
    status, text = run("schedules", "history", "tick", "--db", db, "--json")
    details = [(e["kind"], e.get("detail")) for e in json.loads(text)][1:]
    assert details == [("triggered", "by bo: rerun")]


def test_errors_are_one_line_with_an_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "e.db")
    assert run("schedules", "list", "--db", db)[0] == 2
    assert "no such file" in capsys.readouterr().err
    assert not Path(db).exists()  # reading never creates a store
    assert run("schedules", "create", "a", "Daily(9, 0)", "--payload", "p", "--db", db)[0] == 2
    assert "--new-scheduler" in capsys.readouterr().err
    assert not Path(db).exists()  # nor does a refused create
    run("schedules", "create", "a", "Daily(9, 0)", "--payload", "p", "--db", db, "--new-scheduler")
    assert "note: payload not checked: no process has attached" in capsys.readouterr().err
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
        [*command, "create", "x", "Hours(6)", "--payload", "p", "--db", db, "--new-scheduler"],
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


# -- scheduler namespaces, honest states, payload rules ------------------------------------------

TICK = '{"aggregateId": "c-1", "command": "Tick"}'


def app_store(path: Path, *, clock: VirtualClock | None = None) -> None:
    """A store as an application leaves it: 'counters' delivers to an aggregate's command topic,
    'health' to an event topic; one schedule each; its process has stopped."""

    async def make() -> None:
        async with reventless.local.provider(path, clock=clock) as provider:
            counters = await Aggregate.make(provider, counter_spec())
            typed = await Scheduler.make(provider, target=counters.command_topic, name="counters")
            health = await Scheduler.make(provider, target=EventTopic("health"), name="health")
            await typed.operations.create_schedule(
                Schedule(name="tick", rate=Minutes(5), payload=TICK)
            )
            await health.operations.create_schedule(
                Schedule(name="ping", rate=Minutes(1), payload="ping")
            )

    anyio.run(make)


def snapshot(path: Path) -> tuple[list[Any], list[Any]]:
    """The schedules and history rows of a store, to show that nothing was written."""
    conn = sqlite3.connect(path)
    try:
        return (
            conn.execute("SELECT scheduler, name, spec, version FROM schedules").fetchall(),
            conn.execute("SELECT * FROM history").fetchall(),
        )
    finally:
        conn.close()


def test_schedulers_lists_every_namespace_its_target_and_whether_it_is_served(
    tmp_path: Path,
) -> None:
    db = tmp_path / "app.db"
    app_store(db)
    status, text = run("schedulers", "--db", str(db))
    assert status == 0
    assert text.splitlines() == [
        "scheduler  schedules  paused  target                                 served by the engine",
        "counters   1          0       command topic of aggregate 'counters'  no",
        "health     1          0       event topic 'health'                   no",
        "engine: none is running on this store; fires wait until one runs",
    ]
    assert run("schedulers", "list", "--db", str(db)) == (0, text)
    status, text = run("schedulers", "--db", str(db), "--json")
    document = json.loads(text)
    assert document["engine"] is None
    assert [(s["name"], s["schedules"], s["served"]) for s in document["schedulers"]] == [
        ("counters", 1, False),
        ("health", 1, False),
    ]
    assert document["schedulers"][0]["attachments"][0]["payload_rules"] is True


def test_without_scheduler_the_only_one_is_used_and_several_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "app.db"
    app_store(db)
    assert run("schedules", "list", "--db", str(db)) == (2, "")
    assert capsys.readouterr().err == (
        "reventless: error: the store has 2 schedulers (counters, health); "
        "choose one with --scheduler NAME\n"
    )
    status, text = run("schedules", "list", "--db", str(db), "--scheduler", "health")
    assert status == 0 and text.splitlines()[1].startswith("ping ")
    single = tmp_path / "single.db"

    async def one_scheduler() -> None:
        async with reventless.local.provider(single) as provider:
            ops = (
                await Scheduler.make(provider, target=EventTopic("t"), name="reports")
            ).operations
            await ops.create_schedule(Schedule(name="daily", rate=Minutes(5), payload="x"))

    anyio.run(one_scheduler)
    status, text = run("schedules", "list", "--db", str(single))
    assert status == 0 and text.splitlines()[1].startswith("daily ")
    assert "scheduler 'reports'" in text.splitlines()[-1]
    assert (
        run("schedules", "create", "weekly", "Days(7)", "--payload", "x", "--db", str(single))[0]
        == 0
    )
    assert [r[1] for r in snapshot(single)[0]] == ["daily", "weekly"]


def test_create_refuses_a_scheduler_nobody_knows_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "app.db"
    app_store(db)
    before = snapshot(db)
    argv = ["schedules", "create", "x", "Hours(1)", "--payload", "p", "--db", str(db)]
    assert run(*argv, "--scheduler", "helth") == (2, "")
    err = capsys.readouterr().err
    assert err.startswith(
        "reventless: error: --scheduler 'helth' is not a scheduler of this store "
        "(did you mean 'health'?); it has: counters, health; a new scheduler's schedules fire "
        "only once a process makes a scheduler of that name"
    )
    assert err.rstrip().endswith("pass --new-scheduler to create it anyway")
    assert snapshot(db) == before  # nothing written
    assert run(*argv, "--scheduler", "helth", "--json")[0] == 2
    error = json.loads(capsys.readouterr().err)
    assert (error["error"], error["field"], error["value"], error["exit_status"]) == (
        "ValidationError",
        "--scheduler",
        "helth",
        2,
    )
    assert run("schedules", "list", "--db", str(db), "--scheduler", "helth")[0] == 2
    assert "did you mean 'health'?" in capsys.readouterr().err
    assert run(*argv, "--scheduler", "reports", "--new-scheduler") == (0, "created\n")
    assert "no process has attached a target to scheduler 'reports'" in capsys.readouterr().err
    assert run("schedules", "list", "--db", str(db), "--scheduler", "reports")[0] == 0


@pytest.mark.parametrize(
    "payload",
    [
        '{"aggregateId": "c-1", "command": "Tock"}',
        '{"aggregateId": "c-1", "command": "Add", "amountDue": "7"}',
        '{"aggregateId": "c-1", "command": "Add", "amount_due": 7}',
        '{"aggregateId": "c 1", "command": "Tick"}',
        '{"command": "Tick"}',
        "Tick",
    ],
)
def test_create_refuses_the_payloads_the_api_refuses(
    tmp_path: Path, payload: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "app.db"
    app_store(db)
    before = snapshot(db)

    async def api_refusal() -> str:
        async with reventless.local.provider(":memory:") as provider:
            counters = await Aggregate.make(provider, counter_spec())
            ops = (await Scheduler.make(provider, target=counters.command_topic)).operations
            with pytest.raises(ValidationError) as refused:
                await ops.create_schedule(Schedule(name="x", rate=Minutes(5), payload=payload))
            return str(refused.value.__cause__)

    expected = anyio.run(api_refusal)
    argv = ["schedules", "create", "x", "Minutes(5)", "--db", str(db), "--scheduler", "counters"]
    assert run(*argv, "--payload", payload) == (2, "")
    assert capsys.readouterr().err == (
        "reventless: error: --payload is refused by the command topic of aggregate "
        f"'counters': {expected}\n"
    )
    assert snapshot(db) == before


def test_create_stores_what_the_api_accepts_and_notes_what_it_could_not_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "app.db"
    app_store(db)
    argv = ["schedules", "create", "x", "Minutes(5)", "--db", str(db)]
    good = '{"aggregateId": "c-2", "command": "Add", "amountDue": 7}'
    assert run(*argv, "--scheduler", "counters", "--payload", good) == (0, "created\n")
    assert capsys.readouterr().err == ""  # checked: nothing to note
    status, text = run(*argv, "--scheduler", "counters", "--payload", good, "--json")
    assert (status, json.loads(text)) == (
        0,
        {"outcome": "replaced", "scheduler": "counters", "payload_checked": True, "notes": []},
    )
    assert run(*argv, "--scheduler", "health", "--payload", "anything") == (0, "created\n")
    assert capsys.readouterr().err == (
        "reventless: note: payload not checked: the target of scheduler 'health' (event topic "
        "'health') states no payload rules; it is stored as given\n"
    )


def engine_serving(path: Path, scheduler: str, argv: list[str]) -> tuple[int, str]:
    """Run ``argv`` while an engine in this process leads on ``path`` serving ``scheduler``."""

    async def serve() -> tuple[int, str]:
        async with reventless.local.provider(path) as provider:
            counters = await Aggregate.make(provider, counter_spec())
            await Scheduler.make(provider, target=counters.command_topic, name=scheduler)
            async with anyio.create_task_group() as group:
                await group.start(provider.run)
                assert provider.is_leading
                result = await anyio.to_thread.run_sync(lambda: run(*argv))
                group.cancel_scope.cancel()
        return result

    return anyio.run(serve)


def test_list_and_show_say_whether_a_running_engine_serves_the_scheduler(
    tmp_path: Path,
) -> None:
    db = tmp_path / "app.db"
    app_store(db)
    engine = f"pid {os.getpid()} on {os.uname().nodename}"
    listing = ["schedules", "list", "--db", str(db), "--scheduler"]
    status, text = engine_serving(db, "counters", [*listing, "counters"])
    assert status == 0
    assert text.splitlines()[1].split()[3] == "active"
    assert text.splitlines()[-1] == f"scheduler 'counters': served by the running engine ({engine})"
    status, text = engine_serving(db, "counters", [*listing, "health"])
    assert text.splitlines()[1].split()[3] == "waiting"
    assert text.splitlines()[-1] == (
        f"scheduler 'health': the running engine ({engine}) has no target attached to scheduler "
        "'health': its fires wait until a process that makes this scheduler runs the engine"
    )
    status, text = engine_serving(db, "counters", ["schedulers", "--db", str(db)])
    assert text.splitlines()[1].endswith("yes") and text.splitlines()[2].endswith("no")
    assert text.splitlines()[-1].startswith(f"engine: {engine}, lease until ")
    status, text = run("schedules", "show", "tick", "--db", str(db), "--scheduler", "counters")
    assert "state:      waiting\n" in text
    assert "engine:     no engine is running on this store: fires wait until one runs" in text


def test_an_overdue_next_fire_is_shown_as_overdue(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    # real clock: the CLI judges overdue by it; the schedules are intervals, any hour alike
    app_store(db, clock=VirtualClock(datetime.now(UTC) - timedelta(hours=3)))
    argv = ["--db", str(db), "--scheduler", "counters"]
    status, text = run("schedules", "list", *argv)
    assert status == 0 and text.splitlines()[1].split()[3:5] == ["waiting,", "overdue"]
    status, text = run("schedules", "show", "tick", *argv, "--count", "1")
    assert status == 0 and "state:      waiting, overdue\n" in text
    assert re.search(r"overdue: +the next fire was due 2h 5[0-9]m ago", text)
    assert json.loads(run("schedules", "show", "tick", *argv, "--json")[1])["status"] == (
        "waiting, overdue"
    )


def test_a_scheduler_known_only_from_its_history_is_listed(tmp_path: Path) -> None:
    db = str(tmp_path / "app.db")
    create = ["schedules", "create", "once", "Hours(1)", "--payload", "p", "--db", db]
    assert run(*create, "--scheduler", "oneoff", "--new-scheduler")[0] == 0
    assert run("schedules", "delete", "once", "--db", db, "--scheduler", "oneoff")[0] == 0
    status, text = run("schedulers", "--db", db)
    assert status == 0 and text.splitlines()[1].split() == ["oneoff", "0", "0", "-", "no"]
    assert run(*create, "--scheduler", "oneoff")[0] == 0  # known: no --new-scheduler needed


def test_a_store_written_before_attachments_were_recorded_is_listed(tmp_path: Path) -> None:
    from tests.test_attach import _old_store

    db = tmp_path / "old.db"
    _old_store(db)
    status, text = run("schedulers", "--db", str(db))
    assert status == 0 and text.splitlines()[1].split() == ["old", "1", "0", "-", "no"]
    status, text = run("schedules", "list", "--db", str(db))
    assert status == 0 and text.splitlines()[1].startswith("legacy ")


def test_create_if_exists_keep_and_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "s.db")
    create = ("schedules", "create", "tick", "--db", db)
    assert run(*create, "Minutes(5)", "--payload", "x", "--new-scheduler") == (0, "created\n")
    assert run(*create, "Minutes(10)", "--payload", "y", "--if-exists", "keep") == (0, "kept\n")
    capsys.readouterr()  # the notes so far (no target has recorded payload rules)
    status, _ = run(*create, "Minutes(10)", "--payload", "y", "--if-exists", "error", "--json")
    assert status == 1
    error = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert error["error"] == "ScheduleExistsError" and error["schedules"] == ["tick"]
    status, _ = run(*create, "Minutes(10)", "--payload", "y", "--if-exists", "overwrite")
    assert status == 2
    assert "--if-exists 'overwrite' is not allowed" in capsys.readouterr().err
    status, text = run("schedules", "show", "tick", "--db", db)
    assert status == 0 and "Minutes(5)" in text and "x" in text


def test_create_with_a_dst_policy_stores_and_shows_it(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    argv = ["schedules", "create", "meter", "Daily(1, 30)", "--payload", "p", "--db", db]
    argv += ["--timezone", "Europe/Dublin", "--dst", "overlap=both", "--new-scheduler"]
    assert run(*argv) == (0, "created\n")
    _, text = run("schedules", "show", "meter", "--db", db)
    assert "dst:        gap=skip,overlap=both" in text
    _, text = run("schedules", "show", "meter", "--db", db, "--json")
    assert json.loads(text)["state"]["schedule"]["dst"] == {"gap": "skip", "overlap": "both"}
    argv = ["schedules", "create", "tick", "Minutes(5)", "--payload", "p", "--db", db]
    assert run(*argv, "--dst", "gap=shift")[0] == 2
    assert run(*argv, "--dst", "gap=")[0] == 2
    _, text = run("schedules", "list", "--db", db, "--json")
    assert [s["schedule"]["name"] for s in json.loads(text)["schedules"]] == ["meter"]


# -- payloads from a file or standard input -------------------------------------------------------


def _big_payload() -> str:
    """200,000 bytes of UTF-8 JSON (some of it two-byte characters): under the 256 KiB limit,
    over what Linux lets one command-line argument hold (128 KiB)."""
    frame = json.dumps({"note": "ä" * 50_000, "pad": ""}, ensure_ascii=False)
    text = json.dumps(
        {"note": "ä" * 50_000, "pad": "x" * (200_000 - len(frame.encode()))}, ensure_ascii=False
    )
    assert len(text.encode()) == 200_000
    return text


def _created_payload(db: Path, name: str) -> str:
    status, text = run("schedules", "show", name, "--db", str(db), "--json")
    assert status == 0, text
    payload: str = json.loads(text)["state"]["schedule"]["payload"]
    return payload


def test_a_200_kb_payload_from_a_file_and_from_stdin_as_a_real_process(tmp_path: Path) -> None:
    """Before: only --payload, and 200 KB on the command line is "Argument list too long"."""
    payload = _big_payload()
    source = tmp_path / "payload.json"
    source.write_text(payload, encoding="utf-8")
    db = tmp_path / "big.db"
    command = [sys.executable, "-m", "reventless", "schedules", "create", "--db", str(db)]
    done = subprocess.run(
        [*command, "from-file", "Hours(6)", "--payload-file", str(source), "--new-scheduler"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "created\n"), done.stderr
    done = subprocess.run(
        [*command, "from-stdin", "Hours(6)", "--payload-file", "-"],
        input=payload.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, b"created\n"), done.stderr
    assert _created_payload(db, "from-file") == payload
    assert _created_payload(db, "from-stdin") == payload


def test_standard_input_over_the_limit_is_refused_as_a_real_process(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    command = [sys.executable, "-m", "reventless", "schedules", "create", "x", "Hours(6)"]
    done = subprocess.run(
        [*command, "--payload-file", "-", "--db", str(db), "--new-scheduler", "--json"],
        input=b"a" * (256 * 1024 + 1),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, b"")
    error = json.loads(done.stderr)
    assert error["field"] == "--payload-file" and error["value"] == "-"
    assert error["message"] == (
        "--payload-file '-' (standard input): holds more than 262,144 bytes; a payload is 1 "
        "byte to 262,144 bytes (256 KiB)"
    )
    assert not db.exists()


_ALLOWED_FILE = (
    "expected a file of 1 byte to 262,144 bytes (256 KiB) of UTF-8 text, or '-' for stdin"
)


@pytest.mark.parametrize(
    ("content", "path", "says"),
    [
        (None, "missing.json", f"--payload-file 'missing.json': no such file; {_ALLOWED_FILE}"),
        (None, ".", f"--payload-file '.': is a folder; {_ALLOWED_FILE}"),
        (None, "\x00", f"--payload-file '\\x00': has a NUL character; {_ALLOWED_FILE}"),
        (b"", "p.json", f"--payload-file 'p.json': is empty; {_ALLOWED_FILE}"),
        (
            b'{"a": "\xff"}',
            "p.json",
            f"--payload-file 'p.json': is not UTF-8 text (byte 0xff at offset 7); {_ALLOWED_FILE}",
        ),
        (
            b"a" * (256 * 1024 + 1),
            "p.json",
            "--payload-file 'p.json': holds more than 262,144 bytes; a payload is 1 byte to "
            "262,144 bytes (256 KiB)",
        ),
    ],
)
def test_a_payload_file_that_cannot_be_a_payload_is_refused_and_nothing_is_made(
    content: bytes | None,
    path: str,
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    if content is not None:
        Path(path).write_bytes(content)
    argv = ["schedules", "create", "x", "Hours(6)", "--payload-file", path, "--db", "s.db"]
    assert run(*argv, "--new-scheduler") == (2, "")
    assert capsys.readouterr().err == f"reventless: error: {says}\n"
    assert not Path("s.db").exists()


def test_exactly_the_limit_from_a_file_is_taken(tmp_path: Path) -> None:
    source = tmp_path / "p.txt"
    source.write_bytes(b"a" * (256 * 1024))
    db = tmp_path / "s.db"
    argv = ["schedules", "create", "x", "Hours(6)", "--payload-file", str(source)]
    assert run(*argv, "--db", str(db), "--new-scheduler") == (0, "created\n")
    assert _created_payload(db, "x") == "a" * (256 * 1024)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_payload_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "p.json"
    source.write_text("{}")
    source.chmod(0)
    argv = ["schedules", "create", "x", "Hours(6)", "--payload-file", str(source)]
    assert run(*argv, "--db", str(tmp_path / "s.db"), "--new-scheduler") == (2, "")
    assert "cannot be read (permission denied)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--payload", "p", "--payload-file", "p.json"], "not allowed with argument"),
        ([], "one of the arguments --payload --payload-file is required"),
        (["--payload", ""], "--payload is 0 bytes of UTF-8; allowed are 1 to 262144 (256 KiB)"),
        (["--payload", "p", "--if-exists", "overwrite"], "--if-exists 'overwrite' is not allowed"),
        (["--payload", "p", "--timezone", "Mars/Base"], "--timezone 'Mars/Base' is not allowed"),
    ],
)
def test_payload_and_payload_file_exclude_each_other_and_one_is_needed(
    options: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused create makes no store file, whichever option is refused (an empty --payload,
    a bad --if-exists or --timezone made one before)."""
    db = tmp_path / "s.db"
    argv = ["schedules", "create", "x", "Hours(6)", "--db", str(db), "--new-scheduler"]
    assert run(*argv, *options) == (2, "")
    assert says in capsys.readouterr().err
    assert not db.exists()


def test_a_payload_file_the_typed_target_refuses_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "app.db"
    app_store(db)
    source = tmp_path / "renew.json"
    source.write_text('{"aggregateId": "c-1", "command": "Nope"}\n')
    before = snapshot(db)
    argv = ["schedules", "create", "t2", "Minutes(5)", "--scheduler", "counters"]
    assert run(*argv, "--payload-file", str(source), "--db", str(db))[0] == 2
    err = capsys.readouterr().err
    assert err.startswith("reventless: error: --payload-file is refused by the command topic")
    assert snapshot(db) == before


def test_a_closed_standard_input_is_refused_as_a_real_process(tmp_path: Path) -> None:
    """Started with stdin closed (`<&-`), Python has no sys.stdin: a refusal, not a bug."""
    db = tmp_path / "s.db"
    done = subprocess.run(
        [
            "sh",
            "-c",
            '"$0" -m reventless schedules create x "Hours(6)" --payload-file - --db "$1" '
            "--new-scheduler <&-",
            sys.executable,
            str(db),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "reventless: error: --payload-file '-' (standard input): standard input is closed\n"
    )
    assert not db.exists()


def test_a_backfill_range_too_long_names_the_option_in_its_json_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store refuses more than 10,000 fires under the API's field "end"; the command
    line's JSON error names --end and the text given for it."""
    db = tmp_path / "app.db"
    # real clock: the command compares with now; only the 40 days count, never the hour
    now = datetime.now(UTC)
    app_store(db, clock=VirtualClock(now - timedelta(days=40)))
    start = (now - timedelta(days=39)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    where = ["--scheduler", "health", "--db", str(db)]
    assert run("schedules", "pause", "ping", *where)[0] == 0  # its next fire no longer bounds it
    argv = ["schedules", "backfill", "ping", *where, "--start", start, "--end", end, "--json"]
    assert run(*argv) == (2, "")
    error = json.loads(capsys.readouterr().err)
    assert (error["field"], error["value"]) == ("--end", end)
    assert "backfill it in smaller ranges" in error["message"]
