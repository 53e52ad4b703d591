"""``reventless web``'s refusals, each one line before anything is served."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from reventless.cli import main
from tests.web.console_store import TOKEN, Engine


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    engine = Engine(tmp_path_factory.mktemp("store") / "app.db").start()
    engine.stop()
    return engine.db


def _web(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(["web", *argv], out=io.StringIO())
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error, error
    return status, error


@pytest.mark.parametrize(
    ("argv", "status", "says"),
    [
        (["--host", "0.0.0.0"], 2, "--host 0.0.0.0 is reachable from other machines"),
        (["--token", "short"], 2, "--token"),
        (["--port", "70000"], 2, "--port"),
        (["--port", "http"], 2, "--port"),
        (["--max-late", "soon"], 2, "--max-late"),
    ],
)
def test_bad_options_are_refused_in_one_line(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], status: int, says: str
) -> None:
    answer, error = _web(capsys, "--db", str(db), *argv)
    assert answer == status
    assert error.startswith("reventless: error: ") and says in error


def test_a_missing_store_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, error = _web(capsys, "--db", str(tmp_path / "none.db"), "--token", TOKEN)
    assert status == 2 and "no such file" in error


def test_a_taken_port_is_refused(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        status, error = _web(capsys, "--db", str(db), "--port", port)
    assert status == 2 and f"cannot listen on 127.0.0.1:{port}" in error
