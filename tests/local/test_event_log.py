"""The SQLite event log: message ids deduplicated per stream, and stores written by the earlier
schema (ids per aggregate type) upgraded in place without losing anything."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

import reventless.local
from reventless import Aggregate, AggregateSpec, CommandContext, ReventlessError
from reventless.aggregate_adapter import NewEvent
from reventless.testing import VirtualClock

pytestmark = pytest.mark.anyio
START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


class Greet(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    pass


class Greeted(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    number: int


def _decide(state: int, command: Any, context: CommandContext) -> list[Any]:
    return [Greeted(number=state + 1)]


USERS: AggregateSpec[int] = AggregateSpec(
    "users",
    commands=[Greet],
    events=[Greeted],
    initial=0,
    decide=_decide,
    evolve=lambda state, event: event.number,
)

# The tables as the earlier reventless created them, written out by hand: message ids keyed by
# aggregate type only.
OLD_DDL = """
CREATE TABLE events (
    position INTEGER PRIMARY KEY,
    aggregate TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    data BLOB NOT NULL,
    message_id TEXT,
    recorded_at INTEGER NOT NULL,
    UNIQUE (aggregate, aggregate_id, version)
);
CREATE TABLE handled_messages (
    aggregate TEXT NOT NULL,
    message_id TEXT NOT NULL,
    position INTEGER,
    PRIMARY KEY (aggregate, message_id)
) WITHOUT ROWID;
"""
RECORDED_US = 1_790_000_000_000_000


def _greeted(number: int) -> bytes:
    return msgspec.json.encode(Greeted(number=number))


@asynccontextmanager
async def users_on(path: Path) -> AsyncIterator[tuple[Any, Aggregate[int]]]:
    async with reventless.local.provider(path, clock=VirtualClock(START)) as provider:
        yield provider, await Aggregate.make(provider, USERS)


async def old_store(path: Path) -> None:
    """A store as the earlier version left it: its scheduler tables, and the old event tables
    with events of two users streams and an orders stream, and four handled message ids."""
    async with reventless.local.provider(path):
        pass  # the scheduler's own tables, as any store has them
    with sqlite3.connect(path) as conn:
        # A store made today has every table; the earlier version made these two its own way.
        conn.executescript("DROP TABLE events; DROP TABLE handled_messages;" + OLD_DDL)
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (1, "users", "user-a", 1, "Greeted", _greeted(1), "welcome", RECORDED_US),
                (2, "users", "user-a", 2, "Greeted", _greeted(2), "second", RECORDED_US),
                (3, "orders", "o-1", 1, "Placed", b"{}", "welcome", RECORDED_US),
            ],
        )
        conn.executemany(
            "INSERT INTO handled_messages VALUES (?, ?, ?)",
            [
                ("users", "welcome", 1),
                ("users", "second", 2),
                ("users", "quiet", None),  # a command that appended no events
                ("orders", "welcome", 3),
            ],
        )
    conn.close()


def handled_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT aggregate, aggregate_id, message_id, position FROM handled_messages"
            " ORDER BY aggregate, aggregate_id, message_id"
        ).fetchall()
    conn.close()
    return rows


async def test_an_old_store_is_upgraded_in_place_without_losing_anything(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    await old_store(path)
    async with users_on(path) as (provider, users):
        # Every event is still there, in place.
        assert await users.load("user-a") == (2, 2)
        log = provider.event_log()
        assert [(e.position, e.aggregate, e.aggregate_id) for e in await log.read_all()] == [
            (1, "users", "user-a"),
            (2, "users", "user-a"),
            (3, "orders", "o-1"),
        ]
        # Each old record now belongs to the stream of its events.
        assert await log.was_handled("users", "user-a", "welcome")
        assert not await log.was_handled("users", "user-b", "welcome")
        assert await log.was_handled("orders", "o-1", "welcome")
    assert handled_rows(path) == [
        ("orders", "o-1", "welcome", 3),
        ("users", "", "quiet", None),
        ("users", "user-a", "second", 2),
        ("users", "user-a", "welcome", 1),
    ]


async def test_old_records_keep_working_for_their_stream_and_new_ids_are_per_stream(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    await old_store(path)
    async with users_on(path) as (_, users):
        assert (await users.handle("user-a", Greet(), message_id="welcome")).duplicate
        assert (await users.handle("user-a", Greet(), message_id="second")).duplicate
        # The id another stream handled before the upgrade is handled here, once.
        to_b = await users.handle("user-b", Greet(), message_id="welcome")
        assert (to_b.duplicate, to_b.version) == (False, 1)
        assert (await users.handle("user-b", Greet(), message_id="welcome")).duplicate
        # An old id that appended nothing names no stream: still a repeat for every stream.
        assert (await users.handle("user-a", Greet(), message_id="quiet")).duplicate
        assert (await users.handle("user-c", Greet(), message_id="quiet")).duplicate
        assert await users.load("user-a") == (2, 2)
        assert await users.load("user-c") == (0, 0)
    # Opened again: nothing to upgrade, the same answers.
    async with users_on(path) as (provider, users):
        assert (await users.handle("user-b", Greet(), message_id="welcome")).duplicate
        assert len(await provider.event_log().read_all()) == 4
    assert ("users", "user-b", "welcome", 4) in handled_rows(path)


async def test_a_process_of_the_old_version_still_writes_an_upgraded_store(
    tmp_path: Path,
) -> None:
    """Its insert names no stream: the record counts for every stream, as it meant to."""
    path = tmp_path / "old.db"
    await old_store(path)
    async with users_on(path) as (_, users):
        await users.load("user-a")  # upgrades
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO handled_messages (aggregate, message_id, position) VALUES (?, ?, ?)",
            ("users", "from-old-process", None),
        )
        old_check = conn.execute(
            "SELECT 1 FROM handled_messages WHERE aggregate = ? AND message_id = ?",
            ("users", "welcome"),
        ).fetchone()
    conn.close()
    assert old_check == (1,)
    async with users_on(path) as (_, users):
        assert (await users.handle("user-z", Greet(), message_id="from-old-process")).duplicate


async def test_a_failed_upgrade_leaves_the_old_table_whole(tmp_path: Path) -> None:
    """The upgrade is one transaction: here it cannot create its new table (a table of that name
    is in the way), so it fails with a typed error and changes nothing."""
    path = tmp_path / "old.db"
    await old_store(path)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE handled_messages_by_stream (unrelated TEXT)")
    conn.close()
    with pytest.raises(ReventlessError):  # the store is upgraded as it opens
        async with users_on(path):
            pass
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(handled_messages)")]
        count = conn.execute("SELECT COUNT(*) FROM handled_messages").fetchone()[0]
    conn.close()
    assert columns == ["aggregate", "message_id", "position"]
    assert count == 4


async def test_append_records_the_message_id_for_its_stream_only() -> None:
    """The port contract, on the adapter directly: also an append of no events records it."""
    async with reventless.local.provider(":memory:") as provider:
        log = provider.event_log()
        event = NewEvent(type="Greeted", data=_greeted(1))
        first = await log.append(
            "users", "a", expected_version=0, events=[event], message_id="m", recorded_at=START
        )
        other = await log.append(
            "users", "b", expected_version=0, events=[], message_id="m", recorded_at=START
        )
        repeat = await log.append(
            "users", "b", expected_version=0, events=[event], message_id="m", recorded_at=START
        )
        assert (first.duplicate, other.duplicate, repeat.duplicate) == (False, False, True)
        assert repeat.version == 0
        assert await log.was_handled("users", "b", "m")
        assert not await log.was_handled("users", "c", "m")
        assert not await log.was_handled("orders", "a", "m")
