"""The package logs through the ``reventless`` logger tree only: quiet when the application
configured no logging, as a library should be, and heard as soon as it does."""

from __future__ import annotations

import importlib.util
import logging
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import reventless

ROOT = Path(__file__).resolve().parent.parent

FAILING_SUBSCRIBER = """
import logging, sys
import anyio
import reventless.local
from reventless.aggregate import Aggregate
from tests.test_aggregate import Tick, counter_spec

async def main():
    async with reventless.local.provider(":memory:") as provider:
        counters = await Aggregate.make(provider, counter_spec())

        async def broken(message):
            raise RuntimeError("subscriber down")

        counters.event_topic.subscribe(broken)
        for number in range(3):
            await counters.handle("c-1", Tick(), message_id=f"m{number}")
    print("handled")

if sys.argv[1:] == ["configured"]:
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
anyio.run(main)
"""


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", FAILING_SUBSCRIBER, *argv],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_failing_subscriber_prints_nothing_when_no_logging_is_configured() -> None:
    done = _run()
    assert done.returncode == 0 and done.stdout == "handled\n", done.stderr
    assert done.stderr == ""


def test_a_failing_subscriber_is_logged_under_reventless_once_logging_is_configured() -> None:
    done = _run("configured")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 3, lines
    for line in lines:
        assert line.startswith(
            "reventless.event_topic ERROR topic 'counters': 1 subscriber(s) failed"
        )
        assert "RuntimeError: subscriber down" in line


def _modules() -> list[str]:
    found = pkgutil.walk_packages(reventless.__path__, "reventless.")
    return sorted(module.name for module in found)


@pytest.mark.parametrize("name", _modules())
def test_every_logger_a_module_names_is_under_reventless(name: str) -> None:
    """A logger outside the tree would bypass its handler (and print with nothing configured)."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).read_text()
    for call in re.findall(r"getLogger\(([^)]*)\)", source):
        assert re.fullmatch(r"""["']reventless(\.[a-z_.]+)?["']""", call), (name, call)


def test_the_tree_has_a_handler_so_python_prints_nothing_of_its_own() -> None:
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("reventless").handlers)
