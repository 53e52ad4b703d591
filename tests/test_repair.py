"""Repair from another process: ``reventless schedules trigger/backfill/redrive`` queue fires
in the store, and the engine running in this process picks them up and delivers them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import reventless.local
from reventless import Minutes, RetryPolicy, Schedule, Scheduler
from reventless.errors import DeliveryRefusedError, ValidationError
from reventless.local._store import SqliteStore
from reventless.schedule import Daily
from reventless.scheduler_adapter import HistoryKind
from reventless.target import FireEnvelope
from reventless.testing import FailingTarget, RecordingTarget, VirtualClock

pytestmark = pytest.mark.anyio


class _RefusesFirst(RecordingTarget):
    """Refuses its first delivery (dead-lettered at once), then records."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def deliver(self, envelope: FireEnvelope) -> None:
        if self.refused == 0:
            self.refused += 1
            raise DeliveryRefusedError("not now")
        await super().deliver(envelope)


def _cli(*argv: str) -> dict[str, list[str] | str]:
    done = subprocess.run(
        [sys.executable, "-m", "reventless", "schedules", *argv, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[str] | str] = json.loads(done.stdout)
    return result


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 15.0) -> None:
    with anyio.fail_after(seconds):
        while not await check():  # noqa: ASYNC110 - polls another process's effect
            await anyio.sleep(0.02)


async def test_trigger_and_redrive_from_the_command_line_reach_the_running_engine(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "r.db")
    target = _RefusesFirst()
    async with reventless.local.provider(
        db, poll_interval=0.05, retry_policy=RetryPolicy(max_attempts=0)
    ) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        await ops.create_schedule(Schedule(name="nightly", rate=Daily(3, 0), payload="p"))

        async def dead_lettered() -> bool:
            return bool(await ops.dead_letters())

        async def delivered() -> bool:
            return bool(target.deliveries)

        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            trigger = await anyio.to_thread.run_sync(_cli, "trigger", "nightly", "--db", db)
            fire = str(trigger["fire_id"])
            assert fire.startswith("nightly@") and not fire.endswith(":00Z")
            await _until(dead_lettered)  # delivered by this process's engine: refused
            redrive = await anyio.to_thread.run_sync(_cli, "redrive", "--db", db)
            assert redrive == {"fire_ids": [fire]}
            await _until(delivered)
            group.cancel_scope.cancel()
        assert [d.fire_id for d in target.deliveries] == [fire]
        assert await ops.dead_letters() == []
        kinds = [entry.kind for entry in await ops.history("nightly")]
        assert kinds == [
            HistoryKind.CREATED,
            HistoryKind.TRIGGERED,
            HistoryKind.FAILED,
            HistoryKind.DEAD_LETTERED,
            HistoryKind.REDRIVEN,
            HistoryKind.FIRED,
        ]


async def test_backfill_from_the_command_line_leaves_the_engines_own_fires_alone(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "b.db")
    async with reventless.local.provider(db) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(1), payload="p"))
        created = (await ops.get_schedule("tick")).created_at
    # Nothing ran: the instants before the next fire are the engine's, so a range ending now
    # holds none; the command says so and writes nothing.
    start = created.isoformat()
    end = datetime.now(UTC).isoformat()  # real clock: the engine's own, a minute at most away
    assert _cli("backfill", "tick", "--db", db, "--start", start, "--end", end) == {"fire_ids": []}


def test_a_backfill_range_of_too_many_fires_writes_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    try:
        store.put_many(
            "default",
            [Schedule(name="tick", rate=Minutes(1), payload="p")],
            datetime(2026, 1, 1, tzinfo=UTC),
            reventless.IfExists.REPLACE,
        )
        store.pause("default", "tick", datetime(2026, 1, 1, tzinfo=UTC))
        start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
        with pytest.raises(ValidationError, match="smaller ranges"):
            store.backfill("default", "tick", start, end, end, 100)
        assert store.conn.execute("SELECT count(*) FROM retries").fetchone()[0] == 0
        assert len(store.backfill("default", "tick", start, end, end, 10_000)) == 1440
        assert store.backfill("default", "tick", start, end, end, 10_000) == []
    finally:
        store.close()


