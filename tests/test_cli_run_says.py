"""What ``reventless run`` says as it starts, as real processes: a second process on the same
store says it stands by and for whom; fires missed while no engine ran are counted, with what
the misfire policy does with them. Both used to be silent (the standby printed the leader's
banner; a catch-up was only in the history)."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MINUTE_US = 60_000_000


class Run:
    """A ``reventless run`` process whose stdout lines a thread collects, so that waiting for
    a line that never comes fails after a while instead of hanging."""

    def __init__(self, tmp_path: Path, *extra: str) -> None:
        command = ["run", "tests.minutes_app", "--db", "m.db", *extra]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reventless", *command],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.process.pid
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self, timeout: float = 30) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no further line after {self.seen}") from None
        self.seen.append(line)
        return line

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        self.reader.join(timeout=10)
        assert self.process.stderr is not None
        err = self.process.stderr.read()
        self.process.stderr.close()
        assert self.process.stdout is not None
        self.process.stdout.close()
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        assert self.process.returncode == 0 and "Traceback" not in err, (rest, err)
        return "\n".join(self.seen + rest)


@pytest.mark.timeout(120)
def test_a_second_run_on_the_same_store_says_it_stands_by_and_for_whom(tmp_path: Path) -> None:
    leader = Run(tmp_path)
    try:
        assert leader.line().startswith("running plugin 'minutes' on m.db")
        standby = Run(tmp_path)
        try:
            assert standby.line().startswith("running plugin 'minutes' on m.db")
            assert standby.line() == (
                f"standing by: another process (pid {leader.pid} on {socket.gethostname()}) is "
                "firing on this store; this one takes over if it stops"
            )
        finally:
            standby.stop()
    finally:
        out = leader.stop()
    assert "standing by" not in out, out  # the leader says nothing of the kind


@pytest.mark.timeout(120)
@pytest.mark.parametrize("policy", ["latest", "all"])
def test_missed_fires_found_at_start_are_counted_with_what_the_policy_does(
    tmp_path: Path, policy: str
) -> None:
    first = Run(tmp_path)
    first.line()
    first_out = first.stop()
    assert "missed" not in first_out, first_out  # a new store: nothing missed
    # As if the engine had been down for the last ten minutes: the schedule's next fire ten
    # minutes back on its grid (made an hour earlier, so the grid stays on whole minutes).
    with sqlite3.connect(tmp_path / "m.db") as db:
        db.execute(
            "UPDATE schedules SET next_fire = next_fire - ?, created_at = created_at - ?",
            (10 * MINUTE_US, 60 * MINUTE_US),
        )
    again = Run(tmp_path, "--misfire", policy)
    assert again.line().startswith("running plugin 'minutes' on m.db")
    line = again.line()
    while not line.startswith("found"):
        line = again.line()  # fire lines may come first
    again.stop()
    if policy == "latest":
        found = re.fullmatch(
            r"found (\d+) missed fire\(s\) from while no engine ran: the misfire policy 'latest' "
            r"\(the most recent of each schedule\) delivers 1, records (\d+) as missed",
            line,
        )
        assert found, line
        assert int(found[1]) >= 9 and int(found[2]) == int(found[1]) - 1, line
    else:
        found = re.fullmatch(
            r"found (\d+) missed fire\(s\) from while no engine ran: the misfire policy 'all' "
            r"\(each\) delivers (\d+)",
            line,
        )
        assert found, line
        assert int(found[1]) >= 9 and int(found[2]) == int(found[1]), line
