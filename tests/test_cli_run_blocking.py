"""``reventless run`` with code that blocks the event loop's thread (an aggregate's ``decide``
calling ``time.sleep(3600)``), as a real process.

Nothing on the event loop can cut off synchronous code, the delivery timeout included, and the
process used to stay stuck for the whole sleep, deaf to SIGINT and SIGTERM. Now the stall watch
ends it once the loop has been held for the delivery timeout plus 5 s, with exit status 3 and one
line naming the fire, the aggregate and the code, and no traceback; the fire, not recorded, is
delivered again at the next start.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli_run_signals import wait_for

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 1.0  # --delivery-timeout
# The loop is held for more than the timeout plus 5 s (MARGIN_S) when the watch sees it (it
# looks every 0.25 s); the rest is slack for a busy machine.
BOUND_S = TIMEOUT_S + 5 + 4


def start(tmp_path: Path, *extra: str, sleep: float = 3600) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BLOCKING_APP_MARK": str(tmp_path / "mark"),
        "BLOCKING_APP_SLEEP": str(sleep),
    }
    command = ["run", "tests.blocking_app", "--db", "b.db", "--delivery-timeout", f"{TIMEOUT_S}s"]
    return subprocess.Popen(
        [sys.executable, "-m", "reventless", *command, *extra],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], since: float) -> tuple[int, str, str, float]:
    try:
        out, err = process.communicate(timeout=BOUND_S + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        return -999, out, err, float("inf")
    return process.returncode, out, err, time.monotonic() - since


@pytest.mark.timeout(120)
def test_a_blocked_decide_ends_the_process_with_status_3_naming_what_blocked(
    tmp_path: Path,
) -> None:
    process = start(tmp_path)
    wait_for(tmp_path / "mark", process)
    status, out, err, took = finish(process, time.monotonic())
    assert status == 3, (status, out, err)
    assert took < BOUND_S, took
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("reventless: error: the event loop has been held for "), line
    assert "in decide at " in line and "blocking_app.py:" in line, line
    assert "handling Work on aggregate 'worker' id 'w1'" in line, line
    assert "delivering fire work@" in line and "of scheduler 'jobs'" in line, line
    assert "exit status 3" in line, line
    # Not recorded: the next start delivers the fire again (at-least-once).
    with sqlite3.connect(tmp_path / "b.db") as db:
        (fired,) = db.execute("select count(*) from history where kind like 'fired%'").fetchone()
    assert fired == 0


@pytest.mark.timeout(120)
def test_the_fire_cut_off_is_delivered_again_at_the_next_start(tmp_path: Path) -> None:
    process = start(tmp_path, "--json")
    wait_for(tmp_path / "mark", process)
    status, _, err, _ = finish(process, time.monotonic())
    assert status == 3, err
    assert '"error": "Stalled"' in err and '"exit_status": 3' in err, err
    (tmp_path / "mark").unlink()
    again = start(tmp_path, sleep=0)  # decide returns at once this time
    wait_for(tmp_path / "mark", again)
    deadline = time.monotonic() + 60
    while True:
        with sqlite3.connect(tmp_path / "b.db") as db:
            (events,) = db.execute("select count(*) from events").fetchone()
        if events or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    again.send_signal(signal.SIGINT)
    again.communicate(timeout=60)
    assert again.returncode == 0
    assert events == 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("sig", "count"),
    [
        pytest.param(signal.SIGINT, 2, id="SIGINTx2"),
        pytest.param(signal.SIGTERM, 1, id="SIGTERM"),
        pytest.param(signal.SIGINT, 1, id="SIGINT", marks=pytest.mark.slow),
        pytest.param(signal.SIGTERM, 2, id="SIGTERMx2", marks=pytest.mark.slow),
    ],
)
def test_stop_signals_during_the_block_end_the_process_within_the_bound(
    tmp_path: Path, sig: int, count: int
) -> None:
    process = start(tmp_path)
    wait_for(tmp_path / "mark", process)
    sent = time.monotonic()
    for _ in range(count):
        process.send_signal(sig)
        time.sleep(0.2)
    status, out, err, took = finish(process, sent)
    # Whichever bound comes first: the stall watch's (exit 3), or after a second signal the
    # stop's 5 s (exit 128 + the signal); one signal's stop has the timeout plus 15 s, later.
    assert status in ((3, 128 + sig) if count > 1 else (3,)), (status, out, err)
    assert took < BOUND_S, took
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
