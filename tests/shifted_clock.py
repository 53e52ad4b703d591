"""Run a program whose system clock reads a chosen instant: ``python -m tests.shifted_clock
INSTANT program.py``.

Tests that start a user's program against the real clock would otherwise assert things that hold
only at some hours of the day (a daily fire's catch-up is within the misfire grace only when the
fire was less than a day ago, and how long ago it was depends on the hour the test runs at). The
program runs unchanged; only ``SystemClock`` is shifted, by a fixed offset taken once at start,
so its time still passes at the real rate and its sleeps last what they would.
"""

from __future__ import annotations

import runpy
import sys
from datetime import UTC, datetime

from reventless.clock import SystemClock


def shift_system_clock(to: datetime) -> None:
    """From now on, every ``SystemClock`` reads ``to`` plus the real time passed since this call."""
    offset = to - datetime.now(UTC)  # real clock: the shift itself

    def now(self: SystemClock) -> datetime:
        return datetime.now(UTC) + offset  # real clock: shifted

    def real_seconds_until(self: SystemClock, deadline: datetime) -> float:
        return (deadline - now(self)).total_seconds()

    SystemClock.now = now  # type: ignore[method-assign]
    SystemClock._real_seconds_until = real_seconds_until  # type: ignore[method-assign]


if __name__ == "__main__":
    instant, program = sys.argv[1], sys.argv[2]
    shift_system_clock(datetime.fromisoformat(instant))
    sys.argv = sys.argv[2:]
    runpy.run_path(program, run_name="__main__")
