"""The local engine's side of the engine benchmarks: creates, memory, bursts, stalls.

Every figure uses the durable file store (SQLite in WAL mode, synchronous=NORMAL, read back with
PRAGMA from the engine's own connection). Each function runs in a fresh process started by
``run.py``, and APScheduler's side of the same benchmark in another (``peers_aps3``,
``peers_aps4``).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from _common import (
    GcMeter,
    StallMeter,
    burst_figures,
    peak_rss_bytes,
    settled_rss,
    sqlite_settings,
)

import reventless.local
from reventless import Minutes, Schedule, Scheduler, Single
from reventless.target import FireEnvelope
from reventless.testing import VirtualClock

START = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)
DUE = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
BATCH = 10_000


class CountingTarget:
    """Takes every fire and counts it; ``done`` is set at ``expected`` fires."""

    def __init__(self, expected: int = 0) -> None:
        self.count = 0
        self.expected = expected
        self.done = anyio.Event()

    async def deliver(self, envelope: FireEnvelope) -> None:
        self.count += 1
        if self.count == self.expected:
            self.done.set()


def _schedules(count: int, offset: int = 0, prefix: str = "s") -> list[Schedule]:
    return [
        Schedule(name=f"{prefix}{number:07d}", rate=Minutes(5), payload='{"command": "Tick"}')
        for number in range(offset, offset + count)
    ]


def _singles(count: int) -> list[Schedule]:
    when = Single(DUE.year, DUE.month, DUE.day, DUE.hour, DUE.minute)
    return [Schedule(name=f"b{number:07d}", rate=when, payload="p") for number in range(count)]


def _settings(provider: Any) -> dict[str, str]:
    """The durability of the engine's own connection (benchmark-only access)."""
    conn = provider._runner.store.conn
    return sqlite_settings(lambda sql: conn.execute(sql).fetchone()[0])


async def _fill(ops: Any, schedules: list[Schedule]) -> list[float]:
    rates = []
    for start in range(0, len(schedules), BATCH):
        batch = schedules[start : start + BATCH]
        began = time.perf_counter()
        await ops.create_schedules(batch)
        rates.append(len(batch) / (time.perf_counter() - began))
    return rates


# -- creates -------------------------------------------------------------------------------------


def creates(path: str, prefill: int, count: int, rounds: int) -> dict[str, Any]:
    """``create_schedule`` one at a time, awaited, ``prefill`` schedules stored."""

    async def measure() -> dict[str, Any]:
        async with reventless.local.provider(path, clock=VirtualClock(START)) as provider:
            ops = (await Scheduler.make(provider, target=CountingTarget())).operations
            await _fill(ops, _schedules(prefill, prefix="p"))
            rates = []
            for round_number in range(rounds):
                batch = _schedules(count, offset=round_number * count)
                began = time.perf_counter()
                for schedule in batch:
                    await ops.create_schedule(schedule)
                rates.append(count / (time.perf_counter() - began))
            return {"rate": statistics.median(rates), "settings": _settings(provider)}

    return anyio.run(measure)


def concurrent_creates(path: str, tasks: int, per_task: int) -> dict[str, Any]:
    """``tasks`` tasks each awaiting ``create_schedule`` ``per_task`` times."""

    async def measure() -> dict[str, Any]:
        async with reventless.local.provider(path, clock=VirtualClock(START)) as provider:
            ops = (await Scheduler.make(provider, target=CountingTarget())).operations
            await ops.create_schedule(_schedules(1, prefix="w")[0])
            work = [_schedules(per_task, offset=number * per_task) for number in range(tasks)]

            async def creator(batch: list[Schedule]) -> None:
                for schedule in batch:
                    await ops.create_schedule(schedule)

            began = time.perf_counter()
            async with anyio.create_task_group() as group:
                for batch in work:
                    group.start_soon(creator, batch)
            elapsed = time.perf_counter() - began
            return {"rate": tasks * per_task / elapsed, "settings": _settings(provider)}

    return anyio.run(measure)


