"""Where the CPU of a burst and of end-to-end commands goes, by thread (an analysis, not a
figure of the performance page): ``python benchmarks/cpu_split.py burst|end_to_end``.

Thread CPU time of the event loop's thread and of the store's thread (read in that thread
through the store runner), per fire or per command, on the file store.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import anyio
from bench_end_to_end import START, set_up_meters
from bench_engine import DUE, CountingTarget, _fill, _singles

import reventless.local
from reventless import Scheduler
from reventless.event_topic import TopicMessage
from reventless.testing import VirtualClock


async def burst(folder: Path, count: int = 100_000) -> str:
    clock = VirtualClock(START)
    target = CountingTarget(count)
    async with reventless.local.provider(folder / "b.db", clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        await _fill(ops, _singles(count))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            store = await provider._runner.call(time.thread_time)
            loop, began = time.thread_time(), time.perf_counter()
            await clock.advance(DUE - START)
            loop, elapsed = time.thread_time() - loop, time.perf_counter() - began
            store = await provider._runner.call(time.thread_time) - store
            group.cancel_scope.cancel()
    return (
        f"burst of {count:,}: {count / elapsed:,.0f} fires/s; per fire: event loop's thread "
        f"{loop / count * 1e6:.1f} us, store's thread {store / count * 1e6:.1f} us"
    )


async def end_to_end(folder: Path, aggregates: int = 1000, minutes: int = 8) -> str:
    clock = VirtualClock(START)
    published = 0

    async def count(message: TopicMessage) -> None:
        nonlocal published
        published += 1

    async with reventless.local.provider(folder / "e.db", clock=clock, workers=64) as provider:
        await set_up_meters(provider, aggregates, count)
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(minutes=1))  # the first minute loads the states
            store = await provider._runner.call(time.thread_time)
            loop, before, began = time.thread_time(), published, time.perf_counter()
            for _ in range(minutes):
                await clock.advance(timedelta(minutes=1))
            loop, elapsed = time.thread_time() - loop, time.perf_counter() - began
            store = await provider._runner.call(time.thread_time) - store
            done = published - before
            group.cancel_scope.cancel()
    return (
        f"end to end, {done:,} commands: {done / elapsed:,.0f} commands/s; per command: event "
        f"loop's thread {loop / done * 1e6:.0f} us, store's thread {store / done * 1e6:.0f} us"
    )


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "burst"
    runs = {"burst": burst, "end_to_end": end_to_end}
    if which not in runs:
        sys.exit(f"usage: python benchmarks/cpu_split.py {'|'.join(runs)}")
    with tempfile.TemporaryDirectory(prefix="reventless-split-") as folder:
        print(anyio.run(runs[which], Path(folder)))
