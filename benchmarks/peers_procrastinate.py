"""procrastinate on PostgreSQL: a peer of ``bench_pg_engine.py`` (burst fires/s, creates/s)
and of ``bench_pg_lateness.py`` (lateness at a steady rate), doing the same work as our engines.

The same work: a due fire is a job deferred with a ``schedule_at`` (its due instant), run by a
worker whose one task only counts. Each worker is a process of its own (``worker`` below), as
our engines are; procrastinate's own schema, on the benchmarks' durable server, in a database of
its own. A job is done when its status is ``succeeded`` (procrastinate commits that per job,
after the task returns): the analogue of our fire's record committing.

Settings (procrastinate's own knobs, tuned for it): ``concurrency`` (jobs a worker runs at once;
its default is 1; ``--concurrency``), a connection pool of ``concurrency + 2`` connections (its
finish-a-job writes each take one), and ``fetch_job_polling_interval=0.1`` s: a job deferred
for later gets no notification when it falls due, so the poll is how a worker finds it (the
default, 5 s, would put seconds of lateness on every scheduled job). Everything else is
procrastinate's default. Each run counts the jobs run twice or never (by the workers' own ids
and by procrastinate's events).

    python benchmarks/peers_procrastinate.py burst [--workers 1] [--count 2000]
        [--concurrency 10]
    python benchmarks/peers_procrastinate.py creates [--count 1000]
    python benchmarks/peers_procrastinate.py lateness [--per-second 1000] [--seconds 60]

(Each starts a durable server of its own, ``tests/postgres_server.py``, unless ``--dsn`` names
an empty database.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers_pg_queues import (
    _clock_offset,
    _connect,
    _quantile,
    start_processes,
    stop_workers,
)

TASK = "fire"
# Jobs a worker runs at once: in a trial here (a burst of 1,000, one worker) 1 gave 78 jobs/s,
# 10 gave 120, 50 gave 97 and 200 gave 93: a worker fetches one job per query, in turn.
CONCURRENCY = 10
POLL_S = 0.1
_LEAD_S = 2.0  # a burst is made due this far ahead, as bench_pg_engine does for ours


def _app(dsn: str, pool: int = 4) -> Any:
    import logging

    import procrastinate

    # It warns that an App made in a script's main module cannot be found by its CLI: unused here.
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)

    return procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=dsn, min_size=1, max_size=pool)
    )


async def _install_and_defer(dsn: str, count: int) -> None:
    """procrastinate's schema, and ``count`` jobs due a day ahead (100 per call); not timed."""
    app = _app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        deferrer = app.configure_task(TASK, schedule_in={"days": 1})
        for start in range(0, count, 100):
            await deferrer.batch_defer_async(*({} for _ in range(min(100, count - start))))


