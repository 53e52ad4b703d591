"""Faults that must never hang, lose or double a fire: a failed commit, a full disk, a target
that lets a foreign cancellation through, huge row ids, damaged rows, locks and read-only stores."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import reventless.local
from reventless import (
    BackendUnavailableError,
    CorruptDataError,
    HistoryKind,
    Minutes,
    Schedule,
    Scheduler,
)
from reventless.clock import Clock
from reventless.local import LocalProvider
from reventless.local._engine import Engine
from reventless.local._rows import Outcome
from reventless.local._store import SqliteStore
from reventless.local._store_runner import StoreRunner
from reventless.scheduler_adapter import MisfirePolicy, RetryPolicy
from reventless.target import FireEnvelope
from reventless.testing import RecordingTarget, VirtualClock

START = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)


class FailingCommitStore(SqliteStore):
    """The store port with one injected fault: the first ``failures`` commits of fire outcomes
    fail as SQLite does when the disk is full (nothing of them is written)."""

    def __init__(self, path: str | Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures
        self.commits = 0

    def commit_outcomes(self, outcome: Outcome, owner: str | None) -> list[int]:
        self.commits += 1
        if self.commits <= self.failures:
            time.sleep(0.05)  # let other workers queue their outcomes behind this flush
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
            raise error
        return super().commit_outcomes(outcome, owner)


@asynccontextmanager
async def provider_on(store: SqliteStore, clock: Clock, **options: Any) -> AsyncIterator[Any]:
    """The local provider over a given store (a fake of the port, for fault injection)."""
    runner = StoreRunner(store)
    engine = Engine(
        runner,
        clock,
        misfire_policy=options.get("misfire_policy", MisfirePolicy.LATEST),
        misfire_grace=timedelta(hours=24),
        retry_policy=RetryPolicy(),
        delivery_timeout=5.0,
        lease_ttl=20.0,
        poll_interval=1.0,
        workers=options.get("workers", 8),
        use_lease=store.path != ":memory:",
    )
    provider = LocalProvider(store, clock, engine, runner)
    try:
        yield provider
    finally:
        await provider._close()
        runner.close()


def fire_ids(names: list[str], at: datetime) -> set[str]:
    return {f"{name}@{at:%Y-%m-%dT%H:%M:%SZ}" for name in names}


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as raw:
        return str(raw.execute("PRAGMA integrity_check").fetchone()[0])


# -- 1. a failed commit ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_failed_commit_ends_run_with_a_typed_error_and_a_new_run_loses_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "full.db"
    names = [f"s{n:03}" for n in range(60)]
    clock = VirtualClock(START)
    store = await anyio.to_thread.run_sync(FailingCommitStore, path, 1)
    target = SlowTarget()
    async with provider_on(store, clock, workers=8) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        await ops.create_schedules([Schedule(name=n, rate=Minutes(1), payload="p") for n in names])
        # run() ends by itself with one typed error (the task group adds its own wrapper).
        full = pytest.RaisesExc(BackendUnavailableError, match="disk is full")
        with anyio.fail_after(20), pytest.RaisesGroup(full):
            async with anyio.create_task_group() as group:
                await group.start(provider.run)
                await clock.advance(timedelta(minutes=2))
                await anyio.sleep_forever()  # run() must end by itself, with the error
    assert integrity(path) == "ok"
    due = fire_ids(names, datetime(2026, 11, 27, 8, 2, tzinfo=UTC))
    # After the fault: every fire of that minute is delivered, with the same fire ids.
    again = RecordingTarget()
    async with reventless.local.provider(path, clock=clock) as provider:
        await Scheduler.make(provider, target=again)
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(0))
            group.cancel_scope.cancel()
    assert due <= {d.fire_id for d in again.deliveries}
    assert store.commits >= 1


class SlowTarget(RecordingTarget):
    """Takes a little real time per delivery, so that workers overlap."""

    async def deliver(self, envelope: FireEnvelope) -> None:
        await anyio.sleep(0.01)
        await super().deliver(envelope)


@contextmanager
def tiny_tmpfs(where: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full disk needs root to mount a 1 MiB tmpfs")
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill_disk(filler: Path) -> None:
    fill = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(OSError, match="No space left"):  # noqa: PT012 - write until full
            while True:
                os.write(fill, b"\0" * 4096)
    finally:
        os.close(fill)


@pytest.mark.anyio
async def test_a_real_full_disk_ends_run_typed_and_nothing_is_lost_once_space_is_freed(
    tmp_path: Path,
) -> None:
    with tiny_tmpfs(tmp_path / "disk") as disk:
        path = disk / "s.db"
        names = [f"s{n:03}" for n in range(200)]
        clock = VirtualClock(START)
        async with reventless.local.provider(path, clock=clock, workers=8) as provider:
            target = SlowTarget()
            ops = (await Scheduler.make(provider, target=target)).operations
            schedules = [Schedule(name=n, rate=Minutes(1), payload="p" * 200) for n in names]
            await ops.create_schedules(schedules)
            with sqlite3.connect(path) as raw:
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next commit must grow it
            filler = disk / "filler"
            full = pytest.RaisesExc(BackendUnavailableError, match="disk is full")
            with anyio.fail_after(30), pytest.RaisesGroup(full):
                async with anyio.create_task_group() as group:
                    await group.start(provider.run)  # leads: the lease is written
                    fill_disk(filler)
                    await clock.advance(timedelta(minutes=2))
                    await anyio.sleep_forever()
            assert target.deliveries  # delivered, but not recorded: they must come again
            filler.unlink()
            assert integrity(path) == "ok"
            # Space is back: a new run() of the same provider goes on with nothing lost.
            async with anyio.create_task_group() as group:
                await group.start(provider.run)
                await clock.advance(timedelta(0))
                group.cancel_scope.cancel()
            history = await ops.history("s000")
        due = fire_ids(names, datetime(2026, 11, 27, 8, 2, tzinfo=UTC))
        delivered = [d.fire_id for d in target.deliveries]
        assert due <= set(delivered)
        assert [entry.kind for entry in history] == [HistoryKind.CREATED, HistoryKind.FIRED]
        assert integrity(path) == "ok"


# -- 2. cancellations and interrupts from a target ------------------------------------------------


class ForeignCancellationTarget(RecordingTarget):
    """The first delivery awaits a future that another task cancels (not the engine)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def deliver(self, envelope: FireEnvelope) -> None:
        self.calls += 1
        if self.calls == 1:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(future.cancel)
            await future
        await super().deliver(envelope)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_a_cancellation_the_engine_did_not_ask_for_is_a_failed_delivery(
    anyio_backend: str,
) -> None:
    target = ForeignCancellationTarget()
    clock = VirtualClock(START)
    async with reventless.local.provider(":memory:", clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(5), payload="p"))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(minutes=6))
            group.cancel_scope.cancel()
        kinds = [entry.kind for entry in await ops.history("tick")]
        history = await ops.history("tick")
    assert kinds == [HistoryKind.CREATED, HistoryKind.FAILED, HistoryKind.FIRED]
    assert "CancelledError" in (history[1].detail or "")
    assert [d.fire_id for d in target.deliveries] == ["tick@2026-11-27T08:06:00Z"]


