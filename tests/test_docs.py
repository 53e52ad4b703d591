"""Every example in the manual runs: files, programs, doctests and shell sessions.

How each kind of block runs is in ``tests/docs_pages.py`` and, for contributors, in
docs/index.md. The AWS page runs against moto in ``tests/aws/test_docs_aws.py``.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import itertools
import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

import reventless.local
from reventless import HistoryKind, Schedule, Scheduler
from reventless.errors import ReventlessError
from reventless.fire_times import fire_times
from reventless.schedule import IntervalRate
from reventless.testing import RecordingTarget, VirtualClock
from tests.docs_pages import (
    LANGUAGES,
    PAGES,
    PROGRAM,
    Process,
    blocks,
    environment,
    files,
    lay_out,
    page_id,
    program,
    run_session,
    sessions,
)

# Pages whose program runs until Ctrl-C, each tested by a restart below.
RUN_UNTIL_STOPPED = {"README.md": "state.db", "local-engine.md": "state.db"}
# Pages whose program is a pytest module of the user's.
PYTEST_MODULES = {"testing.md"}
# Pages whose program needs a service, tested where the service's fixtures live.
ELSEWHERE = {
    "aws.md": "tests/aws/test_docs_aws.py",
    "deploy.md": "tests/aws/pulumi/test_docs_deploy.py",  # under Pulumi's mocks
    "postgres.md": "tests/postgres/test_docs_postgres.py",  # on the tests' server
}
# Pages whose sessions print the moment they run: dates and times are compared masked.
CLOCK_TIME_SESSIONS = {"getting-started.md"}


def _page(name: str) -> Path:
    return next(page for page in PAGES if page.name == name)


def _programs(kind: set[str] | None) -> list[Path]:
    """Pages with a program (or, for the plain kind, files) of this kind; None: the plain kind."""
    special = set(RUN_UNTIL_STOPPED) | PYTEST_MODULES | set(ELSEWHERE)
    if kind is not None:
        return [page for page in PAGES if page.name in kind and program(page) is not None]
    return [
        page
        for page in PAGES
        if page.name not in special and (program(page) is not None or files(page))
    ]


@pytest.fixture
def in_page_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The page's directory as the current one and on sys.path; its modules forgotten after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [
        n for n, m in sys.modules.items() if str(tmp_path) in str(getattr(m, "__file__", ""))
    ]:
        del sys.modules[name]


# -- doctests -------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_doctest_examples_in_page(page: Path, in_page_directory: Path) -> None:
    for name, text in files(page).items():
        (in_page_directory / name).write_text(text)
    result = doctest.testfile(
        str(page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
        report=True,
    )
    assert result.failed == 0, f"{result.failed} example(s) failed in {page.name}"


# -- programs -------------------------------------------------------------------------------


def _run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("page", _programs(None), ids=page_id)
def test_page_files_import_and_program_runs(page: Path, tmp_path: Path) -> None:
    path = lay_out(page, tmp_path)
    modules = [name.removesuffix(".py") for name in files(page)]
    commands = [[sys.executable, "-c", f"import {name}"] for name in modules]
    if path is not None:
        commands.append([sys.executable, path.name])
    for command in commands:
        done = _run(command, tmp_path)
        assert done.returncode == 0 and done.stderr == "", (
            f"{page.name}:\n{done.stdout}{done.stderr}"
        )


@pytest.mark.parametrize("page", _programs(PYTEST_MODULES), ids=page_id)
def test_page_program_passes_as_a_pytest_module(page: Path, tmp_path: Path) -> None:
    path = lay_out(page, tmp_path)
    assert path is not None
    done = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", path.name], tmp_path
    )
    assert done.returncode == 0, f"{page.name}:\n{done.stdout}{done.stderr}"
    assert " passed" in done.stdout and " failed" not in done.stdout


# -- programs that run until Ctrl-C: stopped, restarted later, they catch up -----------------


async def _stored(path: Path) -> list[Schedule]:
    async with reventless.local.provider(path, read_only=True) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        return [state.schedule for state in (await ops.list_schedules(limit=1000)).schedules]


async def _history(path: Path, name: str) -> list[HistoryKind]:
    async with reventless.local.provider(path, read_only=True) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        return [entry.kind for entry in await ops.history(name)]


def _created_before_a_fire(schedule: Schedule, now: datetime) -> datetime:
    """A creation instant that puts the schedule's latest fire before ``now`` a few minutes
    back, well inside the default misfire grace of 24 h."""
    if isinstance(schedule.rate, IntervalRate):
        first, second = itertools.islice(fire_times(schedule, created_at=now), 2)
        return now - (second - first) - timedelta(minutes=5)
    last = None
    for instant in fire_times(schedule, created_at=now - timedelta(days=3)):
        if instant > now:
            break
        last = instant
    assert last is not None and now - last < timedelta(hours=23), (schedule, last)
    return last - timedelta(minutes=1)


async def _seed(path: Path, schedules: list[Schedule], now: datetime) -> None:
    for schedule in schedules:
        clock = VirtualClock(_created_before_a_fire(schedule, now))
        async with reventless.local.provider(path, clock=clock) as provider:
            ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
            await ops.create_schedule(schedule)


def _wait_for_schedules(path: Path, process: Process, timeout: float = 30) -> list[Schedule]:
    deadline = time.monotonic() + timeout
    last_error: ReventlessError | None = None
    while process.running and time.monotonic() < deadline:
        try:
            if path.exists() and (stored := anyio.run(_stored, path)):
                return stored
        except ReventlessError as exc:
            # The program is still making the store (a file with no tables yet, or its
            # schema's transaction holding the lock): look again.
            last_error = exc
        time.sleep(0.2)
    process.kill()
    raise AssertionError(
        f"no schedule in {path.name} (last: {last_error}):\n{process.output}{process.errors}"
    )


# The programs run with their system clock shifted to these instants (a Tuesday in March, no DST
# change near), so what the test asserts does not depend on the hour it runs at.
FIRST_START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
RESTART = FIRST_START + timedelta(minutes=10)


def _at(instant: datetime, program: str) -> list[str]:
    return [sys.executable, "-m", "tests.shifted_clock", instant.isoformat(), program]


@pytest.mark.parametrize("page", _programs(set(RUN_UNTIL_STOPPED)), ids=page_id)
def test_page_program_runs_until_ctrl_c_and_catches_up_after_a_restart(
    page: Path, tmp_path: Path
) -> None:
    """The first start stores the schedules and stops cleanly on Ctrl-C. Then the test takes
    the store back to the moment a fire was due (the same schedules, created a fire ago) and
    starts the program again: the missed fire is delivered at once and printed, and the restart
    kept the schedules as they were (no replace, which would move an interval's grid)."""
    path = lay_out(page, tmp_path)
    assert path is not None
    store = tmp_path / RUN_UNTIL_STOPPED[page.name]
    first = Process(_at(FIRST_START, PROGRAM), tmp_path, environment())
    try:  # a failure must not leave the program running (its output's readers keep pytest up)
        schedules = _wait_for_schedules(store, first)
        assert first.interrupt() == 0 and first.errors == "", first.errors
    finally:
        first.kill()

    for leftover in tmp_path.glob(store.name + "*"):
        leftover.unlink()
    anyio.run(_seed, store, schedules, RESTART)
    again = Process(_at(RESTART, PROGRAM), tmp_path, environment())
    try:
        for schedule in schedules:
            again.wait_for(rf"^{re.escape(schedule.name)}@\S+", timeout=30)
        assert again.interrupt() == 0 and again.errors == "", again.errors
    finally:
        again.kill()
    for schedule in schedules:
        kinds = anyio.run(_history, store, schedule.name)
        assert kinds[0] is HistoryKind.CREATED and HistoryKind.FIRED in kinds, kinds
        assert HistoryKind.REPLACED not in kinds, kinds


# -- shell sessions -------------------------------------------------------------------------


def _session_pages() -> list[object]:
    return [
        pytest.param(page, marks=[pytest.mark.slow] if "^C\n" in page.read_text() else [])
        for page in PAGES
        if sessions(page)
    ]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", _session_pages(), ids=page_id)
def test_command_sessions_in_pages_print_what_they_show(page: Path, tmp_path: Path) -> None:
    """A page's sessions run in order in one directory, after its files are written."""
    lay_out(page, tmp_path)
    for command in sessions(page):
        run_session(command, tmp_path, mask_instants=page.name in CLOCK_TIME_SESSIONS, timeout=150)


# -- the pages themselves -------------------------------------------------------------------


def test_every_block_is_of_a_known_kind() -> None:
    for page in PAGES:
        text = page.read_text()
        found = blocks(page)
        assert text.count("```") == 2 * len(found), f"{page.name}: a fence the tests do not see"
        for block in found:
            assert block.language in LANGUAGES, f"{page.name}:{block.line}: ```{block.language}"
            if block.language == "python":
                assert ">>> " not in block.text, f"{page.name}:{block.line}: make it ```pycon"


def test_special_pages_exist() -> None:
    for name in [*RUN_UNTIL_STOPPED, *PYTEST_MODULES, *ELSEWHERE]:
        assert program(_page(name)) is not None, name
    for name, test_file in ELSEWHERE.items():
        assert (Path(__file__).parent.parent / test_file).exists(), name
    for name in CLOCK_TIME_SESSIONS:
        assert sessions(_page(name)), name


def test_pages_have_examples() -> None:
    assert len([c for page in PAGES for c in sessions(page)]) >= 2
    assert all(
        ">>>" in page.read_text()
        for page in PAGES
        if page.parent.name == "docs" and page.name not in {"cli.md", "reference.md"}
    )
    assert os.sep not in "".join(name for page in PAGES for name in files(page))


# -- the API reference and the page lists ---------------------------------------------------

PUBLIC_MODULES = ["reventless", "reventless.local", "reventless.testing", "reventless.plugin"]


def test_the_api_reference_lists_every_public_name() -> None:
    """docs/reference.md is generated from the docstrings, but which names it shows is written
    by hand: every name a public module exports must be there."""
    reference = (Path(__file__).parent.parent / "docs" / "reference.md").read_text()
    shown = {
        line.removeprefix("::: ").rsplit(".", 1)[-1]
        for line in reference.splitlines()
        if line.startswith("::: ")
    }
    for module_name in [*PUBLIC_MODULES, "reventless.aws"]:
        if module_name == "reventless.aws":
            pytest.importorskip("aioboto3")
        module = importlib.import_module(module_name)
        missing = sorted(set(module.__all__) - shown)
        assert not missing, f"{module_name}: {missing} not in docs/reference.md"


def test_every_page_is_in_the_readme_and_the_site_navigation() -> None:
    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text()
    navigation = (root / "mkdocs.yml").read_text()
    for page in root.glob("docs/*.md"):
        assert f": {page.name}" in navigation, f"{page.name} is not in mkdocs.yml's nav"
        if page.name not in {"index.md", "internals.md"}:
            assert f"(docs/{page.name})" in readme, f"{page.name} is not in the README's list"


def _status_names(heading: str) -> list[str]:
    """The dotted ``reventless...`` names in a list of the README's Status section."""
    status = (
        (Path(__file__).parent.parent / "README.md")
        .read_text()
        .split("## Status", 1)[1]
        .split("\n## ", 1)[0]
    )
    part = status.split(heading, 1)[1].split("\n\n", 2)[1]
    return re.findall(r"`(reventless(?:\.\w+)+)`", part)


def _exists(dotted: str) -> bool:
    """A module of the package (found, not imported: an extra may be missing) or a name in one."""
    if importlib.util.find_spec(dotted) is not None:
        return True
    module, _, name = dotted.rpartition(".")
    return hasattr(importlib.import_module(module), name)


def test_the_readme_status_says_what_exists_today_and_what_does_not_yet() -> None:
    today, planned = _status_names("What you can use today:"), _status_names("Not there yet")
    assert today
    assert [name for name in today if not _exists(name)] == []
    assert [name for name in planned if _exists(name)] == [], "it exists now: move it up"


def test_the_dependencies_the_readme_and_getting_started_name_are_the_packages() -> None:
    root = Path(__file__).parent.parent
    wanted = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    names = sorted(re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0] for requirement in wanted)
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
    readme = " ".join((root / "README.md").read_text().split())
    assert f"the package's own {words[len(names)]} dependencies" in readme
    started = " ".join((root / "docs" / "getting-started.md").read_text().split())
    assert f"its few dependencies ({', '.join(names)})" in started
