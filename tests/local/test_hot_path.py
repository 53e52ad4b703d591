"""What the engine's fast paths must keep: a hung target times out (one watchdog, not a timer per
delivery), stored rows are decoded without create-time validation yet damage is caught, a due
row fires whichever of its index entries brings it up, a Single's fire and completion are one
row, the change poller does not index this process's writes twice, the due index loads in
chunks, and concurrent creates share transactions."""

from __future__ import annotations

import sqlite3
import struct
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import reventless.local
import reventless.local._engine
import reventless.local._store_runner
from reventless import (
    BackendUnavailableError,
    CorruptDataError,
    HistoryKind,
    Hours,
    Minutes,
    Schedule,
    Scheduler,
    Single,
    Weekdays,
)
from reventless.clock import ScaledClock
from reventless.local._group_commit import GroupCommit
from reventless.local._rows import (
    Advance,
    ChangeMark,
    Complete,
    Outcome,
    decode_stored,
    to_us,
)
from reventless.local._store import SqliteStore
from reventless.local._store_runner import StoreRunner
from reventless.target import FireEnvelope
from reventless.testing import HangingTarget, RecordingTarget, VirtualClock

pytestmark = pytest.mark.anyio
START = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)
NINE = Single(2026, 11, 27, 9, 0)


def engine_of(provider: Any) -> Any:
    return provider._engine


# -- the watchdog ---------------------------------------------------------------------------------


async def test_a_hung_delivery_is_cut_off_also_while_run_stops(tmp_path: Path) -> None:
    target = HangingTarget(hang_on=frozenset({"stuck"}))
    clock = VirtualClock(START)
    async with reventless.local.provider(
        tmp_path / "w.db", clock=clock, delivery_timeout=0.3
    ) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        await ops.create_schedule(Schedule(name="stuck", rate=NINE, payload="p"))
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                await group.start(provider.run)
                group.start_soon(clock.advance, timedelta(hours=1))
                while target.started == 0:  # noqa: ASYNC110 - a test's plain wait
                    await anyio.sleep(0.01)
                began = time.monotonic()
                group.cancel_scope.cancel()  # a graceful stop while the delivery hangs
        assert time.monotonic() - began < 2
        history = await ops.history("stuck")
    failed = [entry for entry in history if entry.kind is HistoryKind.FAILED]
    assert len(failed) == 1 and "timed out after 0.3 s" in (failed[0].detail or "")


async def test_deliveries_after_a_timed_out_one_in_the_same_chunk_are_delivered() -> None:
    target = HangingTarget(hang_on=frozenset({"a-stuck"}))
    clock = VirtualClock(START)
    # One worker: every due fire is in one chunk, the hanging one first (lowest row id).
    async with reventless.local.provider(
        ":memory:", clock=clock, delivery_timeout=0.2, workers=1
    ) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        names = ["a-stuck", *(f"b-{number}" for number in range(5))]
        for name in names:
            await ops.create_schedule(Schedule(name=name, rate=NINE, payload="p"))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            with anyio.fail_after(10):
                await clock.advance(timedelta(hours=1))
            group.cancel_scope.cancel()
        assert {d.schedule for d in target.deliveries} == set(names[1:])
        for name in names[1:]:
            kinds = [entry.kind for entry in await ops.history(name)]
            assert kinds == [HistoryKind.CREATED, HistoryKind.FIRED, HistoryKind.COMPLETED]


class SwallowingTarget(RecordingTarget):
    """Swallows the cut-off of its slow delivery of 'a-slow' and returns as if delivered."""

    async def deliver(self, envelope: FireEnvelope) -> None:
        if envelope.schedule == "a-slow":
            try:
                await anyio.sleep(5)
            except anyio.get_cancelled_exc_class():
                pass
        await super().deliver(envelope)


