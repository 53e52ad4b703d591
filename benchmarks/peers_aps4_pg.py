"""APScheduler 4 (4.0.0a6) with its SQLAlchemy data store and asyncpg event broker on
PostgreSQL: the peer of ``bench_pg_engine.py``, run in APScheduler 4's own environment
(``benchmarks/.venv-aps4``). One scheduler, one process: ``count`` one-off schedules
(DateTrigger) due at one instant a few seconds ahead, added before the scheduler starts, which
starts before that instant; timed, as ours, from the due instant until the last job has run
(by the machine's clock, which APScheduler judges due times by). Prints ``{"fires_per_s": ...}``.

    benchmarks/.venv-aps4/bin/python benchmarks/peers_aps4_pg.py DSN COUNT
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta

import anyio

_done: dict[str, float] = {"count": 0, "expected": 0, "last": 0.0}
_finished: list[anyio.Event] = []


async def burst_job() -> None:
    _done["count"] += 1
    if _done["count"] == _done["expected"]:
        _done["last"] = time.time()
        _finished[0].set()


async def measure(dsn: str, count: int) -> float:
    from apscheduler import AsyncScheduler
    from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
    from apscheduler.eventbrokers.asyncpg import AsyncpgEventBroker
    from apscheduler.triggers.date import DateTrigger
    from sqlalchemy.ext.asyncio import create_async_engine

    _done.update(count=0, expected=count)
    _finished[:] = [anyio.Event()]
    engine = create_async_engine(dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    store = SQLAlchemyDataStore(engine)
    broker = AsyncpgEventBroker.from_async_sqla_engine(engine)
    async with AsyncScheduler(store, broker) as scheduler:
        await scheduler.configure_task(burst_job, max_running_jobs=None)
        # Due far enough ahead that every add and the start are done before (checked).
        when = datetime.now(UTC) + timedelta(seconds=3 + count * 0.02)
        for number in range(count):
            await scheduler.add_schedule(burst_job, DateTrigger(when), id=f"b{number}")
        await scheduler.start_in_background()
        if datetime.now(UTC) >= when:
            raise RuntimeError("the adds took longer than the lead: raise it")
        with anyio.fail_after(900):
            await _finished[0].wait()
        elapsed = _done["last"] - when.timestamp()
        await scheduler.stop()
    await engine.dispose()
    return count / elapsed


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import peers_aps4_pg  # the job must be importable by its module's name, not __main__

    rate = anyio.run(peers_aps4_pg.measure, sys.argv[1], int(sys.argv[2]))
    print(json.dumps({"fires_per_s": rate}))
