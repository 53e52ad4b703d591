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


def test_reactions_are_refused_on_a_postgres_store_for_now(
    postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("reactions", "list", "--db", postgres_dsn) == (2, "")
    assert "reactions are not offered yet" in capsys.readouterr().err


def test_the_demo_refuses_a_postgres_url_without_showing_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("demo", "--db", "postgresql://app:s3cret@db/app")[0] == 2
    said = capsys.readouterr().err
    assert "keeps its store in a file" in said and "s3cret" not in said


@pytest.mark.parametrize("command", ["web", "check"])
def test_the_console_and_the_check_refuse_a_postgres_store_for_now(
    command: str, postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(command, "--db", postgres_dsn) == (2, "")
    assert "not served yet" in capsys.readouterr().err