async def test_a_second_index_entry_of_a_repair_does_not_bring_its_retry_forward(
    tmp_path: Path,
) -> None:
    """A repair can get two index entries (queued before the engine leads: loaded, and found
    by the repair poller). Once its first attempt failed, the row's next attempt is later: the
    entry still pointing at the first attempt must not deliver it early."""
    clock = VirtualClock(datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC))
    target = FailingTarget(failures=1)
    path = tmp_path / "twice.db"
    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        await ops.create_schedule(Schedule(name="nightly", rate=Daily(3, 0), payload="p"))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await ops.trigger_schedule("nightly")
            await clock.advance(timedelta(0))
            assert target.attempts == 1
            store = SqliteStore(path)
            [(row_id, attempts, next_at)] = store.conn.execute(
                "SELECT id, attempts, next_attempt_at FROM retries"
            ).fetchall()
            store.close()
            assert attempts == 1 and next_at > clock.now().timestamp() * 1e6
            # The duplicate: due at the first attempt's time, now past.
            provider._engine.repairs_queued([(row_id, int(clock.now().timestamp() * 1e6))])
            await clock.advance(timedelta(0))
            assert target.attempts == 1  # the retry waits for its backoff
            await clock.advance(timedelta(seconds=2))
            assert target.attempts == 2 and len(target.deliveries) == 1
            group.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("call", "field"),
    [
        # real clock: each of these three is refused for its other argument, at any hour
        (lambda ops: ops.backfill("tick", datetime(2026, 1, 1), datetime.now(UTC)), "start"),
        (lambda ops: ops.backfill("tick", datetime.now(UTC), "tomorrow"), "end"),
        (lambda ops: ops.backfill("bad name!", datetime.now(UTC), datetime.now(UTC)), "name"),
        (lambda ops: ops.redrive(fire_ids="tick@2026-01-01T00:00:00Z"), "fire_ids"),
        (lambda ops: ops.redrive(fire_ids=[]), "fire_ids"),
        (lambda ops: ops.redrive(fire_ids=["tick@2026-01-01 00:00"]), "fire_ids[0]"),
        (lambda ops: ops.redrive(schedule="bad name!"), "name"),
        (lambda ops: ops.trigger_schedule(""), "name"),
    ],
)
async def test_repairs_refuse_bad_input_and_write_nothing(
    tmp_path: Path, call: Callable[[Any], Awaitable[object]], field: str
) -> None:
    path = tmp_path / "bad.db"
    async with reventless.local.provider(path) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(1), payload="p"))
        with pytest.raises(ValidationError) as caught:
            await call(ops)
        assert caught.value.field == field
    store = SqliteStore(path)
    try:
        assert store.conn.execute("SELECT count(*) FROM retries").fetchone()[0] == 0
    finally:
        store.close()


EDGES = [datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)]


@pytest.mark.parametrize(("start", "end"), [(EDGES[0], EDGES[1]), (EDGES[0], EDGES[0])])
async def test_a_backfill_from_the_first_instant_a_datetime_holds_is_a_range_like_any(
    start: datetime, end: datetime
) -> None:
    """No fire is before the schedule's creation: such a start used to overflow."""
    clock = VirtualClock(datetime(2026, 1, 1, tzinfo=UTC))
    async with reventless.local.provider(":memory:", clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(5), payload="p"))
        assert await ops.backfill("tick", start, end) == []


def test_the_command_line_backfills_from_year_1(tmp_path: Path) -> None:
    db = str(tmp_path / "b.db")
    assert _cli("create", "tick", "Minutes(5)", "--payload", "p", "--db", db, "--new-scheduler")
    start, end = "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"
    assert _cli("backfill", "tick", "--db", db, "--start", start, "--end", end) == {"fire_ids": []}
