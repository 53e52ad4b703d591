"""The PostgreSQL engine: fires/s of a burst with 1, 2 and 3 engine processes on one database,
and durable creates/s; APScheduler 4 with its SQLAlchemy data store on the same server as the
peer, where its virtual environment is there (``benchmarks/.venv-aps4``: see ``run.py``).

One server (tests/postgres_server.py: the machine's binaries, a temporary folder, loopback),
durable for the benchmark (fsync, full-page writes and synchronous commits on; the tests'
server runs without them).
The burst: ``--burst`` Singles, created before the engines start (not timed) and held back
(their due instant a day ahead). Each engine is a process of its own (``--engine`` below): it
opens the provider, attaches a target that only counts, starts ``provider.run()`` and says
``running``. Then one transaction makes every fire of the burst due ``_LEAD_S`` ahead by the
database's clock (and notifies the engines, as a create does): the time runs from that due
instant until the history holds every fire as delivered, by the database's clock (the look
that sees the last one). An engine's start-up is not timed: the burst measures firing, not
starting processes. Each engine delivers and records in its claims' transactions
(``FOR UPDATE SKIP LOCKED``), as in production. Every round checks that each fire was
delivered once and recorded once.

Creates: ``create_schedule`` one at a time (each its own committed transaction), and
``create_schedules`` of 100 per call; schedules per second.

The peer (``peers_aps4_pg.py``, when ``benchmarks/.venv-aps4`` exists: ``run.py`` makes it):
APScheduler 4 with its SQLAlchemy data store and asyncpg event broker on the same server, one
scheduler, a burst of ``--aps4-burst`` jobs due at once, timed the same way (from their due
instant, the scheduler already running, to the last job run); in each round, our one engine's
fires/s over its.

PgQueuer (``peers_pg_queues.py``, where the interpreter running this has it: the ``bench``
extra): the same burst, the same number of jobs, each made due at once (an ``execute_after``),
with 1, 2 and 3 worker processes already running, each a ``QueueManager`` whose entrypoint only
counts; timed from the due instant until PgQueuer has logged the last job done (its queue table
empty), by the database's clock; durable creates by ``enqueue`` one job at a time and 100 per
call. Each in a database of its own on the same server, taking turns with ours in each round;
ours over its, per round. Each run checks that every job ran and was logged exactly once.

procrastinate (``peers_procrastinate.py``, the ``bench`` extra too): the same, with jobs
deferred with a ``schedule_at``, a smaller burst (``--procrastinate-burst``: it runs about a
hundred jobs a second here), 1, 2 and 3 worker processes, and creates by ``defer_async`` one at
a time and ``batch_defer_async`` of 100.

    python benchmarks/bench_pg_engine.py [--rounds 3] [--burst 5000] [--creates 2000]
        [--aps4-burst 500 (0: leave APScheduler 4 out)]
        [--pgq-batch 500 (PgQueuer's jobs per dequeue; 0: leave PgQueuer out)]
        [--procrastinate-burst 1000 (0: leave procrastinate out)]

Medians over the rounds (and of the per-round ratios). Run it with the ``bench`` environment's
interpreter (``.venvs/bench``: the postgres and bench extras), where every peer but APScheduler
4 is installed; without a peer's package, that peer is left out and said so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres_server import PostgresServer  # noqa: E402


class Counting:
    """A target that only counts."""

    def __init__(self) -> None:
        self.count = 0

    async def deliver(self, envelope: Any) -> None:
        self.count += 1


async def _create_burst(dsn: str, count: int) -> None:
    import reventless.postgres
    from reventless import Schedule, Scheduler, Single
    from reventless.testing import VirtualClock

    now = datetime.now(UTC)  # real clock: the engines run on it; any minute will do
    past = (now - timedelta(minutes=5)).replace(second=0, microsecond=0)
    async with reventless.postgres.provider(dsn, clock=VirtualClock(past)) as provider:
        ops = (await Scheduler.make(provider, target=Counting(), name="burst")).operations
        minute = Single(past.year, past.month, past.day, past.hour, past.minute)
        for start in range(0, count, 1000):
            await ops.create_schedules(
                [
                    Schedule(name=f"s{n}", rate=minute, payload="x")
                    for n in range(start, min(start + 1000, count))
                ]
            )


async def _engine(dsn: str) -> None:
    """One engine process: start firing, say ``running``, fire until told to stop; print its
    count."""
    import anyio

    import reventless.postgres
    from reventless import Scheduler

    target = Counting()
    async with reventless.postgres.provider(dsn, retention=None) as provider:
        await Scheduler.make(provider, target=target, name="burst")
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            print("running", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)  # stop
            group.cancel_scope.cancel()
    print(json.dumps({"delivered": target.count}), flush=True)


_LEAD_S = 2.0  # the burst is made due this far ahead: longer than an engine's poll interval
_NOW_US = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"


async def _hold_back(dsn: str) -> None:
    """The burst's fires due a day ahead, so that engines start with nothing due."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE reventless.schedules SET due_at = due_at + 86400000000")
    finally:
        await conn.close()


