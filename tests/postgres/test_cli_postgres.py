"""The command line on a PostgreSQL store: ``--db postgresql://...`` or ``$REVENTLESS_DB``."""

from __future__ import annotations

import io
import json

import pytest

from reventless.cli import main


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_schedules_on_a_postgres_store(postgres_dsn: str) -> None:
    db = ("--db", postgres_dsn)
    made = ("--payload", "x", "--new-scheduler", *db)
    assert run("schedules", "create", "tick", "Minutes(5)", *made) == (0, "created\n")
    assert run("schedules", "create", "tick", "Minutes(10)", "--payload", "y", *db) == (
        0,
        "replaced\n",
    )
    status, text = run("schedules", "pause", "tick", "--by", "ana", *db)
    assert status == 0 and "by ana" in text
    status, text = run("schedules", "history", "tick", "--json", *db)
    assert [entry["kind"] for entry in json.loads(text)] == ["created", "replaced", "paused"]
    status, text = run("schedulers", "--json", *db)
    assert status == 0, text
    assert run("schedules", "delete", "tick", *db) == (0, "deleted\n")


def test_the_url_may_come_from_the_environment(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVENTLESS_DB", postgres_dsn)
    made = ("--payload", "x", "--new-scheduler")
    assert run("schedules", "create", "tick", "Minutes(5)", *made) == (0, "created\n")
    status, text = run("schedules", "list", "--json")
    assert status == 0
    assert [s["schedule"]["name"] for s in json.loads(text)["schedules"]] == ["tick"]


def test_the_demo_runs_on_a_postgres_store_and_wants_an_empty_one(
    postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = postgres_dsn.replace("postgres@", "postgres:s3cret@", 1)
    status, text = run("demo", "--days", "2", "--db", db)
    assert status == 0, text
    counts = [line.split() for line in text.split("Fires per schedule")[1].splitlines()[1:12]]
    delivered = {row[0]: (row[1], row[3]) for row in counts if len(row) >= 4 and row[2] == "/"}
    assert delivered["process-orders"] == ("48", "48")
    assert all(got == due for got, due in delivered.values()), delivered
    assert "(reaction) created reminder-" in text  # the reaction ran on PostgreSQL
    # What it made stays in the database, as in a file.
    status, listed = run("schedules", "list", "--scheduler", "orders", "--db", db)
    assert status == 0 and "process-orders" in listed
    assert run("demo", "--days", "1", "--db", db)[0] == 2
    said = capsys.readouterr().err
    assert "already holds schedulers" in said and "s3cret" not in said + text