async def test_a_target_that_swallows_the_cut_off_does_not_cut_off_the_next_delivery() -> None:
    target = SwallowingTarget()
    clock = VirtualClock(START)
    async with reventless.local.provider(
        ":memory:", clock=clock, delivery_timeout=0.2, workers=1
    ) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        for name in ["a-slow", "b-next", "c-next"]:
            await ops.create_schedule(Schedule(name=name, rate=NINE, payload="p"))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            with anyio.fail_after(10):
                await clock.advance(timedelta(hours=1))
            group.cancel_scope.cancel()
        assert [d.schedule for d in target.deliveries] == ["a-slow", "b-next", "c-next"]
        for name in ["b-next", "c-next"]:
            kinds = [entry.kind for entry in await ops.history(name)]
            assert kinds == [HistoryKind.CREATED, HistoryKind.FIRED, HistoryKind.COMPLETED]


# -- decoding stored rows -------------------------------------------------------------------------


def test_a_stored_schedule_decodes_to_the_schedule_that_was_stored() -> None:
    for schedule in [
        Schedule(name="a", rate=Minutes(5), payload='{"x": 1}'),
        Schedule(name="b", rate=Weekdays(17, 0), payload="p", timezone="Europe/Berlin"),
        Schedule(name="c", rate=NINE, payload="é", timezone="America/New_York"),
        Schedule(name="d", rate=Minutes(5), payload="p", misfire="all"),
        Schedule(
            name="e",
            rate=Minutes(5),
            payload="p",
            not_before=datetime(2027, 1, 1, tzinfo=UTC),
            not_after=datetime(2027, 2, 1, tzinfo=UTC),
        ),
    ]:
        timing, payload, misfire = decode_stored(schedule.to_json(), "default", schedule.name)
        assert (timing.rate, timing.timezone, payload, misfire) == (
            schedule.rate,
            schedule.timezone,
            schedule.payload,
            schedule.misfire,
        )
        assert (timing.not_before, timing.not_after) == (schedule.not_before, schedule.not_after)


SPEC = b'{"name":"x","rate":{"kind":"minutes","n":5},"payload":"p","timezone":"UTC"}'
GAP = (
    b'{"name":"x","rate":{"kind":"single","year":2026,"month":3,"day":29,"hour":2,"minute":30},'
    b'"payload":"p","timezone":"Europe/Berlin"}'
)


@pytest.mark.parametrize(
    "spec",
    [
        b"\xff\x00",
        b'{"name": 1}',
        SPEC.replace(b'"n":5', b'"n":0'),  # out of range
        SPEC.replace(b'"n":5', b'"n":"5"'),
        SPEC.replace(b'"minutes"', b'"fortnightly"'),
        SPEC.replace(b'"name":"x"', b'"name":"y"'),  # not the row's name
        SPEC.replace(b'"UTC"', b'"Mars/Base"'),
        SPEC.replace(b'"p"', b'""'),
        SPEC.replace(b'{"name"', b'{"extra":1,"name"'),
        GAP,  # a Single in Berlin's spring-forward gap
        SPEC.replace(b'"kind":"minutes","n":5', b'"kind":"daily","hour":24,"minute":0'),
    ],
)
def test_damage_to_a_stored_schedule_is_caught_without_create_time_validation(
    spec: bytes,
) -> None:
    with pytest.raises(CorruptDataError, match="'x' of scheduler 'default'"):
        decode_stored(spec, "default", "x")


async def test_a_row_with_a_damaged_spec_is_quarantined_and_the_others_fire(
    tmp_path: Path,
) -> None:
    path = tmp_path / "d.db"
    target = RecordingTarget()
    clock = VirtualClock(START)
    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        for name in ["good", "bad"]:
            await ops.create_schedule(Schedule(name=name, rate=Minutes(1), payload="p"))
        with sqlite3.connect(path) as raw:
            raw.execute("UPDATE schedules SET spec = replace(spec, '\"n\":1', '\"n\":0')")
            raw.execute(
                "UPDATE schedules SET spec = replace(spec, '\"n\":0', '\"n\":1')"
                " WHERE name = 'good'"
            )
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(minutes=3))
            group.cancel_scope.cancel()
        assert {d.schedule for d in target.deliveries} == {"good"}
        [letter] = await ops.dead_letters()
        assert letter.schedule == "bad" and "cannot be decoded" in letter.reason


