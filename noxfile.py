"""nox sessions, one per task of ``dev.py`` (``nox -s NAME``; ``nox`` alone runs what CI runs).

``dev.py`` is the one source of truth: each session installs what its task's environment holds
and runs the task's commands, so the two can never drift. nox keeps a venv per session.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dev  # the task table lives beside this file

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["test", "pulumi", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True


def _session_for(task: dev.Task) -> object:
    def run(session: nox.Session) -> None:
        session.install(*dev.requirements(task.environment))
        session.env["PYTHONPATH"] = str(dev.ROOT)
        session.env.update(dict(task.variables))
        for number, command in enumerate(task.commands):
            last = number == len(task.commands) - 1
            session.run("python", *command, *(session.posargs if last else []))

    run.__doc__ = task.help
    return run


for _name, _task in dev.TASKS.items():
    nox.session(name=_name)(_session_for(_task))
