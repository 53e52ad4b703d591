"""One entry point for people and CI on a machine with only Python: ``python3 dev.py TASK``.

This file is the one source of truth for the project's tasks: ``noxfile.py`` builds its sessions
from ``TASKS`` below. Each task runs in the environment it needs, made once in ``.venvs/NAME``
beside this file (again only when pyproject.toml changes):

- ``core``: only the package's own dependencies, for the demo; the project runs from this
  directory, so no build step is needed and the first run takes seconds;
- ``test``: the project installed with the extras the tests need (AWS adapter, PostgreSQL
  driver, pytest, moto...);
- ``dev``: ``test`` plus the linters, the type checker and the manual's builder;
- ``bench``: the peers the benchmarks compare against (with the PostgreSQL driver: the
  PostgreSQL benchmarks run here too);
- ``pulumi``: ``test`` plus pulumi and pulumi-aws, for the deployment components.

Tasks: demo, test (the whole suite, as CI runs it), quick (the suite without the slow tests),
lint, typecheck, docs, bench, aws-shop (``examples/aws_shop``: the demo's plugin on the AWS
stack, against a local moto server), pulumi (the Pulumi components and docs/deploy.md's program
under Pulumi's mocks). Extra arguments go to the task's last command.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENVS = Path(os.environ.get("REVENTLESS_VENVS", ROOT / ".venvs"))

# Environment name -> the pyproject extras it installs; None: the dependencies alone, no build.
ENVIRONMENTS: dict[str, tuple[str, ...] | None] = {
    "core": None,
    "test": ("aws", "postgres", "test"),
    "dev": ("aws", "postgres", "test", "docs", "dev"),
    "bench": ("postgres", "bench"),
    "pulumi": ("pulumi", "test"),
}


@dataclass(frozen=True)
class Task:
    """A task: the environment it runs in and its commands (each run with that environment's
    ``python``; a task stops at the first command that fails)."""

    environment: str
    commands: tuple[tuple[str, ...], ...]
    help: str
    variables: tuple[tuple[str, str], ...] = ()  # environment variables the commands get


PYTEST = ("-m", "pytest", "-p", "no:cacheprovider")

TASKS: dict[str, Task] = {
    "demo": Task("core", (("-m", "reventless", "demo"),), "the main job on the embedded default"),
    "test": Task("test", (PYTEST,), "the whole test suite, as CI runs it"),
    "quick": Task(
        "test",
        ((*PYTEST, "-m", "not slow"),),
        "the edit-test loop: no slow tests, fewer hypothesis examples",
        (("HYPOTHESIS_PROFILE", "quick"),),
    ),
    "lint": Task(
        "dev",
        (("-m", "ruff", "check", "."), ("-m", "ruff", "format", "--check", ".")),
        "ruff check and format check",
    ),
    "typecheck": Task("dev", (("-m", "mypy"),), "mypy --strict over the package"),
    "docs": Task(
        "dev",
        (("-m", "mkdocs", "build", "--strict", "--site-dir", "site"),),
        "the manual, warnings as errors (its examples run in the tests)",
    ),
    "bench": Task("bench", (("benchmarks/run.py",),), "the benchmarks beside their peers"),
    "aws-shop": Task(
        "test",
        (("examples/aws_shop/run.py",),),
        "the shop on DynamoDB, SNS FIFO, SQS and EventBridge Scheduler, on a local moto server",
    ),
    "pulumi": Task(
        "pulumi",
        ((*PYTEST, "tests/aws/pulumi"),),
        "the Pulumi components and the deploy page's program, under Pulumi's mocks",
        # Here a missing pulumi fails the run instead of skipping the tests.
        (("REVENTLESS_REQUIRE_PULUMI", "1"),),
    ),
}


def requirements(environment: str) -> list[str]:
    """What pip installs for an environment: the dependencies, or the project with extras."""
    extras = ENVIRONMENTS[environment]
    if extras is None:
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        return list(project["dependencies"])
    return ["-e", f"{ROOT}[{','.join(extras)}]"]


def python(environment: str) -> Path:
    home = VENVS / environment
    return home / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_environment(environment: str) -> Path:
    """The environment's interpreter, after making or updating the environment if needed."""
    home = VENVS / environment
    interpreter = python(environment)
    stamp = home / ".reventless-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return interpreter
    if not interpreter.exists():
        print(f"dev.py: making the {environment!r} environment in {home}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, symlinks=os.name != "nt").create(home)
    pip = [str(interpreter), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if ENVIRONMENTS[environment] is not None:
        # Editable installs need a current pip; the core environment installs wheels only.
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *requirements(environment)], check=True)
    stamp.write_text(wanted)
    return interpreter


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TASKS:
        lines = [f"  {name:<10} {task.help}" for name, task in TASKS.items()]
        print("usage: python3 dev.py TASK [extra arguments]\n" + "\n".join(lines), file=sys.stderr)
        return 2
    task, extra = TASKS[argv[0]], argv[1:]
    interpreter = ensure_environment(task.environment)
    # The core environment does not install the project: it runs from this directory.
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **dict(task.variables)}
    for number, command in enumerate(task.commands):
        last = number == len(task.commands) - 1
        arguments = [str(interpreter), *command, *(extra if last else [])]
        status = subprocess.run(arguments, cwd=ROOT, env=env).returncode
        if status:
            return status
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
