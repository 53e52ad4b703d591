"""What ``reventless schedulers`` and ``schedules list`` say about the engine of a store, against a
real ``reventless run`` process.

The lease's row outlives an engine killed by SIGKILL until it lapses (the lease time plus the
delivery timeout and a margin: about 45 s by default), and the CLI used to call that process
"the running engine" all that time. A lease holder on this host is now checked by its pid; one
on another host, which cannot be, is shown with when it last renewed its lease.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli_run_signals import wait_for

ROOT = Path(__file__).resolve().parent.parent


def cli(tmp_path: Path, *argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "reventless", *argv],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done
    return done.stdout


@pytest.mark.timeout(120)
def test_an_engine_killed_by_sigkill_is_not_shown_as_running(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SIGNAL_APP_MARK": str(tmp_path / "mark"),
        "SIGNAL_APP_DELIVERY": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "reventless", "run", "tests.signal_app", "--db", "s.db"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(tmp_path / "mark.delivering", process)  # leading and serving
        engine = f"pid {process.pid} on {socket.gethostname()}"
        listing = cli(tmp_path, "schedulers", "--db", "s.db")
        assert listing.splitlines()[-1].startswith(f"engine: {engine}, lease until "), listing
        served = cli(tmp_path, "schedules", "list", "--db", "s.db", "--scheduler", "ticks")
        assert (
            served.splitlines()[-1] == f"scheduler 'ticks': served by the running engine ({engine})"
        )

        # An engine on another host cannot be checked from here: shown with its last renewal.
        with sqlite3.connect(tmp_path / "s.db") as db:
            db.execute("UPDATE attachments SET process = 'pid 4242 on elsewhere'")
        elsewhere = cli(tmp_path, "schedulers", "--db", "s.db")
        assert re.fullmatch(
            r"engine: pid 4242 on elsewhere \(last seen \d+ s ago\), lease until .* UTC",
            elsewhere.splitlines()[-1],
        ), elsewhere
        served = cli(tmp_path, "schedules", "list", "--db", "s.db", "--scheduler", "ticks")
        assert re.fullmatch(
            r"scheduler 'ticks': served by the engine of pid 4242 on elsewhere \(last seen \d+ s "
            r"ago\)",
            served.splitlines()[-1],
        ), served
        with sqlite3.connect(tmp_path / "s.db") as db:
            db.execute("UPDATE attachments SET process = ?", (engine,))
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)

    killed = time.monotonic()
    listing = cli(tmp_path, "schedulers", "--db", "s.db")
    served = cli(tmp_path, "schedules", "list", "--db", "s.db", "--scheduler", "ticks")
    assert time.monotonic() - killed < 20  # well within the lease that outlives the process
    gone = (
        rf"the engine of {engine} has ended without releasing its lease \(last seen \d+ s ago\); "
        r"another can take over from \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    )
    assert re.fullmatch(
        rf"engine: none is running on this store \({gone}\); fires wait until one runs",
        listing.splitlines()[-1],
    ), listing
    assert listing.splitlines()[1].split()[-1] == "no", listing  # not served
    assert re.fullmatch(
        rf"scheduler 'ticks': no engine is running on this store: {gone}; fires wait until one "
        r"runs .*",
        served.splitlines()[-1],
    ), served
