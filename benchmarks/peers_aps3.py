"""The peers installed beside reventless (the ``bench`` extra): APScheduler 3.11, croniter, cronsim.

Each function is one side of one benchmark, run in a fresh process by ``run.py``; reventless's
side of the same benchmark does the same work in ``bench_fire_times`` or ``bench_engine``.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from _common import (
    CALENDAR_CASES,
    CASES,
    CREATED,
    INTERVAL_MINUTES,
    GcMeter,
    StallMeter,
    burst_figures,
    calls_per_second,
    case_key,
    fires_per_second,
    random_starts,
    settled_rss,
    sqlite_settings,
)

# -- next fire -----------------------------------------------------------------------------------


def _aps3_trigger(zone: str, fields: dict[str, str]) -> Any:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    if not fields:
        return IntervalTrigger(minutes=INTERVAL_MINUTES, start_date=CREATED, timezone=UTC)
    return CronTrigger(timezone=ZoneInfo(zone), **fields)


def aps3_single(count: int, repeats: int, calendar: bool = False) -> dict[str, float]:
    """``get_next_fire_time(None, start)``: the next fire at or after ``start``."""
    starts = random_starts(count)
    rates = {}
    for label, _, zone, _, fields in CALENDAR_CASES if calendar else CASES:
        trigger = _aps3_trigger(zone, fields)
        local = [start.astimezone(trigger.timezone) for start in starts]
        rates[case_key(label, zone)] = calls_per_second(
            lambda start, trigger=trigger: trigger.get_next_fire_time(None, start),
            local,
            repeats,
        )
    return rates


def aps3_batch(count: int, length: int, repeats: int) -> dict[str, float]:
    """Consecutive fires the way its scheduler walks them: ``get_next_fire_time(prev, prev)``."""
    starts = random_starts(count)
    rates = {}
    for label, _, zone, _, fields in CASES:
        trigger = _aps3_trigger(zone, fields)
        tz = ZoneInfo(zone)

        def walk(start: datetime, length: int, trigger: Any = trigger, tz: ZoneInfo = tz) -> None:
            fire = trigger.get_next_fire_time(None, start.astimezone(tz))
            for _ in range(length - 1):
                fire = trigger.get_next_fire_time(fire, fire)

        rates[case_key(label, zone)] = fires_per_second(walk, starts, length, repeats)
    return rates


def croniter_single(count: int, repeats: int, calendar: bool = False) -> dict[str, float]:
    """croniter's fast form: one iterator, moved to each start with ``set_current``."""
    from croniter import croniter

    starts = random_starts(count)
    rates = {}
    for label, _, zone, cron, _ in CALENDAR_CASES if calendar else CASES:
        tz = ZoneInfo(zone)
        local = [start.astimezone(tz) for start in starts]
        reused = croniter(cron, datetime(2000, 1, 1, tzinfo=tz))

        def call(start: datetime, reused: Any = reused) -> object:
            reused.set_current(start, force=True)
            return reused.get_next(datetime)

        rates[case_key(label, zone)] = calls_per_second(call, local, repeats)
    return rates


def croniter_batch(count: int, length: int, repeats: int) -> dict[str, float]:
    from croniter import croniter

    starts = random_starts(count)
    rates = {}
    for label, _, zone, cron, _ in CASES:
        tz = ZoneInfo(zone)

        def walk(start: datetime, length: int, cron: str = cron, tz: ZoneInfo = tz) -> None:
            iterator = croniter(cron, start.astimezone(tz))
            for _ in range(length):
                iterator.get_next(datetime)

        rates[case_key(label, zone)] = fires_per_second(walk, starts, length, repeats)
    return rates


def cronsim_single(count: int, repeats: int, calendar: bool = False) -> dict[str, float]:
    """cronsim has no way to move an iterator: one ``CronSim(expr, start)`` per start."""
    from cronsim import CronSim

    starts = random_starts(count)
    rates = {}
    for label, _, zone, cron, _ in CALENDAR_CASES if calendar else CASES:
        tz = ZoneInfo(zone)
        local = [start.astimezone(tz) for start in starts]
        rates[case_key(label, zone)] = calls_per_second(
            lambda start, cron=cron: next(CronSim(cron, start)), local, repeats
        )
    return rates


def cronsim_batch(count: int, length: int, repeats: int) -> dict[str, float]:
    from cronsim import CronSim

    starts = random_starts(count)
    rates = {}
    for label, _, zone, cron, _ in CASES:
        tz = ZoneInfo(zone)

        def walk(start: datetime, length: int, cron: str = cron, tz: ZoneInfo = tz) -> None:
            iterator = CronSim(cron, start.astimezone(tz))
            for _ in range(length):
                next(iterator)

        rates[case_key(label, zone)] = fires_per_second(walk, starts, length, repeats)
    return rates


