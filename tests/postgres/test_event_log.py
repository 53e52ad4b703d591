"""The PostgreSQL event log beyond the conformance suite: ``read_all`` never passes over an
event whose transaction commits after a later position became visible, and what the adapter
refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.lowlevel
import asyncpg
import pytest

import reventless.postgres
from reventless.aggregate_adapter import NewEvent
from reventless.errors import BackendUnavailableError, ConflictError, ValidationError
from reventless.postgres._event_log import _stream_lock_key

pytestmark = pytest.mark.anyio

AT = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)


def _events(*bodies: str) -> list[NewEvent]:
    return [NewEvent(type="E", data=body.encode()) for body in bodies]


async def _wait_for_a_blocked_backend(admin: asyncpg.Connection) -> None:
    with anyio.fail_after(30):
        # The server has no event to wait on: poll its lock table.
        while not await admin.fetchval(  # noqa: ASYNC110
            "SELECT count(*) FROM pg_locks WHERE NOT granted"
        ):
            await anyio.sleep(0.01)


async def test_read_all_does_not_pass_over_an_append_that_commits_late(postgres_dsn: str) -> None:
    async with reventless.postgres.provider(postgres_dsn, schema="app") as provider:
        log = provider.event_log()
        first = await log.append(
            "orders",
            "a",
            expected_version=0,
            events=_events("a1"),
            message_id=None,
            recorded_at=AT,
        )
        admin = await asyncpg.connect(postgres_dsn)
        try:
            # Hold an append open between its INSERT of events and its commit: another
            # transaction holds the key of its message id, so its insert of that waits.
            blocker = admin.transaction()
            await blocker.start()
            await admin.execute(
                "INSERT INTO app.handled_messages VALUES ('orders', 'held', 'm-held')"
            )
            watcher = await asyncpg.connect(postgres_dsn)
            held: list[object] = []

            async def append_held() -> None:
                held.append(
                    await log.append(
                        "orders",
                        "held",
                        expected_version=0,
                        events=_events("held"),
                        message_id="m-held",
                        recorded_at=AT,
                    )
                )

            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(append_held)
                    await _wait_for_a_blocked_backend(watcher)
                    # Later appends commit while the held one is open: their positions are
                    # higher, and they are visible first.
                    later = await log.append(
                        "orders",
                        "b",
                        expected_version=0,
                        events=_events("b1", "b2"),
                        message_id="m-b",
                        recorded_at=AT,
                    )
                    visible = await watcher.fetch(
                        "SELECT position FROM app.events WHERE position > $1 ORDER BY position",
                        first.positions[-1],
                    )
                    # The hazard is real: a reader by position alone would see b1, b2 now and
                    # move past the held event's position, below them.
                    assert [row[0] for row in visible] == list(later.positions)
                    assert min(later.positions) > first.positions[-1] + 1
                    assert [e.data for e in await log.read_all()] == [b"a1"]
                    assert await log.read_all(after_position=first.positions[-1]) == []
                    await blocker.rollback()
            finally:
                await watcher.close()
        finally:
            await admin.close()
        assert held and not held[0].duplicate  # type: ignore[attr-defined]
        caught_up = await log.read_all(after_position=first.positions[-1])
        assert [e.data for e in caught_up] == [b"held", b"b1", b"b2"]
        positions = [e.position for e in caught_up]
        assert positions == sorted(positions)


async def test_concurrent_appenders_and_a_tailing_reader_miss_nothing(postgres_dsn: str) -> None:
    """Many streams appended at once while a reader follows read_all: the reader ends with
    every event exactly once, in position order."""
    async with reventless.postgres.provider(postgres_dsn, schema="app") as provider:
        log = provider.event_log()
        writers, rounds = 8, 15
        done = anyio.Event()
        seen: list[int] = []

        async def write(stream: int) -> None:
            for version in range(rounds):
                await log.append(
                    "orders",
                    f"s{stream}",
                    expected_version=version,
                    events=_events(f"{stream}-{version}"),
                    message_id=None,
                    recorded_at=AT,
                )

        async def follow() -> None:
            cursor = 0
            while True:
                finished = done.is_set()
                batch = await log.read_all(after_position=cursor, limit=7)
                seen.extend(e.position for e in batch)
                if batch:
                    cursor = batch[-1].position
                elif finished:
                    return
                else:
                    await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as outer:
            outer.start_soon(follow)
            async with anyio.create_task_group() as group:
                for stream in range(writers):
                    group.start_soon(write, stream)
            done.set()
        everything = await log.read_all(limit=10_000)
        assert len(everything) == writers * rounds
        assert seen == [e.position for e in everything]


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("aggregate", {"aggregate": "or\x00ders"}),
        ("aggregate_id", {"aggregate_id": "\ud800"}),
        ("message_id", {"message_id": "m\x00"}),
        (
            "events[1].type",
            {"events": [NewEvent(type="ok", data=b""), NewEvent(type="\x00", data=b"")]},
        ),
        ("recorded_at", {"recorded_at": datetime(2026, 1, 1)}),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    postgres_dsn: str, field: str, kwargs: dict[str, object]
) -> None:
    arguments: dict[str, object] = {
        "aggregate": "orders",
        "aggregate_id": "o-1",
        "expected_version": 0,
        "events": _events("1"),
        "message_id": "m1",
        "recorded_at": AT,
    }
    arguments.update(kwargs)
    async with reventless.postgres.provider(postgres_dsn, schema="app") as provider:
        log = provider.event_log()
        with pytest.raises(ValidationError) as caught:
            await log.append(**arguments)  # type: ignore[arg-type]
        assert caught.value.field == field
        assert await log.read_all() == []


async def _cancel_once_blocked(
    log: Any, watcher: asyncpg.Connection, aggregate_id: str, version: int, body: str
) -> None:
    """Append one event to ``orders/aggregate_id`` after ``version`` and cancel the append once
    the server shows a backend waiting on a lock (the append's)."""
    async with anyio.create_task_group() as group:

        async def append() -> None:
            await log.append(
                "orders",
                aggregate_id,
                expected_version=version,
                events=_events(body),
                message_id=None,
                recorded_at=AT,
            )

        group.start_soon(append)
        await _wait_for_a_blocked_backend(watcher)
        group.cancel_scope.cancel()


async def _advisory_locks(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))
    finally:
        await conn.close()