# -- the due index ------------------------------------------------------------------------------


async def test_a_due_row_fires_whichever_of_its_entries_brings_it_up() -> None:
    """Replaced with an earlier first fire, a schedule has a stale later entry too. When the
    engine is behind, both are due in one step: the row must fire, not be taken for stale."""
    target = RecordingTarget()
    clock = ScaledClock(600, start=START)  # ten simulated minutes a real second
    async with reventless.local.provider(":memory:", clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await ops.create_schedule(Schedule(name="x", rate=Minutes(3), payload="p"))
            await ops.create_schedule(Schedule(name="x", rate=Minutes(1), payload="p"))
            # Busy elsewhere for five simulated minutes: both entries fall due meanwhile.
            time.sleep(0.5)  # noqa: ASYNC251 - blocks the loop on purpose
            await anyio.sleep(0.3)
            group.cancel_scope.cancel()
    assert target.for_schedule("x"), "the schedule never fired"


async def test_schedules_created_while_the_engine_runs_are_indexed_once(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    async with reventless.local.provider(
        tmp_path / "p.db", clock=clock, poll_interval=0.05
    ) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await ops.create_schedules(
                [Schedule(name=f"s{number}", rate=Minutes(5), payload="p") for number in range(40)]
            )
            for number in range(10):
                await ops.create_schedule(Schedule(name=f"t{number}", rate=Hours(1), payload="p"))
            await anyio.sleep(0.3)  # several polls of the change poller
            assert len(engine_of(provider)._index) == 50
            group.cancel_scope.cancel()


async def test_writes_of_another_process_are_still_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    clock = VirtualClock(START)
    target = RecordingTarget()
    async with reventless.local.provider(path, clock=clock, poll_interval=0.05) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await ops.create_schedule(Schedule(name="mine", rate=Minutes(1), payload="p"))
            # Another process's provider on the same file (it does not run the engine).
            async with reventless.local.provider(path, clock=clock) as other:
                theirs = (await Scheduler.make(other, target=RecordingTarget())).operations
                await theirs.create_schedule(Schedule(name="theirs", rate=Minutes(1), payload="p"))
            await anyio.sleep(0.3)
            await clock.advance(timedelta(minutes=2))
            group.cancel_scope.cancel()
    assert {d.schedule for d in target.deliveries} == {"mine", "theirs"}


async def test_writes_of_another_process_are_picked_up_after_retention_emptied_the_history(
    tmp_path: Path,
) -> None:
    """The change poll reads the history by id; once retention empties it, ids start over
    below where the poll stood, and the poll must read them all the same."""
    path = tmp_path / "e.db"
    clock = VirtualClock(START)
    target = RecordingTarget()
    async with reventless.local.provider(path, clock=clock, poll_interval=0.05) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        for name in ("gone", "went", "left"):
            await ops.create_schedule(Schedule(name=name, rate=Minutes(1), payload="p"))
            await ops.delete_schedule(name)  # six history entries, then none to fire
        await clock.advance(timedelta(days=2))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await anyio.sleep(0.2)  # the poll stands at the sixth entry
            # Another process prunes, then creates, with no poll in between (no await here).
            other = SqliteStore(path)
            assert other.prune_history(to_us(clock.now()) - 3_600_000_000, None, 100) == 6
            for number in range(8):  # ids 1 to 8: past where the poll stood
                schedule = Schedule(name=f"theirs{number}", rate=Minutes(1), payload="p")
                other.put_many("default", [schedule], clock.now())
            other.close()
            await anyio.sleep(0.3)
            await clock.advance(timedelta(minutes=2))
            group.cancel_scope.cancel()
    assert {d.schedule for d in target.deliveries} == {f"theirs{number}" for number in range(8)}


def test_the_change_poll_reads_the_history_from_its_mark_on_not_every_schedule(
    tmp_path: Path,
) -> None:
    """Left to itself, SQLite may scan ``schedules`` and look each row up in the history: a
    million rows read at every poll. The poll reads the history's new entries by id instead."""
    store = SqliteStore(tmp_path / "plan.db")
    try:
        store.put_many("default", [Schedule(name="s", rate=Minutes(5), payload="p")], START)
        calls: list[str] = []
        store.conn.set_trace_callback(calls.append)
        store.changes_since(ChangeMark(0, 0))
        store.conn.set_trace_callback(None)
        (select,) = [call for call in calls if "JOIN" in call]
        plan = [row[3] for row in store.conn.execute(f"EXPLAIN QUERY PLAN {select}")]
    finally:
        store.close()
    assert plan[0].startswith("SEARCH h USING INTEGER PRIMARY KEY (rowid>?)"), plan
    assert plan[1].startswith("SEARCH s USING INDEX"), plan


async def test_a_single_create_writes_four_pages(tmp_path: Path) -> None:
    """The schedule's row and its name index, the history entry and its index: no change
    counter (schema version 1 wrote six)."""
    path = tmp_path / "pages.db"
    async with reventless.local.provider(path, clock=VirtualClock(START)) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        for number in range(20):
            await ops.create_schedule(Schedule(name=f"s{number:02d}", rate=Minutes(5), payload="p"))
        wal = anyio.Path(f"{path}-wal")
        before = (await wal.stat()).st_size
        await ops.create_schedule(Schedule(name="s20", rate=Minutes(5), payload="p"))
        with sqlite3.connect(path) as raw:
            page_size = raw.execute("PRAGMA page_size").fetchone()[0]
        raw.close()
        assert ((await wal.stat()).st_size - before) / (page_size + 24) == 4


async def test_the_due_index_loads_in_chunks_and_every_row_fires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reventless.local._engine, "_LOAD_CHUNK", 7)
    path = tmp_path / "c.db"
    clock = VirtualClock(START)
    target = RecordingTarget()
    names = [f"s{number:02d}" for number in range(30)]
    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        await ops.create_schedules([Schedule(name=n, rate=NINE, payload="p") for n in names])
        with sqlite3.connect(path) as raw:  # damaged rows among them, in several chunks
            raw.execute("UPDATE schedules SET next_fire = 'soon' WHERE name IN ('s03', 's20')")
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(hours=1))
            group.cancel_scope.cancel()
        healthy = set(names) - {"s03", "s20"}
        assert {d.schedule for d in target.deliveries} == healthy
        assert {letter.schedule for letter in await ops.dead_letters()} == {"s03", "s20"}


