"""The PostgreSQL engine claims fires a little before they are due (``_LEAD_US``) and delivers
them when due, never earlier, by the clock it judges due by: the virtual clock here, the
database's clock on a provider without one. A stop while a claimed batch waits rolls it back,
and the fires are delivered later, once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import anyio
import asyncpg
import pytest

import reventless.postgres
from reventless import Schedule, Scheduler, Single
from reventless.clock import Clock
from reventless.postgres._engine import _LEAD_US
from reventless.target import FireEnvelope
from reventless.testing import VirtualClock

pytestmark = pytest.mark.anyio

START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)
DUE = datetime(2026, 3, 20, 6, 1, tzinfo=UTC)
LEAD = timedelta(microseconds=_LEAD_US)


class ClockedTarget:
    """Notes the clock's now at each delivery."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.deliveries: list[tuple[FireEnvelope, datetime]] = []

    async def deliver(self, envelope: FireEnvelope) -> None:
        self.deliveries.append((envelope, self.clock.now()))


async def _claimable(dsn: str, name: str) -> bool:
    """Whether the schedule's row can be locked now (no engine holds it claimed)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                "SELECT id FROM reventless.schedules WHERE name = $1 FOR UPDATE SKIP LOCKED", name
            )
    finally:
        await conn.close()
    return row is not None


async def _fired(dsn: str) -> list[tuple[str, int]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT name, scheduled_time FROM reventless.history"
            " WHERE kind IN ('fired', 'fired+completed') ORDER BY id"
        )
    finally:
        await conn.close()
    return [(row[0], row[1]) for row in rows]


async def test_a_fire_claimed_ahead_is_delivered_when_due_by_the_virtual_clock(
    postgres_dsn: str,
) -> None:
    clock = VirtualClock(START)
    target = ClockedTarget(clock)
    async with reventless.postgres.provider(postgres_dsn, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        await ops.create_schedules(
            [
                Schedule(name="single", rate=Single(2026, 3, 20, 6, 1), payload="s"),
                Schedule(name="other", rate=Single(2026, 3, 20, 6, 1), payload="o"),
            ]
        )
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance_to(DUE - LEAD / 2)
            # Claimed (its row locked by the engine's batch), not delivered.
            assert not await _claimable(postgres_dsn, "single")
            assert target.deliveries == []
            await clock.advance_to(DUE - timedelta(microseconds=1))
            assert target.deliveries == []
            await clock.advance_to(DUE)
            assert sorted((e.fire_id, at) for e, at in target.deliveries) == [
                ("other@2026-03-20T06:01:00Z", DUE),
                ("single@2026-03-20T06:01:00Z", DUE),
            ]
            group.cancel_scope.cancel()


async def test_a_stop_while_a_batch_waits_for_its_due_instant_rolls_it_back(
    postgres_dsn: str,
) -> None:
    clock = VirtualClock(START)
    first = ClockedTarget(clock)
    async with reventless.postgres.provider(postgres_dsn, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=first)).operations
        await ops.create_schedule(
            Schedule(name="single", rate=Single(2026, 3, 20, 6, 1), payload="s")
        )
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance_to(DUE - LEAD / 2)
            assert not await _claimable(postgres_dsn, "single")
            group.cancel_scope.cancel()  # the engine stops while its batch waits
    assert first.deliveries == []
    assert await _claimable(postgres_dsn, "single")
    assert await _fired(postgres_dsn) == []
    second = ClockedTarget(clock)
    async with reventless.postgres.provider(postgres_dsn, clock=clock) as provider:
        await Scheduler.make(provider, target=second)
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance_to(DUE + timedelta(seconds=1))
            group.cancel_scope.cancel()
    assert [(e.fire_id, at) for e, at in second.deliveries] == [
        ("single@2026-03-20T06:01:00Z", DUE)
    ]
    assert len(await _fired(postgres_dsn)) == 1


class WallTarget:
    """Notes the system clock at each delivery, in microseconds: the database's clock too, as
    the test server runs on this machine (``clock_timestamp()`` reads the same clock)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, int]] = []

    async def deliver(self, envelope: FireEnvelope) -> None:
        self.deliveries.append((envelope.schedule, time.time_ns() // 1000))


async def test_no_fire_is_delivered_before_it_is_due_by_the_database_clock(
    postgres_dsn: str,
) -> None:
    """Rows due at instants a few milliseconds apart, some within the lead of others (batches
    then hold fires due at several instants): each delivered no earlier than its due instant,
    as the server's clock tells it."""
    count = 120
    target = WallTarget()
    async with reventless.postgres.provider(postgres_dsn, batch=25) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        # Singles of the current minute (due at once)...
        now = datetime.now(UTC)  # real clock: the engine runs on it here
        await ops.create_schedules(
            [
                Schedule(
                    name=f"s{n}",
                    rate=Single(now.year, now.month, now.day, now.hour, now.minute),
                    payload="p",
                )
                for n in range(count)
            ]
        )
        # ...each held back to its own due instant, as a jitter holds a fire back (by whole
        # seconds; here by 7 ms steps from 0.3 s on, so that batches mix instants).
        conn = await asyncpg.connect(postgres_dsn)
        try:
            dues = dict(
                await conn.fetch(
                    "UPDATE reventless.schedules SET due_at ="
                    " (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + 300000"
                    " + 7000 * substr(name, 2)::int RETURNING name, due_at"
                )
            )
        finally:
            await conn.close()
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            with anyio.fail_after(30):
                while len(target.deliveries) < count:  # noqa: ASYNC110 - the target has no event
                    await anyio.sleep(0.02)
            group.cancel_scope.cancel()
    assert sorted(name for name, _ in target.deliveries) == sorted(dues)
    early = [(name, dues[name] - at) for name, at in target.deliveries if at < dues[name]]
    assert early == []


def test_rows_advanced_early_are_moved_again_or_put_back_when_their_bookkeeping_differs() -> None:
    """``_advances``: a row advanced early and advanced so is not written again; one whose
    bookkeeping moved it elsewhere is (with that fire's due instant), one recorded not at all
    is put back as it was, one completed is left to its deletion."""
    from reventless._fire_rows import Outcome
    from reventless.postgres._fire_writes import _advances
    from reventless.postgres._tx import due_us

    minute = 60_000_000
    plans = {
        1: ("same", None, 2 * minute, 2 * minute, minute, minute),
        2: ("moved", 1, 2 * minute, 2 * minute + 7_000_000, minute, minute + 5_000_000),
        3: ("unrecorded", None, 2 * minute, 2 * minute, minute, minute),
        4: ("late", None, 3 * minute, 3 * minute, minute, minute),
    }
    early = {row: (9, plan[4], plan[5]) for row, plan in plans.items() if row != 4}
    outcome = Outcome()
    outcome.advance += [(2 * minute, 1, 9), (3 * minute, 2, 9), (4 * minute, 4, 9)]
    assert sorted(_advances(outcome, plans, early)) == sorted(
        [
            (3 * minute, due_us("moved", 1, 3 * minute), 2, 9),
            (minute, minute, 3, 9),
            (4 * minute, 4 * minute, 4, 9),
        ]
    )
    outcome.complete.append((3, 9))
    assert (minute, minute, 3, 9) not in _advances(outcome, plans, early)
