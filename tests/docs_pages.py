"""The manual's pages as the tests read them: fenced blocks, files, programs and shell sessions.

How a page's examples run (docs/index.md says the same to contributors):

- A ```python block whose first line is ``# NAME.py`` is that file: it is written into the page's
  temporary directory, where the page's other examples can import it. A block that starts with
  ``# NAME.py, continued`` is added to the end of it.
- The page's other ```python blocks are one program, in page order and one namespace. It is saved
  with everything else on the page blanked out, so a traceback's line numbers are the page's, and
  run with ``python`` in the page's directory; any exception fails the test. A program that runs
  until it is stopped is tested by a scenario of its own (see ``Process``).
- ```pycon blocks are doctests; all of a page's ``>>>`` lines share one namespace.
- A ```text block that starts with ``$ `` is a shell session: each ``$ reventless ...`` line is
  run in the page's directory and what it prints must be the lines below it. A ``^C`` line means:
  once everything above it is printed, press Ctrl-C (SIGINT) and read the rest.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md"])
PROGRAM = "docs_page.py"
# Fence languages a page may use; an unknown one (```py) would silently escape the tests.
LANGUAGES = frozenset({"python", "pycon", "text", "sh", "toml"})

_FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
_FILE = re.compile(r"# ([\w-]+\.py)(?:, continued)?\n")
_INTERRUPT = "^C"


def page_id(page: Path) -> str:
    return page.name


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int  # the page line of the block's first line of content

    @property
    def file_name(self) -> str | None:
        match = _FILE.match(self.text)
        return match[1] if match and self.language == "python" else None


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [
        Block(match[1], match[2], text.count("\n", 0, match.start(2)) + 1)
        for match in _FENCE.finditer(text)
    ]


def files(page: Path) -> dict[str, str]:
    """The page's files: its ``# NAME.py`` blocks by name, a ``# NAME.py, continued`` block
    added to the end of the file."""
    found: dict[str, str] = {}
    for block in blocks(page):
        if block.file_name is not None:
            before = found.get(block.file_name)
            found[block.file_name] = block.text if before is None else f"{before}\n\n{block.text}"
    return found


def program(page: Path) -> str | None:
    """The page's ```python blocks that are not files, at their page lines; None when none."""
    code = [b for b in blocks(page) if b.language == "python" and b.file_name is None]
    if not code:
        return None
    lines = [""] * (page.read_text().count("\n") + 1)
    for block in code:
        for offset, line in enumerate(block.text.splitlines()):
            lines[block.line - 1 + offset] = line
    return "\n".join(lines) + "\n"


def lay_out(page: Path, directory: Path) -> Path | None:
    """Write the page's files and program into ``directory``; the program's path, if any."""
    for name, text in files(page).items():
        (directory / name).write_text(text)
    code = program(page)
    if code is None:
        return None
    path = directory / PROGRAM
    path.write_text(code)
    return path


def environment(**extra: str) -> dict[str, str]:
    """The environment examples run in: this checkout's reventless, unbuffered output, no AWS
    settings from the caller (a test that wants AWS passes its own, pointing at moto)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def _default_sigint() -> None:
    # A shell without job control starts background jobs with SIGINT ignored, and an ignored
    # signal stays ignored across exec: undo that, so Ctrl-C reaches the example as it would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Process:
    """A program that runs until stopped: its output read as it comes, then Ctrl-C."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self._process = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_sigint,
        )
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [
            threading.Thread(
                target=self._read, args=(self._process.stdout, self._out), daemon=True
            ),
            threading.Thread(
                target=self._read, args=(self._process.stderr, self._err), daemon=True
            ),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
            into.append(line)
        stream.close()  # type: ignore[attr-defined]

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    @property
    def output(self) -> str:
        return "".join(self._out)

    @property
    def errors(self) -> str:
        return "".join(self._err)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until the output matches ``pattern`` (a regex searched in all of it)."""
        found: list[re.Match[str]] = []

        def matches(output: str) -> bool:
            found[:] = [m for m in [re.search(pattern, output, re.M)] if m is not None]
            return bool(found)

        self.wait_until(matches, timeout, f"never printed {pattern!r}")
        return found[0]

    def wait_until(self, done: Callable[[str], bool], timeout: float, failure: str) -> None:
        """Wait until ``done(output so far)``; fail with ``failure`` when the program ends or
        ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while not done(self.output):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(
                    f"{failure} (exit status {self._process.returncode});\n"
                    f"stdout:\n{self.output}\nstderr:\n{self.errors}"
                )
            time.sleep(0.05)

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, then wait for the exit; returns the exit status."""
        self._process.send_signal(signal.SIGINT)
        try:
            status = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running {timeout} s after Ctrl-C") from None
        for reader in self._readers:
            reader.join(timeout=10)
        return status

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        for reader in self._readers:
            reader.join(timeout=10)


# -- shell sessions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    line: int
    command: str
    expected: str  # what it prints, stdout then stderr; may hold a ^C line

    @property
    def args(self) -> list[str]:
        """The command as run: ``reventless`` is this interpreter's ``python -m reventless``."""
        words = shlex.split(self.command)
        assert words[0] == "reventless", f"line {self.line}: only reventless commands run here"
        return [sys.executable, "-m", "reventless", *words[1:]]


def sessions(page: Path) -> list[Command]:
    """The ``$ reventless`` commands of the page's ```text sessions, in page order."""
    commands = []
    for block in blocks(page):
        if block.language != "text" or not block.text.startswith("$ "):
            continue
        lines = block.text.splitlines(keepends=True)
        starts = [i for i, line in enumerate(lines) if line.startswith("$ ")]
        for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
            commands.append(
                Command(
                    block.line + start, lines[start][2:].strip(), "".join(lines[start + 1 : end])
                )
            )
    return commands


_INSTANT = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) )?\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d)?(?:\.\d+)?"
    r"(?:Z|[+-]\d\d:\d\d| [A-Z]{3,5}\b)?"
)


def without_instants(text: str) -> str:
    """``text`` with every date and time replaced by one placeholder of the same width."""
    return _INSTANT.sub(lambda m: "T" * len(m[0]), text)


def run_session(command: Command, cwd: Path, *, mask_instants: bool, timeout: float) -> None:
    """Run one shell command as its page shows it and compare what it prints."""
    show = without_instants if mask_instants else (lambda text: text)
    before, marker, after = command.expected.partition(_INTERRUPT + "\n")
    if not marker:
        done = subprocess.run(
            command.args,
            cwd=cwd,
            env=environment(),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        assert show(done.stdout + done.stderr) == show(command.expected), (
            f"line {command.line}: $ {command.command}\n{done.stdout}{done.stderr}"
        )
        return
    process = Process(command.args, cwd, environment())
    process.wait_until(
        lambda output: show(output).startswith(show(before)),
        timeout,
        f"line {command.line}: $ {command.command} never printed what is shown before ^C",
    )
    status = process.interrupt()
    got = show(process.output + process.errors)
    assert got == show(before + after), f"line {command.line}: $ {command.command}\n{got}"
    assert status == 0, f"line {command.line}: exit status {status} after Ctrl-C"