INTERRUPTED_RUN = """
import os, sys
from datetime import UTC, datetime
import anyio
import reventless.local
from reventless import Minutes, Schedule, Scheduler
from reventless.clock import ScaledClock

class InterruptingTarget:
    async def deliver(self, envelope):
        raise {error}()

async def main():
    # A fast clock instead of a virtual one: run() is awaited alone, in no task group.
    clock = ScaledClock(3600, start=datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC))
    async with reventless.local.provider(":memory:", clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=InterruptingTarget())).operations
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(1), payload="p"))
        with anyio.fail_after(10):
            await provider.run()

try:
    anyio.run(main, backend="{backend}")
except BaseException as exc:
    print(type(exc).__name__, flush=True)
    os._exit(0)  # an interrupted event loop may leave worker threads behind
"""


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("error", ["KeyboardInterrupt", "SystemExit"])
def test_keyboard_interrupt_and_system_exit_leave_run_bare_on_both_backends(
    backend: str, error: str
) -> None:
    """In a real process: the exception itself comes out of run(), not a group holding it."""
    script = INTERRUPTED_RUN.format(error=error, backend=backend)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == error, result.stderr


# -- 4. row ids past 2**33 ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_schedules_with_row_ids_past_two_to_the_33_fire(tmp_path: Path) -> None:
    path = tmp_path / "ids.db"
    clock = VirtualClock(START)
    target = RecordingTarget()
    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        with sqlite3.connect(path) as raw:  # the next row id is this plus one
            raw.execute(
                "INSERT INTO schedules (id, scheduler, name, spec, created_at, seq)"
                " VALUES (?, 'elsewhere', 'x', '{}', 0, 0)",
                (2**40,),
            )
        await ops.create_schedule(Schedule(name="big", rate=Minutes(1), payload="p"))
        with sqlite3.connect(path) as raw:
            assert raw.execute("SELECT id FROM schedules WHERE name = 'big'").fetchone()[0] > 2**40
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(minutes=3))
            group.cancel_scope.cancel()
    assert [d.fire_id for d in target.deliveries] == [
        "big@2026-11-27T08:02:00Z",
        "big@2026-11-27T08:03:00Z",
    ]


