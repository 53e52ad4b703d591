"""Chaos on the PostgreSQL engine: three ``reventless run`` processes on one database, SIGKILLed
at random moments and started again, while a few thousand fires fall due over about three
minutes (``tests/pg_chaos.py`` runs it; ``tests/postgres/test_chaos.py`` is its short version).

What falls due, per round (a new database each): Singles at each of the next ``--minutes``
minute boundaries (``--singles`` each), ``--rates`` minute rates jittered over each minute
(``max_fires`` = ``--minutes``), and bursts of Singles due at once (``--bursts``), each created
at a random moment of the first minute and followed by a kill of the process delivering it.
Between those, a random process is killed every 4 to 10 s; each killed process is started
again 0.2 to 2 s later. The target is the ``notes`` aggregate, a command topic of the same
database (``tests/pg_engine_app.py``), so a fire's effect and its record commit together.

Reported per round and as medians: lost, doubled (committed twice: counted by a trigger before
the history's unique index could drop a repeat) and unexpected fires (all must be 0); the
lateness of every fire and of the fires a killed process had claimed (delivered minus due, by
the database's clock); per kill that had claimed fires, the time to the server's ending its
sessions (release), to another process's first attempt of one of them (retake), and the fires
due at the release.

    python benchmarks/bench_pg_chaos.py [--rounds 3] [--minutes 2] [--singles 400]
        [--rates 600] [--bursts 800,800] [--seed 1]

The server is durable (fsync, full-page writes and synchronous commits on), on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.pg_chaos import ChaosPlan, run_chaos  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402


def _median(rounds: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for summary in rounds:
        value: Any = summary
        for key in path:
            value = value[key]
        if value is not None:
            values.append(value)
    return round(statistics.median(values), 3) if values else None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--minutes", type=int, default=2)
    parser.add_argument("--singles", type=int, default=400)
    parser.add_argument("--rates", type=int, default=600)
    parser.add_argument("--bursts", default="800,800")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    bursts = tuple(int(count) for count in args.bursts.split(",") if count)
    server = PostgresServer(durable=True).start()
    rounds: list[dict[str, Any]] = []
    try:
        for number in range(args.rounds):
            plan = ChaosPlan(
                bursts=bursts,
                burst_window=50.0,
                minutes=args.minutes,
                singles=args.singles,
                rates=args.rates,
                kill_gap=(4.0, 10.0),
                seed=args.seed + number,
                deadline=120.0 + 90.0 * args.minutes,
            )
            with tempfile.TemporaryDirectory() as folder:
                report = await run_chaos(
                    server.create_database(),
                    Path(folder),
                    plan,
                    say=lambda message: print(message, file=sys.stderr),
                )
            summary = report.summary()
            summary["load"] = os.getloadavg()
            print(json.dumps(summary), file=sys.stderr)
            rounds.append(summary)
    finally:
        server.stop()
    medians = {
        "rounds": len(rounds),
        "expected": _median(rounds, "expected"),
        "lost": sum(r["lost"] for r in rounds),
        "doubled": sum(r["doubled"] for r in rounds),
        "unexpected": sum(r["unexpected"] for r in rounds),
        "tracebacks": sum(r["tracebacks"] for r in rounds),
        "kills": _median(rounds, "kills"),
        "kills_with_claims": _median(rounds, "kills_with_claims"),
        "killed_claimed_fires": _median(rounds, "killed_claimed_fires"),
        "lateness_all_p50_s": _median(rounds, "lateness_all_s", "p50"),
        "lateness_all_p99_s": _median(rounds, "lateness_all_s", "p99"),
        "lateness_killed_p50_s": _median(rounds, "lateness_killed_s", "p50"),
        "lateness_killed_p99_s": _median(rounds, "lateness_killed_s", "p99"),
        "lateness_killed_max_s": max((r["lateness_killed_s"]["max"] or 0.0) for r in rounds),
        "retake_median_s": statistics.median(
            [value for r in rounds for value in r["retake_s"]] or [0.0]
        ),
        "retake_max_s": max([value for r in rounds for value in r["retake_s"]] or [0.0]),
        "release_max_s": max([value for r in rounds for value in r["release_s"]] or [0.0]),
        "load": os.getloadavg(),
    }
    print(json.dumps(medians, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
