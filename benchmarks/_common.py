"""What every side of a benchmark shares: the cases, the start instants, RSS, a stall meter.

Standard library only: the APScheduler 4 side imports this from its own virtual environment,
where reventless is not installed.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import resource
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# next-fire cases: (label, our rate, zone, cron expression, APScheduler cron fields). Minutes(5)
# is an interval: APScheduler's peer is its IntervalTrigger, cron's is */5.
CASES: list[tuple[str, str, str, str, dict[str, str]]] = [
    ("Daily(9, 0)", "Daily(9, 0)", "UTC", "0 9 * * *", {"hour": "9", "minute": "0"}),
    ("Daily(9, 0)", "Daily(9, 0)", "Europe/Berlin", "0 9 * * *", {"hour": "9", "minute": "0"}),
    (
        "Weekdays(17, 0)",
        "Weekdays(17, 0)",
        "Europe/Berlin",
        "0 17 * * 1-5",
        {"day_of_week": "mon-fri", "hour": "17", "minute": "0"},
    ),
    ("Minutes(5)", "Minutes(5)", "UTC", "*/5 * * * *", {}),
]
# Calendar rates (issue 25), each with the same schedule in croniter's and cronsim's five fields and
# in APScheduler's CronTrigger fields.
CALENDAR_CASES: list[tuple[str, str, str, str, dict[str, str]]] = [
    (
        "Monthly(-1, 18, 0)",
        "Monthly(-1, 18, 0)",
        "Europe/Berlin",
        "0 18 L * *",
        {"day": "last", "hour": "18", "minute": "0"},
    ),
    (
        "NthWeekday(2, 1, 9, 0)",
        "NthWeekday(2, 1, 9, 0)",
        "Europe/Berlin",
        "0 9 * * 2#2",
        {"day": "2nd tue", "hour": "9", "minute": "0"},
    ),
    (
        "Cron(0 9 ? * 3#2 *)",
        "Cron(0 9 ? * 3#2 *)",
        "Europe/Berlin",
        "0 9 * * 2#2",
        {"day": "2nd tue", "hour": "9", "minute": "0"},
    ),
    (
        "Cron(*/15 9-17 * * 1-5)",
        "Cron(*/15 9-17 * * 1-5)",
        "Europe/Berlin",
        "*/15 9-17 * * 1-5",
        {"day_of_week": "mon-fri", "hour": "9-17", "minute": "*/15"},
    ),
]
INTERVAL_MINUTES = 5
# Interval schedules (ours and APScheduler's) are anchored here.
CREATED = datetime(1999, 1, 1, 0, 0, 17, tzinfo=UTC)


def case_key(label: str, zone: str) -> str:
    return f"{label} {zone}"


def random_starts(count: int, seed: int = 20261127) -> list[datetime]:
    """Random UTC instants 2000-2035 with non-zero seconds and microseconds, so that peers that
    count an instant equal to a fire as 'after' it and those that do not give the same answer."""
    rng = random.Random(seed)
    low = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
    high = datetime(2035, 1, 1, tzinfo=UTC).timestamp()
    starts = []
    for _ in range(count):
        instant = datetime.fromtimestamp(rng.uniform(low, high), UTC)
        starts.append(
            instant.replace(second=rng.randint(1, 59), microsecond=rng.randint(1, 999_999))
        )
    return starts


def calls_per_second(func: Callable[[Any], object], inputs: list[Any], repeats: int) -> float:
    """Calls per second of this thread's CPU time, in the fastest of ``repeats`` passes through
    ``inputs`` (each side gets the start instants in the form it takes, converted before the
    clock starts). CPU time, not wall time, and the fastest pass: what is left of the rest of a
    shared machine's load (a pure function waits for nothing)."""
    rates = []
    for _ in range(repeats):
        gc.collect()
        time.sleep(0.02)  # passes spread out in time: a spell of load spoils fewer of them
        began = time.thread_time()
        for value in inputs:
            func(value)
        rates.append(len(inputs) / (time.thread_time() - began))
    return max(rates)


def fires_per_second(
    iterate: Callable[[datetime, int], object], starts: list[datetime], length: int, repeats: int
) -> float:
    """Fires per second of the fastest of ``repeats`` passes (see ``calls_per_second``):
    ``iterate(start, length)`` walks ``length`` consecutive fires from each start (the set-up
    of each walk included)."""
    rates = []
    for _ in range(repeats):
        gc.collect()
        time.sleep(0.02)  # as in calls_per_second
        began = time.thread_time()
        for start in starts:
            iterate(start, length)
        rates.append(len(starts) * length / (time.thread_time() - began))
    return max(rates)


def rss_bytes() -> int:
    """The resident set size of this process now (Linux /proc; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - not Linux
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """The largest resident set size this process has had (ru_maxrss)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if os.uname().sysname == "Darwin" else peak * 1024


def settled_rss() -> int:
    """RSS after a full collection, so that garbage waiting for the collector is not counted."""
    gc.collect()
    return rss_bytes()


class StallMeter:
    """The longest time the event loop took to come back to a task sleeping 1 ms.

    ``sleep`` is the event loop's own sleep (asyncio's or anyio's), so one meter serves both.
    """

    def __init__(self, sleep: Callable[[float], object] = asyncio.sleep) -> None:
        self.longest = 0.0
        self._sleep = sleep

    def reset(self) -> None:
        self.longest = 0.0

    async def run(self) -> None:
        last = time.perf_counter()
        while True:
            await self._sleep(0.001)  # type: ignore[misc]
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now


class GcMeter:
    """The longest pause of Python's cyclic garbage collector while ``watching``: a share of
    every event-loop stall in pure-Python code, ours and the peers' alike."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._began = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._began)

    def __enter__(self) -> GcMeter:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def burst_figures(
    count: int, elapsed: float, cpu: float, stalls: StallMeter, collector: GcMeter
) -> dict[str, float]:
    """A burst's figures, alike on every side: ``count`` fires in ``elapsed`` seconds of wall
    time and ``cpu`` seconds of process CPU time."""
    return {
        "fires_per_s": count / elapsed,
        "cpu_us_per_fire": cpu / count * 1e6,
        "stall_ms": stalls.longest * 1000,
        "gc_ms": collector.longest * 1000,
    }


def sqlite_settings(execute: Callable[[str], object]) -> dict[str, str]:
    """The durability settings of a live SQLite connection, read back with PRAGMA."""
    journal = execute("PRAGMA journal_mode")
    synchronous = execute("PRAGMA synchronous")
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return {
        "journal_mode": str(journal).upper(),
        "synchronous": names.get(int(str(synchronous)), str(synchronous)),
    }