# -- history ----------------------------------------------------------------------------------


async def test_a_single_that_fired_is_one_history_row_read_as_fired_then_completed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.db"
    clock = VirtualClock(START)
    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        await ops.create_schedule(Schedule(name="once", rate=NINE, payload="p"))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(hours=1))
            group.cancel_scope.cancel()
        history = await ops.history("once")
        assert [entry.kind for entry in history] == [
            HistoryKind.CREATED,
            HistoryKind.FIRED,
            HistoryKind.COMPLETED,
        ]
        assert history[1].fire_id == "once@2026-11-27T09:00:00Z"
        assert history[2].fire_id is None and history[1].at == history[2].at
        assert [entry.kind for entry in await ops.history("once", limit=1)] == [
            HistoryKind.COMPLETED
        ]
        assert [entry.kind for entry in await ops.history("once", limit=2)] == [
            HistoryKind.FIRED,
            HistoryKind.COMPLETED,
        ]
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM history").fetchone()[0] == 2


# -- concurrent creates ---------------------------------------------------------------------------


def seq_of(path: Path) -> int:
    """The transactions committed to the store's WAL since it last started over: its commit
    frames (a frame header's second word is the file's size in pages after a commit, else 0)
    whose salts are the WAL header's (older frames left past a restart have other salts)."""
    wal = Path(f"{path}-wal").read_bytes()
    if len(wal) < 32:
        return 0
    page_size = struct.unpack(">I", wal[8:12])[0]
    salts = wal[16:24]
    commits = 0
    for start in range(32, len(wal) - 24 + 1, page_size + 24):
        header = wal[start : start + 24]
        if header[8:16] != salts:
            break
        commits += struct.unpack(">I", header[4:8])[0] != 0
    return commits


