"""The local engine against APScheduler 3.11, in one run: creates, memory, burst, lateness, CPU.

Every figure for reventless uses the durable file store (SQLite, WAL). APScheduler is measured in
the same process right after, with its SQLAlchemy (SQLite) job store for creates and its memory
store with the asyncio scheduler for memory and bursts, as in the anchors of the issue.
Medians are taken where a measure repeats.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.background import BackgroundScheduler

import reventless.local
from reventless import (
    Daily,
    Days,
    Hours,
    Minutes,
    Rate,
    Schedule,
    Scheduler,
    Single,
    Weekdays,
    WeekdaysAndSaturday,
)
from reventless.clock import ScaledClock
from reventless.target import FireEnvelope
from reventless.testing import VirtualClock

START = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)
BATCH = 10_000


class CountingTarget:
    """Counts deliveries and remembers when (by the engine's clock) the last one arrived."""

    def __init__(self, clock: Any = None) -> None:
        self.count = 0
        self.clock = clock
        self.last: datetime | None = None

    async def deliver(self, envelope: FireEnvelope) -> None:
        self.count += 1
        if self.clock is not None:
            self.last = self.clock.now()


def schedules(count: int, rate: Rate, offset: int = 0, zone: str = "UTC") -> list[Schedule]:
    return [
        Schedule(name=f"s{number:07d}", rate=rate, payload='{"command": "Tick"}', timezone=zone)
        for number in range(offset, offset + count)
    ]


async def fill(ops: Any, total: int, rate: Rate, offset: int = 0) -> list[float]:
    """Create ``total`` schedules in batches; returns the rate of each batch."""
    rates = []
    for start in range(offset, offset + total, BATCH):
        batch = schedules(min(BATCH, offset + total - start), rate, start)
        began = time.perf_counter()
        await ops.create_schedules(batch)
        rates.append(len(batch) / (time.perf_counter() - began))
    return rates


async def single_create_rate(ops: Any, count: int, offset: int) -> float:
    began = time.perf_counter()
    for schedule in schedules(count, Minutes(5), offset):
        await ops.create_schedule(schedule)
    return count / (time.perf_counter() - began)


# -- reventless --------------------------------------------------------------------------------


async def ours_creates(big: int, path: Path) -> dict[str, float]:
    clock = VirtualClock(START)
    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=CountingTarget())).operations
        batch_rates = await fill(ops, 10_000, Minutes(5))
        at_10k = statistics.median(
            [await single_create_rate(ops, 1000, 20_000_000 + k * 1000) for k in range(3)]
        )
        batch_rates += await fill(ops, big - 13_000, Minutes(5), offset=10_000)
        at_big = statistics.median(
            [await single_create_rate(ops, 1000, 30_000_000 + k * 1000) for k in range(3)]
        )
    return {"batch": statistics.median(batch_rates), "single_10k": at_10k, "single_big": at_big}


async def ours_memory(count: int, rate: Rate, path: Path, zone: str = "UTC") -> float:
    clock = VirtualClock(START)
    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=CountingTarget())).operations
        for start in range(0, count, BATCH):
            await ops.create_schedules(schedules(min(BATCH, count - start), rate, start, zone))
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
            group.cancel_scope.cancel()
        tracemalloc.stop()
    return (after - before) / count


class Ticker:
    """Measures the longest time the event loop did not come back to a 1 ms sleeper."""

    def __init__(self) -> None:
        self.longest = 0.0

    async def run(self) -> None:
        last = time.perf_counter()
        while True:
            await anyio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now


async def ours_burst(count: int, path: Path) -> dict[str, float]:
    clock = VirtualClock(START)
    target = CountingTarget()
    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        for start in range(0, count, BATCH):
            batch = [
                Schedule(name=f"b{n:07d}", rate=Single(2026, 11, 27, 9, 0), payload="p")
                for n in range(start, min(count, start + BATCH))
            ]
            await ops.create_schedules(batch)
        ticker = Ticker()
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            group.start_soon(ticker.run)
            await anyio.sleep(0.05)
            ticker.longest = 0.0
            began, cpu = time.perf_counter(), time.process_time()
            await clock.advance(timedelta(hours=1))  # returns once all are delivered, recorded
            elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
            group.cancel_scope.cancel()
    assert target.count == count, (target.count, count)
    return {"rate": count / elapsed, "gap_ms": ticker.longest * 1000, "cpu_us": cpu / count * 1e6}


async def ours_lateness(count: int, path: Path) -> float:
    """Real-time clock (speed 1) three seconds before a minute at which ``count`` are due."""
    due = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    clock = ScaledClock(1.0, start=due - timedelta(seconds=3))
    target = CountingTarget(clock)
    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        for start in range(0, count, BATCH):
            await ops.create_schedules(
                [
                    Schedule(name=f"l{n:06d}", rate=Single(2026, 11, 27, 9, 0), payload="p")
                    for n in range(start, min(count, start + BATCH))
                ]
            )
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            while target.count < count:  # noqa: ASYNC110 - a benchmark's simple wait
                await anyio.sleep(0.01)
            group.cancel_scope.cancel()
    assert target.last is not None
    return (target.last - due).total_seconds()


