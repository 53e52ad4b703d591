"""Stores written by every earlier schema open, read and upgrade (``reventless.local._schema``).

The files in ``tests/local/stores`` were written by the commits they are named after, with
``tests/local/stores/make_store.py`` (two schedules, one deleted, one paused, two fires of the
interval one and, where the release had an event log, three commands with message ids).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

import reventless.local
from reventless import Daily, HistoryKind, Schedule, Scheduler
from reventless.errors import CorruptDataError, ValidationError
from reventless.local._schema import _TABLES
from reventless.testing import RecordingTarget, VirtualClock

STORES = Path(__file__).parent / "stores"
# commit -> (its event log's rows: (aggregate_id, version, message_id); handled rows, by stream)
ERAS = {
    "f535b30": None,  # the scheduler's tables only
    "f5fd13f": (  # message ids per aggregate: c-2's m-1 was taken for a repeat of c-1's
        [("c-1", 1, "m-1"), ("c-1", 2, "m-2")],
        [("c-1", "m-1"), ("c-1", "m-2")],
    ),
    "643206d": (  # the same, with the attachments table
        [("c-1", 1, "m-1"), ("c-1", 2, "m-2")],
        [("c-1", "m-1"), ("c-1", "m-2")],
    ),
    "4aca9f3": (  # message ids per stream
        [("c-1", 1, "m-1"), ("c-1", 2, "m-2"), ("c-2", 1, "m-1")],
        [("c-1", "m-1"), ("c-1", "m-2"), ("c-2", "m-1")],
    ),
    "073af3a": (  # with the reactions' tables; schedules without the pause's columns
        [("c-1", 1, "m-1"), ("c-1", 2, "m-2"), ("c-2", 1, "m-1")],
        [("c-1", "m-1"), ("c-1", "m-2"), ("c-2", "m-1")],
    ),
    "4e7c96f": (  # with the pause's columns: the last schema with the change counter in meta
        [("c-1", 1, "m-1"), ("c-1", 2, "m-2"), ("c-2", 1, "m-1")],
        [("c-1", "m-1"), ("c-1", "m-2"), ("c-2", "m-1")],
    ),
}
# The eras whose schedules have the pause's columns (who paused, when, why).
WITH_PAUSE_COLUMNS = {"4e7c96f"}
PAUSE_COLUMNS = {"paused_at", "paused_by", "pause_reason"}
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # make_store.py's start
FIRED = ["tick@2026-01-05T08:05:00Z", "tick@2026-01-05T08:10:00Z"]


def _copy(commit: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{commit}.db"
    shutil.copyfile(STORES / f"schema-{commit}.db", path)
    return path


def _schema_of(path: Path) -> set[tuple[str, str]]:
    """Each table's and index's statement, spaces and quotes aside (a renamed table is quoted)."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")
        found = {
            (name, " ".join(sql.replace("IF NOT EXISTS ", "").replace('"', "").split()))
            for name, sql in rows
        }
    conn.close()
    return found


async def _read(path: Path, *, read_only: bool) -> tuple[list[str], list[str], list[tuple]]:
    async with reventless.local.provider(path, read_only=read_only) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        names = [s.schedule.name for s in (await ops.list_schedules()).schedules]
        fired = [e.fire_id for e in await ops.history("tick") if e.kind is HistoryKind.FIRED]
        events = await provider.event_log().read_all()
        assert await provider.reactions().statuses() == []
        return names, fired, [(e.aggregate_id, e.version, e.message_id) for e in events]


@pytest.mark.parametrize("commit", sorted(ERAS))
def test_an_older_store_reads_as_it_was_written_also_read_only(commit: str, tmp_path: Path) -> None:
    path = _copy(commit, tmp_path)
    before = _schema_of(path)
    events = [] if ERAS[commit] is None else ERAS[commit][0]
    assert anyio.run(lambda: _read(path, read_only=True)) == (["report", "tick"], FIRED, events)
    assert _schema_of(path) == before  # a read-only open writes nothing
    assert anyio.run(lambda: _read(path, read_only=False)) == (["report", "tick"], FIRED, events)


@pytest.mark.parametrize("commit", sorted(ERAS))
def test_an_older_store_upgrades_to_the_schema_of_a_new_one(commit: str, tmp_path: Path) -> None:
    path = _copy(commit, tmp_path)
    anyio.run(lambda: _read(path, read_only=False))
    new = tmp_path / "new.db"
    anyio.run(lambda: _read(new, read_only=False))
    assert _schema_of(path) == _schema_of(new)
    assert {name for name, _ in _schema_of(new)} >= set(_TABLES)