async def test_concurrent_creates_share_transactions_and_each_gets_its_outcome(
    tmp_path: Path,
) -> None:
    path = tmp_path / "g.db"
    async with reventless.local.provider(path, clock=VirtualClock(START)) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        await ops.create_schedule(Schedule(name="s00", rate=Minutes(1), payload="p"))
        before = seq_of(path)
        outcomes: dict[str, Any] = {}

        async def create(name: str) -> None:
            outcomes[name] = await ops.create_schedule(
                Schedule(name=name, rate=Minutes(2), payload=name)
            )

        async with anyio.create_task_group() as group:
            for number in range(100):
                group.start_soon(create, f"s{number:02d}")
        assert seq_of(path) - before < 50  # one transaction per flush, not per create
        assert outcomes.pop("s00").value == "replaced"
        assert {outcome.value for outcome in outcomes.values()} == {"created"}
        page = await ops.list_schedules(limit=1000)
        assert len(page.schedules) == 100
        assert all(state.schedule.payload == state.schedule.name for state in page.schedules)


async def test_callers_creating_one_name_at_once_get_created_then_replaced() -> None:
    async with reventless.local.provider(":memory:", clock=VirtualClock(START)) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        outcomes: list[str] = []

        async def create(payload: str) -> None:
            schedule = Schedule(name="same", rate=Minutes(1), payload=payload)
            outcomes.append((await ops.create_schedule(schedule)).value)

        async with anyio.create_task_group() as group:
            for payload in ["a", "b", "c"]:
                group.start_soon(create, payload)
        assert sorted(outcomes) == ["created", "replaced", "replaced"]
        kinds = [entry.kind for entry in await ops.history("same")]
        assert kinds == [HistoryKind.CREATED, HistoryKind.REPLACED, HistoryKind.REPLACED]
        assert (await ops.get_schedule("same")).version == 3


