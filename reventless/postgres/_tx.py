"""One transaction on a pooled connection, with errors translated, and what the schedules'
writers and the engine share: the store's clock in SQL, the wake-up channel, a fire's due
instant."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from reventless._fire_rows import from_us
from reventless.errors import CorruptDataError, ReventlessError
from reventless.fire_times import fire_jitter
from reventless.postgres._event_log import close_lost, translating
from reventless.schedule import Schedule

__all__ = (
    "DB_NOW_US",
    "abandon",
    "decode_schedule",
    "due_us",
    "insert_history",
    "transaction",
    "wake_channel",
)

# The database's clock in integer microseconds since the epoch; ``coalesce($n::bigint,
# DB_NOW_US)`` is "now": the caller's (a virtual clock's) when it passes one, else the server's.
DB_NOW_US = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"


def wake_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel of ``schema``'s schedule changes (an identifier under 64
    bytes, whatever the schema's name)."""
    return "reventless_" + hashlib.sha256(schema.encode()).hexdigest()[:24]


def due_us(name: str, jitter_minutes: int | None, next_us: int | None) -> int | None:
    """When schedule ``name``'s fire at ``next_us`` is due: moved by its jitter, if any."""
    if next_us is None or not jitter_minutes:
        return next_us
    delay = fire_jitter(name, from_us(next_us), jitter_minutes)
    return next_us + int(delay.total_seconds()) * 1_000_000


async def abandon(conn: Any, then: str | None = None) -> None:
    """Roll back a transaction that failed or was cancelled (and run ``then``: give back a
    session lock); a connection that cannot even do that is closed (the server then rolls
    back, and gives back its locks)."""
    try:
        await conn.execute("ROLLBACK" if then is None else f"ROLLBACK; {then}")
    except BaseException:  # the error on its way out is the one to report
        close_lost(conn)


@asynccontextmanager
async def transaction(pool: asyncpg.Pool, where: str) -> AsyncIterator[Any]:
    """A connection inside BEGIN ... COMMIT (by hand: a cancellation stays one); rolled back
    when the block raises."""
    async with translating(where), pool.acquire() as conn:
        await conn.execute("BEGIN")
        try:
            yield conn
        except BaseException:
            await abandon(conn)
            raise
        await conn.execute("COMMIT")


def decode_schedule(spec: bytes, scheduler: str, name: str) -> Schedule:
    """A stored schedule; CorruptDataError naming the row when it cannot be read back."""
    try:
        return Schedule.from_json(bytes(spec))
    except ReventlessError as exc:
        raise CorruptDataError(
            f"stored schedule {name!r} of scheduler {scheduler!r} cannot be decoded: {exc}"
        ) from exc


HistoryValues = tuple[str, str, str, int, int | None, str | None]


async def insert_history(conn: Any, s: str, rows: Sequence[HistoryValues]) -> None:
    """Record history rows (scheduler, name, kind, at, scheduled_time, detail); a fire
    already recorded as delivered is not recorded again (``history_fired_once``)."""
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    await conn.execute(
        f"INSERT INTO {s}.history (scheduler, name, kind, at, scheduled_time, detail)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],"
        " $6::text[]) ON CONFLICT DO NOTHING",
        *[list(column) for column in columns],
    )
