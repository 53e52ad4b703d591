"""Reaction latency across processes: from an append's commit in one process to the handler in
another.

A runner process (``reventless run bench_reaction_latency:plugin``) runs a reaction that writes,
for each event, the wall time it was handled; this process appends events one at a time (as a
web process would), noting the wall time right after each append returned (the commit). The
figure is handled - committed, per event: median, 95th percentile and max; the target is a 95th
percentile under 100 ms (the default poll interval is 50 ms).
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import msgspec

import reventless.local
from reventless import Plugin, ReactionContext, ReactionEvent
from reventless.aggregate import Aggregate, AggregateSpec

TARGET_P95_MS = 100.0


class Ping(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    n: int


class Pinged(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    n: int


PINGS: AggregateSpec[int] = AggregateSpec(
    "pings",
    commands=[Ping],
    events=[Pinged],
    initial=0,
    decide=lambda state, command, context: [Pinged(n=command.n)],
    evolve=lambda state, event: state + 1,
)


async def note(event: ReactionEvent, context: ReactionContext) -> None:
    with open(os.environ["BENCH_OUT"], "a") as out:  # noqa: ASYNC230 - a tiny local write
        out.write(f"{event.event.n} {time.time()}\n")


plugin = Plugin("latency")
plugin.aggregate(PINGS)
plugin.reaction("latency", follows=[PINGS], handler=note)


async def append(db: Path, count: int, first: int = 0) -> dict[int, float]:
    committed: dict[int, float] = {}
    rng = random.Random(1)
    async with reventless.local.provider(db) as provider:
        pings = await Aggregate.make(provider, PINGS)
        for n in range(first, first + count):
            await pings.handle(f"p-{n % 10}", Ping(n=n))
            committed[n] = time.time()
            await anyio.sleep(rng.uniform(0.01, 0.12))  # arrivals at random phases of the poll
    return committed


def main(*, quick: bool = False) -> bool:
    count = 60 if quick else 300
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.db"
        out = Path(folder) / "handled.txt"
        here = str(Path(__file__).resolve().parent)
        env = {**os.environ, "BENCH_OUT": str(out)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
        anyio.run(append, db, 1, -1)  # the store exists before the runner opens it
        command = [sys.executable, "-m", "reventless", "run", "bench_reaction_latency:plugin"]
        runner = subprocess.Popen(
            [*command, "--db", str(db)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.05)  # the runner handled the first event: it is up
            committed = anyio.run(append, db, count)
            time.sleep(0.5)
        finally:
            runner.terminate()
            runner.wait(30)
        handled: dict[int, float] = {}
        for line in out.read_text().splitlines():
            n, at = line.split()
            handled.setdefault(int(n), float(at))
    delays = sorted((handled[n] - committed[n]) * 1000 for n in committed if n in handled)
    missing = len(committed) - len(delays)
    p50 = statistics.median(delays)
    p95 = delays[int(len(delays) * 0.95) - 1]
    print(
        f"cross-process reaction latency over {len(delays)} events: median {p50:.1f} ms, "
        f"p95 {p95:.1f} ms, max {delays[-1]:.1f} ms (target p95 < {TARGET_P95_MS:.0f} ms); "
        f"{missing} not handled"
    )
    return p95 < TARGET_P95_MS and missing == 0


if __name__ == "__main__":
    raise SystemExit(0 if main(quick="--quick" in sys.argv) else 1)
