"""Local engine behaviour beyond the port contract: retries, dead letters, misfires, faults."""

from __future__ import annotations

import itertools
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import reventless.local
from reventless import (
    BackendUnavailableError,
    CorruptDataError,
    Daily,
    HistoryKind,
    Hours,
    Minutes,
    RetryPolicy,
    Schedule,
    Scheduler,
    Single,
    ValidationError,
    fire_times,
)
from reventless.local._connection import ERROR_TABLE, translate_sqlite_error
from reventless.target import FireEnvelope
from reventless.testing import FailingTarget, HangingTarget, RecordingTarget, VirtualClock

pytestmark = pytest.mark.anyio
START = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)


@asynccontextmanager
async def running(
    path: str | Path = ":memory:",
    target: Any = None,
    clock: VirtualClock | None = None,
    **options: Any,
) -> AsyncIterator[tuple[Any, VirtualClock, Any]]:
    clock = clock or VirtualClock(START)
    target = target if target is not None else RecordingTarget()
    async with reventless.local.provider(path, clock=clock, **options) as provider:
        scheduler = await Scheduler.make(provider, target=target)
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            yield scheduler.operations, clock, target
            group.cancel_scope.cancel()


# -- retries and dead letters --------------------------------------------------------------------


async def test_failed_delivery_is_retried_with_the_same_fire_id() -> None:
    target = FailingTarget(failures=2)
    async with running(target=target) as (ops, clock, _):
        await ops.create_schedule(Schedule(name="report", rate=Daily(9, 0), payload="p"))
        await clock.advance(timedelta(hours=1, minutes=5))
        assert target.attempts == 3
        assert [d.fire_id for d in target.deliveries] == ["report@2026-11-27T09:00:00Z"]
        history = await ops.history("report")
        kinds = [entry.kind for entry in history]
        assert kinds == [
            HistoryKind.CREATED,
            HistoryKind.FAILED,
            HistoryKind.FAILED,
            HistoryKind.FIRED,
        ]
        assert {entry.fire_id for entry in history[1:]} == {"report@2026-11-27T09:00:00Z"}
        assert "ConnectionError" in (history[1].detail or "")
        assert history[-1].detail == "delivered on attempt 3"
        # Backoff: the retries come after the fire, one then about two seconds apart.
        assert history[1].at == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
        assert history[2].at > history[1].at
        assert history[3].at - history[1].at < timedelta(seconds=5)
        # The schedule itself kept going: tomorrow's fire is due as usual.
        assert (await ops.get_schedule("report")).next_fire == datetime(
            2026, 11, 28, 9, 0, tzinfo=UTC
        )


async def test_retries_end_in_a_dead_letter_with_the_reason_and_payload() -> None:
    target = FailingTarget(failures=None)
    async with running(target=target, retry_policy=RetryPolicy(max_attempts=3)) as (ops, clock, _):
        await ops.create_schedule(Schedule(name="report", rate=Daily(9, 0), payload='{"a": 1}'))
        await clock.advance(timedelta(hours=2))
        assert target.attempts == 4  # the first try and three retries
        [letter] = await ops.dead_letters()
        assert letter.fire_id == "report@2026-11-27T09:00:00Z"
        assert letter.payload == '{"a": 1}'
        assert letter.attempts == 4
        assert "ConnectionError" in letter.reason and "gave up after 4 attempt(s)" in letter.reason
        kinds = [entry.kind for entry in await ops.history("report")]
        assert kinds.count(HistoryKind.FAILED) == 4
        assert kinds[-1] is HistoryKind.DEAD_LETTERED


async def test_zero_retries_dead_letters_at_once() -> None:
    target = FailingTarget(failures=None)
    async with running(target=target, retry_policy=RetryPolicy(max_attempts=0)) as (ops, clock, _):
        await ops.create_schedule(Schedule(name="r", rate=Minutes(1), payload="p"))
        await clock.advance(timedelta(minutes=3, seconds=30))
        assert target.attempts == 3
        assert len(await ops.dead_letters()) == 3


