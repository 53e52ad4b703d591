"""Retention: pruning history, dead letters and handled-message records by age and by count."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

import reventless.local
from reventless import Minutes, RetryPolicy, Schedule, Scheduler, ValidationError
from reventless.aggregate import Aggregate
from reventless.local import PruneReport, Retention
from reventless.local._rows import HistoryRow
from reventless.local._store import SqliteStore
from reventless.scheduler_adapter import HistoryKind
from reventless.testing import FailingTarget, VirtualClock
from tests.test_aggregate import Tick, counter_spec

pytestmark = pytest.mark.anyio
START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"handled_age": timedelta(days=30)}, "handled_age"),  # < dead letters + 24 h
        ({"dead_letter_age": None}, "handled_age"),  # dead letters forever, handled not
        ({"history_age": timedelta(minutes=5)}, "history_age"),
        ({"history_rows": 10}, "history_rows"),
        ({"batch": 5}, "batch"),
        ({"every": timedelta(0)}, "every"),
    ],
)
def test_retention_refuses_what_would_break_exactly_once_or_stall(
    options: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Retention(**options)  # type: ignore[arg-type]
    assert caught.value.field == field
    Retention(dead_letter_age=None, handled_age=None)  # keeping both forever is allowed


async def _fire_and_fail(path: Path, clock: VirtualClock) -> None:
    """Two hours of a Minutes(1) schedule whose every delivery fails once and is dead-lettered."""
    async with reventless.local.provider(
        path, clock=clock, retry_policy=RetryPolicy(max_attempts=0), retention=None
    ) as provider:
        ops = (await Scheduler.make(provider, target=FailingTarget(failures=None))).operations
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(1), payload="p"))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            for _ in range(120):
                await clock.advance(timedelta(minutes=1))
            await ops.delete_schedule("tick")
            group.cancel_scope.cancel()


def _count(path: Path, table: str) -> int:
    store = SqliteStore(path)
    try:
        return int(store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        store.close()


async def test_prune_by_age_deletes_only_what_is_older(tmp_path: Path) -> None:
    path = tmp_path / "age.db"
    clock = VirtualClock(START)
    await _fire_and_fail(path, clock)
    history, letters = _count(path, "history"), _count(path, "dead_letters")
    assert letters >= 100 and history >= 2 * letters  # failed and dead_lettered per fire
    await clock.advance(30 * DAY - timedelta(hours=1))  # the first hour is now past 30 days
    async with reventless.local.provider(path, clock=clock) as provider:
        report = await provider.prune(Retention(batch=50))
    assert 0 < report.history < history and 0 < report.dead_letters < letters
    assert _count(path, "history") == history - report.history
    store = SqliteStore(path)
    try:
        oldest = store.conn.execute("SELECT min(at) FROM history").fetchone()[0]
        assert oldest >= (START + timedelta(hours=1)).timestamp() * 1e6 - 60e6
    finally:
        store.close()
    async with reventless.local.provider(path, clock=clock) as provider:
        assert await provider.prune(Retention(batch=50)) == PruneReport()  # nothing more


async def test_prune_by_count_keeps_the_newest_rows(tmp_path: Path) -> None:
    path = tmp_path / "count.db"
    store = SqliteStore(path)
    at = int(START.timestamp() * 1_000_000)
    with store.transaction():
        store._history(
            HistoryRow("default", f"s{n}", HistoryKind.FIRED, at + n, at, None) for n in range(2500)
        )
    store.close()
    async with reventless.local.provider(path, clock=VirtualClock(START)) as provider:
        report = await provider.prune(Retention(history_rows=1000, batch=300))
    assert report.history == 1500
    store = SqliteStore(path)
    try:
        names = [row[0] for row in store.conn.execute("SELECT name FROM history ORDER BY id")]
    finally:
        store.close()
    assert names == [f"s{n}" for n in range(1500, 2500)]


async def test_backfill_refuses_a_range_whose_history_was_pruned(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    clock = VirtualClock(START)
    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=FailingTarget(failures=0))).operations
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(60), payload="p"))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            for _ in range(72):
                await clock.advance(timedelta(hours=1))
            await ops.pause_schedule("tick")
            group.cancel_scope.cancel()
        await provider.prune(Retention(history_age=DAY))
        with pytest.raises(ValidationError, match="was pruned"):
            await ops.backfill("tick", START, clock.now())
        # After the pruned stretch the delivered fires are still known: nothing to queue.
        assert await ops.backfill("tick", clock.now() - timedelta(hours=12), clock.now()) == []


async def test_handled_message_records_are_pruned_by_the_age_of_their_event(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.db"
    clock = VirtualClock(START)
    async with reventless.local.provider(path, clock=clock) as provider:
        counters = await Aggregate.make(provider, counter_spec())
        await counters.handle("c-1", Tick(), message_id="old")
        await clock.advance(32 * DAY)
        await counters.handle("c-1", Tick(), message_id="new")
        report = await provider.prune()
        assert report.handled_messages == 1
        log = provider.event_log()
        assert not await log.was_handled("counters", "c-1", "old")
        assert await log.was_handled("counters", "c-1", "new")
        assert len(await log.load("counters", "c-1")) == 2  # events are never pruned


async def test_the_leader_prunes_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "bg.db"
    clock = VirtualClock(START)
    await _fire_and_fail(path, clock)
    await clock.advance(60 * DAY)
    retention = Retention(every=timedelta(seconds=1))
    async with (
        reventless.local.provider(path, clock=clock, retention=retention) as provider,
        anyio.create_task_group() as group,
    ):
        await group.start(provider.run)
        with anyio.fail_after(20):
            while _count(path, "dead_letters"):  # noqa: ASYNC110 - the loop works on its own
                await anyio.sleep(0.1)
        group.cancel_scope.cancel()
    assert _count(path, "history") == 0


def test_schedules_prune_as_a_real_process(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    clock = VirtualClock(START)
    anyio.run(_fire_and_fail, path, clock)
    done = subprocess.run(
        [sys.executable, "-m", "reventless", "schedules", "prune", "--db", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # The store's fires are from 2026-03-20, older than 30 days by the system clock.
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("deleted ") and "0 dead letters" not in done.stdout
    assert _count(path, "dead_letters") == 0
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            *("reventless", "schedules", "prune", "--db", str(path), "--handled-age", "2d"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0 and "handled_age" in bad.stderr