# -- 5. damaged rows ----------------------------------------------------------------------------


DAMAGE = {
    "huge": "UPDATE schedules SET next_fire = 4611686018427387904 WHERE name = 'huge'",
    "negative": "UPDATE schedules SET next_fire = -5 WHERE name = 'negative'",
    "text": "UPDATE schedules SET next_fire = 'soon' WHERE name = 'text'",
    "created": "UPDATE schedules SET created_at = 'yesterday' WHERE name = 'created'",
    "spec": "UPDATE schedules SET spec = X'FF00' WHERE name = 'spec'",
}


@pytest.mark.anyio
async def test_damaged_rows_are_quarantined_and_reported_and_the_rest_fire(
    tmp_path: Path,
) -> None:
    path = tmp_path / "damaged.db"
    clock = VirtualClock(START)
    target = RecordingTarget()
    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        for name in ["good", *DAMAGE]:
            await ops.create_schedule(Schedule(name=name, rate=Minutes(1), payload="p"))
        with sqlite3.connect(path) as raw:
            for statement in DAMAGE.values():
                raw.execute(statement)
        page = await ops.list_schedules()  # damaged rows do not fail the page
        assert [s.schedule.name for s in page.schedules] == ["good"]
        assert sorted(d.name for d in page.damaged) == sorted(DAMAGE)
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(minutes=3))
            group.cancel_scope.cancel()
        assert {d.schedule for d in target.deliveries} == {"good"}
        letters = {letter.schedule: letter for letter in await ops.dead_letters()}
        assert set(letters) == set(DAMAGE)
        for letter in letters.values():
            assert letter.reason.startswith("CorruptDataError:")
        for name in DAMAGE:
            history = await ops.history(name)
            assert history[-1].kind is HistoryKind.DEAD_LETTERED
            assert "CorruptDataError" in (history[-1].detail or "")
        with pytest.raises(CorruptDataError, match="'created'"):
            await ops.get_schedule("created")
        assert await ops.delete_schedule("created") is True  # the way out still works


