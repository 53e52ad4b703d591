"""Several PostgreSQL engines on one database, in one process: every due fire is delivered once
and none twice (their claims skip each other's locked rows), whichever engine takes it; a fire
to a command topic of the same store commits its events with its record; the clock's seam."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import asyncpg
import pytest

import reventless.postgres
from reventless import Minutes, Schedule, Scheduler, Single
from reventless.aggregate import Aggregate, command_payload
from reventless.errors import UsageError, ValidationError
from reventless.fire_times import fire_times
from reventless.local import Retention
from reventless.scheduler_adapter import HistoryKind
from reventless.target import fire_id
from reventless.testing import HangingTarget, RecordingTarget, VirtualClock
from reventless.testing.ports import NOTES, Note

pytestmark = pytest.mark.anyio

START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)


def _burst(count: int) -> list[Schedule]:
    """Singles due at the next minute, and minute rates (1 and 3) firing all along."""
    schedules = [
        Schedule(name=f"single-{n}", rate=Single(2026, 3, 20, 6, 1), payload=f"s{n}")
        for n in range(count)
    ]
    schedules += [
        Schedule(name=f"every-{n}", rate=Minutes(1 + 2 * (n % 2)), payload=f"m{n}")
        for n in range(count // 10)
    ]
    return schedules


def _expected(schedules: list[Schedule], until: datetime) -> set[str]:
    expected = set()
    for schedule in schedules:
        for instant in fire_times(schedule, created_at=START, after=START):
            if instant > until:
                break
            expected.add(fire_id(schedule.name, instant))
    return expected


@pytest.mark.parametrize("engines", [2, 3])
async def test_every_due_fire_is_delivered_by_one_engine_once(
    postgres_dsn: str, engines: int
) -> None:
    clock = VirtualClock(START)
    targets = [RecordingTarget() for _ in range(engines)]
    schedules = _burst(300)
    async with AsyncExitStack() as stack:
        providers = [
            await stack.enter_async_context(
                reventless.postgres.provider(postgres_dsn, clock=clock, batch=50)
            )
            for _ in range(engines)
        ]
        schedulers = [
            await Scheduler.make(provider, target=target)
            for provider, target in zip(providers, targets, strict=True)
        ]
        await schedulers[0].operations.create_schedules(schedules)
        group = await stack.enter_async_context(anyio.create_task_group())
        for provider in providers:
            await group.start(provider.run)
        end = START + timedelta(minutes=6)
        while clock.now() < end:
            await clock.advance(timedelta(seconds=30))
        delivered = [envelope.fire_id for target in targets for envelope in target.deliveries]
        history = await _fired(postgres_dsn)
        group.cancel_scope.cancel()
    assert len(delivered) == len(set(delivered)), "a fire was delivered twice"
    assert set(delivered) == _expected(schedules, end)
    assert sorted(history) == sorted(delivered)
    assert sum(1 for target in targets if target.deliveries) >= 2, "one engine did all the work"


async def _fired(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT name, scheduled_time FROM reventless.history"
            " WHERE kind IN ('fired', 'fired+completed')"
        )
    finally:
        await conn.close()
    return [
        fire_id(name, datetime.fromtimestamp(us / 1e6, UTC).replace(microsecond=0))
        for name, us in rows
    ]


async def test_a_fire_to_a_command_topic_commits_its_events_with_its_record(
    postgres_dsn: str,
) -> None:
    """The command's events carry the fire id as their message id, and were written by the
    engine's transaction: the one that recorded the fire (``events.tx`` = the history row's
    transaction)."""
    clock = VirtualClock(START)
    async with reventless.postgres.provider(postgres_dsn, clock=clock) as provider:
        notes = await Aggregate.make(provider, NOTES)
        ops = (await Scheduler.make(provider, target=notes.command_topic)).operations
        payload = command_payload("n-1", Note(text="hello"))
        await ops.create_schedule(
            Schedule(name="note", rate=Single(2026, 3, 20, 6, 1), payload=payload)
        )
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(minutes=1))
            group.cancel_scope.cancel()
        conn: Any = await asyncpg.connect(postgres_dsn)
        try:
            event_tx = await conn.fetchval(
                "SELECT tx FROM reventless.events WHERE message_id = 'note@2026-03-20T06:01:00Z'"
            )
            fired_tx = await conn.fetchval(
                "SELECT xmin::text FROM reventless.history WHERE kind = 'fired+completed'"
            )
        finally:
            await conn.close()
    assert event_tx is not None
    assert int(str(event_tx)) % 2**32 == int(fired_tx)  # xid8 and the 32-bit xmin


async def test_due_times_come_from_the_database_clock_with_the_system_clock(
    postgres_dsn: str,
) -> None:
    """A schedule created through a provider on the system clock fires when the database's
    clock says it is due (the seam: the engine judges by ``clock_timestamp()``)."""
    target = RecordingTarget()
    async with reventless.postgres.provider(postgres_dsn, poll_interval=0.1) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        # A Single of the current minute: due at once, whatever the hour.
        now = datetime.now(UTC)  # real clock: the engine runs on it here
        if now.second >= 55:
            await anyio.sleep(61 - now.second)
            now = datetime.now(UTC)  # real clock, as above
        await ops.create_schedule(
            Schedule(
                name="now",
                rate=Single(now.year, now.month, now.day, now.hour, now.minute),
                payload="p",
            )
        )
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            with anyio.fail_after(20):
                while not target.deliveries:  # noqa: ASYNC110 - the target has no event
                    await anyio.sleep(0.02)
            group.cancel_scope.cancel()
    assert [e.fire_id for e in target.deliveries] == [f"now@{now:%Y-%m-%dT%H:%M}:00Z"]


async def _listening_backends(admin: asyncpg.Connection) -> list[int]:
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
    )
    return [row[0] for row in rows]


async def _fire_now_from_elsewhere(dsn: str) -> str:
    """Create, through another provider (whose engine does not run), a Single due at once;
    its fire id."""
    async with reventless.postgres.provider(dsn) as other:
        ops = (await Scheduler.make(other, target=RecordingTarget())).operations
        now = datetime.now(UTC)  # real clock: the engine under test runs on it
        if now.second >= 55:
            await anyio.sleep(61 - now.second)
            now = datetime.now(UTC)  # real clock, as above
        name = f"now-{now:%H%M%S%f}"
        await ops.create_schedule(
            Schedule(
                name=name,
                rate=Single(now.year, now.month, now.day, now.hour, now.minute),
                payload="p",
            )
        )
    return f"{name}@{now:%Y-%m-%dT%H:%M}:00Z"


async def test_a_notify_wakes_an_engine_and_a_lost_listener_listens_again(
    postgres_dsn: str,
) -> None:
    """With polling at its slowest (60 s), another process's create is delivered within
    seconds: the NOTIFY woke the engine. The listening connection is then killed by the
    server; the engine listens again on a new one, and is woken again."""
    target = RecordingTarget()
    admin: Any = await asyncpg.connect(postgres_dsn)
    try:
        async with reventless.postgres.provider(postgres_dsn, poll_interval=60) as provider:
            await Scheduler.make(provider, target=target)
            async with anyio.create_task_group() as group:
                await group.start(provider.run)
                with anyio.fail_after(10):
                    while not (listening := await _listening_backends(admin)):  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                await anyio.sleep(0.5)  # the engine's first look is done: it sleeps 60 s
                first = await _fire_now_from_elsewhere(postgres_dsn)
                with anyio.fail_after(10):
                    while first not in target.fire_ids():  # noqa: ASYNC110 - no event
                        await anyio.sleep(0.02)
                await admin.execute("SELECT pg_terminate_backend($1)", listening[0])
                with anyio.fail_after(10):
                    while (again := await _listening_backends(admin)) in ([], listening):  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                await anyio.sleep(0.5)
                second = await _fire_now_from_elsewhere(postgres_dsn)
                with anyio.fail_after(10):
                    while second not in target.fire_ids():  # noqa: ASYNC110 - no event
                        await anyio.sleep(0.02)
                group.cancel_scope.cancel()
    finally:
        await admin.close()
    assert again != listening


async def test_prune_deletes_old_history_and_backfill_refuses_what_it_cannot_tell(
    postgres_dsn: str,
) -> None:
    clock = VirtualClock(START)
    target = RecordingTarget()
    async with reventless.postgres.provider(postgres_dsn, clock=clock, retention=None) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(30), payload="p"))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(hours=3))
            group.cancel_scope.cancel()
        before = await ops.history("tick", limit=1000)
        report = await provider.prune(Retention(history_age=timedelta(hours=1)))
        after = await ops.history("tick", limit=1000)
        cutoff = clock.now() - timedelta(hours=1)
        assert report.history == len(before) - len(after) > 0
        assert all(entry.at >= cutoff for entry in after)
        with pytest.raises(ValidationError, match="was pruned"):
            await ops.backfill("tick", START, START + timedelta(hours=1))


async def test_engines_go_on_after_the_server_drops_every_connection(postgres_dsn: str) -> None:
    """As after a server restart: every connection of the engines is ended between fires; the
    engines connect again and deliver every fire, once."""
    clock = VirtualClock(START)
    targets = [RecordingTarget() for _ in range(2)]
    schedules = [Schedule(name=f"every-{n}", rate=Minutes(1), payload="p") for n in range(50)]
    admin: Any = await asyncpg.connect(postgres_dsn)
    try:
        async with AsyncExitStack() as stack:
            providers = [
                await stack.enter_async_context(
                    reventless.postgres.provider(postgres_dsn, clock=clock)
                )
                for _ in targets
            ]
            schedulers = [
                await Scheduler.make(provider, target=target)
                for provider, target in zip(providers, targets, strict=True)
            ]
            await schedulers[0].operations.create_schedules(schedules)
            group = await stack.enter_async_context(anyio.create_task_group())
            for provider in providers:
                await group.start(provider.run)
            await clock.advance(timedelta(minutes=2))
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            await clock.advance(timedelta(minutes=2))
            group.cancel_scope.cancel()
    finally:
        await admin.close()
    delivered = [envelope.fire_id for target in targets for envelope in target.deliveries]
    assert ended >= 2
    assert len(delivered) == len(set(delivered))
    assert set(delivered) == _expected(schedules, START + timedelta(minutes=4))


async def test_leaving_the_provider_block_stops_its_engine_started_outside(
    postgres_dsn: str,
) -> None:
    """The engine runs in a task group outside the provider's block: leaving the block stops
    it (and closes the pool) rather than hang, and ``run()`` returns."""
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            async with reventless.postgres.provider(
                postgres_dsn, clock=VirtualClock(START)
            ) as provider:
                await Scheduler.make(provider, target=RecordingTarget())
                await group.start(provider.run)
            assert provider.pool.is_closing()


async def test_a_fire_is_recorded_delivered_once(postgres_dsn: str) -> None:
    """The history's unique index on delivered fires: a second record of one fire id (say,
    after a delivery repeated across a crash) is not written; other kinds repeat freely."""
    from reventless.postgres._tx import insert_history

    async with reventless.postgres.provider(postgres_dsn):
        pass
    conn: Any = await asyncpg.connect(postgres_dsn)
    try:
        fired = ("default", "tick", "fired", 1, 60_000_000, None)
        failed = ("default", "tick", "failed", 1, 60_000_000, "attempt 1")
        for _ in range(2):
            await insert_history(conn, '"reventless"', [fired, failed])
        kinds = await conn.fetch("SELECT kind FROM reventless.history ORDER BY id")
    finally:
        await conn.close()
    assert [row[0] for row in kinds] == ["fired", "failed", "failed"]


async def test_an_engine_on_a_pool_too_small_for_it_is_refused(postgres_dsn: str) -> None:
    async with reventless.postgres.provider(postgres_dsn, max_connections=3) as provider:
        with pytest.raises(UsageError, match="max_connections=4"):
            await provider.run()


async def test_hanging_deliveries_time_out_and_their_workers_go_on(postgres_dsn: str) -> None:
    """More deliveries that never return than an engine has workers (64): each times out
    after ``delivery_timeout`` (recorded failed, with the reason), so some workers went on
    after a time-out, and the other fires are delivered."""
    clock = VirtualClock(START)
    stuck = [f"stuck-{n}" for n in range(70)]
    target = HangingTarget(hang_on=frozenset(stuck))
    async with reventless.postgres.provider(
        postgres_dsn, clock=clock, delivery_timeout=0.3
    ) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        names = [*stuck, *(f"ok-{n}" for n in range(10))]
        await ops.create_schedules([Schedule(name=n, rate=Minutes(1), payload="p") for n in names])
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            with anyio.fail_after(30):
                while len({d.schedule for d in target.deliveries}) < 10:
                    await clock.advance(timedelta(seconds=30))
            group.cancel_scope.cancel()
        assert {d.schedule for d in target.deliveries} == set(names[70:])
        for name in stuck:
            failed = [e for e in await ops.history(name) if e.kind is HistoryKind.FAILED]
            assert failed, name
            assert "delivery timed out after 0.3 s" in (failed[0].detail or "")
