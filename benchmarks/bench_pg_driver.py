"""asyncpg against psycopg 3 (with psycopg_pool) on what the PostgreSQL provider does most.

One server (tests/postgres_server.py: the machine's binaries, a temporary folder, loopback), one
table shaped like the event log's. Each round runs each driver in a fresh process, one after
the other (the order reverses every round); the table shows medians over the rounds.

asyncpg runs twice: with its pool's default reset of a connection given back (one more round
trip per checkout), and without (what the provider does: it leaves no session state).

- ``insert``: one INSERT ... RETURNING in its own transaction, through a pool (per operation);
- ``batch100``: 100 rows in one transaction (one statement with arrays), per batch;
- ``select100``: a SELECT of 100 rows, per query.

    python benchmarks/bench_pg_driver.py [--rounds 5] [--ops 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres_server import PostgresServer  # noqa: E402

DDL = """
DROP TABLE IF EXISTS bench_events;
CREATE TABLE bench_events (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
    aggregate text NOT NULL,
    aggregate_id text NOT NULL,
    version integer NOT NULL,
    type text NOT NULL,
    data bytea NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (aggregate, aggregate_id, version)
);
"""
INSERT = (
    "INSERT INTO bench_events (aggregate, aggregate_id, version, type, data)"
    " VALUES ({0}, {1}, {2}, {3}, {4}) RETURNING position"
)
BATCH = (
    "INSERT INTO bench_events (aggregate, aggregate_id, version, type, data)"
    " SELECT 'batch', {0}, v, 'E', d FROM unnest({1}::int[], {2}::bytea[]) AS u(v, d)"
    " RETURNING position"
)
SELECT = (
    "SELECT position, aggregate, aggregate_id, version, type, data, recorded_at"
    " FROM bench_events WHERE position > {0} ORDER BY position LIMIT 100"
)
BODY = b'{"text": "a note of some forty bytes or so"}'


async def _keep(connection: object) -> None:
    """A pool reset that sends nothing: the provider leaves no session state behind."""


async def run_asyncpg(dsn: str, ops: int, *, reset: bool = True) -> dict[str, float]:
    import asyncpg

    # By default asyncpg's pool resets a connection given back (one more round trip).
    options = {} if reset else {"reset": _keep}
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=2, **options)
    try:
        insert = INSERT.format("$1", "$2", "$3", "$4", "$5")
        start = time.perf_counter()
        for n in range(ops):
            async with pool.acquire() as conn, conn.transaction():
                await conn.fetchval(insert, "single", f"a{os.getpid()}-{n}", 1, "E", BODY)
        single = (time.perf_counter() - start) / ops
        batches = max(ops // 100, 10)
        batch = BATCH.format("$1", "$2", "$3")
        start = time.perf_counter()
        for n in range(batches):
            async with pool.acquire() as conn, conn.transaction():
                await conn.fetch(batch, f"b{os.getpid()}-{n}", list(range(1, 101)), [BODY] * 100)
        many = (time.perf_counter() - start) / batches
        select = SELECT.format("$1")
        start = time.perf_counter()
        for n in range(batches):
            async with pool.acquire() as conn:
                rows = await conn.fetch(select, n * 10)
                assert len(rows) == 100
        read = (time.perf_counter() - start) / batches
    finally:
        await pool.close()
    return {"insert": single, "batch100": many, "select100": read}


async def run_psycopg(dsn: str, ops: int) -> dict[str, float]:
    from psycopg_pool import AsyncConnectionPool

    async with AsyncConnectionPool(dsn, min_size=2, max_size=2, open=False) as pool:
        await pool.open(wait=True)
        insert = INSERT.format(*["%s"] * 5)
        start = time.perf_counter()
        for n in range(ops):
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(insert, ("single", f"p{os.getpid()}-{n}", 1, "E", BODY))
        single = (time.perf_counter() - start) / ops
        batches = max(ops // 100, 10)
        batch = BATCH.format("%s", "%s", "%s")
        start = time.perf_counter()
        for n in range(batches):
            async with pool.connection() as conn, conn.transaction():
                cursor = await conn.execute(
                    batch, (f"q{os.getpid()}-{n}", list(range(1, 101)), [BODY] * 100)
                )
                await cursor.fetchall()
        many = (time.perf_counter() - start) / batches
        select = SELECT.format("%s")
        start = time.perf_counter()
        for n in range(batches):
            async with pool.connection() as conn:
                rows = await (await conn.execute(select, (n * 10,))).fetchall()
                assert len(rows) == 100
        read = (time.perf_counter() - start) / batches
    return {"insert": single, "batch100": many, "select100": read}


def child(driver: str, dsn: str, ops: int) -> None:
    if driver == "psycopg":
        result = asyncio.run(run_psycopg(dsn, ops))
    else:
        result = asyncio.run(run_asyncpg(dsn, ops, reset=driver == "asyncpg"))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--child", nargs=2, metavar=("DRIVER", "DSN"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.ops)
        return
    server = PostgresServer().start()
    try:
        dsn = server.create_database()
        subprocess.run(["psql", "-q", dsn, "-c", DDL], check=True, capture_output=True)
        drivers = ["asyncpg", "asyncpg-noreset", "psycopg"]
        results: dict[str, list[dict[str, float]]] = {driver: [] for driver in drivers}
        for round_ in range(args.rounds):
            order = drivers if round_ % 2 == 0 else drivers[::-1]
            for driver in order:
                out = subprocess.run(
                    [sys.executable, __file__, "--ops", str(args.ops), "--child", driver, dsn],
                    capture_output=True,
                    text=True,
                )
                if out.returncode != 0:
                    raise SystemExit(f"{driver} failed:\n{out.stderr}")
                results[driver].append(json.loads(out.stdout))
        print(f"PostgreSQL in {server.bin_dir}; {args.rounds} rounds, medians; per operation:")
        print(f"{'':12}{'asyncpg':>12}{'(no reset)':>12}{'psycopg 3':>12}")
        for key in ("insert", "batch100", "select100"):
            cells = [statistics.median(r[key] for r in results[d]) * 1e6 for d in drivers]
            print(f"{key:12}" + "".join(f"{cell:>10.0f}us" for cell in cells))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