@pytest.mark.parametrize("commit", [c for c in sorted(ERAS) if ERAS[c] is not None])
def test_message_ids_handled_before_the_upgrade_stay_handled_for_their_streams(
    commit: str, tmp_path: Path
) -> None:
    path = _copy(commit, tmp_path)

    async def handled() -> list[tuple[str, str]]:
        async with reventless.local.provider(path) as provider:
            log = provider.event_log()
            return [
                (stream, message)
                for stream in ("c-1", "c-2", "c-3")
                for message in ("m-1", "m-2", "m-3")
                if await log.was_handled("counters", stream, message)
            ]

    assert anyio.run(handled) == ERAS[commit][1]


@pytest.mark.parametrize("commit", sorted(ERAS))
def test_an_upgraded_store_fires_on_where_it_stopped(commit: str, tmp_path: Path) -> None:
    path = _copy(commit, tmp_path)

    async def run_on() -> list[str]:
        clock = VirtualClock(T0 + timedelta(minutes=11))
        target = RecordingTarget()
        async with reventless.local.provider(path, clock=clock) as provider:
            ops = (await Scheduler.make(provider, target=target)).operations
            async with anyio.create_task_group() as group:
                await group.start(provider.run)
                await clock.advance(timedelta(minutes=10))
                group.cancel_scope.cancel()
            fired = [e.fire_id for e in await ops.history("tick") if e.kind is HistoryKind.FIRED]
        assert [e.fire_id for e in target.deliveries] == fired[2:]
        return fired

    assert anyio.run(run_on) == [*FIRED, "tick@2026-01-05T08:15:00Z", "tick@2026-01-05T08:20:00Z"]