async def ours_steady_cpu(schedules_count: int, minutes: int, path: Path) -> float:
    clock = VirtualClock(START)
    target = CountingTarget()
    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        await fill(ops, schedules_count, Minutes(1))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(minutes=2))
            fired, cpu = target.count, time.process_time()
            for _ in range(minutes):
                await clock.advance(timedelta(minutes=1))
            cpu = time.process_time() - cpu
            group.cancel_scope.cancel()
    return cpu / (target.count - fired) * 1e6


# -- APScheduler 3.11 ----------------------------------------------------------------------------


def noop() -> None:
    return None


def aps_sqlite_add_rate(path: Path, prefill: int, count: int) -> float:
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{path}")}
    )
    scheduler.start(paused=True)
    try:
        for number in range(prefill):
            scheduler.add_job(noop, "interval", minutes=5, id=f"p{number}")
        rates = []
        for round_number in range(3):
            began = time.perf_counter()
            for number in range(count):
                scheduler.add_job(noop, "interval", minutes=5, id=f"r{round_number}-{number}")
            rates.append(count / (time.perf_counter() - began))
    finally:
        scheduler.shutdown(wait=False)
    return statistics.median(rates)


def aps_memory_per_job(count: int, kind: str) -> float:
    async def measure() -> float:
        scheduler = AsyncIOScheduler(jobstores={"default": MemoryJobStore()})
        scheduler.start(paused=True)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for number in range(count):
            if kind == "interval":
                scheduler.add_job(noop, "interval", minutes=5, id=f"j{number}")
            else:
                scheduler.add_job(
                    noop, "cron", hour=9, minute=0, day_of_week="mon-fri", id=f"j{number}"
                )
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        scheduler.shutdown(wait=False)
        return (after - before) / count

    return asyncio.run(measure())


def aps_burst(count: int, *, coroutine: bool) -> dict[str, float]:
    """``count`` date jobs due at the same moment on the asyncio scheduler, memory store.

    ``coroutine``: the job is ``async def`` (run on the loop); otherwise a plain function run by
    the default thread-pool executor, the way most APScheduler users write jobs.
    """

    async def measure() -> dict[str, float]:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        lock = threading.Lock()
        state = {"count": 0, "last": 0.0}

        def record() -> None:
            with lock:
                state["count"] += 1
                state["last"] = time.perf_counter()
                if state["count"] == count:
                    loop.call_soon_threadsafe(done.set)

        async def async_job() -> None:
            record()

        job: Callable[[], Any] = async_job if coroutine else record

        scheduler = AsyncIOScheduler(
            jobstores={"default": MemoryJobStore()}, job_defaults={"misfire_grace_time": None}
        )
        scheduler.start(paused=True)
        when = datetime.now(UTC) + timedelta(seconds=2)
        for number in range(count):
            scheduler.add_job(job, "date", run_date=when, id=f"b{number}")
        ticker = Ticker()
        tick_task = asyncio.create_task(anyio_free_ticker(ticker))
        # CPU counts from here: when the burst blocks the loop, the sleep below returns late,
        # and a CPU reading taken after it would miss most of the scheduler's work.
        cpu = time.process_time()
        scheduler.resume()
        due_perf = time.perf_counter() + (when - datetime.now(UTC)).total_seconds()
        await asyncio.sleep(max(0.0, due_perf - time.perf_counter() - 0.2))
        ticker.longest = 0.0
        await asyncio.wait_for(done.wait(), timeout=600)
        cpu = time.process_time() - cpu
        tick_task.cancel()
        scheduler.shutdown(wait=False)
        return {
            "rate": count / (state["last"] - due_perf),
            "gap_ms": ticker.longest * 1000,
            "cpu_us": cpu / count * 1e6,
        }

    return asyncio.run(measure())


async def anyio_free_ticker(ticker: Ticker) -> None:
    last = time.perf_counter()
    while True:
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        ticker.longest = max(ticker.longest, now - last)
        last = now


# -- report --------------------------------------------------------------------------------------


def row(
    label: str,
    ours: float,
    theirs: float | None,
    unit: str,
    target: str,
    met: bool,
    higher_is_better: bool = True,
) -> str:
    ratio = ""
    if theirs:
        factor = ours / theirs if higher_is_better else theirs / ours
        ratio = f"{factor:6.1f}x"
    peer = f"{theirs:>12,.1f}" if theirs is not None else f"{'-':>12}"
    flag = "ok" if met else "BELOW TARGET"
    return f"{label:<40} {ours:>12,.1f} {peer} {ratio:>7}  {unit:<10} {target:<26} {flag}"


