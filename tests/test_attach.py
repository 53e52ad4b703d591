"""Attaching a target: one scheduler per name per provider, and the record the store keeps of it."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

import reventless.local
from reventless import Minutes, Schedule, Scheduler, UsageError
from reventless.event_topic import EventTopic
from reventless.local._processes import _KEEP_ATTACHMENTS
from reventless.local._schema import _FIRST, _TABLES
from reventless.testing import RecordingTarget, VirtualClock
from tests.test_aggregate import counter_spec

pytestmark = pytest.mark.anyio
START = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)


async def test_a_second_scheduler_of_one_name_is_refused_and_the_first_keeps_its_fires(
    tmp_path: Path,
) -> None:
    clock = VirtualClock(START)
    first, second = RecordingTarget(), RecordingTarget()
    async with reventless.local.provider(tmp_path / "a.db", clock=clock) as provider:
        scheduler = await Scheduler.make(provider, target=first, name="billing")
        with pytest.raises(UsageError) as refused:
            await Scheduler.make(provider, target=second, name="billing")
        message = str(refused.value)
        assert "scheduler named 'billing' is already made on this provider" in message
        assert "distinct name" in message and "name='billing-2'" in message
        assert "testing._targets.RecordingTarget" in message  # what the first one delivers to
        other = await Scheduler.make(provider, target=second, name="billing-2")
        await scheduler.operations.create_schedule(
            Schedule(name="tick", rate=Minutes(1), payload="p")
        )
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(minutes=2, seconds=30))
            group.cancel_scope.cancel()
    assert len(first.deliveries) == 2
    assert second.deliveries == [] and other.name == "billing-2"


async def test_two_concurrent_makes_of_one_name_leave_exactly_one(tmp_path: Path) -> None:
    outcomes: list[str] = []

    async def make(provider: reventless.local.LocalProvider) -> None:
        try:
            await Scheduler.make(provider, target=RecordingTarget(), name="x")
            outcomes.append("made")
        except UsageError:
            outcomes.append("refused")

    async with reventless.local.provider(tmp_path / "c.db") as provider:
        async with anyio.create_task_group() as group:
            group.start_soon(make, provider)
            group.start_soon(make, provider)
        status = await provider.scheduled_publisher().store_status()
    assert sorted(outcomes) == ["made", "refused"]
    assert [len(info.attachments) for info in status.schedulers] == [1]


async def test_the_store_records_who_attached_what_and_whether_its_engine_runs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    orders = counter_spec()
    async with (
        reventless.local.provider(path, clock=VirtualClock(START)) as leader,
        reventless.local.provider(path, clock=VirtualClock(START)) as standby,
    ):
        from reventless.aggregate import Aggregate

        counters = await Aggregate.make(leader, orders)
        await Scheduler.make(leader, target=counters.command_topic, name="counters")
        await Scheduler.make(leader, target=EventTopic("health"), name="health")
        await Scheduler.make(standby, target=RecordingTarget(), name="counters")
        before = await leader.scheduled_publisher().store_status()
        assert before.engine is None and before.lease_until is None
        async with anyio.create_task_group() as group:
            await group.start(leader.run)
            assert leader.is_leading
            status = await standby.scheduled_publisher().store_status()
            group.cancel_scope.cancel()
        after = await leader.scheduled_publisher().store_status()
    assert status.engine == f"pid {os.getpid()} on {os.uname().nodename}"
    assert status.lease_until is not None
    counters_info, health_info = status.schedulers
    assert (counters_info.name, health_info.name) == ("counters", "health")
    assert [(a.target, a.engine_running) for a in counters_info.attachments] == [
        ("reventless.testing._targets.RecordingTarget", False),
        ("command topic of aggregate 'counters'", True),
    ]
    assert counters_info.attachments[1].payload_types is not None
    assert [a.payload_types for a in health_info.attachments] == [None]
    assert health_info.attachments[0].target == "event topic 'health'"
    assert counters_info.served and health_info.served
    assert after.engine is None and not any(info.served for info in after.schedulers)


async def test_a_read_only_provider_attaches_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    async with reventless.local.provider(path) as provider:
        await Scheduler.make(provider, target=RecordingTarget(), name="a")
    os.chmod(path, 0o444)
    try:
        async with reventless.local.provider(path, read_only=True) as reader:
            await Scheduler.make(reader, target=RecordingTarget(), name="b")
            status = await reader.scheduled_publisher().store_status()
    finally:
        os.chmod(path, 0o644)
    assert [info.name for info in status.schedulers] == ["a"]


async def test_old_attachments_are_forgotten_but_the_engines_stays(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    async with reventless.local.provider(path, clock=VirtualClock(START)) as leader:
        await Scheduler.make(leader, target=RecordingTarget(), name="x")
        async with anyio.create_task_group() as group:
            await group.start(leader.run)
            for _ in range(_KEEP_ATTACHMENTS + 4):
                async with reventless.local.provider(path) as visitor:
                    await Scheduler.make(visitor, target=RecordingTarget(), name="x")
            status = await leader.scheduled_publisher().store_status()
            group.cancel_scope.cancel()
    (info,) = status.schedulers
    assert len(info.attachments) == _KEEP_ATTACHMENTS + 1
    assert info.served and sum(a.engine_running for a in info.attachments) == 1


def _old_store(path: Path) -> None:
    """A store as the first release wrote it: no attachments table, one schedule."""
    first = [statement for table in _FIRST for statement in _TABLES[table]]
    old_schema = ";\n".join(
        ["BEGIN", *first, "INSERT INTO meta VALUES ('schema_version', 1), ('seq', 0)", "COMMIT;"]
    )
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(old_schema)
    spec = Schedule(name="legacy", rate=Minutes(5), payload="p").to_json()
    conn.execute(
        "INSERT INTO schedules (scheduler, name, spec, created_at, next_fire, seq)"
        " VALUES ('old', 'legacy', ?, 1795766400000000, 1795766700000000, 1)",
        (spec,),
    )
    conn.close()


async def test_a_store_written_before_attachments_is_read_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_store(path)
    async with reventless.local.provider(path, read_only=True) as reader:
        status = await reader.scheduled_publisher().store_status()
        (info,) = status.schedulers
        assert (info.name, info.schedules, info.attachments) == ("old", 1, [])
        ops = (await Scheduler.make(reader, target=RecordingTarget(), name="old")).operations
        assert [s.schedule.name for s in (await ops.list_schedules()).schedules] == ["legacy"]
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "attachments" not in tables  # reading changed nothing
    async with reventless.local.provider(path) as writer:
        await Scheduler.make(writer, target=RecordingTarget(), name="old")
        (info,) = (await writer.scheduled_publisher().store_status()).schedulers
    assert info.schedules == 1 and len(info.attachments) == 1


async def test_a_wrapped_command_topic_is_recorded_with_its_payload_rules(tmp_path: Path) -> None:
    """``reventless run`` wraps every target in an ObservedTarget; the rules still travel."""
    from reventless.aggregate import Aggregate
    from reventless.plugin import ObservedTarget

    async def on_fire(*_: object) -> None:
        return None

    async with reventless.local.provider(tmp_path / "w.db") as provider:
        counters = await Aggregate.make(provider, counter_spec())
        wrapped = ObservedTarget("c", counters.command_topic, on_fire)
        await Scheduler.make(provider, target=wrapped, name="c")
        (info,) = (await provider.scheduled_publisher().store_status()).schedulers
    (attachment,) = info.attachments
    assert attachment.target == "command topic of aggregate 'counters'"
    assert (
        attachment.payload_types is not None
        and '"aggregate": "counters"' in attachment.payload_types
    )
