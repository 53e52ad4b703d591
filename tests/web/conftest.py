"""Fixtures of the console's tests: a filled store with its engine running in this process,
and ``reventless web`` serving it from a process of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.console_store import ConsoleProcess, Engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    running = Engine(tmp_path / "app.db").start()
    yield running
    running.stop()


@pytest.fixture
def console(engine: Engine) -> Iterator[ConsoleProcess]:
    server = ConsoleProcess(engine.db)
    yield server
    err = server.stop()
    assert "Traceback" not in err, err