async def test_an_insert_failing_inside_the_append_lock_gives_the_lock_back(
    postgres_dsn: str,
) -> None:
    async with reventless.postgres.provider(postgres_dsn, schema="app", max_connections=1) as p:
        log = p.event_log()
        conn = await asyncpg.connect(postgres_dsn)
        try:
            # The server refuses one event type, inside the append's critical section.
            await conn.execute(
                "CREATE FUNCTION app.refuse() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = '22012'; END $$;"
                " CREATE TRIGGER refuse BEFORE INSERT ON app.events FOR EACH ROW"
                " WHEN (NEW.type = 'Bad') EXECUTE FUNCTION app.refuse()"
            )
        finally:
            await conn.close()
        with pytest.raises(BackendUnavailableError, match="refused"):
            await log.append(
                "orders",
                "o-1",
                expected_version=0,
                events=[NewEvent(type="Bad", data=b"")],
                message_id="m1",
                recorded_at=AT,
            )
        assert await _advisory_locks(postgres_dsn) == 0
        assert not await log.was_handled("orders", "o-1", "m1")
        # The one pooled connection appends again: no lock held, nothing half-written.
        with anyio.fail_after(10):
            done = await log.append(
                "orders",
                "o-1",
                expected_version=0,
                events=_events("1"),
                message_id="m1",
                recorded_at=AT,
            )
        assert done.version == 1 and [e.data for e in await log.read_all()] == [b"1"]


async def test_an_append_cancelled_while_it_waits_inside_the_lock_gives_the_lock_back(
    postgres_dsn: str,
) -> None:
    async with reventless.postgres.provider(postgres_dsn, schema="app") as p:
        log = p.event_log()
        await log.append(
            "orders",
            "o-1",
            expected_version=0,
            events=_events("1"),
            message_id=None,
            recorded_at=AT,
        )
        admin = await asyncpg.connect(postgres_dsn)
        try:
            # Another transaction writes version 2 and stays open: the append's INSERT of
            # version 2 waits for it, inside the append lock, until it is cancelled.
            blocker = admin.transaction()
            await blocker.start()
            await admin.execute(
                "INSERT INTO app.events (aggregate, aggregate_id, version, type, data,"
                " recorded_at) VALUES ('orders', 'o-1', 2, 'E', '', now())"
            )
            watcher = await asyncpg.connect(postgres_dsn)
            try:
                with anyio.move_on_after(30) as scope:
                    await _cancel_once_blocked(log, watcher, "o-1", 1, "2")
                assert not scope.cancelled_caught
            finally:
                await watcher.close()
            await blocker.rollback()
        finally:
            await admin.close()
        with anyio.fail_after(10):
            while await _advisory_locks(postgres_dsn):  # noqa: ASYNC110  (a closed session's
                await anyio.sleep(0.01)  # locks go when the server notices the close)
            other = await log.append(
                "orders",
                "o-2",
                expected_version=0,
                events=_events("x"),
                message_id=None,
                recorded_at=AT,
            )
        assert other.version == 1
        assert [e.version for e in await log.load("orders", "o-1")] == [1]


