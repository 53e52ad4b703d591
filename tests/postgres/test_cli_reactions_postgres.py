"""``reventless reactions ...`` on a PostgreSQL store, through the provider's Reactions port: the
embedded store's command tests (tests/test_cli_reactions.py) on the real server, a URL with a
password that no output shows, and a server that cannot be reached."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import reventless.postgres
from reventless.cli import main
from tests.reaction_app import Open, make_plugin

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-pw"


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def with_password(dsn: str) -> str:
    """The test server trusts local connections: a password in the URL is sent to nobody, but
    it is in every string the command gets, so that no output may show it."""
    assert dsn.startswith("postgresql://postgres@")
    return dsn.replace("postgres@", f"postgres:{PASSWORD}@", 1)


async def _stopped_reaction(dsn: str) -> None:
    """The store of tests/test_cli_reactions.py: ``renewals`` stopped on a1's event, a2's
    pending behind it."""
    async with (
        reventless.postgres.provider(dsn, poll_interval=0.05) as provider,
        make_plugin(max_attempts=1).start(provider) as running,
        anyio.create_task_group() as group,
    ):
        await group.start(provider.run)
        await running.aggregates["accounts"].handle("a1", Open(timezone="Nowhere/Zone"))
        await running.aggregates["accounts"].handle("a2", Open())
        with anyio.fail_after(20):
            while True:
                statuses = await provider.reactions().statuses()
                if statuses and statuses[0].state == "stopped":
                    break
                await anyio.sleep(0.02)
        group.cancel_scope.cancel()


def test_reactions_commands_on_a_postgres_store(
    postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    anyio.run(_stopped_reaction, postgres_dsn)
    db = with_password(postgres_dsn)
    said: list[str] = []

    def run(*argv: str) -> tuple[int, str]:
        status, text = cli("reactions", *argv, "--db", db)
        said.append(text + capsys.readouterr().err)
        return status, said[-1]

    status, text = run("list")
    assert status == 0
    assert text.splitlines()[1].split()[:6] == ["renewals", "accounts", "stopped", "0", "2", "2"]
    status, text = run("list", "--json")
    [document] = json.loads(text)
    assert (document["state"], document["pending"], document["head"]) == ("stopped", 2, 2)
    status, text = run("dead-letters", "renewals", "--json")
    [letter] = json.loads(text)
    assert letter["aggregate_id"] == "a1" and "Nowhere/Zone" in letter["reason"]
    status, text = run("dead-letters", "renewals")
    assert "accounts/a1@1" in text and "stopped" in text
    assert run("resume", "renewals", "--skip") == (
        0,
        "reaction 'renewals' resumes after position 1\n",
    )
    assert run("reset", "renewals", "--position", "0") == (
        0,
        "reaction 'renewals' reset to position 0\n",
    )
    status, text = run("list", "--json")
    assert (json.loads(text)[0]["state"], json.loads(text)[0]["position"]) == ("running", 0)

    status, text = run("dead-letters", "nope", "--json")
    error = json.loads(text)
    assert (status, error["error"], error["reaction"], error["exit_status"]) == (
        1,
        "ReactionNotFoundError",
        "nope",
        1,
    )
    assert run("resume", "nope")[0] == 1
    status, text = run("reset", "renewals", "--position", "-1")
    assert status == 2 and "--position -1 is not allowed" in text
    # Past the log's head (2), the events appended until then would be skipped: refused.
    status, text = run("reset", "renewals", "--position", "3")
    assert status == 2
    assert "position 3 is not allowed; expected a log position from 0 to the log's head, 2" in text
    assert json.loads(run("list", "--json")[1])[0]["position"] == 0  # unchanged
    status, text = run("reset", "bad name", "--position", "1")
    assert status == 2 and text.endswith(
        "reventless: error: reaction name 'bad name' is not allowed; expected 1 to 64 characters "
        "of letters, digits, '.', '_' or '-'\n"
    )
    assert not any(PASSWORD in text for text in said)


def test_the_url_may_come_from_the_environment(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVENTLESS_DB", with_password(postgres_dsn))
    assert cli("reactions", "list")[0] == 2  # no store yet, and a read makes none

    async def make_store() -> None:
        async with reventless.postgres.provider(postgres_dsn):
            pass

    anyio.run(make_store)
    assert cli("reactions", "list") == (
        0,
        "no reactions in this store (one is recorded when it first runs)\n",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unreachable(*argv: str) -> subprocess.CompletedProcess[str]:
    """``reventless ARGV --db URL`` on a port where no server listens, as a process."""
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{free_port()}/app"
    return subprocess.run(
        [sys.executable, "-m", "reventless", *argv, "--db", url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("reactions", "list"),
        ("reactions", "resume", "renewals"),
        ("check",),
        ("web", "--port", "PORT"),
        ("demo", "--days", "1"),
    ],
    ids=lambda argv: "-".join(argv[:2]),
)
def test_an_unreachable_server_is_one_typed_line_without_the_password(
    argv: tuple[str, ...],
) -> None:
    done = unreachable(*(str(free_port()) if arg == "PORT" else arg for arg in argv))
    assert done.returncode == 1, done
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("reventless: error: ") and "PostgreSQL store" in done.stderr
    assert PASSWORD not in done.stderr
    assert "127.0.0.1" in done.stderr  # where it looked
