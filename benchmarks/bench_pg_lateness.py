"""The PostgreSQL engine's fire lateness at a steady 1,000 fires/s with one engine, and its
failover lag, on one durable server of this machine (``tests/postgres_server.py``).

Lateness: ``--schedules`` minute rates (``Minutes(1)``) with a one-minute jitter, so their fires
fall due all along each minute (at whole seconds, as jitter delays go: about schedules/60 due
each second). One engine, a process of its own, delivers them to a target that only counts.
A trigger on the history notes the database's clock as each delivered fire is recorded (just
before its batch commits); a fire's lateness is that minus its due instant (its minute plus
its jitter). Each whole minute of fires is a round: p50 and p99 per round, then their medians.

Failover: two engine processes. The first delivers a burst of ``--failover-burst`` fires due at
once to a target that takes 10 s per fire (so its batch stays claimed, uncommitted); the second,
already running and polling, finds every due row locked (``SKIP LOCKED``). The first is
SIGKILLed: the server ends its session, its row locks go, and the lag is from the kill (the
database's clock just before the signal) to the second's first recorded fire. There is no lease
to wait out: the second looks again within ``poll_interval`` (1 s).

    python benchmarks/bench_pg_lateness.py [--schedules 60000] [--rounds 3] [--batch 500]
        [--claimers 2] [--failover-rounds 5] [--failover-burst 100]
        [--pgqueuer-rounds 0] [--pgqueuer-aggregate-s 0]

``--pgqueuer-rounds N``: then N minutes of the same load on PgQueuer, on the same server
(``peers_pg_queues.lateness``; needs the ``bench`` extra).

``--rounds 0`` measures the failover only.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.pg_chaos import RECORDER, create_burst  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402


class Counting:
    """A target that counts, after ``delay`` s per delivery, and notes when each envelope
    arrived (this process's clock, moved by ``offset``: the database's clock), in arrays: a
    list of hundreds of thousands of tuples would make each full collection of the garbage
    collector, a pause of the engine's process, longer (by 10 ms and more)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.count = 0
        self.offset = 0.0
        self.numbers = array.array("q")  # the schedule's number: "r123" -> 123
        self.scheduled = array.array("d")
        self.arrived = array.array("d")

    async def deliver(self, envelope: Any) -> None:
        self.arrived.append(time.time() + self.offset)
        name = envelope.schedule
        self.numbers.append(int(name[1:]) if name[:1] == "r" else -1)
        self.scheduled.append(envelope.scheduled_time.timestamp())
        if self.delay:
            await asyncio.sleep(self.delay)
        self.count += 1


async def _clock_offset(dsn: str) -> float:
    """The database's clock minus this process's (the closest of a few round trips)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        best = (math.inf, 0.0)
        for _ in range(20):
            before = time.time()
            server = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())")
            after = time.time()
            best = min(best, (after - before, float(server) - (before + after) / 2))
        return best[1]
    finally:
        await conn.close()


async def _engine(
    dsn: str, scheduler: str, delay: float, batch: int = 500, claimers: int = 2
) -> None:
    """One engine process: runs until killed or told to stop; ``ready`` once its engine runs;
    when stopped, prints its target's deliveries (JSON) on one line."""
    import anyio

    import reventless.postgres
    from reventless import Scheduler

    target = Counting(delay)
    target.offset = await _clock_offset(dsn)
    async with reventless.postgres.provider(dsn, batch=batch, claimers=claimers) as provider:
        await Scheduler.make(provider, target=target, name=scheduler)
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            print("ready", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)
            group.cancel_scope.cancel()
    arrivals = zip(target.numbers, target.scheduled, target.arrived, strict=True)
    print(json.dumps([(f"r{n}", s, at) for n, s, at in arrivals]), flush=True)


