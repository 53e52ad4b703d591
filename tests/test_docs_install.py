"""Step 1 of docs/getting-started.md as written: a fresh virtual environment and ``pip install``
of a checkout, then the tutorial's file and session on that install alone (no test extras)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_pages import PAGES, ROOT, blocks, files

PAGE = next(page for page in PAGES if page.name == "getting-started.md")
PLACEHOLDER = "/path/to/reventless"


def _install_steps() -> str:
    (steps,) = [b.text for b in blocks(PAGE) if b.language == "sh" and PLACEHOLDER in b.text]
    return steps


def _checkout_copy(into: Path) -> Path:
    """The files a checkout installs from, copied so the build leaves nothing in this one."""
    into.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, into / name)
    shutil.copytree(
        ROOT / "reventless", into / "reventless", ignore=shutil.ignore_patterns("__pycache__")
    )
    return into


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_install_step_gives_a_reventless_that_runs_the_tutorial(tmp_path: Path) -> None:
    checkout = _checkout_copy(tmp_path / "reventless-checkout")
    project = tmp_path / "project"
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    # `python3` is this interpreter (3.11 or newer, as the page requires).
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    script = _install_steps().replace(PLACEHOLDER, str(checkout))
    done = subprocess.run(
        ["bash", "-euc", script], cwd=project, env=env, capture_output=True, text=True, timeout=540
    )
    assert done.returncode == 0, done.stdout + done.stderr

    python = project / ".venv" / "bin" / "python"
    for name, text in files(PAGE).items():
        (project / name).write_text(text)
    installed = subprocess.run(
        [str(python), "-c", "import reventless, shop; print(reventless.__file__)"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(project / ".venv") in installed.stdout  # the install, not this checkout
    # The tutorial's Python session, as doctests, on the fresh install.
    session = subprocess.run(
        [str(python), "-m", "doctest", "-o", "ELLIPSIS", "-o", "NORMALIZE_WHITESPACE", str(PAGE)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert session.returncode == 0 and session.stdout == "", session.stdout + session.stderr
    console = subprocess.run(
        [str(project / ".venv" / "bin" / "reventless"), "--help"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert console.returncode == 0 and "run" in console.stdout, console.stderr
