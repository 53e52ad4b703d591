"""PgQueuer on PostgreSQL: the peer of ``bench_pg_engine.py`` (burst fires/s, creates/s) and of
``bench_pg_lateness.py`` (lateness at a steady rate), doing the same work as our engines.

The same work: a due fire is a job enqueued with an ``execute_after`` (its due instant),
consumed by a ``QueueManager`` whose one entrypoint only counts (as our ``Counting`` target).
Each worker is a process of its own (``pgq-worker`` below), as our engines are; it runs on
uvloop, as PgQueuer's own ``pgq run`` does. The schema is PgQueuer's default (``durable``:
every table logged), on the benchmarks' durable server, in a database of its own. A job is
done when PgQueuer has moved it from its queue table to its log (``log_jobs``, a batch per
commit): the analogue of our fire's record committing.

Settings (PgQueuer's own knobs, tuned for it): ``QueueManager.run(batch_size=...)`` (its
default is 10; ``--pgq-batch``), no concurrency limit on the entrypoint, no cap on tasks
(``max_concurrent_tasks=None``), one asyncpg connection per worker (``AsyncpgDriver``, as its
documentation sets a worker up). Everything else is PgQueuer's default, including its log's
aggregation into statistics every 30 s (``log_aggregation_interval``; ``--aggregate-s 0`` turns
it off. At a steady 1,000 jobs/s the seconds that such an aggregation fell on were late by
1.3 to 1.4 s, every other second by at most 0.6 s, and that made the p99 of a minute; with it
off, no second's last job was later than 0.26 s).

Every run checks that each job ran exactly once: the workers report the ids they ran, and the
log holds each job once as ``successful``; duplicates and misses are counted, not assumed.

    python benchmarks/peers_pg_queues.py lateness [--per-second 1000] [--seconds 60]
        [--batch 500] [--aggregate-s 30] [--rounds 1] [--dsn DSN]
    python benchmarks/peers_pg_queues.py burst [--workers 1] [--count 5000] [--batch 500]
    python benchmarks/peers_pg_queues.py creates [--count 1000]

Without ``--dsn`` each round gets a new database of a durable server started here
(``tests/postgres_server.py``); a DSN given must name an empty database (one round). Each
command installs PgQueuer's schema. Prints one JSON line per round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ENTRYPOINT = "fire"
# Jobs a worker takes per dequeue: PgQueuer's default is 10; in a trial here (a burst of 5,000,
# 1 to 3 workers) 10 gave 1,400-2,600 jobs/s, 100 2,500-5,300, 500 4,900-8,100, 1,000
# 4,700-7,100 and 2,000 2,600-5,100. 500 is also our engines' batch.
BATCH = 500
# How often a worker folds its log into PgQueuer's statistics table (its default: 30 s;
# 0: never in the background, only when statistics are read).
AGGREGATE_S = 30.0
_LEAD_S = 2.0  # a burst is made due this far ahead, as bench_pg_engine does for ours
_HELD = timedelta(days=1)  # enqueued this far ahead: nothing due while workers start


async def _connect(dsn: str) -> Any:
    import asyncpg

    return await asyncpg.connect(dsn)


async def install(dsn: str) -> None:
    """PgQueuer's schema in the database of ``dsn`` (its default durability: logged tables)."""
    from pgqueuer import AsyncpgDriver, Queries

    conn = await _connect(dsn)
    try:
        await Queries(AsyncpgDriver(conn)).install()
    finally:
        await conn.close()


async def _enqueue_held(dsn: str, count: int) -> None:
    """``count`` jobs due a day ahead (lists of 1,000 per call); not timed."""
    from pgqueuer import AsyncpgDriver, Queries

    conn = await _connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(conn))
        for start in range(0, count, 1000):
            size = min(1000, count - start)
            await queries.enqueue([ENTRYPOINT] * size, [b"x"] * size, [0] * size, [_HELD] * size)
    finally:
        await conn.close()