async def test_a_failed_group_of_creates_fails_its_callers_and_the_next_create_works(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.db"
    async with reventless.local.provider(
        path, clock=VirtualClock(START), lock_timeout=0.05
    ) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        failures: list[BaseException] = []

        async def create(name: str) -> None:
            try:
                await ops.create_schedule(Schedule(name=name, rate=Minutes(1), payload="p"))
            except BackendUnavailableError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as group:
            for number in range(10):
                group.start_soon(create, f"s{number}")
        blocker.execute("ROLLBACK")
        blocker.close()
        assert len(failures) == 10
        await ops.create_schedule(Schedule(name="after", rate=Minutes(1), payload="p"))
        assert [state.schedule.name for state in (await ops.list_schedules()).schedules] == [
            "after"
        ]


async def test_a_group_commit_flush_is_not_cancelled_with_its_flusher() -> None:
    flushed: list[list[int]] = []
    release = anyio.Event()

    async def flush(items: list[int]) -> list[int]:
        await release.wait()
        flushed.append(sorted(items))
        return items

    commit: GroupCommit[int, int] = GroupCommit(flush, sticky=False)
    results: list[int] = []
    flusher = anyio.CancelScope()

    async def submit(item: int, scope: anyio.CancelScope) -> None:
        with scope:
            results.append(await commit.submit(item))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(submit, 1, flusher)  # becomes the flusher
            await anyio.sleep(0.05)
            group.start_soon(submit, 2, anyio.CancelScope())
            group.start_soon(submit, 3, anyio.CancelScope())
            await anyio.sleep(0.05)
            flusher.cancel()  # its caller gives up: the flush carries the others' items too
            await anyio.sleep(0.05)
            release.set()
    assert flushed == [[1], [2, 3]]  # item 1 was written all the same; 2 and 3 after it
    # The flusher's own call returns its result: the write it waited for was done (its
    # cancellation shows at its next checkpoint, not by hiding a write that happened).
    assert sorted(results) == [1, 2, 3]


# -- fire bookkeeping ------------------------------------------------------------------------------


def test_fire_bookkeeping_changes_only_the_version_that_was_planned(tmp_path: Path) -> None:
    """Advances and completions are written grouped by value and version; a row replaced
    since it was planned (a newer version) is left alone, in either form."""
    store = SqliteStore(tmp_path / "b.db")
    try:
        names = [f"s{number:04d}" for number in range(1200)]
        made = store.put_many(
            "default", [Schedule(name=n, rate=Minutes(1), payload="p") for n in names], START
        )
        ids = {name: row_id for name, (row_id, _, _) in zip(names, made, strict=True)}
        replaced = ["s0003", "s1100"]  # now at version 2
        store.put_many(
            "default", [Schedule(name=n, rate=Minutes(2), payload="p") for n in replaced], START
        )
        complete = names[1000:1150]
        outcome = Outcome()
        outcome.advance = [Advance(7_000_000, ids[n], 1) for n in names[:1000]]
        outcome.advance.append(Advance(8_000_000, ids["s1150"], 1))  # a value of its own
        outcome.complete = [Complete(ids[n], 1) for n in complete]
        store.commit_outcomes(outcome, None)
        rows = dict(store.conn.execute("SELECT name, next_fire FROM schedules").fetchall())
    finally:
        store.close()
    assert all(rows[n] == 7_000_000 for n in names[:1000] if n not in replaced)
    assert rows["s1150"] == 8_000_000
    assert rows["s0003"] != 7_000_000  # replaced since: not advanced
    assert set(complete) - set(rows) == set(complete) - {"s1100"}  # deleted, but the replaced
    assert "s1100" in rows


# -- the store runner -----------------------------------------------------------------------------


async def test_a_cancelled_caller_waits_for_its_store_call_to_finish() -> None:
    """As anyio's abandon_on_cancel=False, on asyncio as on trio: a store call handed to the
    store thread completes before its cancelled caller goes on (nothing runs on a closed store)."""
    runner = StoreRunner(SqliteStore(":memory:"))
    finished: list[float] = []

    def slow() -> None:
        time.sleep(0.3)
        finished.append(time.monotonic())

    try:
        with anyio.CancelScope() as scope:
            scope.deadline = anyio.current_time() + 0.05  # cancelled while the call runs
            await runner.call(slow)
        assert finished, "the caller went on while its store call was still running"
    finally:
        await anyio.to_thread.run_sync(runner.close)


# -- brief store calls on the event loop's thread ------------------------------------------------


async def test_a_brief_create_meeting_another_process_lock_waits_in_the_thread_not_the_loop(
    tmp_path: Path,
) -> None:
    """A create that finds the write lock taken by another process is not waited out on the
    event loop's thread (no busy wait there): the loop keeps running, and the create succeeds
    once the lock is released, within lock_timeout."""
    path = tmp_path / "l.db"
    async with reventless.local.provider(path, clock=VirtualClock(START)) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        await ops.create_schedule(Schedule(name="first", rate=Minutes(1), payload="p"))
        holder = await anyio.open_process(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys, time\n"
                f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
                "c.execute('BEGIN IMMEDIATE')\n"
                "print('locked', flush=True)\n"
                "time.sleep(0.6)\n"
                "c.execute('COMMIT')\n",
            ]
        )
        assert holder.stdout is not None
        assert (await holder.stdout.receive()).strip() == b"locked"
        gaps: list[float] = []
        created = anyio.Event()

        async def tick() -> None:
            last = time.monotonic()
            while not created.is_set():
                await anyio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        began = time.monotonic()
        async with anyio.create_task_group() as group:
            group.start_soon(tick)
            await ops.create_schedule(Schedule(name="second", rate=Minutes(1), payload="p"))
            created.set()
        waited = time.monotonic() - began
        await holder.wait()
        assert waited > 0.3, "the create did not meet the other process's lock"
        assert max(gaps) < 0.2, f"the event loop stalled for {max(gaps):.3f} s"
        names = [state.schedule.name for state in (await ops.list_schedules()).schedules]
        assert names == ["first", "second"]