def _start_engine(
    dsn: str, name: str, scheduler: str, delay: float, batch: int = 500, claimers: int = 2
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--engine",
            f"{dsn}?application_name={name}",
            scheduler,
            str(delay),
            str(batch),
            str(claimers),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(f"the engine did not start: {line!r}")
    return process


async def _prepared(dsn: str) -> None:
    import asyncpg

    import reventless.postgres

    async with reventless.postgres.provider(dsn):
        pass
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(RECORDER)
    finally:
        await conn.close()


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def lateness(
    server: PostgresServer, schedules: int, rounds: int, batch: int, claimers: int
) -> dict[str, Any]:
    import asyncpg

    import reventless.postgres
    from reventless import Minutes, Schedule, Scheduler
    from reventless.fire_times import fire_jitter
    from reventless.testing import RecordingTarget

    dsn = server.create_database()
    await _prepared(dsn)
    async with reventless.postgres.provider(dsn) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget(), name="steady")).operations
        for start in range(0, schedules, 1000):
            await ops.create_schedules(
                [
                    Schedule(name=f"r{n}", rate=Minutes(1), payload="x", jitter_minutes=1)
                    for n in range(start, min(start + 1000, schedules))
                ]
            )
    engine = _start_engine(dsn, "steady", "steady", 0.0, batch, claimers)
    conn = await asyncpg.connect(dsn)
    try:
        # The first minute all of them fire in: an interval's grid starts at its creation
        # rounded up to the minute, and the creates take a while.
        last_us = await conn.fetchval("SELECT max(created_at) FROM reventless.schedules")
        last = datetime.fromtimestamp(last_us / 1e6, UTC)
        first = last.replace(second=0, microsecond=0) + timedelta(minutes=2)
        # Nominal minutes first .. first + rounds - 1, each due over that minute: wait for the
        # last round's fires (a minute and its jitter) and a few seconds more.
        end = first + timedelta(minutes=rounds + 1, seconds=5)
        await asyncio.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))  # real clock
        rows = await conn.fetch("SELECT name, scheduled_time, at FROM chaos.recorded")
    finally:
        await conn.close()
        assert engine.stdin is not None and engine.stdout is not None
        engine.stdin.write("stop\n")
        engine.stdin.flush()
        arrived = json.loads(engine.stdout.readline() or "[]")
        engine.wait(timeout=60)
    recorded: dict[datetime, list[float]] = {}
    for name, scheduled_us, at in rows:
        nominal = datetime.fromtimestamp(scheduled_us / 1e6, UTC)
        due = nominal + fire_jitter(name, nominal, 1)
        recorded.setdefault(nominal, []).append((at - due).total_seconds())
    delivered: dict[datetime, list[float]] = {}
    for name, scheduled_s, at_s in arrived:
        nominal = datetime.fromtimestamp(scheduled_s, UTC)
        due = nominal + fire_jitter(name, nominal, 1)
        delivered.setdefault(nominal, []).append(at_s - due.timestamp())
    results = []
    for k in range(rounds):
        minute = first + timedelta(minutes=k)
        values = sorted(recorded.get(minute, []))
        if not values:
            continue
        arrivals = sorted(delivered.get(minute, [])) or [math.nan]
        results.append(
            {
                "fires": len(values),
                "p50_ms": round(1000 * statistics.median(values), 1),
                "p99_ms": round(1000 * _quantile(values, 0.99), 1),
                "max_ms": round(1000 * values[-1], 1),
                "delivered": len(delivered.get(minute, [])),
                "delivered_p50_ms": round(1000 * statistics.median(arrivals), 1),
                "delivered_p99_ms": round(1000 * _quantile(arrivals, 0.99), 1),
                "delivered_min_ms": round(1000 * arrivals[0], 1),
            }
        )
    return {
        "schedules": schedules,
        "fires_per_s": round(schedules / 60),
        "rounds": results,
        "p50_ms": statistics.median(r["p50_ms"] for r in results),
        "p99_ms": statistics.median(r["p99_ms"] for r in results),
        "delivered_p50_ms": statistics.median(r["delivered_p50_ms"] for r in results),
        "delivered_p99_ms": statistics.median(r["delivered_p99_ms"] for r in results),
        "complete": all(r["fires"] == schedules for r in results),
    }


async def failover(server: PostgresServer, burst: int) -> float:
    """One round: the lag, in seconds, from the SIGKILL to the other engine's first fire."""
    import asyncpg

    dsn = server.create_database()
    await _prepared(dsn)
    await create_burst(dsn, "f", burst)  # to the scheduler "burst", due at once
    slow = _start_engine(dsn, "slow", "burst", 10.0)
    conn = await asyncpg.connect(dsn)
    try:
        await asyncio.sleep(0.5)  # its loop has claimed the burst (it is slow to deliver)
        fast = _start_engine(dsn, "fast", "burst", 0.0)
        # Running and polling, finding every due row locked; killed at a random point of its
        # poll (the lag depends on where in its poll_interval the kill falls).
        await asyncio.sleep(random.uniform(1.2, 2.2))
        killed_at = await conn.fetchval("SELECT clock_timestamp()")
        slow.send_signal(signal.SIGKILL)
        slow.wait()
        taken_first = "SELECT min(at) FROM chaos.recorded WHERE by = 'fast'"
        while not (taken := await conn.fetchval(taken_first)):  # noqa: ASYNC110 - polled
            await asyncio.sleep(0.01)
        early = await conn.fetchval("SELECT count(*) FROM chaos.recorded WHERE by = 'slow'")
        if early:
            raise RuntimeError("the slow engine committed before its kill: no failover measured")
    finally:
        await conn.close()
    assert fast.stdin is not None
    fast.stdin.write("stop\n")
    fast.stdin.flush()
    fast.wait(timeout=60)
    return float((taken - killed_at).total_seconds())


