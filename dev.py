"""One entry point for people and CI on a machine with only Python: ``python3 dev.py TASK``.

It makes ``.venv`` beside this file (again only when pyproject.toml changed), installs the project
with every extra into it, and runs the task there. Tasks: demo, test, quick (no slow tests),
lint, typecheck, docs, bench.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("REVENTLESS_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"

TASKS: dict[str, list[list[str]]] = {
    "demo": [[str(PY), "-m", "reventless", "demo"]],
    "test": [[str(PY), "-m", "pytest", "-p", "no:cacheprovider"]],
    # The edit-test loop: everything but the tests marked slow (CI runs them all).
    "quick": [[str(PY), "-m", "pytest", "-p", "no:cacheprovider", "-m", "not slow"]],
    "lint": [
        [str(PY), "-m", "ruff", "check", "."],
        [str(PY), "-m", "ruff", "format", "--check", "."],
    ],
    "typecheck": [[str(PY), "-m", "mypy"]],
    "docs": [[str(PY), "-m", "mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site")]],
    "bench": [[str(PY), "benchmarks/run.py"]],
}


def ensure_venv() -> None:
    stamp = VENV / ".reventless-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[aws,test,bench,docs,dev]"], check=True)
    stamp.write_text(wanted)


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] not in TASKS:
        print(f"usage: python3 dev.py {{{','.join(TASKS)}}} [extra arguments]", file=sys.stderr)
        return 2
    ensure_venv()
    task, extra = argv[0], argv[1:]
    commands = TASKS[task]
    for number, command in enumerate(commands):
        last = number == len(commands) - 1
        status = subprocess.run(command + (extra if last else []), cwd=ROOT).returncode
        if status:
            return status
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