def batch_creates(path: str, total: int) -> dict[str, Any]:
    """``create_schedules`` in batches of 10,000 up to ``total`` stored: the rate of the first
    batches and of the last ones (is it flat?)."""

    async def measure() -> dict[str, Any]:
        async with reventless.local.provider(path, clock=VirtualClock(START)) as provider:
            ops = (await Scheduler.make(provider, target=CountingTarget())).operations
            rates = await _fill(ops, _schedules(total))
            settings = _settings(provider)
        edge = max(1, min(5, len(rates) // 4))
        return {
            "first": statistics.median(rates[:edge]),
            "last": statistics.median(rates[-edge:]),
            "settings": settings,
        }

    return anyio.run(measure)


def prepare_store(path: str, total: int) -> dict[str, Any]:
    """A store of ``total`` Minutes(5) schedules for the start-up measurements (not timed)."""

    async def make() -> dict[str, Any]:
        async with reventless.local.provider(path, clock=VirtualClock(START)) as provider:
            ops = (await Scheduler.make(provider, target=CountingTarget())).operations
            await _fill(ops, _schedules(total))
        return {"schedules": total}

    return anyio.run(make)


# -- memory and start-up ---------------------------------------------------------------------------


def startup(path: str, count: int) -> dict[str, float]:
    """Start the engine on a store of ``count`` schedules: RSS per schedule once it runs, the
    peak RSS of start-up against that, the longest loop stall and the time until it leads."""

    async def measure() -> dict[str, float]:
        meter = StallMeter(anyio.sleep)
        async with reventless.local.provider(path, clock=VirtualClock(START)) as provider:
            await Scheduler.make(provider, target=CountingTarget())
            before = settled_rss()
            peak_before = peak_rss_bytes()
            async with anyio.create_task_group() as group:
                group.start_soon(meter.run)
                await anyio.sleep(0.05)
                meter.reset()
                began = time.perf_counter()
                await group.start(provider.run)
                elapsed = time.perf_counter() - began
                stall = meter.longest
                after = settled_rss()
                # The kernel's peak lags its current count a little: never below what was seen.
                peak = max(peak_rss_bytes(), after)
                group.cancel_scope.cancel()
        steady = after - before
        return {
            "bytes_per_schedule": steady / count,
            "peak_over_steady": (max(peak, peak_before) - before) / steady,
            "stall_ms": stall * 1000,
            "start_s": elapsed,
            # ru_maxrss only rises: a peak before start-up hides the start-up's own.
            "peak_known": float(peak > peak_before),
        }

    return anyio.run(measure)


def created_while_running(count: int, path: str) -> dict[str, float]:
    """RSS per schedule when ``count`` schedules are created while the engine runs (the change
    poller sees them too)."""

    async def measure() -> dict[str, float]:
        async with reventless.local.provider(
            path, clock=VirtualClock(START), poll_interval=0.05
        ) as provider:
            ops = (await Scheduler.make(provider, target=CountingTarget())).operations
            async with anyio.create_task_group() as group:
                await group.start(provider.run)
                before = settled_rss()
                for start in range(0, count, BATCH):
                    await ops.create_schedules(_schedules(min(BATCH, count - start), start))
                    await anyio.sleep(0.06)  # let the change poller run between batches
                await anyio.sleep(0.2)
                after = settled_rss()
                group.cancel_scope.cancel()
        return {"bytes_per_schedule": (after - before) / count}

    return anyio.run(measure)


# -- firing ----------------------------------------------------------------------------------------


def burst(path: str, count: int) -> dict[str, float]:
    """``count`` Singles due at the same minute: fires per second from the moment the clock
    reaches that minute until all are delivered and recorded, CPU per fire, longest stall."""

    async def measure() -> dict[str, float]:
        clock = VirtualClock(START)
        target = CountingTarget(count)
        async with reventless.local.provider(path, clock=clock) as provider:
            ops = (await Scheduler.make(provider, target=target)).operations
            await _fill(ops, _singles(count))
            meter = StallMeter(anyio.sleep)
            async with anyio.create_task_group() as group:
                await group.start(provider.run)
                group.start_soon(meter.run)
                await anyio.sleep(0.05)
                meter.reset()
                with GcMeter() as collector:
                    began, cpu = time.perf_counter(), time.process_time()
                    await clock.advance(DUE - START)  # returns once all are delivered, recorded
                    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
                group.cancel_scope.cancel()
        assert target.count == count, (target.count, count)
        return burst_figures(count, elapsed, cpu, meter, collector)

    return anyio.run(measure)


def catch_up(path: str, count: int) -> dict[str, float]:
    """``count`` Minutes(1) schedules, the engine down for a day: the longest loop stall while
    it catches up (misfire policy 'latest': one fire each, the rest recorded as missed)."""

    async def measure() -> dict[str, float]:
        clock = VirtualClock(START)
        target = CountingTarget(count)
        async with reventless.local.provider(path, clock=clock) as provider:
            ops = (await Scheduler.make(provider, target=target)).operations
            await _fill(
                ops,
                [
                    Schedule(name=f"c{number:07d}", rate=Minutes(1), payload="p")
                    for number in range(count)
                ],
            )
            await clock.advance(timedelta(days=1))  # nothing runs: the engine is down
            meter = StallMeter(anyio.sleep)
            async with anyio.create_task_group() as group:
                group.start_soon(meter.run)
                await anyio.sleep(0.05)
                meter.reset()
                with GcMeter() as collector:
                    began = time.perf_counter()
                    await group.start(provider.run)
                    with anyio.fail_after(900):
                        await target.done.wait()
                    elapsed = time.perf_counter() - began
                group.cancel_scope.cancel()
        return {
            "stall_ms": meter.longest * 1000,
            "seconds": elapsed,
            "gc_ms": collector.longest * 1000,
        }

    return anyio.run(measure)
