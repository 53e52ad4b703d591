"""Reactions on PostgreSQL: throughput (events/s) and latency from append to handled.

One server (tests/postgres_server.py: the machine's binaries, a temporary folder, loopback; the
test server runs with fsync off, ``--durable`` turns fsync and synchronous commits on).

- **Throughput**: ``--events`` notes are appended first, then a reaction starts from the
  beginning and the clock runs until its checkpoint reaches the log's head. Two handlers:
  ``noop`` (reads the event, no effect: the checkpoint moves once per batch) and ``copy`` (one
  append per event, committed with the checkpoint in one transaction: exactly once). The peer,
  in the same run and on the same handlers: the embedded provider on a SQLite file (its own
  durability settings: WAL, synchronous=NORMAL; it does not promise the copy's exactly-once
  commit, the message id does it there). Medians over ``--rounds``, each on a fresh store.
- **Latency**: a runner process (this script with ``--runner``) runs a reaction that notes the
  wall time it handled each event; this process appends events one at a time at random
  intervals (10-50 ms), noting the wall time right after each append returned (the commit).
  The figure is handled - committed: median, 99th percentile and max. Wake-ups come by
  LISTEN/NOTIFY; the runners also poll every second.
- **What NOTIFY costs appends** (``--notify-cost``): 8 writers append 2,000 events, with the
  append's NOTIFY and with it replaced by nothing (the event log's statement, changed for the
  measurement only); medians over ``--rounds``, alternating the order.

    python benchmarks/bench_pg_reactions.py [--rounds 3] [--events 2000] [--latency 500]
        [--durable] [--notify-cost]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import reventless.local  # noqa: E402
import reventless.postgres  # noqa: E402
from reventless.aggregate import Aggregate  # noqa: E402
from reventless.plugin import Plugin  # noqa: E402
from reventless.reaction import ReactionContext, ReactionEvent  # noqa: E402
from reventless.testing.ports import NOTES, Note  # noqa: E402
from tests.postgres.copier_app import COPIES, Copier  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402


async def _noop(event: ReactionEvent, context: ReactionContext) -> None:
    pass


def _plugin(handler: Any) -> Plugin:
    app = Plugin("bench")
    app.aggregate(NOTES)
    app.aggregate(COPIES)
    app.reaction("bench", follows=[NOTES], handler=handler)
    return app


@asynccontextmanager
async def _open(store: str, where: str) -> AsyncIterator[Any]:
    if store == "postgres":
        async with reventless.postgres.provider(where, schema=f"s{time.time_ns()}") as provider:
            yield provider
    else:
        async with reventless.local.provider(where) as provider:
            yield provider


async def _throughput(store: str, where: str, handler_kind: str, events: int) -> float:
    """Events handled per second by one reaction catching up with ``events`` notes."""
    async with _open(store, where) as provider:
        notes = await Aggregate.make(provider, NOTES)
        for n in range(events):
            await notes.handle(f"n{n % 50}", Note(text=str(n)))
        handler = _noop if handler_kind == "noop" else Copier()
        async with _plugin(handler).start(provider), anyio.create_task_group() as group:
            started = time.perf_counter()
            await group.start(provider.run)
            while True:
                [status] = await provider.reactions().statuses()
                if status.pending == 0 and status.position > 0:
                    break
                await anyio.sleep(0.02)
            elapsed = time.perf_counter() - started
            group.cancel_scope.cancel()
    return events / elapsed


def _throughput_table(dsn: str, rounds: int, events: int) -> None:
    results: dict[tuple[str, str], list[float]] = {}
    for round_ in range(rounds):
        cases = [(s, h) for s in ("postgres", "local") for h in ("noop", "copy")]
        for store, kind in cases if round_ % 2 == 0 else list(reversed(cases)):
            with tempfile.TemporaryDirectory() as folder:
                where = dsn if store == "postgres" else str(Path(folder) / "bench.db")
                rate = anyio.run(_throughput, store, where, kind, events)
            results.setdefault((store, kind), []).append(rate)
    print(f"throughput, {events} events, one reaction catching up; medians of {rounds} rounds:")
    print(f"{'handler':10}{'postgres':>14}{'embedded':>14}{'ratio':>8}")
    for kind in ("noop", "copy"):
        pg = statistics.median(results[("postgres", kind)])
        local = statistics.median(results[("local", kind)])
        print(f"{kind:10}{pg:>10.0f} ev/s{local:>10.0f} ev/s{pg / local:>8.2f}")


# -- latency ----------------------------------------------------------------------------------


async def _run_runner(dsn: str, schema: str, out: str) -> None:
    async def note(event: ReactionEvent, context: ReactionContext) -> None:
        with open(out, "a") as file:  # noqa: ASYNC230 - a tiny local write
            file.write(f"{event.event.text} {time.time()}\n")

    async with (
        reventless.postgres.provider(dsn, schema=schema) as provider,
        _plugin(note).start(provider),
        anyio.create_task_group() as group,
    ):
        await group.start(provider.run)
        print("ready", flush=True)


async def _append(dsn: str, schema: str, count: int) -> dict[str, float]:
    committed: dict[str, float] = {}
    rng = random.Random(1)
    async with reventless.postgres.provider(dsn, schema=schema) as provider:
        notes = await Aggregate.make(provider, NOTES)
        for n in range(count):
            await notes.handle(f"n{n % 10}", Note(text=str(n)))
            committed[str(n)] = time.time()
            await anyio.sleep(rng.uniform(0.01, 0.05))
    return committed


def _latency(dsn: str, count: int) -> None:
    schema = "latency"
    anyio.run(_append, dsn, schema, 0)  # the schema exists before the runner opens it
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "handled.txt"
        runner = subprocess.Popen(
            [sys.executable, __file__, "--runner", dsn, schema, str(out)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert runner.stdout is not None and runner.stdout.readline().strip() == "ready"
            committed = anyio.run(_append, dsn, schema, count)
            time.sleep(1.0)
        finally:
            runner.terminate()
            runner.wait(30)
            assert runner.stdout is not None
            runner.stdout.close()
        handled = dict(line.split() for line in out.read_text().splitlines())
    delays = sorted((float(handled[n]) - committed[n]) * 1000 for n in committed if n in handled)
    p99 = delays[max(int(len(delays) * 0.99) - 1, 0)]
    print(
        f"latency append -> handled (another process), {len(delays)} events at 20-100/s: "
        f"median {statistics.median(delays):.1f} ms, p99 {p99:.1f} ms, max {delays[-1]:.1f} ms; "
        f"{len(committed) - len(delays)} not handled"
    )


async def _appends_per_second(dsn: str, schema: str, notify: bool) -> float:
    from datetime import UTC, datetime

    from reventless.aggregate_adapter import NewEvent

    async with reventless.postgres.provider(dsn, schema=schema) as provider:
        log = provider.event_log()
        if not notify:
            log._notify = "NULL"  # the measurement's only change: no NOTIFY

        async def write(stream: int) -> None:
            for version in range(250):
                await log.append(
                    "bench",
                    f"s{stream}",
                    expected_version=version,
                    events=[NewEvent(type="E", data=b"x")],
                    message_id=None,
                    recorded_at=datetime.now(UTC),
                )

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for stream in range(8):
                group.start_soon(write, stream)
        return 2000 / (time.perf_counter() - started)


def _notify_cost(dsn: str, rounds: int) -> None:
    rates: dict[bool, list[float]] = {True: [], False: []}
    for round_ in range(rounds):
        for notify in (True, False) if round_ % 2 == 0 else (False, True):
            schema = f"n{round_}{int(notify)}"
            rates[notify].append(anyio.run(_appends_per_second, dsn, schema, notify))
    with_, without = statistics.median(rates[True]), statistics.median(rates[False])
    print(
        f"appends, 8 writers, medians of {rounds} rounds: with NOTIFY {with_:.0f}/s, "
        f"without {without:.0f}/s (ratio {with_ / without:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--latency", type=int, default=500, help="events of the latency run")
    parser.add_argument("--durable", action="store_true", help="fsync and synchronous commits")
    parser.add_argument("--notify-cost", action="store_true", help="appends with/without NOTIFY")
    parser.add_argument("--runner", nargs=3, metavar=("DSN", "SCHEMA", "OUT"))
    args = parser.parse_args()
    if args.runner:
        anyio.run(_run_runner, *args.runner)  # until terminated
        return
    server = PostgresServer().start()
    try:
        dsn = server.create_database()
        if args.durable:
            _make_durable(dsn)
        print(f"PostgreSQL in {server.bin_dir}, {'durable' if args.durable else 'fsync off'}")
        if args.notify_cost:
            _notify_cost(dsn, args.rounds)
            return
        _throughput_table(dsn, args.rounds, args.events)
        if args.latency:
            _latency(dsn, args.latency)
    finally:
        server.stop()


def _make_durable(dsn: str) -> None:
    import asyncpg

    async def apply() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                await conn.execute(f"ALTER SYSTEM SET {setting} = on")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    anyio.run(apply)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
