"""The embedded store's history and dead letters: what happened to each schedule, the fires that
could not be delivered, the repairs (trigger, backfill, redrive, queued as retry rows of
attempt 0) and retention (pruning old rows in small batches)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from reventless._repairs import (
    backfill_instants,
    extra_fire_us,
    pruned_history_error,
    redrive_picks,
)
from reventless.local._connection import StoreConnection
from reventless.local._rows import (
    FIRED_AND_COMPLETED,
    HistoryRow,
    Row,
    decode_spec,
    from_us,
    to_us,
    valid_us,
)
from reventless.scheduler_adapter import HistoryKind

__all__ = ("HistoryTables",)


class HistoryTables(StoreConnection):
    """The history and the dead letters: reading them, the repairs queued from them (trigger,
    backfill, redrive) and their retention."""

    def history(self, scheduler: str, name: str, limit: int) -> list[Row]:
        """The last ``limit`` entries (kind, at, scheduled_time, detail), oldest first."""
        rows = self.conn.execute(
            "SELECT kind, at, scheduled_time, detail FROM history"
            " WHERE scheduler = ? AND name = ? ORDER BY id DESC LIMIT ?",
            (scheduler, name, limit),
        ).fetchall()
        entries: list[Row] = []
        for kind, at, scheduled, detail in reversed(rows):
            if kind == FIRED_AND_COMPLETED:
                entries.append((HistoryKind.FIRED.value, at, scheduled, detail))
                entries.append((HistoryKind.COMPLETED.value, at, None, None))
            else:
                entries.append((kind, at, scheduled, detail))
        return entries[-limit:]

    def dead_letters(self, scheduler: str, limit: int) -> list[Row]:
        rows = self.conn.execute(
            "SELECT name, scheduled_time, payload, attempts, reason, at FROM dead_letters"
            " WHERE scheduler = ? ORDER BY id DESC LIMIT ?",
            (scheduler, limit),
        ).fetchall()
        return [tuple(row) for row in reversed(rows)]

    def schedulers(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT DISTINCT scheduler FROM schedules")]

    def recorded_schedulers(self) -> list[str]:
        """Schedulers named in the history or the dead letters (also with no schedule left)."""
        names: set[str] = set()
        for table in ("history", "dead_letters"):
            # Jumps from one name to the next along the table's (scheduler, ...) index: a few
            # lookups per scheduler, where DISTINCT would read every row.
            rows = self.conn.execute(
                f"WITH RECURSIVE s(x) AS (SELECT min(scheduler) FROM {table} UNION ALL"
                f" SELECT (SELECT min(scheduler) FROM {table} WHERE scheduler > s.x) FROM s"
                "  WHERE s.x IS NOT NULL) SELECT x FROM s WHERE x IS NOT NULL"
            ).fetchall()
            names.update(str(row[0]) for row in rows)
        return sorted(names)

    def _queue_repairs(
        self,
        scheduler: str,
        items: Sequence[tuple[str, int, str]],
        kind: HistoryKind,
        at_us: int,
        detail: str | None = None,
    ) -> list[int]:
        """Queue (name, scheduled_us, payload) fires for delivery now, recorded as ``kind``.

        A queued repair is a retry row with ``attempts`` 0 (the engine's own retries start at
        1): the engine delivers, retries and dead-letters it like any failed fire.
        """
        ids = []
        for name, scheduled_us, payload in items:
            cursor = self.conn.execute(
                "INSERT INTO retries (scheduler, name, scheduled_time, payload, attempts,"
                " next_attempt_at, last_error) VALUES (?, ?, ?, ?, 0, ?, ?)",
                (scheduler, name, scheduled_us, payload, at_us, str(kind)),
            )
            ids.append(int(cursor.lastrowid or 0))
        self._history(
            HistoryRow(scheduler, name, kind, at_us, scheduled_us, detail)
            for name, scheduled_us, _ in items
        )
        return ids

    def trigger(
        self, scheduler: str, name: str, at_us: int, detail: str | None = None
    ) -> tuple[int, int]:
        """Queue one extra fire of a stored schedule; (retry row id, its scheduled time).

        The scheduled time is ``at_us`` cut to the second and never a whole minute, so its fire
        id cannot be one of the schedule's (they are all on whole minutes).
        """
        with self.transaction():
            (spec,) = self._by_name("spec", scheduler, name)
            schedule = decode_spec(spec, scheduler, name)
            scheduled_us = extra_fire_us(at_us)
            [row_id] = self._queue_repairs(
                scheduler,
                [(name, scheduled_us, schedule.payload)],
                HistoryKind.TRIGGERED,
                at_us,
                detail,
            )
        return row_id, scheduled_us

    def backfill(
        self,
        scheduler: str,
        name: str,
        start: datetime,
        end: datetime,
        at: datetime,
        most: int,
        detail: str | None = None,
    ) -> list[tuple[int, int]]:
        """Queue the schedule's instants in [start, end] not delivered nor queued, before its
        next fire and not after ``at``; [(retry row id, scheduled_us)]. More than ``most``
        instants in the range raise ValidationError, with nothing written."""
        with self.transaction():
            spec, created_us, paused, next_us = self._by_name(
                "spec, created_at, paused, next_fire", scheduler, name
            )
            schedule = decode_spec(spec, scheduler, name)
            stop = min(end, at)
            if not paused and valid_us(next_us):
                stop = min(stop, from_us(next_us) - timedelta(microseconds=1))
            instants = backfill_instants(schedule, from_us(created_us), start, stop, most)
            if not instants:
                return []
            pruned = self.history_pruned_until()
            if pruned is not None and instants[0] <= pruned:
                raise pruned_history_error(start, pruned)
            known = {
                int(row[0])
                for table, extra in (("history", " AND kind = 'fired'"), ("retries", ""))
                for row in self.conn.execute(
                    f"SELECT scheduled_time FROM {table} WHERE scheduler = ? AND name = ?"
                    f" AND scheduled_time BETWEEN ? AND ?{extra}",
                    (scheduler, name, instants[0], instants[-1]),
                )
            }
            todo = [us for us in instants if us not in known]
            ids = self._queue_repairs(
                scheduler,
                [(name, us, schedule.payload) for us in todo],
                HistoryKind.BACKFILLED,
                to_us(at),
                detail,
            )
        return list(zip(ids, todo, strict=True))

    def redrive(
        self,
        scheduler: str,
        name: str | None,
        wanted: Collection[tuple[str, int]] | None,
        at_us: int,
        detail: str | None = None,
    ) -> list[tuple[int, str, int]]:
        """Move dead letters back to delivery: all, one schedule's, or those of (name, scheduled
        second) in ``wanted``; [(retry row id, name, scheduled_us)]. Quarantined rows (attempts
        0: a damaged schedule, never a delivery) stay."""
        query = (
            "SELECT id, name, scheduled_time, payload FROM dead_letters"
            " WHERE scheduler = ? AND attempts > 0"
        )
        params: list[object] = [scheduler]
        if name is not None:
            query += " AND name = ?"
            params.append(name)
        with self.transaction():
            rows, items = redrive_picks(
                self.conn.execute(query + " ORDER BY id", params).fetchall(), wanted
            )
            self.conn.executemany(
                "DELETE FROM dead_letters WHERE id = ?", [(row[0],) for row in rows]
            )
            ids = self._queue_repairs(scheduler, items, HistoryKind.REDRIVEN, at_us, detail)
        return [(row_id, item[0], item[1]) for row_id, item in zip(ids, items, strict=True)]

    def queued_repairs(self) -> list[tuple[int, int]]:
        """(id, next_attempt_at) of the repairs queued (by any process) and not yet attempted.

        Retry row ids are reused once the highest is deleted, so the pair names one repair.
        """
        rows = self.conn.execute(
            "SELECT id, next_attempt_at FROM retries WHERE attempts = 0"
        ).fetchall()
        return [(int(row_id), int(at_us)) for row_id, at_us in rows]

    def _prune_batch(
        self, table: str, cutoff_us: int | None, keep_rows: int | None, batch: int
    ) -> list[tuple[int, int]]:
        """Delete up to ``batch`` of the oldest rows (by id) of ``table`` that are older than
        ``cutoff_us`` or beyond the newest ``keep_rows``; returns their (id, at)."""
        doomed: list[tuple[int, int]] = []
        if cutoff_us is not None:
            rows = self.conn.execute(
                f"SELECT id, at FROM {table} ORDER BY id LIMIT ?", (batch,)
            ).fetchall()
            doomed = [(int(i), int(at)) for i, at in rows if type(at) is int and at < cutoff_us]
        if not doomed and keep_rows is not None:
            # Ids only grow and rows go from the low end: the newest keep_rows have the top ids.
            top = self.conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
            if top is not None:
                rows = self.conn.execute(
                    f"SELECT id, at FROM {table} WHERE id <= ? ORDER BY id LIMIT ?",
                    (int(top) - keep_rows, batch),
                ).fetchall()
                doomed = [(int(i), at if type(at) is int else 0) for i, at in rows]
        self.conn.executemany(f"DELETE FROM {table} WHERE id = ?", [(i,) for i, _ in doomed])
        return doomed

    def prune_history(self, cutoff_us: int | None, keep_rows: int | None, batch: int) -> int:
        """One batch of history pruning; remembers the latest ``at`` it deleted, which is
        where backfill can no longer tell delivered fires, and counts the times it empties the
        history: new ids then start over, which the engines' change polls must know
        (``SqliteStore.changes_since``)."""
        with self.transaction():
            doomed = self._prune_batch("history", cutoff_us, keep_rows, batch)
            if doomed:
                self.conn.execute(
                    "INSERT INTO meta VALUES ('history_pruned_until', ?) ON CONFLICT (key)"
                    " DO UPDATE SET value = max(value, excluded.value)",
                    (max(at for _, at in doomed),),
                )
                if self.conn.execute("SELECT 1 FROM history LIMIT 1").fetchone() is None:
                    self.conn.execute(
                        "INSERT INTO meta VALUES ('history_emptied', 1) ON CONFLICT (key)"
                        " DO UPDATE SET value = value + 1"
                    )
        return len(doomed)

    def prune_dead_letters(self, cutoff_us: int | None, keep_rows: int | None, batch: int) -> int:
        with self.transaction():
            return len(self._prune_batch("dead_letters", cutoff_us, keep_rows, batch))

    def prune_reaction_operations(
        self, cutoff_us: int | None, keep_rows: int | None, batch: int
    ) -> int:
        """One batch of the reactions' operations records, by the history's rules."""
        if not self.has_table("reaction_operations"):
            return 0  # no reactions in this store
        with self.transaction():
            return len(self._prune_batch("reaction_operations", cutoff_us, keep_rows, batch))

    def history_pruned_until(self) -> int | None:
        """The latest ``at`` of a pruned history entry (None: nothing was pruned)."""
        row = self.conn.execute(
            "SELECT value FROM meta WHERE key = 'history_pruned_until'"
        ).fetchone()
        return None if row is None else int(row[0])

    def prune_handled(self, cutoff_us: int | None, _rows: int | None, batch: int) -> int:
        """One batch of handled-message records whose event was recorded before ``cutoff_us``
        (records of commands that appended no event are kept: they carry no time)."""
        if cutoff_us is None:
            return 0
        tables = {
            row[0]
            for row in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name IN ('events', 'handled_messages')"
            )
        }
        if len(tables) < 2:
            return 0  # no event log in this store
        with self.transaction():
            position = self._last_position_before(cutoff_us)
            if position is None:
                return 0
            rows = self.conn.execute(
                "SELECT aggregate, aggregate_id, message_id FROM handled_messages"
                " WHERE position <= ? LIMIT ?",
                (position, batch),
            ).fetchall()
            self.conn.executemany(
                "DELETE FROM handled_messages WHERE aggregate = ? AND aggregate_id = ?"
                " AND message_id = ?",
                rows,
            )
        return len(rows)

    def _last_position_before(self, cutoff_us: int) -> int | None:
        """The last event position recorded before ``cutoff_us`` (binary search: positions
        grow with recorded_at)."""
        low, high = self.conn.execute("SELECT min(position), max(position) FROM events").fetchone()
        if low is None:
            return None
        found = None
        while low <= high:
            middle = (low + high) // 2
            row = self.conn.execute(
                "SELECT position, recorded_at FROM events WHERE position >= ?"
                " ORDER BY position LIMIT 1",
                (middle,),
            ).fetchone()
            if row[1] < cutoff_us:
                found, low = int(row[0]), int(row[0]) + 1
            else:
                high = middle - 1
        return found