async def _release_and_time(dsn: str, count: int) -> float:
    """Make the burst due ``_LEAD_S`` ahead (by the database's clock), notify the engines, and
    wait until every fire is recorded (a look every 10 ms); the seconds from the due instant
    to the look that saw them all, by the database's clock."""
    import asyncpg

    from reventless.postgres._tx import wake_channel

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            due_us = await conn.fetchval(f"SELECT {_NOW_US} + {int(_LEAD_S * 1e6)}")
            await conn.execute("UPDATE reventless.schedules SET due_at = $1", due_us)
            await conn.execute("SELECT pg_notify($1, '')", wake_channel("reventless"))
        # A Single's row goes in the transaction that records its fire: none left, all
        # recorded. A cheap look, so that looking takes little from the server the engines
        # share (counting the history every 10 ms took a tenth of a core).
        query = f"SELECT EXISTS (SELECT FROM reventless.schedules), {_NOW_US}"
        while True:
            left, now_us = await conn.fetchrow(query)
            if not left:
                break
            await asyncio.sleep(0.01)
        fired = await conn.fetchval(
            "SELECT count(*) FROM reventless.history WHERE kind LIKE 'fired%'"
        )
        twice = await conn.fetchval(
            "SELECT count(*) - count(DISTINCT (name, scheduled_time)) FROM reventless.history"
            " WHERE kind LIKE 'fired%'"
        )
        assert fired == count and twice == 0, (fired, twice)
    finally:
        await conn.close()
    return (now_us - due_us) / 1e6


def burst_rate(server: PostgresServer, engines: int, burst: int) -> dict[str, Any]:
    dsn = server.create_database()
    asyncio.run(_create_burst(dsn, burst))
    asyncio.run(_hold_back(dsn))
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--engine", dsn],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(engines)
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "running"
    time.sleep(0.5)  # the engines have looked and sleep
    elapsed = asyncio.run(_release_and_time(dsn, burst))
    shares = []
    for process in processes:
        out, _ = process.communicate("stop\n", timeout=120)
        shares.append(json.loads(out.splitlines()[-1])["delivered"])
    assert sum(shares) == burst, shares  # no fire delivered twice (nothing was killed)
    return {"fires_per_s": burst / elapsed, "shares": shares}


async def _creates(dsn: str, count: int) -> dict[str, float]:
    import reventless.postgres
    from reventless import Minutes, Schedule, Scheduler

    async with reventless.postgres.provider(dsn) as provider:
        ops = (await Scheduler.make(provider, target=Counting(), name="creates")).operations
        started = time.perf_counter()
        for n in range(count):
            await ops.create_schedule(Schedule(name=f"one-{n}", rate=Minutes(5), payload="x"))
        one = count / (time.perf_counter() - started)
        started = time.perf_counter()
        for start in range(0, count, 100):
            await ops.create_schedules(
                [
                    Schedule(name=f"many-{n}", rate=Minutes(5), payload="x")
                    for n in range(start, start + 100)
                ]
            )
        many = count / (time.perf_counter() - started)
    return {"creates_per_s_one_by_one": one, "creates_per_s_100_per_call": many}


APS4_PYTHON = ROOT / "benchmarks" / ".venv-aps4" / "bin" / "python"