async def test_max_event_age_ends_retries() -> None:
    target = FailingTarget(failures=None)
    policy = RetryPolicy(max_attempts=185, max_event_age=timedelta(seconds=60))
    async with running(target=target, retry_policy=policy) as (ops, clock, _):
        await ops.create_schedule(Schedule(name="r", rate=Daily(9, 0), payload="p"))
        await clock.advance(timedelta(hours=2))
        [letter] = await ops.dead_letters()
        assert "max_event_age" in letter.reason
        # Backoff doubles: 1 + 2 + 4 + 8 + 16 + 32 s (jittered down) stay within a minute.
        assert 5 <= letter.attempts <= 8


@pytest.mark.parametrize(
    ("field", "options"),
    [
        ("max_attempts", {"max_attempts": 186}),
        ("max_attempts", {"max_attempts": -1}),
        ("max_event_age", {"max_event_age": timedelta(seconds=59)}),
        ("max_event_age", {"max_event_age": timedelta(hours=25)}),
    ],
)
def test_retry_policy_ranges(field: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        RetryPolicy(**options)
    assert caught.value.field == field


# -- slow and hanging targets ----------------------------------------------------------------


async def test_a_hanging_target_does_not_stall_other_schedules() -> None:
    target = HangingTarget(hang_on=frozenset({"stuck"}))
    async with running(target=target, delivery_timeout=0.3, workers=4) as (ops, clock, _):
        await ops.create_schedule(Schedule(name="stuck", rate=Minutes(1), payload="p"))
        for number in range(20):
            await ops.create_schedule(Schedule(name=f"ok-{number}", rate=Minutes(1), payload="p"))
        await clock.advance(timedelta(minutes=2))
        delivered = {d.schedule for d in target.deliveries}
        assert delivered == {f"ok-{number}" for number in range(20)}
        history = await ops.history("stuck")
        failed = [entry for entry in history if entry.kind is HistoryKind.FAILED]
        assert failed and "timed out after 0.3 s" in (failed[0].detail or "")


async def test_cancelling_run_lets_a_delivery_under_way_finish_and_be_recorded(
    tmp_path: Path,
) -> None:
    class SlowTarget(RecordingTarget):
        def __init__(self) -> None:
            super().__init__()
            self.started = anyio.Event()

        async def deliver(self, envelope: FireEnvelope) -> None:
            self.started.set()
            await anyio.sleep(0.3)  # real time: the delivery is under way when we cancel
            await super().deliver(envelope)

    target = SlowTarget()
    clock = VirtualClock(START)
    async with reventless.local.provider(tmp_path / "s.db", clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        await ops.create_schedule(
            Schedule(name="slow", rate=Single(2026, 11, 27, 8, 0), payload="p")
        )
        async with anyio.create_task_group() as group:
            group.start_soon(provider.run)
            await target.started.wait()
            group.cancel_scope.cancel()
        assert [d.fire_id for d in target.deliveries] == ["slow@2026-11-27T08:00:00Z"]
        kinds = [entry.kind for entry in await ops.history("slow")]
        assert kinds == [HistoryKind.CREATED, HistoryKind.FIRED, HistoryKind.COMPLETED]


# -- misfires after downtime -------------------------------------------------------------------


async def downtime(tmp_path: Path, policy: str, grace: timedelta) -> tuple[RecordingTarget, Any]:
    """Run a while, stop for three days, run again; return what the second run delivered."""
    path = tmp_path / f"{policy}.db"
    clock = VirtualClock(START)
    async with running(path, clock=clock, misfire_policy=policy, misfire_grace=grace) as (
        ops,
        _,
        _,
    ):
        await ops.create_schedule(Schedule(name="hourly", rate=Hours(1), payload="p"))
        await ops.create_schedule(Schedule(name="daily", rate=Daily(9, 0), payload="p"))
        await clock.advance(timedelta(hours=2))
    await clock.advance(timedelta(days=3))  # the engine is down: nothing fires
    target = RecordingTarget()
    async with running(
        path, target=target, clock=clock, misfire_policy=policy, misfire_grace=grace
    ) as (ops, _, _):
        await clock.advance(timedelta(0))
        return target, ops


async def test_misfire_latest_delivers_the_most_recent_and_records_the_rest(
    tmp_path: Path,
) -> None:
    target, _ = await downtime(tmp_path, "latest", timedelta(hours=24))
    assert [d.fire_id for d in target.deliveries if d.schedule == "hourly"] == [
        "hourly@2026-11-30T09:01:00Z"  # 10:01 is still ahead: the clock reads 10:00:30
    ]
    assert [d.fire_id for d in target.deliveries if d.schedule == "daily"] == [
        "daily@2026-11-30T09:00:00Z"
    ]


async def test_misfire_all_delivers_each_within_grace_oldest_first(tmp_path: Path) -> None:
    target, _ = await downtime(tmp_path, "all", timedelta(hours=24))
    hourly = [d.scheduled_time for d in target.deliveries if d.schedule == "hourly"]
    # Within the 24 h before the restart at 30th 10:00:30: 29th 10:01 to 30th 09:01.
    assert len(hourly) == 24
    assert hourly == sorted(hourly)
    assert hourly[0] == datetime(2026, 11, 29, 10, 1, tzinfo=UTC)
    assert hourly[-1] == datetime(2026, 11, 30, 9, 1, tzinfo=UTC)


async def test_misfire_skip_delivers_none_and_everything_is_accounted_for(tmp_path: Path) -> None:
    path = tmp_path / "skip.db"
    clock = VirtualClock(START)
    async with running(
        path, clock=clock, misfire_policy="skip", misfire_grace=timedelta(hours=24)
    ) as (ops, _, first_target):
        await ops.create_schedule(Schedule(name="hourly", rate=Hours(1), payload="p"))
        await clock.advance(timedelta(hours=2))
    before = len(first_target.deliveries)
    await clock.advance(timedelta(days=3))
    async with running(
        path, clock=clock, misfire_policy="skip", misfire_grace=timedelta(hours=24)
    ) as (ops, _, target):
        await clock.advance(timedelta(0))
        assert target.deliveries == []
        history = await ops.history("hourly", limit=1000)
    schedule = Schedule(name="hourly", rate=Hours(1), payload="p")
    due = list(
        itertools.takewhile(lambda t: t <= clock.now(), fire_times(schedule, created_at=START))
    )
    fired = [e.fire_id for e in history if e.kind is HistoryKind.FIRED]
    [missed] = [e for e in history if e.kind is HistoryKind.MISSED]
    [expired] = [e for e in history if e.kind is HistoryKind.EXPIRED]
    assert len(fired) == before == 1  # 27th 09:01; the engine stopped at 10:00:30
    # The 24 instants within the grace window: one range, naming its first and last fire ids.
    assert missed.detail is not None and missed.detail.startswith(
        "24 fires from hourly@2026-11-29T10:01:00Z to hourly@2026-11-30T09:01:00Z"
    )
    assert missed.fire_id == "hourly@2026-11-30T09:01:00Z"
    assert expired.detail is not None
    expired_count = int(expired.detail.split()[0])
    assert len(fired) + 24 + expired_count == len(due)  # nothing unaccounted for


# -- damaged and unavailable stores ------------------------------------------------------------


async def test_a_corrupt_row_is_reported_and_dead_lettered_others_keep_firing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.db"
    async with running(path) as (ops, clock, target):
        await ops.create_schedule(Schedule(name="good", rate=Minutes(1), payload="p"))
        await ops.create_schedule(Schedule(name="bad", rate=Minutes(1), payload="p"))
        with sqlite3.connect(path) as raw:
            raw.execute("UPDATE schedules SET spec = ? WHERE name = 'bad'", (b'{"name": 1}',))
        await clock.advance(timedelta(minutes=3))
        assert {d.schedule for d in target.deliveries} == {"good"}
        with pytest.raises(CorruptDataError, match="'bad'"):
            await ops.get_schedule("bad")
        [letter] = await ops.dead_letters()
        assert letter.schedule == "bad" and "cannot be decoded" in letter.reason
        assert await ops.delete_schedule("bad") is True  # the way out still works


async def test_a_locked_store_gives_a_retriable_typed_error_and_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.db"
    async with reventless.local.provider(
        path, clock=VirtualClock(START), lock_timeout=0.05
    ) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(BackendUnavailableError, match="locked"):
                await ops.create_schedule(Schedule(name="x", rate=Daily(9, 0), payload="p"))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert (await ops.list_schedules()).schedules == []


def test_a_read_only_store_gives_permission_denied(tmp_path: Path) -> None:
    """Run in a subprocess without the power to override file modes (root has it)."""
    path = tmp_path / "ro.db"
    sqlite3.connect(path).close()
    path.chmod(0o444)
    tmp_path.chmod(0o555)
    script = textwrap.dedent(f"""
        import anyio, sys
        from datetime import datetime, UTC
        import reventless.local
        from reventless import Scheduler, Schedule, Daily, PermissionDeniedError
        from reventless.testing import RecordingTarget, VirtualClock
        async def main():
            try:
                async with reventless.local.provider({str(path)!r}) as provider:
                    ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
                    await ops.create_schedule(Schedule(name="x", rate=Daily(9, 0), payload="p"))
            except PermissionDeniedError as exc:
                print("denied:", exc)
                return
            except Exception as exc:
                print("other:", type(exc).__name__, exc)
                return
            print("written")
        anyio.run(main)
    """)
    command = [sys.executable, "-c", script]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
        command = [
            "setpriv",
            "--inh-caps=-all",
            "--bounding-set=-dac_override,-fowner",
            "--",
            *command,
        ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    finally:
        tmp_path.chmod(0o755)
    assert done.stdout.startswith("denied:"), done.stdout + done.stderr
    assert "read-only" in done.stdout or "denied" in done.stdout


def test_every_sqlite_error_name_maps_to_a_typed_error() -> None:
    for prefix, error_type, _ in ERROR_TABLE:
        exc = sqlite3.OperationalError("boom")
        exc.sqlite_errorname = prefix + "_SOMETHING"  # type: ignore[attr-defined]
        translated = translate_sqlite_error(exc, "x.db")
        assert type(translated) is error_type
        assert "x.db" in str(translated)
    unknown = sqlite3.OperationalError("odd")
    assert isinstance(translate_sqlite_error(unknown, "x.db"), BackendUnavailableError)


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CorruptDataError, match="not a SQLite database"):
        async with reventless.local.provider(path):
            pass


@pytest.mark.parametrize(
    ("field", "options"),
    [
        ("misfire_policy", {"misfire_policy": "sometimes"}),
        ("misfire_grace", {"misfire_grace": timedelta(days=31)}),
        ("delivery_timeout", {"delivery_timeout": 0}),
        ("lease_ttl", {"lease_ttl": float("nan")}),
        ("workers", {"workers": 0}),
        ("retry_policy", {"retry_policy": {"max_attempts": 3}}),
    ],
)
async def test_provider_options_are_validated(field: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        async with reventless.local.provider(":memory:", **options):
            pass
    assert caught.value.field == field


async def test_run_twice_at_once_is_a_usage_error() -> None:
    from reventless import UsageError

    async with (
        reventless.local.provider(":memory:", clock=VirtualClock(START)) as provider,
        anyio.create_task_group() as group,
    ):
        await group.start(provider.run)
        with pytest.raises(UsageError, match="already running"):
            await provider.run()
        group.cancel_scope.cancel()


async def test_a_stolen_lease_makes_the_engine_stand_down_then_take_over_again(
    tmp_path: Path,
) -> None:
    """Fencing: once another owner holds the lease, this engine stops recording fires; when
    the lease is free again it leads again and the unrecorded fire is delivered again, same id."""
    path = tmp_path / "lease.db"
    async with running(path, lease_ttl=1.0, misfire_policy="all") as (ops, clock, target):
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(1), payload="p"))
        await clock.advance(timedelta(minutes=3))  # 08:02 and 08:03
        assert len(target.deliveries) == 2
        with sqlite3.connect(path) as raw:
            raw.execute("UPDATE lease SET owner = 'thief', expires_at = 1e12 WHERE id = 1")
        await clock.advance(timedelta(minutes=1))  # delivered, but not recorded: fenced off
        stolen_fire = target.deliveries[-1].fire_id
        await clock.advance(timedelta(minutes=3))
        assert len(target.deliveries) == 3, "a process without the lease must not keep firing"
        with sqlite3.connect(path) as raw:
            raw.execute("DELETE FROM lease")
        with anyio.fail_after(10):
            while len(target.deliveries) == 3:  # noqa: ASYNC110 - the lease is polled in real time
                await anyio.sleep(0.05)
        await clock.advance(timedelta(0))
        ids = [d.fire_id for d in target.deliveries]
        assert ids.count(stolen_fire) == 2  # at-least-once, under the same fire id
        history = await ops.history("tick", limit=100)
        fired = [e.fire_id for e in history if e.kind is HistoryKind.FIRED]
        assert stolen_fire in fired