async def _notify_as_enqueue(conn: Any) -> None:
    """The notification PgQueuer's trigger sends for an enqueue (its trigger is per statement
    and stays quiet on our UPDATE of due instants): workers wake and sleep until the first
    due instant, as after an ``enqueue`` with an ``execute_after``."""
    from pgqueuer.domain.settings import db_settings

    channel = db_settings().channel
    await conn.execute(
        "SELECT pg_notify($1, json_build_object('channel', $1::text, 'operation', 'insert',"
        " 'sent_at', NOW(), 'table', 'pgqueuer', 'type', 'table_changed_event')::text)",
        channel,
    )


async def _clock_offset(conn: Any) -> float:
    """The database's clock minus this process's (seconds), from the quickest of 20 looks."""
    best: tuple[float, float] = (float("inf"), 0.0)
    for _ in range(20):
        before = time.time()
        db = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
        after = time.time()
        best = min(best, (after - before, db - (before + after) / 2))
    return best[1]


async def _worker(dsn: str, batch: int, aggregate_s: float) -> None:
    """One PgQueuer worker: run, say ``running`` once its listener answers, run jobs until told
    to stop; print the ids it ran and each one's lateness (the database's clock when the
    entrypoint ran minus the job's ``execute_after``)."""
    from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager

    conn = await _connect(dsn)
    offset = await _clock_offset(conn)
    manager = QueueManager(Queries(AsyncpgDriver(conn)))
    ran: list[int] = []
    late: list[float] = []

    @manager.entrypoint(ENTRYPOINT, accepts_context=False)
    async def fire(job: Job) -> None:
        late.append(time.time() + offset - job.execute_after.timestamp())
        ran.append(job.id)

    aggregate = timedelta(seconds=aggregate_s)
    task = asyncio.create_task(manager.run(batch_size=batch, log_aggregation_interval=aggregate))
    for _ in range(100):  # its LISTEN is up once a probe comes back through it
        try:
            await manager.listener_healthy(timedelta(seconds=0.5))
            break
        except Exception:
            if task.done():
                task.result()
    else:
        raise RuntimeError("PgQueuer's listener never answered")
    print("running", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    manager.shutdown.set()
    await task
    await conn.close()
    print(json.dumps({"ids": ran, "lateness": late}), flush=True)


def start_workers(
    dsn: str, workers: int, batch: int, aggregate_s: float = AGGREGATE_S
) -> list[subprocess.Popen[str]]:
    """``workers`` PgQueuer worker processes, each running (listening) when this returns."""
    argv = [__file__, "pgq-worker", dsn, "--batch", str(batch), "--aggregate-s", str(aggregate_s)]
    return start_processes(argv, workers)


def start_processes(argv: list[str], count: int) -> list[subprocess.Popen[str]]:
    """``count`` processes of ``python argv``, each of which has said ``running``."""
    processes = [
        subprocess.Popen(
            [sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]
    for process in processes:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if line != "running":
            raise RuntimeError(f"a peer's worker did not start: {line!r}")
    return processes


def stop_workers(processes: list[subprocess.Popen[str]]) -> list[dict[str, list[Any]]]:
    """Each worker's ids and latenesses, after telling it to stop."""
    reports = []
    for process in processes:
        out, _ = process.communicate("stop\n", timeout=300)
        reports.append(json.loads(out.splitlines()[-1]))
    return reports


async def _check_log(
    conn: Any, expected: set[int], reports: list[dict[str, Any]]
) -> dict[str, int]:
    """Jobs run twice or never, by the workers' own ids and by PgQueuer's log."""
    ran = Counter(job for report in reports for job in report["ids"])
    logged = Counter(
        row["job_id"]
        for row in await conn.fetch("SELECT job_id FROM pgqueuer_log WHERE status = 'successful'")
    )
    return {
        "ran_twice": sum(1 for n in ran.values() if n > 1),
        "logged_twice": sum(1 for n in logged.values() if n > 1),
        "missed": len(expected - set(ran)),
        "not_logged": len(expected - set(logged)),
        "unexpected": len(set(ran) - expected),
    }


async def _release_and_time(dsn: str) -> tuple[float, set[int]]:
    """Make every queued job due ``_LEAD_S`` ahead (the database's clock; notified as an
    enqueue is), wait until none is left in the queue (a look every 10 ms): the
    seconds from the due instant to that look, by the database's clock; and the jobs' ids."""
    conn = await _connect(dsn)
    try:
        async with conn.transaction():
            due = await conn.fetchval(f"SELECT clock_timestamp() + interval '{_LEAD_S} seconds'")
            ids = await conn.fetch("UPDATE pgqueuer SET execute_after = $1 RETURNING id", due)
            await _notify_as_enqueue(conn)
        query = "SELECT EXISTS (SELECT FROM pgqueuer), clock_timestamp()"
        while True:
            left, now = await conn.fetchrow(query)
            if not left:
                break
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    return (now - due).total_seconds(), {row["id"] for row in ids}


async def _checked(dsn: str, expected: set[int], reports: list[dict[str, Any]]) -> dict[str, int]:
    conn = await _connect(dsn)
    try:
        return await _check_log(conn, expected, reports)
    finally:
        await conn.close()


def burst(dsn: str, workers: int, count: int, batch: int = BATCH) -> dict[str, Any]:
    """``count`` jobs made due at once, ``workers`` worker processes already running: jobs per
    second from the due instant until PgQueuer has logged the last as done."""
    asyncio.run(install(dsn))
    asyncio.run(_enqueue_held(dsn, count))
    processes = start_workers(dsn, workers, batch)
    try:
        time.sleep(0.5)  # the workers have looked and sleep, as our engines in bench_pg_engine
        elapsed, expected = asyncio.run(_release_and_time(dsn))
    finally:
        reports = stop_workers(processes)
    faults = asyncio.run(_checked(dsn, expected, reports))
    return {
        "fires_per_s": count / elapsed,
        "shares": [len(report["ids"]) for report in reports],
        **faults,
    }


async def _creates(dsn: str, count: int) -> dict[str, float]:
    from pgqueuer import AsyncpgDriver, Queries

    await install(dsn)
    conn = await _connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(conn))
        later = timedelta(minutes=5)
        started = time.perf_counter()
        for _ in range(count):
            await queries.enqueue(ENTRYPOINT, b"x", 0, later)
        one = count / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(0, count, 100):
            await queries.enqueue([ENTRYPOINT] * 100, [b"x"] * 100, [0] * 100, [later] * 100)
        many = count / (time.perf_counter() - started)
    finally:
        await conn.close()
    return {"creates_per_s_one_by_one": one, "creates_per_s_100_per_call": many}


def creates(dsn: str, count: int) -> dict[str, float]:
    """Durable creates: ``enqueue`` of one job at a time (each its own commit), and of lists of
    100 per call; jobs per second."""
    return asyncio.run(_creates(dsn, count))


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _enqueue_spread(dsn: str, per_second: int, seconds: int) -> tuple[datetime, set[int]]:
    """``per_second`` jobs due at each of ``seconds`` instants a second apart, enqueued in one
    call (so their ``execute_after`` counts from one ``NOW()``), the first far enough ahead for
    the enqueue and a worker's start to end before it; each job's due instant is noted aside
    (for the log's look) and the queue table analysed, as autovacuum would have by then."""
    from pgqueuer import AsyncpgDriver, Queries

    total = per_second * seconds
    lead = 5 + total / 5000
    conn = await _connect(dsn)
    try:
        await Queries(AsyncpgDriver(conn)).enqueue(
            [ENTRYPOINT] * total,
            [b"x"] * total,
            [0] * total,
            [timedelta(seconds=lead + n // per_second) for n in range(total)],
        )
        await conn.execute(
            "CREATE TABLE due_at AS SELECT id AS job_id, execute_after AS due FROM pgqueuer"
        )
        await conn.execute("ANALYZE pgqueuer")
        first = await conn.fetchval("SELECT min(due) FROM due_at")
        ids = await conn.fetch("SELECT job_id FROM due_at")
    finally:
        await conn.close()
    return first, {row["job_id"] for row in ids}


async def _before(dsn: str, instant: datetime) -> bool:
    conn = await _connect(dsn)
    try:
        return bool(await conn.fetchval("SELECT clock_timestamp() < $1::timestamptz", instant))
    finally:
        await conn.close()


async def _wait_empty_and_logged(dsn: str) -> tuple[list[float], list[list[float]]]:
    """Wait until the queue is empty; each job's lateness by its log record (the database's
    clock when PgQueuer logged it done, minus its due instant), and the five due instants
    whose last job was latest ([seconds after the first due instant, that lateness])."""
    conn = await _connect(dsn)
    try:
        left = "SELECT EXISTS (SELECT FROM pgqueuer)"
        while await conn.fetchval(left):  # noqa: ASYNC110 - the database is polled
            await asyncio.sleep(0.2)
        rows = await conn.fetch(
            "SELECT extract(epoch FROM l.created - d.due)::float8 AS late FROM pgqueuer_log l"
            " JOIN due_at d USING (job_id) WHERE l.status = 'successful'"
        )
        worst = await conn.fetch(
            "SELECT extract(epoch FROM d.due - min(d.due) OVER ())::float8 AS at,"
            " extract(epoch FROM max(l.created) - d.due)::float8 AS late FROM pgqueuer_log l"
            " JOIN due_at d USING (job_id) GROUP BY d.due ORDER BY late DESC LIMIT 5"
        )
    finally:
        await conn.close()
    slowest = [[round(row["at"]), round(row["late"], 2)] for row in worst]
    return sorted(row["late"] for row in rows), slowest


def lateness(
    dsn: str,
    per_second: int = 1000,
    seconds: int = 60,
    batch: int = BATCH,
    aggregate_s: float = AGGREGATE_S,
) -> dict[str, Any]:
    """One worker process, ``per_second`` jobs due at each instant a second apart for
    ``seconds`` seconds (all enqueued first, in one call, not timed; the worker starts before
    the first is due). ``p50_ms``/``p99_ms``: the database's clock when a job's entrypoint
    ran minus its due instant (a clock offset measured against the database's);
    ``logged_p50_ms``/``logged_p99_ms``: when PgQueuer logged it done (as our lateness is
    taken when a fire's record is written). Plus the exactly-once counts."""
    asyncio.run(install(dsn))
    first, expected = asyncio.run(_enqueue_spread(dsn, per_second, seconds))
    processes = start_workers(dsn, 1, batch, aggregate_s)
    try:
        if not asyncio.run(_before(dsn, first)):
            raise RuntimeError("the enqueue and the worker's start took longer than the lead")
        logged, slowest = asyncio.run(_wait_empty_and_logged(dsn))
    finally:
        reports = stop_workers(processes)
    ran = sorted(value for report in reports for value in report["lateness"])
    faults = asyncio.run(_checked(dsn, expected, reports))
    return {
        "p50_ms": round(1000 * statistics.median(ran), 1),
        "p99_ms": round(1000 * _quantile(ran, 0.99), 1),
        "max_ms": round(1000 * ran[-1], 1),
        "logged_p50_ms": round(1000 * statistics.median(logged), 1),
        "logged_p99_ms": round(1000 * _quantile(logged, 0.99), 1),
        "jobs": len(expected),
        "batch": batch,
        "aggregate_s": aggregate_s,
        "slowest_seconds": slowest,
        **faults,
    }


def _measure(args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    if args.command == "lateness":
        return lateness(dsn, args.per_second, args.seconds, args.batch, args.aggregate_s)
    if args.command == "burst":
        return burst(dsn, args.workers, args.count, args.batch)
    return creates(dsn, args.count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("lateness", "burst", "creates", "pgq-worker"))
    parser.add_argument("worker_dsn", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--dsn")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--per-second", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--aggregate-s", type=float, default=AGGREGATE_S)
    args = parser.parse_args()
    if args.command == "pgq-worker":
        try:
            import uvloop  # PgQueuer's own `pgq run` uses it where it is installed
        except ImportError:
            asyncio.run(_worker(args.worker_dsn, args.batch, args.aggregate_s))
        else:
            uvloop.run(_worker(args.worker_dsn, args.batch, args.aggregate_s))
        return
    if args.dsn:
        print(json.dumps(_measure(args, args.dsn)), flush=True)
        return
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    from tests.postgres_server import PostgresServer

    server = PostgresServer(durable=True).start()
    try:
        for _ in range(args.rounds):
            print(json.dumps(_measure(args, server.create_database())), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