async def _pgqueuer_lateness(
    server: PostgresServer, rounds: int, aggregate_s: float
) -> dict[str, Any]:
    """The same load on PgQueuer, a minute a round, each in a database of its own on the same
    server (``peers_pg_queues.lateness``: 1,000 jobs due at each whole second, one worker
    process); medians of the rounds' p50 and p99, when the entrypoint ran and when PgQueuer
    logged the job done."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import peers_pg_queues

    results = []
    for _ in range(rounds):
        dsn = server.create_database()
        results.append(
            await asyncio.to_thread(
                peers_pg_queues.lateness, dsn, 1000, 60, peers_pg_queues.BATCH, aggregate_s
            )
        )
    return {
        "aggregate_s": aggregate_s,
        "rounds": [
            {key: r[key] for key in ("p50_ms", "p99_ms", "logged_p50_ms", "logged_p99_ms")}
            | {"jobs": r["jobs"]}
            | {key: value for key, value in r.items() if key not in _PEER_FIGURES}
            for r in results
        ],
        "p50_ms": statistics.median(r["p50_ms"] for r in results),
        "p99_ms": statistics.median(r["p99_ms"] for r in results),
        "logged_p50_ms": statistics.median(r["logged_p50_ms"] for r in results),
        "logged_p99_ms": statistics.median(r["logged_p99_ms"] for r in results),
    }


_PEER_FIGURES = {
    "p50_ms",
    "p99_ms",
    "logged_p50_ms",
    "logged_p99_ms",
    "jobs",
    "slowest_seconds",
    "max_ms",
    "batch",
    "aggregate_s",
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--failover-rounds", type=int, default=5)
    parser.add_argument("--failover-burst", type=int, default=100)
    parser.add_argument("--batch", type=int, default=500, help="the engine's batch (lateness)")
    parser.add_argument(
        "--claimers", type=int, default=2, help="the engine's claim loops (lateness)"
    )
    parser.add_argument(
        "--pgqueuer-rounds",
        type=int,
        default=0,
        help="then as many minutes of the same load on PgQueuer, on the same server",
    )
    parser.add_argument(
        "--pgqueuer-aggregate-s",
        type=float,
        default=0.0,
        help="PgQueuer's log aggregation interval (0: off, its better p99 here; its default: 30)",
    )
    args = parser.parse_args()
    server = PostgresServer(durable=True).start()
    try:
        lags = [await failover(server, args.failover_burst) for _ in range(args.failover_rounds)]
        report: dict[str, Any] = {"load_before": os.getloadavg()}
        if lags:
            report["failover_lag_s"] = {
                "rounds": [round(lag, 3) for lag in lags],
                "median": round(statistics.median(lags), 3),
                "max": round(max(lags), 3),
            }
            report["load_after_failover"] = os.getloadavg()
            print(json.dumps(report), file=sys.stderr)
        started = time.monotonic()
        if args.rounds:
            report["lateness"] = await lateness(
                server, args.schedules, args.rounds, args.batch, args.claimers
            )
        report["lateness_seconds"] = round(time.monotonic() - started)
        report["load"] = os.getloadavg()
        if args.pgqueuer_rounds:
            report["pgqueuer"] = await _pgqueuer_lateness(
                server, args.pgqueuer_rounds, args.pgqueuer_aggregate_s
            )
            report["load_after_pgqueuer"] = os.getloadavg()
    finally:
        server.stop()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--engine"]:
        batch, claimers = (int(value) for value in sys.argv[5:7])
        asyncio.run(_engine(sys.argv[2], sys.argv[3], float(sys.argv[4]), batch, claimers))
    else:
        asyncio.run(main())
