"""Retention on PostgreSQL: the history and the dead letters deleted by age and by count,
oldest first, one short transaction per batch (``reventless.local.Retention`` says what is
kept). Deleting is idempotent, so engines of several processes may prune at once.

The event log's handled-message records carry no time here and are kept (a later release
may prune them); ``PruneReport.handled_messages`` is 0.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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
    cutoff_us: int | None,
    keep: int | None,
    batch: int,
) -> tuple[int, int | None]:
    """Delete up to ``batch`` of the oldest rows of ``table`` older than ``cutoff_us`` or
    beyond the newest ``keep``; (how many, the latest ``at`` deleted)."""
    row = await conn.fetchrow(
        f"WITH doomed AS (SELECT id FROM {s}.{table} WHERE at < $1 OR id <= $2"
        "  ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)"
        f" , gone AS (DELETE FROM {s}.{table} t USING doomed WHERE t.id = doomed.id"
        "  RETURNING t.at) SELECT count(*), max(at) FROM gone",
        cutoff_us,
        None if keep is None else await _keep_below(conn, s, table, keep),
        batch,
    )
    return int(row[0]), row[1]


async def _keep_below(conn: asyncpg.Connection, s: str, table: str, keep: int) -> int | None:
    """The highest id beyond the newest ``keep`` rows (ids only grow)."""
    top = await conn.fetchval(f"SELECT max(id) FROM {s}.{table}")
    return None if top is None else int(top) - keep


async def prune_store(
    pool: asyncpg.Pool, schema: str, where: str, retention: Retention, now: datetime
) -> PruneReport:
    s = quote_schema(schema)

    def cutoff(age: timedelta | None) -> int | None:
        return None if age is None else to_us(now - age)

    counts = []
    for table, age, keep in (
        ("history", retention.history_age, retention.history_rows),
        ("dead_letters", retention.dead_letter_age, retention.dead_letter_rows),
    ):
        total = 0
        while True:
            async with transaction(pool, where) as conn:
                deleted, latest = await _prune_batch(
                    conn, s, table, cutoff(age), keep, retention.batch
                )
                if table == "history" and latest is not None:
                    # Backfill can no longer tell the fires delivered up to here.
                    await conn.execute(
                        f"INSERT INTO {s}.meta VALUES ('history_pruned_until', $1::text)"
                        " ON CONFLICT (key) DO UPDATE SET value ="
                        " greatest(meta.value::bigint, excluded.value::bigint)::text",
                        str(latest),
                    )
            total += deleted
            if deleted < retention.batch:
                break
            await anyio.lowlevel.checkpoint()
        counts.append(total)
    return PruneReport(history=counts[0], dead_letters=counts[1])
