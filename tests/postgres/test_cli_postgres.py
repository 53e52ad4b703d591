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


async def _tables(dsn: str) -> dict[str, set[str]]:
    """The tables of each schema of the database that are not PostgreSQL's own."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
    finally:
        await conn.close()
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row[0], set()).add(row[1])
    return found


def test_schema_names_the_store_in_the_database(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import anyio

    db = ("--db", postgres_dsn)
    made = ("--payload", "x", "--new-scheduler", *db)
    assert run("schedules", "create", "tick", "Minutes(5)", *made, "--schema", "orders") == (
        0,
        "created\n",
    )
    assert set(anyio.run(_tables, postgres_dsn)) == {"orders"}
    capsys.readouterr()
    status, text = run("schedules", "list", "--json", *db, "--schema", "orders")
    assert status == 0
    assert [s["schedule"]["name"] for s in json.loads(text)["schedules"]] == ["tick"]
    monkeypatch.setenv("REVENTLESS_SCHEMA", "orders")
    status, text = run("schedulers", "--json", *db)
    assert status == 0 and [s["name"] for s in json.loads(text)["schedulers"]] == ["default"]
    # The option wins over the variable; a bad name is refused by the name it came by.
    assert run("schedules", "list", *db, "--schema", "Orders") == (2, "")
    said = capsys.readouterr().err
    assert said.startswith("reventless: error: --schema 'Orders'"), said
    monkeypatch.setenv("REVENTLESS_SCHEMA", "pg_orders")
    assert run("schedules", "list", *db) == (2, "")
    assert "$REVENTLESS_SCHEMA" in capsys.readouterr().err
    assert set(anyio.run(_tables, postgres_dsn)) == {"orders"}  # nothing made elsewhere


_READS = [
    ["schedules", "list"],
    ["schedules", "show", "tick"],
    ["schedules", "history", "tick"],
    ["schedules", "dead-letters"],
    ["schedulers"],
    ["reactions", "list"],
    ["reactions", "show", "renewals"],
    ["reactions", "dead-letters", "renewals"],
    ["check"],
]


@pytest.mark.parametrize("argv", _READS, ids=" ".join)
def test_a_read_command_on_a_database_without_the_store_writes_nothing(
    argv: list[str], postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import anyio

    db = postgres_dsn.replace("postgres@", "postgres:s3cret@", 1)
    assert run(*argv, "--db", db, "--schema", "orders") == (2, "")
    said = capsys.readouterr().err
    where = postgres_dsn.split("@", 1)[1]
    assert said == (
        f"reventless: error: PostgreSQL store schema 'orders' of {where}: there is no store "
        "there yet (the schema has no tables); it is made by `reventless run`, by an "
        "application (the provider opened without read_only), or by `reventless schedules "
        "create ... --new-scheduler`\n"
    )
    assert anyio.run(_tables, postgres_dsn) == {}
    assert anyio.run(_schemas, postgres_dsn) == set()


async def _schemas(dsn: str) -> set[str]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT LIKE 'pg_%'"
            " AND schema_name NOT IN ('information_schema', 'public')"
        )
    finally:
        await conn.close()
    return {row[0] for row in rows}


def test_the_console_read_only_on_a_database_without_the_store_writes_nothing(
    postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    import anyio

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert run("web", "--db", postgres_dsn, "--port", str(port)) == (2, "")
    assert "there is no store there yet" in capsys.readouterr().err
    assert anyio.run(_tables, postgres_dsn) == {}
    assert anyio.run(_schemas, postgres_dsn) == set()