def aps4_rate(server: PostgresServer, count: int) -> float:
    done = subprocess.run(
        [
            str(APS4_PYTHON),
            str(ROOT / "benchmarks" / "peers_aps4_pg.py"),
            server.create_database(),
            str(count),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=1200,
    )
    return float(json.loads(done.stdout.splitlines()[-1])["fires_per_s"])


def _peer(package: str, module: str, wanted: bool) -> Any:
    """The peer's module of the benchmarks folder, where its package is installed here."""
    if not wanted:
        return None
    try:
        __import__(package)
    except ImportError:
        print(f"{package} is not installed here (the bench extra): left out", flush=True)
        return None
    sys.path.insert(0, str(ROOT / "benchmarks"))
    return __import__(module)


def _note(results: dict[str, list[float]], key: str, value: float) -> None:
    results.setdefault(key, []).append(value)


def _bursts(
    server: PostgresServer, args: Any, peers: tuple[Any, Any], results: dict[str, list[float]]
) -> None:
    """One round of bursts: ours with 1, 2 and 3 engines, each followed by its peers."""
    pgq, pcr = peers
    pcr_n = args.procrastinate_burst
    for engines in (1, 2, 3):
        figure = burst_rate(server, engines, args.burst)
        rate, shares = figure["fires_per_s"], figure["shares"]
        _note(results, f"fires/s, {engines} engine(s)", rate)
        print(f"  {engines} engine(s): {rate:.0f} fires/s, shares {shares}", flush=True)
        if engines == 1 and args.aps4_burst > 0 and APS4_PYTHON.exists():
            aps4 = aps4_rate(server, args.aps4_burst)
            _note(results, "APScheduler 4 fires/s, 1 scheduler", aps4)
            _note(results, "ours / APScheduler 4 (1 engine)", rate / aps4)
            print(f"  APScheduler 4: {aps4:.0f} fires/s", flush=True)
        for name, peer, size in (("PgQueuer", pgq, args.burst), ("procrastinate", pcr, pcr_n)):
            if peer is None:
                continue
            setting = args.pgq_batch if peer is pgq else peer.CONCURRENCY
            job = peer.burst(server.create_database(), engines, size, setting)
            faults = {k: v for k, v in job.items() if k not in ("fires_per_s", "shares")}
            assert not any(faults.values()), faults  # every job ran and was recorded once
            peer_rate = job["fires_per_s"]
            _note(results, f"{name} jobs/s, {engines} worker(s)", peer_rate)
            _note(results, f"ours / {name} ({engines})", rate / peer_rate)
            print(
                f"  {name}, {engines} worker(s): {peer_rate:.0f} jobs/s, shares"
                f" {job['shares']}; ours / {name} {rate / peer_rate:.1f}",
                flush=True,
            )


def _all_creates(
    server: PostgresServer, args: Any, peers: tuple[Any, Any], results: dict[str, list[float]]
) -> None:
    creates = asyncio.run(_creates(server.create_database(), args.creates))
    for key, value in creates.items():
        _note(results, key.replace("_", " "), value)
    print(f"  creates/s: ours {creates}", flush=True)
    for name, peer in zip(("PgQueuer", "procrastinate"), peers, strict=True):
        if peer is None:
            continue
        theirs = peer.creates(server.create_database(), args.creates)
        for key, value in theirs.items():
            _note(results, f"{name} " + key.replace("_", " "), value)
            _note(results, f"ours / {name} " + key.replace("_", " "), creates[key] / value)
        print(f"  creates/s: {name} {theirs}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--aps4-burst", type=int, default=500, help="0: no APScheduler 4")
    parser.add_argument("--pgq-batch", type=int, default=500, help="0: no PgQueuer")
    parser.add_argument("--procrastinate-burst", type=int, default=1000, help="0: none")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        asyncio.run(_engine(args.engine))
        return
    peers = (
        _peer("pgqueuer", "peers_pg_queues", args.pgq_batch > 0),
        _peer("procrastinate", "peers_procrastinate", args.procrastinate_burst > 0),
    )
    server = PostgresServer(durable=True).start()
    try:
        results: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            _bursts(server, args, peers, results)
            _all_creates(server, args, peers, results)
        print(f"\nmedians of {args.rounds} rounds (burst {args.burst}, creates {args.creates}):")
        for key, values in results.items():
            print(f"  {key:50} {statistics.median(values):10.2f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