def _columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        found = {str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")}
    conn.close()
    return found


async def _pause_of(path: Path, *, read_only: bool) -> tuple[object, ...]:
    """The stored pause of ``report`` (paused by make_store.py), read and listed."""
    async with reventless.local.provider(path, read_only=read_only) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        state = await ops.get_schedule("report")
        listed = {s.schedule.name: s for s in (await ops.list_schedules()).schedules}
        assert listed["report"] == state
        return state.paused, state.paused_at, state.paused_by, state.pause_reason


@pytest.mark.parametrize("commit", sorted(set(ERAS) - WITH_PAUSE_COLUMNS))
def test_a_schedule_paused_before_pauses_kept_a_reason_reads_paused_with_none_known(
    commit: str, tmp_path: Path
) -> None:
    path = _copy(commit, tmp_path)
    assert not PAUSE_COLUMNS & _columns(path, "schedules")
    assert anyio.run(lambda: _pause_of(path, read_only=True)) == (True, None, None, None)
    assert not PAUSE_COLUMNS & _columns(path, "schedules")  # a read-only open adds nothing
    assert anyio.run(lambda: _pause_of(path, read_only=False)) == (True, None, None, None)
    assert _columns(path, "schedules") >= PAUSE_COLUMNS  # opened for writing: upgraded


@pytest.mark.parametrize("commit", sorted(ERAS))
def test_an_upgraded_store_keeps_who_paused_when_and_why(commit: str, tmp_path: Path) -> None:
    path = _copy(commit, tmp_path)
    clock = VirtualClock(T0 + timedelta(minutes=11))

    async def pause_again() -> None:
        async with reventless.local.provider(path, clock=clock) as provider:
            ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
            await ops.resume_schedule("report")
            await ops.pause_schedule("report", reason="audit of <the> report", by="ana")

    anyio.run(pause_again)
    expected = (True, clock.now(), "ana", "audit of <the> report")
    assert anyio.run(lambda: _pause_of(path, read_only=True)) == expected


def test_a_reaction_of_a_store_before_operations_were_recorded_has_none_then_records_them(
    tmp_path: Path,
) -> None:
    path = _copy("073af3a", tmp_path)  # the first release with reactions
    with sqlite3.connect(path) as conn:  # a reaction stopped, as that release wrote it
        conn.execute(
            "INSERT INTO reactions (name, follows, position, state, last_error, updated_at)"
            " VALUES ('mirror', '[\"counters\"]', 1, 'stopped', 'stopped at position 2', 0)"
        )
    conn.close()
    tables = {name for name, _ in _schema_of(path)}
    assert "reaction_operations" not in tables

    async def operations(*, read_only: bool) -> list[tuple[object, ...]]:
        async with reventless.local.provider(path, read_only=read_only) as provider:
            found = await provider.reactions().operations("mirror")
            return [(op.action, op.by, op.reason, op.from_position, op.from_state) for op in found]

    assert anyio.run(lambda: operations(read_only=True)) == []
    assert {name for name, _ in _schema_of(path)} == tables  # a read-only open adds nothing

    async def resume() -> int:
        async with reventless.local.provider(path) as provider:
            return await provider.reactions().resume("mirror", reason="fixed", by="ana")

    assert anyio.run(resume) == 1
    assert anyio.run(lambda: operations(read_only=True)) == [
        ("resume", "ana", "fixed", 1, "stopped")
    ]


def test_a_release_without_the_pause_columns_does_not_leave_a_stale_reason(
    tmp_path: Path,
) -> None:
    """An older release writes an upgraded file without naming the pause's columns: its resume
    (or replace) and then its pause must not show the earlier pause's reason."""
    path = tmp_path / "mixed.db"
    clock = VirtualClock(T0)

    async def pause_with_reason() -> None:
        async with reventless.local.provider(path, clock=clock) as provider:
            ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
            await ops.create_schedule(Schedule(name="report", rate=Daily(9, 0), payload="r"))
            await ops.pause_schedule("report", reason="first", by="ana")

    anyio.run(pause_with_reason)
    with sqlite3.connect(path, isolation_level=None) as conn:
        # The statements of the release before these columns: resume, then pause.
        where = " WHERE scheduler = 'default' AND name = 'report'"
        conn.execute("UPDATE schedules SET paused = 0, version = version + 1" + where)
        conn.execute("UPDATE schedules SET paused = 1, version = version + 1" + where)
    conn.close()
    assert anyio.run(lambda: _pause_of(path, read_only=True)) == (True, None, None, None)


# -- files that are not reventless stores ---------------------------------------------------


def _foreign(path: Path, ddl: str) -> bytes:
    with sqlite3.connect(path) as conn:
        conn.executescript(ddl)
    conn.close()
    return path.read_bytes()


FOREIGN = {
    "users": "CREATE TABLE users (id INTEGER PRIMARY KEY, x); INSERT INTO users VALUES (1, 2)",
    "their meta": "CREATE TABLE meta (id INTEGER, blob BLOB); CREATE TABLE items (x);",
    "meta, no version": "CREATE TABLE meta (key TEXT PRIMARY KEY, value INT); CREATE TABLE t (x);",
}


async def _open(path: Path, *, read_only: bool) -> None:
    async with reventless.local.provider(path, read_only=read_only):
        pass


@pytest.mark.parametrize("kind", sorted(FOREIGN))
@pytest.mark.parametrize("read_only", [False, True])
def test_another_applications_database_is_refused_and_left_as_it_was(
    kind: str, read_only: bool, tmp_path: Path
) -> None:
    path = tmp_path / "other.db"
    before = _foreign(path, FOREIGN[kind])
    with pytest.raises(ValidationError) as refused:
        anyio.run(lambda: _open(path, read_only=read_only))
    assert str(refused.value).startswith(f"{str(path)!r} is not a reventless store: it is a SQLite")
    assert "tables: " in str(refused.value) and refused.value.field == "path"
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no WAL beside it


def test_an_empty_file_becomes_a_store_and_reads_as_empty_only_once_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(ValidationError, match="is an empty database: no reventless store"):
        anyio.run(lambda: _open(path, read_only=True))
    anyio.run(lambda: _open(path, read_only=False))
    anyio.run(lambda: _open(path, read_only=True))


def test_the_command_line_refuses_another_applications_database_in_one_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "other.db"
    before = _foreign(path, FOREIGN["users"])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    commands = [
        ["schedules", "create", "tick", "Minutes(5)", "--payload", "p", "--new-scheduler"],
        ["schedules", "list"],
        ["run", "tests.reaction_app:plugin"],
    ]
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", "reventless", *command, "--db", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert (done.returncode, done.stdout) == (2, ""), (command, done.stdout, done.stderr)
        assert done.stderr == (
            f"reventless: error: {str(path)!r} is not a reventless store: it is a SQLite database"
            " of something else (tables: users); give the path of a new file or of a reventless"
            " store\n"
        ), command
    assert path.read_bytes() == before


@pytest.mark.parametrize("commit", sorted(ERAS))
def test_an_upgraded_store_has_no_change_counter_and_says_version_2(
    commit: str, tmp_path: Path
) -> None:
    """Version 2 drops version 1's change counter (a create wrote six pages, four now)."""
    path = _copy(commit, tmp_path)
    anyio.run(lambda: _read(path, read_only=False))
    with sqlite3.connect(path) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert meta["schema_version"] == 2 and "seq" not in meta
    assert "schedules_by_seq" not in indexes


@pytest.mark.parametrize("read_only", [False, True])
def test_a_store_of_a_newer_schema_is_refused_and_left_as_it_was(
    read_only: bool, tmp_path: Path
) -> None:
    path = tmp_path / "newer.db"
    anyio.run(lambda: _read(path, read_only=False))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = 3 WHERE key = 'schema_version'")
        conn.execute("CREATE INDEX schedules_by_seq ON schedules (seq)")  # theirs: kept
    conn.close()
    before = _schema_of(path)
    with pytest.raises(CorruptDataError, match="has schema version 3; this reventless reads"):
        anyio.run(lambda: _open(path, read_only=read_only))
    assert _schema_of(path) == before