async def test_a_writer_waiting_for_its_stream_holds_up_no_other_stream(postgres_dsn: str) -> None:
    """Writers of one stream queue on the stream's lock, outside the append lock: while one
    append of stream "x" is held open and a second waits behind it, stream "y" appends."""
    async with reventless.postgres.provider(postgres_dsn, schema="app") as provider:
        log = provider.event_log()
        admin = await asyncpg.connect(postgres_dsn)
        watcher = await asyncpg.connect(postgres_dsn)
        outcomes: dict[str, object] = {}

        async def append_x(name: str) -> None:
            try:
                outcomes[name] = await log.append(
                    "orders",
                    "x",
                    expected_version=0,
                    events=_events(name),
                    message_id=f"m-{name}",
                    recorded_at=AT,
                )
            except ConflictError as exc:
                outcomes[name] = exc

        try:
            blocker = admin.transaction()
            await blocker.start()
            await admin.execute("INSERT INTO app.handled_messages VALUES ('orders', 'x', 'm-held')")
            async with anyio.create_task_group() as group:
                group.start_soon(append_x, "held")
                await _wait_for_a_blocked_backend(watcher)
                group.start_soon(append_x, "second")
                with anyio.fail_after(30):
                    while (  # noqa: ASYNC110  (the server's lock table, polled)
                        await watcher.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted")
                        < 2
                    ):
                        await anyio.sleep(0.01)
                with anyio.fail_after(10):
                    other = await log.append(
                        "orders",
                        "y",
                        expected_version=0,
                        events=_events("y"),
                        message_id=None,
                        recorded_at=AT,
                    )
                assert other.version == 1
                await blocker.rollback()
        finally:
            await watcher.close()
            await admin.close()
        assert isinstance(outcomes["second"], ConflictError)
        assert [e.data for e in await log.load("orders", "x")] == [b"held"]


async def test_an_append_cancelled_while_it_waits_for_its_stream_leaves_the_pool_usable(
    postgres_dsn: str,
) -> None:
    async with reventless.postgres.provider(postgres_dsn, schema="app", max_connections=1) as p:
        log = p.event_log()
        high, low = _stream_lock_key("app", "orders", "x")
        admin = await asyncpg.connect(postgres_dsn)
        watcher = await asyncpg.connect(postgres_dsn)
        try:
            holder = admin.transaction()
            await holder.start()
            await admin.execute(f"SELECT pg_advisory_xact_lock({high}, {low})")
            await _cancel_once_blocked(log, watcher, "x", 0, "x")
            await holder.rollback()
        finally:
            await watcher.close()
            await admin.close()
        with anyio.fail_after(10):  # the one pooled connection, or its replacement, appends
            done = await log.append(
                "orders",
                "y",
                expected_version=0,
                events=_events("y"),
                message_id="m",
                recorded_at=AT,
            )
        assert done.version == 1
        assert [e.data for e in await log.read_all()] == [b"y"]


async def test_an_append_whose_connection_is_killed_mid_transaction_reports_the_loss(
    postgres_dsn: str,
) -> None:
    """The append waits for its stream inside its transaction; its backend is then ended. The
    rollback cannot run on a lost connection, and closing it must not replace the error on its
    way out (asyncpg may have released the connection already)."""
    async with reventless.postgres.provider(postgres_dsn, schema="app", max_connections=1) as p:
        log = p.event_log()
        high, low = _stream_lock_key("app", "orders", "x")
        admin = await asyncpg.connect(postgres_dsn)
        try:
            holder = admin.transaction()
            await holder.start()
            await admin.execute(f"SELECT pg_advisory_xact_lock({high}, {low})")
            caught: list[BaseException] = []

            async def append() -> None:
                try:
                    await log.append(
                        "orders",
                        "x",
                        expected_version=0,
                        events=_events("x"),
                        message_id="m",
                        recorded_at=AT,
                    )
                except BaseException as exc:
                    caught.append(exc)

            async with anyio.create_task_group() as group:
                group.start_soon(append)
                await _wait_for_a_blocked_backend(admin)
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND NOT granted"
                )
            await holder.rollback()
        finally:
            await admin.close()
        [error] = caught
        assert isinstance(error, BackendUnavailableError), repr(error)
        assert isinstance(
            error.__cause__, asyncpg.PostgresError | asyncpg.ConnectionDoesNotExistError
        ), repr(error.__cause__)
        assert "released" not in str(error)
        with anyio.fail_after(10):  # the pool gives a new connection
            done = await log.append(
                "orders",
                "x",
                expected_version=0,
                events=_events("x"),
                message_id="m",
                recorded_at=AT,
            )
        assert done.version == 1