@pytest.mark.parametrize(
    "damage",
    [
        "ALTER TABLE schedules RENAME COLUMN next_fire TO next",
        "ALTER TABLE history DROP COLUMN detail",
    ],
)
def test_a_missing_column_is_corrupt_data_not_a_retriable_error(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "columns.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute(damage)
    with pytest.raises(CorruptDataError, match="lacks column"):
        SqliteStore(path)


# -- 9. locks and read-only stores --------------------------------------------------------------


def test_lock_timeout_means_its_value(tmp_path: Path) -> None:
    path = tmp_path / "lock.db"
    blocker = sqlite3.connect(path, isolation_level=None)

    async def create() -> float:
        async with reventless.local.provider(
            path, clock=VirtualClock(START), lock_timeout=1.0
        ) as provider:
            ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
            blocker.execute("BEGIN EXCLUSIVE")
            began = time.monotonic()
            with pytest.raises(BackendUnavailableError, match="locked"):
                await ops.create_schedule(Schedule(name="x", rate=Minutes(1), payload="p"))
            return time.monotonic() - began

    try:
        waited = anyio.run(create)
    finally:
        blocker.close()
    # It waited for the lock about as long as asked (it used to wait three times as long).
    assert 0.9 <= waited < 2.0, waited


@contextmanager
def read_only_view(folder: Path) -> Iterator[Path]:
    """``folder`` mounted read-only elsewhere (root can write through file modes)."""
    if os.geteuid() != 0 and os.access(folder, os.W_OK):
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    view = folder.with_name(folder.name + "-ro")
    view.mkdir()
    bound = subprocess.run(["mount", "--bind", str(folder), str(view)], check=False)
    if bound.returncode != 0:
        pytest.skip("cannot bind-mount a read-only view here")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_the_cli_reads_a_read_only_store_and_refuses_writes_with_status_1(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    cli = [sys.executable, "-m", "reventless", "schedules"]
    new = ["--new-scheduler"]  # the store and its scheduler are made by this command
    created = subprocess.run(
        [
            *cli,
            "create",
            "nightly",
            "Daily(2, 0)",
            "--payload",
            "p",
            "--db",
            str(folder / "s.db"),
            *new,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    with read_only_view(folder) as view:
        db = str(view / "s.db")
        for action in (["list"], ["show", "nightly"], ["history", "nightly"]):
            result = subprocess.run(
                [*cli, *action, "--db", db], capture_output=True, text=True, check=False
            )
            assert result.returncode == 0, result.stderr
            assert "nightly" in result.stdout or "created" in result.stdout
        write = subprocess.run(
            [*cli, "create", "x", "Daily(2, 0)", "--payload", "p", "--db", db],
            capture_output=True,
            text=True,
            check=False,
        )
        assert write.returncode == 1, write.stderr
        assert (
            write.stderr.startswith("reventless: error: store") and "Traceback" not in write.stderr
        )


# -- 3. catch-up after downtime -------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_day_of_downtime_of_a_thousand_minute_schedules_is_caught_up_in_short_steps(
    tmp_path: Path,
) -> None:
    """1,000 Minutes(1) schedules, 24 h down: one delivery each under `latest`, a few history
    rows each (not one per missed minute), and no long stall of the event loop."""
    path = tmp_path / "catchup.db"
    names = [f"m{n:04}" for n in range(1000)]
    clock = VirtualClock(START)
    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        await ops.create_schedules([Schedule(name=n, rate=Minutes(1), payload="p") for n in names])
    clock = VirtualClock(START + timedelta(hours=24))
    target = RecordingTarget()
    longest = 0.0

    async def watch_loop() -> None:
        nonlocal longest
        while True:
            began = time.monotonic()
            await anyio.sleep(0.005)
            longest = max(longest, time.monotonic() - began - 0.005)

    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        async with anyio.create_task_group() as group:
            group.start_soon(watch_loop)
            await group.start(provider.run)
            await clock.advance(timedelta(0))
            group.cancel_scope.cancel()
        history = await ops.history("m0500")
    assert len(target.deliveries) == 1000
    kinds = [entry.kind for entry in history]
    assert kinds == [HistoryKind.CREATED, HistoryKind.FIRED, HistoryKind.MISSED]
    assert history[1].fire_id == "m0500@2026-11-28T08:00:00Z"  # the latest due instant
    assert (history[2].detail or "").startswith(
        "1438 fires from m0500@2026-11-27T08:02:00Z to m0500@2026-11-28T07:59:00Z"
    )
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM history").fetchone()[0] == 3000
    # A regression guard, not a benchmark: before, one step took 27 s on this workload.
    assert longest < 1.0, f"the event loop stalled for {longest:.3f} s"
    print(f"longest event-loop stall during the catch-up: {longest * 1000:.1f} ms")


def test_connections_opening_one_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Switching a new file to WAL is answered BUSY at once while another connection opens it;
    the open waits that out within lock_timeout instead of failing."""
    failures: list[BaseException] = []

    def open_store(path: Path, start: threading.Barrier) -> None:
        start.wait()
        try:
            SqliteStore(path, lock_timeout=10).conn.close()
        except BaseException as exc:
            failures.append(exc)

    for attempt in range(15):
        start = threading.Barrier(6)
        path = tmp_path / f"new-{attempt}.db"
        threads = [threading.Thread(target=open_store, args=(path, start)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
