"""The engine's writes of one batch (an ``Outcome`` of ``_fire_bookkeeping``), inside the
batch's transaction: a few statements over arrays, whatever the batch's size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reventless._fire_jobs import FireJob
from reventless._fire_rows import Outcome
from reventless.postgres._schema import quote_schema
from reventless.postgres._tx import due_us, insert_history
from reventless.scheduler_adapter import HistoryKind

__all__ = ("FireWrites", "Planned", "Stored")

# A claimed row's name, jitter, planned next fire and that fire's due instant, and its stored
# next fire and due instant (as it was claimed).
Planned = tuple[str, int | None, int | None, int | None, int | None, int | None]
# A row advanced early, as it was: its version, next fire and due instant.
Stored = tuple[int, int | None, int | None]


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as ``width`` column lists (for ``unnest``)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def _advances(
    outcome: Outcome, plans: dict[int, Planned], early: dict[int, Stored]
) -> list[tuple[int | None, int | None, int, int]]:
    """The rows to advance (next fire, due instant, id, version) that ``advance_early`` has
    not already advanced so."""
    rows = []
    moved = set()
    for nxt, row_id, version in outcome.advance:
        name, jitter, planned, due, _, _ = plans[row_id]
        if row_id in early:
            moved.add(row_id)
            if nxt == planned:
                continue  # advanced early
        if nxt != planned:
            due = due_us(name, jitter, nxt)
        rows.append((nxt, due, row_id, version))
    if len(moved) < len(early):
        # Recorded otherwise (completed) or not at all (none of its deliveries started: left
        # to fire again): as it was.
        completed = {row_id for row_id, _ in outcome.complete}
        for row_id, (version, stored_next, stored_due) in early.items():
            if row_id not in moved and row_id not in completed:
                rows.append((stored_next, stored_due, row_id, version))
    return rows


class FireWrites:
    """The statements of one schema."""

    def __init__(self, schema: str) -> None:
        s = self._s = quote_schema(schema)
        self._advance = (
            f"UPDATE {s}.schedules AS t SET next_fire = u.next, due_at = u.due FROM"
            " unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::integer[]) AS u(next, due, id,"
            " version) WHERE t.id = u.id AND t.version = u.version"
        )
        self._complete = (
            f"DELETE FROM {s}.schedules AS t USING unnest($1::bigint[], $2::integer[])"
            " AS u(id, version) WHERE t.id = u.id AND t.version = u.version"
        )
        self._retry_updates = (
            f"UPDATE {s}.retries AS t SET attempts = u.attempts, next_attempt_at = u.next,"
            " last_error = u.error FROM unnest($1::integer[], $2::bigint[], $3::text[],"
            " $4::bigint[]) AS u(attempts, next, error, id) WHERE t.id = u.id"
        )
        self._retry_deletes = f"DELETE FROM {s}.retries WHERE id = ANY($1::bigint[])"
        self._new_retries = (
            f"INSERT INTO {s}.retries (scheduler, name, scheduled_time, payload, attempts,"
            " next_attempt_at, last_error) SELECT * FROM unnest($1::text[], $2::text[],"
            " $3::bigint[], $4::text[], $5::integer[], $6::bigint[], $7::text[])"
        )
        self._dead_letters = (
            f"INSERT INTO {s}.dead_letters (scheduler, name, scheduled_time, payload, attempts,"
            " reason, at) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[],"
            " $4::text[], $5::integer[], $6::text[], $7::bigint[])"
        )
        self._quarantine = (
            f"UPDATE {s}.schedules SET next_fire = NULL, due_at = NULL WHERE id = $1"
            " RETURNING scheduler, name, spec, next_fire"
        )

    async def advance_early(
        self, conn: Any, jobs: Sequence[FireJob], plans: dict[int, Planned]
    ) -> dict[int, Stored]:
        """Advance the claimed rows of ``jobs`` that go on to their planned next fire, before
        the jobs are delivered (in the batch's transaction, so seen only with the rest of its
        bookkeeping): the rows of a claimed batch, by id, as they were (``commit`` puts back
        or moves again the few whose bookkeeping ends otherwise)."""
        rows = []
        stored: dict[int, Stored] = {}
        for job in jobs:
            if not job.completed:
                _, _, planned, due, stored_next, stored_due = plans[job.row_id]
                rows.append((planned, due, job.row_id, job.version))
                stored[job.row_id] = (job.version, stored_next, stored_due)
        if rows:
            await conn.execute(self._advance, *_columns(rows, 4))
        return stored

    async def commit(
        self,
        conn: Any,
        outcome: Outcome,
        plans: dict[int, Planned],
        damaged: list[tuple[int, str]],
        at_us: int,
        early: dict[int, Stored],
    ) -> None:
        """Write ``outcome``; ``plans`` gives each claimed row's plan, ``damaged`` the rows to
        quarantine and why, ``early`` the rows ``advance_early`` moved (as they were)."""
        rows = _advances(outcome, plans, early)
        if rows:
            await conn.execute(self._advance, *_columns(rows, 4))
        if outcome.complete:
            await conn.execute(self._complete, *_columns(outcome.complete, 2))
        await insert_history(conn, self._s, outcome.history)
        if outcome.retry_updates:
            await conn.execute(self._retry_updates, *_columns(outcome.retry_updates, 4))
        if outcome.retry_deletes:
            await conn.execute(self._retry_deletes, [row.id for row in outcome.retry_deletes])
        if outcome.new_retries:
            await conn.execute(self._new_retries, *_columns(outcome.new_retries, 7))
        if outcome.dead_letters:
            await conn.execute(self._dead_letters, *_columns(outcome.dead_letters, 7))
        for row_id, reason in damaged:
            await self._quarantine_row(conn, row_id, reason, at_us)

    async def _quarantine_row(self, conn: Any, row_id: int, reason: str, at_us: int) -> None:
        """Stop firing a damaged row: kept (for an operator) with no next fire; ``reason`` in
        its history and as a dead letter of attempt 0 holding the raw stored schedule."""
        row = await conn.fetchrow(self._quarantine, row_id)
        if row is None:
            return
        scheduler, name, spec, _ = row
        raw = bytes(spec).decode("utf-8", "replace").replace("\x00", "")
        why = f"CorruptDataError: {reason}; quarantined, not fired"
        kind = HistoryKind.DEAD_LETTERED.value
        await insert_history(conn, self._s, [(scheduler, name, kind, at_us, at_us, why)])
        await conn.execute(
            self._dead_letters, [scheduler], [name], [at_us], [raw], [0], [why], [at_us]
        )
