"""APScheduler 4.0.0a6, run from its own virtual environment (it cannot share one with 3.11).

``run.py`` makes that environment when it is missing. Only the features APScheduler 4 has are
measured: its triggers iterate forward from their start (no 'next fire after this instant'), so
it takes part in the batch next-fire benchmark and not in the single one.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from _common import (
    CASES,
    CREATED,
    INTERVAL_MINUTES,
    GcMeter,
    StallMeter,
    burst_figures,
    case_key,
    fires_per_second,
    random_starts,
    settled_rss,
    sqlite_settings,
)


def aps4_batch(count: int, length: int, repeats: int) -> dict[str, float]:
    """A trigger made for each start, then ``next()`` ``length`` times."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    starts = random_starts(count)
    rates = {}
    for label, _, zone, _, fields in CASES:
        tz = ZoneInfo(zone)

        def walk(start: datetime, length: int, fields: Any = fields, tz: ZoneInfo = tz) -> None:
            if fields:
                trigger: Any = CronTrigger(timezone=tz, start_time=start.astimezone(tz), **fields)
            else:
                # Anchored like the others; its first fire is its start, then every interval.
                steps = -(-(start - CREATED) // timedelta(minutes=INTERVAL_MINUTES))
                first = CREATED + steps * timedelta(minutes=INTERVAL_MINUTES)
                trigger = IntervalTrigger(minutes=INTERVAL_MINUTES, start_time=first)
            for _ in range(length):
                trigger.next()

        rates[case_key(label, zone)] = fires_per_second(walk, starts, length, repeats)
    return rates


def noop() -> None:
    return None


def _durable_engine(path: Path) -> tuple[Any, dict[str, str]]:
    """An aiosqlite engine with WAL and synchronous=NORMAL, as reventless's store."""
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")

    @event.listens_for(engine.sync_engine, "connect")
    def _durability(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    return engine, {}


async def _settings(engine: Any) -> dict[str, str]:
    from sqlalchemy import text

    async with engine.connect() as connection:
        journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar()
        synchronous = (await connection.execute(text("PRAGMA synchronous"))).scalar()
    values = {"PRAGMA journal_mode": journal, "PRAGMA synchronous": synchronous}
    return sqlite_settings(values.__getitem__)


def aps4_creates(path: str, prefill: int, count: int, rounds: int) -> dict[str, Any]:
    """``add_schedule`` one at a time into the SQLAlchemy (aiosqlite) data store."""
    from apscheduler import AsyncScheduler
    from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
    from apscheduler.triggers.interval import IntervalTrigger

    async def measure() -> dict[str, Any]:
        engine, _ = _durable_engine(Path(path))
        async with AsyncScheduler(SQLAlchemyDataStore(engine)) as scheduler:
            for number in range(prefill):
                await scheduler.add_schedule(noop, IntervalTrigger(minutes=5), id=f"p{number}")
            rates = []
            for round_number in range(rounds):
                began = time.perf_counter()
                for number in range(count):
                    await scheduler.add_schedule(
                        noop, IntervalTrigger(minutes=5), id=f"r{round_number}-{number}"
                    )
                rates.append(count / (time.perf_counter() - began))
            settings = await _settings(engine)
        await engine.dispose()
        rates.sort()
        return {"rate": rates[len(rates) // 2], "settings": settings}

    return anyio.run(measure)


def aps4_concurrent_creates(path: str, tasks: int, per_task: int) -> dict[str, Any]:
    """``tasks`` tasks each adding ``per_task`` schedules one at a time."""
    from apscheduler import AsyncScheduler
    from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
    from apscheduler.triggers.interval import IntervalTrigger

    async def measure() -> dict[str, Any]:
        engine, _ = _durable_engine(Path(path))
        async with AsyncScheduler(SQLAlchemyDataStore(engine)) as scheduler:
            await scheduler.add_schedule(noop, IntervalTrigger(minutes=5), id="warm-up")

            async def adder(number: int) -> None:
                for k in range(per_task):
                    await scheduler.add_schedule(
                        noop, IntervalTrigger(minutes=5), id=f"t{number}-{k}"
                    )

            began = time.perf_counter()
            async with anyio.create_task_group() as group:
                for number in range(tasks):
                    group.start_soon(adder, number)
            elapsed = time.perf_counter() - began
            settings = await _settings(engine)
        await engine.dispose()
        return {"rate": tasks * per_task / elapsed, "settings": settings}

    return anyio.run(measure)


def aps4_memory(count: int) -> dict[str, float]:
    """RSS per schedule of a running AsyncScheduler with its memory data store."""
    from apscheduler import AsyncScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    async def measure() -> dict[str, float]:
        async with AsyncScheduler() as scheduler:
            await scheduler.start_in_background()
            await anyio.sleep(0.05)
            before = settled_rss()
            for number in range(count):
                await scheduler.add_schedule(noop, IntervalTrigger(minutes=5), id=f"j{number}")
            await anyio.sleep(0.2)
            after = settled_rss()
            await scheduler.stop()
        return {"bytes_per_schedule": (after - before) / count}

    return anyio.run(measure)


_burst: dict[str, Any] = {}


async def burst_job() -> None:
    """The burst's job (APScheduler 4 refers to a task by its module-level name)."""
    _burst["count"] += 1
    if _burst["count"] == _burst["expected"]:
        _burst["done"].set()


def aps4_burst(count: int) -> dict[str, float]:
    """``count`` one-off schedules (coroutine jobs) due at once, memory data store; timed from
    the start of the scheduler, after their run time has passed."""
    from apscheduler import AsyncScheduler
    from apscheduler.triggers.date import DateTrigger

    async def measure() -> dict[str, float]:
        _burst.update(count=0, expected=count, done=anyio.Event())
        async with AsyncScheduler() as scheduler:
            # As many at once as it likes: no limit of its own slows it down.
            await scheduler.configure_task(burst_job, max_running_jobs=None)
            when = datetime.now(UTC) + timedelta(milliseconds=500)
            for number in range(count):
                # A trigger object each: they are stateful, and the memory store keeps them.
                await scheduler.add_schedule(burst_job, DateTrigger(when), id=f"b{number}")
            await anyio.sleep(0.6)
            meter = StallMeter(anyio.sleep)
            async with anyio.create_task_group() as group:
                group.start_soon(meter.run)
                await anyio.sleep(0.05)
                meter.reset()
                with GcMeter() as collector:
                    began, cpu = time.perf_counter(), time.process_time()
                    await scheduler.start_in_background()
                    with anyio.fail_after(900):
                        await _burst["done"].wait()
                    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
                group.cancel_scope.cancel()
            await scheduler.stop()
        return burst_figures(count, elapsed, cpu, meter, collector)

    return anyio.run(measure)