async def test_a_brief_call_waits_for_a_store_call_under_way_in_the_thread() -> None:
    """The connection is the thread's while a call is under way there: a brief call then goes
    to the thread too, after it (never two uses of one connection at once)."""
    runner = StoreRunner(SqliteStore(":memory:"))
    order: list[str] = []

    def slow() -> None:
        time.sleep(0.2)
        order.append("slow")

    def brief() -> None:
        order.append("brief")

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(runner.call, slow)
            await anyio.sleep(0.05)  # the slow call is in the thread now
            await runner.call_brief(brief)
        assert order == ["slow", "brief"]
        await runner.call_brief(brief)  # the thread is idle: on this thread, at once
        assert order == ["slow", "brief", "brief"]
    finally:
        await anyio.to_thread.run_sync(runner.close)


async def test_single_creates_keep_the_write_ahead_log_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Brief writes do not checkpoint on the loop's thread; the background checkpoints and the
    step that finishes them between two writes keep the WAL from growing without end."""
    monkeypatch.setattr(reventless.local._store_runner, "_CHANGES_PER_CHECKPOINT", 120)
    path = tmp_path / "b.db"
    async with reventless.local.provider(path, clock=VirtualClock(START)) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        sizes = []
        for number in range(1600):
            await ops.create_schedule(Schedule(name=f"s{number:04d}", rate=Minutes(1), payload="p"))
            if number % 100 == 99:
                await anyio.sleep(0.05)  # a background pass may be under way: let it end
                sizes.append((await anyio.Path(f"{path}-wal").stat()).st_size)
        # About 25 KB of WAL per create; with the background passes alone (not finished
        # between writes) it grew past 5 MB here, and it stays near 2 MB with them.
        assert max(sizes) < 4_000_000, sizes
        assert (await ops.get_schedule("s1599")).version == 1


async def test_a_brief_call_on_a_full_disk_raises_the_typed_error_and_writes_nothing(
    tmp_path: Path,
) -> None:
    """SQLITE_FULL in a brief call on the loop's thread: the typed error, the transaction rolled
    back, and the connection's busy timeout the provider's for the next call in the store's
    thread (brief calls leave it at 0 until then: see StoreRunner._wait_for_locks)."""
    store = SqliteStore(tmp_path / "full.db", lock_timeout=2.5)
    runner = StoreRunner(store)

    def write_then_fill_up() -> None:
        with store.transaction():
            store.conn.execute("INSERT INTO meta VALUES ('probe', 1)")
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
            raise error

    try:
        with pytest.raises(BackendUnavailableError, match="the disk is full"):
            await runner.call_brief(write_then_fill_up)
        assert (
            store.conn.execute("SELECT count(*) FROM meta WHERE key = 'probe'").fetchone()[0] == 0
        )
        busy_timeout = await runner.call(
            lambda: store.conn.execute("PRAGMA busy_timeout").fetchone()[0]
        )
        assert busy_timeout == 2500
        assert not store.conn.in_transaction
    finally:
        await anyio.to_thread.run_sync(runner.close)
