"""Retention on PostgreSQL: the history, the dead letters and the reactions' operations records
deleted by age and by count, the handled-message records by the age of their events, oldest
first, one short transaction per batch (``reventless.local.Retention`` says what is kept).
Deleting is idempotent, so engines of several processes may prune at once.

A handled-message record carries no time of its own: its events do (``recorded_at``), and the
record goes once the last event recorded before the cutoff has a position at or past its own
events', as in the embedded store; the record of a command that appended no event is kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial

import anyio.lowlevel
import asyncpg

from reventless._fire_rows import to_us
from reventless.local import PruneReport, Retention
from reventless.postgres._schema import quote_schema
from reventless.postgres._tx import transaction

__all__ = ("prune_store",)


async def _prune_batch(
    conn: asyncpg.Connection,
    s: str,
    table: str,
    cutoff: int | datetime | None,
    keep: int | None,
    batch: int,
) -> tuple[int, int | None]:
    """Delete up to ``batch`` of the oldest rows of ``table`` older than ``cutoff`` or beyond
    the newest ``keep``; (how many, the latest ``at`` deleted)."""
    row = await conn.fetchrow(
        f"WITH doomed AS (SELECT id FROM {s}.{table} WHERE at < $1 OR id <= $2"
        "  ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)"
        f" , gone AS (DELETE FROM {s}.{table} t USING doomed WHERE t.id = doomed.id"
        "  RETURNING t.at) SELECT count(*), max(at) FROM gone",
        cutoff,
        None if keep is None else await _keep_below(conn, s, table, keep),
        batch,
    )
    return int(row[0]), row[1]


async def _keep_below(conn: asyncpg.Connection, s: str, table: str, keep: int) -> int | None:
    """The highest id beyond the newest ``keep`` rows (ids only grow)."""
    top = await conn.fetchval(f"SELECT max(id) FROM {s}.{table}")
    return None if top is None else int(top) - keep


async def _last_position_before(conn: asyncpg.Connection, s: str, cutoff: datetime) -> int | None:
    """The last event position recorded before ``cutoff``: a binary search on the positions
    (they grow with ``recorded_at``), a few index reads where a scan would read every event."""
    low, high = await conn.fetchrow(f"SELECT min(position), max(position) FROM {s}.events")
    if low is None:
        return None
    found = None
    while low <= high:
        middle = (low + high) // 2
        row = await conn.fetchrow(
            f"SELECT position, recorded_at FROM {s}.events WHERE position >= $1"
            " ORDER BY position LIMIT 1",
            middle,
        )
        if row[1] < cutoff:
            found, low = int(row[0]), int(row[0]) + 1
        else:
            high = middle - 1
    return found


async def _prune_handled(conn: asyncpg.Connection, s: str, position: int, batch: int) -> int:
    """Delete up to ``batch`` handled-message records whose events all lie at or before
    ``position``."""
    return int(
        await conn.fetchval(
            f"WITH doomed AS (SELECT h.aggregate, h.aggregate_id, h.message_id"
            f"  FROM {s}.handled_messages h WHERE (SELECT max(e.position) FROM {s}.events e"
            "   WHERE e.aggregate = h.aggregate AND e.aggregate_id = h.aggregate_id"
            "   AND e.message_id = h.message_id) <= $1"
            "  LIMIT $2 FOR UPDATE SKIP LOCKED),"
            f" gone AS (DELETE FROM {s}.handled_messages h USING doomed"
            "  WHERE (h.aggregate, h.aggregate_id, h.message_id)"
            "   = (doomed.aggregate, doomed.aggregate_id, doomed.message_id) RETURNING 1)"
            " SELECT count(*) FROM gone",
            position,
            batch,
        )
    )


async def _history(s: str, retention: Retention, now: datetime, conn: asyncpg.Connection) -> int:
    age = retention.history_age
    deleted, latest = await _prune_batch(
        conn,
        s,
        "history",
        None if age is None else to_us(now - age),
        retention.history_rows,
        retention.batch,
    )
    if latest is not None:
        # Backfill can no longer tell the fires delivered up to here.
        await conn.execute(
            f"INSERT INTO {s}.meta VALUES ('history_pruned_until', $1::text)"
            " ON CONFLICT (key) DO UPDATE SET value ="
            " greatest(meta.value::bigint, excluded.value::bigint)::text",
            str(latest),
        )
    return deleted


async def _dead_letters(
    s: str, retention: Retention, now: datetime, conn: asyncpg.Connection
) -> int:
    age = retention.dead_letter_age
    cutoff = None if age is None else to_us(now - age)
    return (
        await _prune_batch(
            conn, s, "dead_letters", cutoff, retention.dead_letter_rows, retention.batch
        )
    )[0]


async def _operations(s: str, retention: Retention, now: datetime, conn: asyncpg.Connection) -> int:
    """The reactions' operations records, by the history's rules (their ``at`` is a
    timestamptz)."""
    age = retention.history_age
    cutoff = None if age is None else now - age
    return (
        await _prune_batch(
            conn, s, "reaction_operations", cutoff, retention.history_rows, retention.batch
        )
    )[0]


async def prune_store(
    pool: asyncpg.Pool, schema: str, where: str, retention: Retention, now: datetime
) -> PruneReport:
    s = quote_schema(schema)

    async def batches(step: Callable[[asyncpg.Connection], Awaitable[int]]) -> int:
        total = 0
        while True:
            async with transaction(pool, where) as conn:
                deleted = await step(conn)
            total += deleted
            if deleted < retention.batch:
                return total
            await anyio.lowlevel.checkpoint()

    handled = 0
    if retention.handled_age is not None:
        async with transaction(pool, where) as conn:
            position = await _last_position_before(conn, s, now - retention.handled_age)
        if position is not None:
            handled = await batches(
                partial(_prune_handled, s=s, position=position, batch=retention.batch)
            )
    return PruneReport(
        history=await batches(partial(_history, s, retention, now)),
        dead_letters=await batches(partial(_dead_letters, s, retention, now)),
        handled_messages=handled,
        reaction_operations=await batches(partial(_operations, s, retention, now)),
    )