# -- creates -------------------------------------------------------------------------------------


def noop() -> None:
    return None


def _durable_scheduler(path: Path) -> tuple[Any, dict[str, str]]:
    """A paused BackgroundScheduler on a SQLAlchemy SQLite job store with WAL and
    synchronous=NORMAL (the durability reventless's store runs with), and the settings as read
    back from its connection."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from sqlalchemy import create_engine, event, text

    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _durability(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(engine=engine)})
    scheduler.start(paused=True)
    with engine.connect() as connection:
        settings = sqlite_settings(lambda sql: connection.execute(text(sql)).scalar())
    return scheduler, settings


def aps3_creates(path: str, prefill: int, count: int, rounds: int) -> dict[str, Any]:
    """``add_job`` one at a time into the durable SQLAlchemy store, ``prefill`` jobs stored."""
    scheduler, settings = _durable_scheduler(Path(path))
    try:
        for number in range(prefill):
            scheduler.add_job(noop, "interval", minutes=5, id=f"p{number}")
        rates = []
        for round_number in range(rounds):
            began = time.perf_counter()
            for number in range(count):
                scheduler.add_job(noop, "interval", minutes=5, id=f"r{round_number}-{number}")
            rates.append(count / (time.perf_counter() - began))
    finally:
        scheduler.shutdown(wait=False)
    return {"rate": statistics.median(rates), "settings": settings}


def aps3_concurrent_creates(path: str, tasks: int, per_task: int) -> dict[str, Any]:
    """``tasks`` threads each adding ``per_task`` jobs one at a time (its adds are blocking
    calls, so threads are how an application would add concurrently)."""
    scheduler, settings = _durable_scheduler(Path(path))
    gate = threading.Barrier(tasks + 1)

    def adder(number: int) -> None:
        gate.wait()
        for k in range(per_task):
            scheduler.add_job(noop, "interval", minutes=5, id=f"t{number}-{k}")

    threads = [threading.Thread(target=adder, args=(n,)) for n in range(tasks)]
    try:
        for thread in threads:
            thread.start()
        gate.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
    finally:
        scheduler.shutdown(wait=False)
    return {"rate": tasks * per_task / elapsed, "settings": settings}


# -- memory and bursts ----------------------------------------------------------------------------


def aps3_memory(count: int) -> dict[str, float]:
    """RSS per job of a running AsyncIOScheduler holding ``count`` interval jobs in memory."""

    async def measure() -> dict[str, float]:
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        scheduler = AsyncIOScheduler(jobstores={"default": MemoryJobStore()})
        scheduler.start()
        await asyncio.sleep(0.05)
        before = settled_rss()
        for number in range(count):
            scheduler.add_job(noop, "interval", minutes=5, id=f"j{number}")
        await asyncio.sleep(0.2)
        after = settled_rss()
        scheduler.shutdown(wait=False)
        return {"bytes_per_schedule": (after - before) / count}

    return asyncio.run(measure())


def aps3_burst(count: int) -> dict[str, float]:
    """``count`` date jobs (coroutines) due at once on AsyncIOScheduler with its memory store.

    The jobs are added while the scheduler is paused; the clock starts when it is resumed after
    their run time has passed, so only firing is timed, as on reventless's side.
    """

    async def measure() -> dict[str, float]:
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        done = asyncio.Event()
        fired = 0

        async def job() -> None:
            nonlocal fired
            fired += 1
            if fired == count:
                done.set()

        scheduler = AsyncIOScheduler(
            jobstores={"default": MemoryJobStore()}, job_defaults={"misfire_grace_time": None}
        )
        scheduler.start(paused=True)
        when = datetime.now(UTC) + timedelta(seconds=0.5)
        for number in range(count):
            scheduler.add_job(job, "date", run_date=when, id=f"b{number}")
        await asyncio.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()) + 0.05)
        meter = StallMeter()
        ticking = asyncio.create_task(meter.run())
        await asyncio.sleep(0.05)
        meter.reset()
        with GcMeter() as collector:
            began, cpu = time.perf_counter(), time.process_time()
            scheduler.resume()
            await asyncio.wait_for(done.wait(), timeout=900)
            elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
        ticking.cancel()
        scheduler.shutdown(wait=False)
        return burst_figures(count, elapsed, cpu, meter, collector)

    return asyncio.run(measure())


def aps3_calendar(count: int, repeats: int) -> dict[str, float]:
    """``aps3_single`` for the calendar rates (CronTrigger with day='last', '2nd tue')."""
    return aps3_single(count, repeats, calendar=True)


def croniter_calendar(count: int, repeats: int) -> dict[str, float]:
    return croniter_single(count, repeats, calendar=True)


def cronsim_calendar(count: int, repeats: int) -> dict[str, float]:
    return cronsim_single(count, repeats, calendar=True)
