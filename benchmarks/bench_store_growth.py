"""How much the local store grows per fire, and that retention holds it flat.

500 ``Minutes(1)`` schedules fire for simulated time on a virtual clock, into a durable file
store. Growth is measured in bytes of the SQLite file's used pages (page_count - freelist_count,
times page_size), so freed pages that SQLite reuses are not counted as growth. Then the same
store runs on with a short retention (1 hour) and is pruned: the used size stops growing.
"""

from __future__ import annotations

import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

import reventless.local
from reventless import Minutes, Schedule, Scheduler
from reventless.local import Retention
from reventless.testing import RecordingTarget, VirtualClock

START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)
_TARGET_BYTES_PER_FIRE = 120  # history only: one row per delivered fire


class _Counting(RecordingTarget):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def deliver(self, envelope: object) -> None:
        self.count += 1  # keep no envelopes: memory stays flat over long runs


def used_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)
    finally:
        conn.close()


async def run(path: Path, schedules: int, minutes: int, hours_after: int) -> dict[str, float]:
    clock = VirtualClock(START)
    target = _Counting()
    results: dict[str, float] = {}
    async with reventless.local.provider(path, clock=clock, retention=None) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        await ops.create_schedules(
            [Schedule(name=f"s{n:05}", rate=Minutes(1), payload="p") for n in range(schedules)]
        )
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(minutes=1))
            before, fired = used_bytes(path), target.count
            for _ in range(minutes):
                await clock.advance(timedelta(minutes=1))
            grown, fires = used_bytes(path) - before, target.count - fired
            results["fires"] = fires
            results["bytes_per_fire"] = grown / fires
            # Retention: keep one hour; prune, then run on and prune again: no growth.
            short = Retention(history_age=timedelta(hours=1), batch=5000)
            for _ in range(hours_after * 60):
                await clock.advance(timedelta(minutes=1))
            await provider.prune(short)
            steady = used_bytes(path)
            for _ in range(60):
                await clock.advance(timedelta(minutes=1))
            await provider.prune(short)
            results["growth_per_fire_with_retention"] = (used_bytes(path) - steady) / (
                60 * schedules
            )
            group.cancel_scope.cancel()
    return results


def main(*, quick: bool = False) -> bool:
    schedules, minutes = (100, 20) if quick else (500, 60)
    with tempfile.TemporaryDirectory() as folder:
        figures = anyio.run(run, Path(folder) / "growth.db", schedules, minutes, 2)
    per_fire = figures["bytes_per_fire"]
    print(f"{int(figures['fires'])} fires of {schedules} Minutes(1) schedules")
    print(f"store growth without retention: {per_fire:.1f} bytes per fire")
    year = per_fire * 1000 * 60 * 24 * 365 / 1e9
    print(f"  -> 1,000 Minutes(1) schedules for a year: {year:.1f} GB")
    print(
        "growth per fire once retention (1 h) prunes: "
        f"{figures['growth_per_fire_with_retention']:.1f} bytes"
    )
    return per_fire <= _TARGET_BYTES_PER_FIRE and figures["growth_per_fire_with_retention"] <= 1
