"""The manual's examples run: ``>>>`` lines as doctests, ``$ reventless`` lines as commands."""

from __future__ import annotations

import doctest
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md"])


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_doctest_examples_in_page(page: Path) -> None:
    result = doctest.testfile(
        str(page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
        report=True,
    )
    assert result.failed == 0, f"{result.failed} example(s) failed in {page.name}"


def shell_sessions() -> list[tuple[str, str, str]]:
    sessions = []
    for page in PAGES:
        for block in re.findall(r"```text\n(.*?)```", page.read_text(), flags=re.S):
            if not block.startswith("$ reventless "):
                continue
            command, _, expected = block.partition("\n")
            sessions.append((page.name, command[2:], expected))
    return sessions


@pytest.mark.parametrize(("page", "command", "expected"), shell_sessions())
def test_command_sessions_in_pages_print_what_they_show(
    page: str, command: str, expected: str
) -> None:
    args = shlex.split(command)[1:]
    done = subprocess.run(
        [sys.executable, "-m", "reventless", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.stdout + done.stderr == expected, f"{page}: {command}"


def test_pages_have_examples() -> None:
    assert len(shell_sessions()) >= 2
    assert all(
        ">>>" in page.read_text()
        for page in PAGES
        if page.parent.name == "docs" and page.name != "cli.md"
    )