async def _worker(dsn: str, concurrency: int) -> None:
    """One worker: say ``running`` once registered, run jobs until told to stop; print the ids
    it ran and each one's lateness (the database's clock when the task ran minus the job's
    ``scheduled_at``)."""
    conn = await _connect(dsn)
    offset = await _clock_offset(conn)
    await conn.close()
    app = _app(dsn, concurrency + 2)
    ran: list[int] = []
    late: list[float] = []

    @app.task(name=TASK, pass_context=True)
    async def fire(context: Any) -> None:
        late.append(time.time() + offset - context.job.scheduled_at.timestamp())
        ran.append(context.job.id)

    async with app.open_async():
        task = asyncio.create_task(
            app.run_worker_async(
                concurrency=concurrency,
                fetch_job_polling_interval=POLL_S,
                install_signal_handlers=False,
            )
        )
        await asyncio.sleep(1.0)  # registered and listening (nothing is due for a while)
        if task.done():
            task.result()
        print("running", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        task.cancel()  # procrastinate's graceful stop: running jobs finish first
        with contextlib.suppress(asyncio.CancelledError):
            await task
    print(json.dumps({"ids": ran, "lateness": late}), flush=True)


def _start(dsn: str, workers: int, concurrency: int) -> list[Any]:
    argv = [__file__, "worker", dsn, "--concurrency", str(concurrency)]
    return start_processes(argv, workers)


async def _faults(dsn: str, expected: set[int], reports: list[dict[str, Any]]) -> dict[str, int]:
    conn = await _connect(dsn)
    try:
        started = Counter(
            row["job_id"]
            for row in await conn.fetch(
                "SELECT job_id FROM procrastinate_events WHERE type = 'started'"
            )
        )
        succeeded = {
            row["id"]
            for row in await conn.fetch(
                "SELECT id FROM procrastinate_jobs WHERE status = 'succeeded'"
            )
        }
    finally:
        await conn.close()
    ran = Counter(job for report in reports for job in report["ids"])
    return {
        "ran_twice": sum(1 for n in ran.values() if n > 1),
        "started_twice": sum(1 for n in started.values() if n > 1),
        "missed": len(expected - set(ran)),
        "not_succeeded": len(expected - succeeded),
        "unexpected": len(set(ran) - expected),
    }


_LEFT = "SELECT EXISTS (SELECT FROM procrastinate_jobs WHERE status <> 'succeeded')"


async def _release_and_time(dsn: str) -> tuple[float, set[int]]:
    """Make every job due ``_LEAD_S`` ahead (the database's clock) and wait until none is left
    undone (a look every 10 ms): the seconds from the due instant to that look."""
    conn = await _connect(dsn)
    try:
        async with conn.transaction():
            due = await conn.fetchval(f"SELECT clock_timestamp() + interval '{_LEAD_S} seconds'")
            ids = await conn.fetch(
                "UPDATE procrastinate_jobs SET scheduled_at = $1 RETURNING id", due
            )
        query = f"SELECT ({_LEFT}), clock_timestamp()"
        while True:
            left, now = await conn.fetchrow(query)
            if not left:
                break
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    return (now - due).total_seconds(), {row["id"] for row in ids}


def burst(dsn: str, workers: int, count: int, concurrency: int = CONCURRENCY) -> dict[str, Any]:
    """``count`` jobs made due at once, ``workers`` worker processes already running: jobs per
    second from the due instant until the last has succeeded."""
    asyncio.run(_install_and_defer(dsn, count))
    processes = _start(dsn, workers, concurrency)
    try:
        time.sleep(0.5)
        elapsed, expected = asyncio.run(_release_and_time(dsn))
    finally:
        reports = stop_workers(processes)
    return {
        "fires_per_s": count / elapsed,
        "shares": [len(report["ids"]) for report in reports],
        **asyncio.run(_faults(dsn, expected, reports)),
    }


async def _creates(dsn: str, count: int) -> dict[str, float]:
    app = _app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        deferrer = app.configure_task(TASK, schedule_in={"minutes": 5})
        started = time.perf_counter()
        for _ in range(count):
            await deferrer.defer_async()
        one = count / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(0, count, 100):
            await deferrer.batch_defer_async(*({} for _ in range(100)))
        many = count / (time.perf_counter() - started)
    return {"creates_per_s_one_by_one": one, "creates_per_s_100_per_call": many}


def creates(dsn: str, count: int) -> dict[str, float]:
    """Durable creates: ``defer_async`` one job at a time (each its own commit), and
    ``batch_defer_async`` of 100 per call; jobs per second."""
    return asyncio.run(_creates(dsn, count))


async def _spread_due(dsn: str, per_second: int) -> set[int]:
    """Every job due at a whole second, ``per_second`` of them at each, from a whole second
    far enough ahead for this update to end before (about 1 s per 10,000 jobs)."""
    conn = await _connect(dsn)
    try:
        async with conn.transaction():
            start = await conn.fetchval(
                "SELECT date_trunc('second', clock_timestamp()) + make_interval(secs => 3"
                " + (SELECT count(*) FROM procrastinate_jobs) / 5000)"
            )
            ids = await conn.fetch(
                "UPDATE procrastinate_jobs j SET scheduled_at = $1::timestamptz"
                " + (r.n / $2) * interval '1 second' FROM (SELECT id, row_number() OVER"
                " (ORDER BY id) - 1 AS n FROM procrastinate_jobs) r WHERE j.id = r.id"
                " RETURNING j.id",
                start,
                per_second,
            )
            if await conn.fetchval("SELECT clock_timestamp() >= $1::timestamptz", start):
                raise RuntimeError("spreading the due instants took longer than the lead")
    finally:
        await conn.close()
    return {row["id"] for row in ids}


async def _wait_done(dsn: str) -> list[float]:
    """Wait until every job has succeeded; each one's lateness by its record (the database's
    clock when its success was written, minus its due instant)."""
    conn = await _connect(dsn)
    try:
        while await conn.fetchval(_LEFT):  # noqa: ASYNC110 - the database is polled
            await asyncio.sleep(0.2)
        rows = await conn.fetch(
            "SELECT extract(epoch FROM e.at - j.scheduled_at)::float8 AS late"
            " FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id"
            " WHERE e.type = 'succeeded'"
        )
    finally:
        await conn.close()
    return sorted(row["late"] for row in rows)


def lateness(
    dsn: str, per_second: int = 1000, seconds: int = 60, concurrency: int = CONCURRENCY
) -> dict[str, Any]:
    """As ``peers_pg_queues.lateness``: one worker process, ``per_second`` jobs due at each
    whole second for ``seconds`` seconds. ``p50_ms``/``p99_ms``: when the task ran;
    ``logged_*``: when its success was written."""
    asyncio.run(_install_and_defer(dsn, per_second * seconds))
    processes = _start(dsn, 1, concurrency)
    try:
        expected = asyncio.run(_spread_due(dsn, per_second))
        logged = asyncio.run(_wait_done(dsn))
    finally:
        reports = stop_workers(processes)
    ran = sorted(value for report in reports for value in report["lateness"])
    return {
        "p50_ms": round(1000 * statistics.median(ran), 1),
        "p99_ms": round(1000 * _quantile(ran, 0.99), 1),
        "max_ms": round(1000 * ran[-1], 1),
        "logged_p50_ms": round(1000 * statistics.median(logged), 1),
        "logged_p99_ms": round(1000 * _quantile(logged, 0.99), 1),
        "jobs": len(expected),
        "concurrency": concurrency,
        **asyncio.run(_faults(dsn, expected, reports)),
    }


def _measure(args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    if args.command == "lateness":
        return lateness(dsn, args.per_second, args.seconds, args.concurrency)
    if args.command == "burst":
        return burst(dsn, args.workers, args.count, args.concurrency)
    return creates(dsn, args.count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("lateness", "burst", "creates", "worker"))
    parser.add_argument("worker_dsn", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--dsn")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--per-second", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    args = parser.parse_args()
    if args.command == "worker":
        asyncio.run(_worker(args.worker_dsn, args.concurrency))
        return
    if args.dsn:
        print(json.dumps(_measure(args, args.dsn)), flush=True)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.postgres_server import PostgresServer

    server = PostgresServer(durable=True).start()
    try:
        for _ in range(args.rounds):
            print(json.dumps(_measure(args, server.create_database())), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