def main(*, quick: bool = False) -> bool:
    big = 100_000 if quick else 1_000_000
    burst = 20_000 if quick else 100_000
    memory_count = 20_000 if quick else 100_000
    ok = True
    lines = []
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        timed: Callable[[str], Path] = lambda name: base / f"{name}.db"  # noqa: E731

        creates = anyio.run(ours_creates, big, timed("creates"))
        aps_add = aps_sqlite_add_rate(timed("aps-creates"), 10_000 if not quick else 2_000, 1000)
        slowdown = creates["single_10k"] / creates["single_big"]
        met = creates["single_10k"] >= 5000 and creates["single_10k"] >= 2.5 * aps_add
        ok &= met
        lines.append(
            row(
                "create, one at a time (10k stored)",
                creates["single_10k"],
                aps_add,
                "creates/s",
                ">= 5k/s and >= 2.5x APS",
                met,
            )
        )
        met = creates["batch"] >= 50_000
        ok &= met
        lines.append(
            row("create, batches of 10k", creates["batch"], aps_add, "creates/s", ">= 50k/s", met)
        )
        met = slowdown <= 1.5
        ok &= met
        lines.append(
            row(
                f"single create slowdown 10k -> {big:,}",
                slowdown,
                None,
                "x",
                "<= 1.5x",
                met,
                higher_is_better=False,
            )
        )

        aps_interval = aps_memory_per_job(memory_count, "interval")
        aps_cron = aps_memory_per_job(memory_count, "cron")
        variants: list[tuple[str, Rate, str]] = [
            ("Single", Single(2030, 1, 1, 0, 0), "UTC"),
            ("Minutes", Minutes(5), "UTC"),
            ("Hours", Hours(6), "UTC"),
            ("Days", Days(2), "UTC"),
            ("Daily", Daily(9, 0), "Europe/Berlin"),
            ("Weekdays", Weekdays(17, 0), "Europe/Berlin"),
            ("WeekdaysAndSaturday", WeekdaysAndSaturday(8, 0), "Europe/Berlin"),
        ]
        for name, rate, zone in variants:
            per = anyio.run(ours_memory, memory_count, rate, timed(f"mem-{name}"), zone)
            peer = aps_interval if name in ("Minutes", "Hours", "Days", "Single") else aps_cron
            met = per <= 300
            ok &= met
            lines.append(
                row(
                    f"engine RAM per schedule, {name}",
                    per,
                    peer,
                    "bytes",
                    "<= 300 B",
                    met,
                    higher_is_better=False,
                )
            )

        ours = anyio.run(ours_burst, burst, timed("burst"))
        theirs = aps_burst(burst, coroutine=True)
        threaded = aps_burst(burst, coroutine=False)
        met = ours["rate"] >= 25_000
        ok &= met
        lines.append(
            row(
                f"burst of {burst:,} due at once",
                ours["rate"],
                theirs["rate"],
                "fires/s",
                ">= 25k/s",
                met,
            )
        )
        met = ours["gap_ms"] <= 50
        ok &= met
        lines.append(
            row(
                "  longest event-loop stall in the burst",
                ours["gap_ms"],
                theirs["gap_ms"],
                "ms",
                "<= 50 ms",
                met,
                higher_is_better=False,
            )
        )
        met = ours["cpu_us"] <= 50
        ok &= met
        lines.append(
            row(
                "  CPU per fire in the burst",
                ours["cpu_us"],
                theirs["cpu_us"],
                "us",
                "<= 50 us",
                met,
                higher_is_better=False,
            )
        )
        lines.append(
            row(
                "  same, APS with a plain (threaded) job",
                ours["rate"],
                threaded["rate"],
                "fires/s",
                "(peer as most use it)",
                True,
            )
        )
        lines.append(
            row(
                "  its stall",
                ours["gap_ms"],
                threaded["gap_ms"],
                "ms",
                "",
                True,
                higher_is_better=False,
            )
        )
        lines.append(
            row(
                "  its CPU per fire",
                ours["cpu_us"],
                threaded["cpu_us"],
                "us",
                "",
                True,
                higher_is_better=False,
            )
        )

        late = anyio.run(ours_lateness, 10_000, timed("late"))
        met = late <= 0.5
        ok &= met
        lines.append(
            row(
                "10k due in one minute: last one late by",
                late,
                None,
                "s",
                "<= 0.5 s",
                met,
                higher_is_better=False,
            )
        )

        steady = anyio.run(
            ours_steady_cpu, 1000 if quick else 5000, 10 if quick else 30, timed("steady")
        )
        met = steady <= 50
        ok &= met
        lines.append(
            row(
                "steady state: CPU per fire (Minutes(1))",
                steady,
                threaded["cpu_us"],
                "us",
                "<= 50 us",
                met,
                higher_is_better=False,
            )
        )

    print(
        f"{'measure':<40} {'reventless':>12} {'APS 3.11':>12} {'ratio':>7}  {'unit':<10} "
        f"{'target':<26}"
    )
    for line in lines:
        print(line)
    print(
        "(ratio: how many times better reventless is; file store for reventless; APScheduler "
        "with its SQLite store for creates and memory store + asyncio scheduler otherwise)"
    )
    return ok


if __name__ == "__main__":
    import sys

    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(0 if main(quick="--quick" in sys.argv) else 1)
