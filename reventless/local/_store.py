"""The SQLite store of the local provider: synchronous, called from one worker thread at a time.

Times are stored as integer microseconds since the Unix epoch (UTC). Every write is one
``BEGIN IMMEDIATE`` transaction, so two processes never interleave half-done writes, and a crash
leaves either all of a transaction or none of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from reventless.errors import (
    ScheduleExistsError,
)
from reventless.fire_times import first_fire, next_fire_after
from reventless.local._connection import LeaseLostError
from reventless.local._history import HistoryTables
from reventless.local._processes import ProcessTables
from reventless.local._rows import (
    MAX_US,
    MIN_US,
    ChangeMark,
    DueRows,
    HistoryRow,
    HistoryValues,
    Outcome,
    PutGroup,
    RetryRow,
    Row,
    ScheduleRow,
    decode_spec,
    from_us,
    to_us,
    valid_us,
)
from reventless.schedule import Rate, Schedule, Single, rate_text
from reventless.scheduler_adapter import HistoryKind, IfExists, PutOutcome, pause_detail

__all__ = ("SqliteStore",)

# ``seq`` is 0: the column of schema version 1's change counter, kept but unused (``_schema``).
_ONE_ROW = "(?, ?, ?, ?, 0, ?, 1, 0)"


_UPSERT_SCHEDULE = (
    "INSERT INTO schedules (scheduler, name, spec, created_at, paused, next_fire, version, seq)"
    f" VALUES {_ONE_ROW}"
    " ON CONFLICT (scheduler, name) DO UPDATE SET spec = excluded.spec,"
    " created_at = excluded.created_at, paused = 0,"  # the schema's trigger forgets a pause
    " next_fire = excluded.next_fire, version = version + 1"
)
# History kinds that give a schedule a new next fire: what another process's engine must see
# (``changes_since``). Pausing, deleting and completing need no new entry in the due index: an
# entry is checked against its row before it fires.
_NEW_NEXT_FIRE = (
    HistoryKind.CREATED,
    HistoryKind.REPLACED,
    HistoryKind.UPDATED,
    HistoryKind.RESUMED,
)
_CHANGED_KINDS = ", ".join(f"'{kind.value}'" for kind in _NEW_NEXT_FIRE)


# Up to this many rows, an insert each with RETURNING; beyond, multi-row inserts of up to
# _UPSERT_CHUNK rows (7 parameters each: far below SQLite's 32,766).
_CREATED, _REPLACED = HistoryKind.CREATED.value, HistoryKind.REPLACED.value
_RETURNING_ROWS = 8


_UPSERT_CHUNK = 500


@lru_cache(maxsize=1024)
def _describe_rate(rate: Rate, timezone: str) -> str:
    """The detail of a 'created' history entry (a batch mostly repeats a few)."""
    return f"{rate_text(rate)} in {timezone}"


def _updated_next(schedule: Schedule, at: datetime, created_at: datetime) -> int | None:
    """The next fire of a schedule updated at ``at`` that was created at ``created_at``."""
    if isinstance(schedule.rate, Single):
        nxt = first_fire(schedule, at)
    else:
        nxt = next_fire_after(schedule, at, created_at=created_at)
    return None if nxt is None else to_us(nxt)


def _put_results(
    groups: Sequence[PutGroup],
    rows: list[tuple[Any, ...]],
    stored: dict[tuple[str, str], tuple[int, int]],
) -> tuple[list[list[tuple[int, int | None, bool]]], list[HistoryRow]]:
    """Per group, (id, next fire, created) of each schedule, and their history rows.

    A row was created when it did not exist before this transaction: its version is now the
    number of times it was put in it. A name put twice (two callers) is created once, then
    replaced.
    """
    times: dict[tuple[str, str], int] = {}
    if len(stored) < len(rows):  # some name was put more than once
        for row in rows:
            times[row[0], row[1]] = times.get((row[0], row[1]), 0) + 1
    seen: set[tuple[str, str]] = set()
    flat, history = [], []
    schedules = (schedule for group in groups for schedule in group.schedules)
    for (scheduler, name, _, created_us, next_us), schedule in zip(rows, schedules, strict=True):
        row_id, version = stored[scheduler, name]
        if times:
            created = (scheduler, name) not in seen and version == times[scheduler, name]
            seen.add((scheduler, name))
        else:
            created = version == 1
        flat.append((row_id, next_us, created))
        detail = _describe_rate(schedule.rate, schedule.timezone)
        kind = _CREATED if created else _REPLACED
        # tuple.__new__: a NamedTuple call costs several times as much, for every row.
        history.append(tuple.__new__(HistoryRow, (scheduler, name, kind, created_us, None, detail)))
    results, start = [], 0
    for group in groups:
        results.append(flat[start : start + len(group.schedules)])
        start += len(group.schedules)
    return results, history


class SqliteStore(HistoryTables, ProcessTables):
    """One connection to one SQLite file (or ``:memory:``), used from one thread at a time."""

    # -- schedules ------------------------------------------------------------------------------

    def put_many(
        self,
        scheduler: str,
        schedules: Sequence[Schedule],
        created_at: datetime,
        if_exists: IfExists = IfExists.REPLACE,
    ) -> list[tuple[int, int | None, PutOutcome]]:
        """Create schedules as ``if_exists`` says; (id, next_fire_us, outcome) for each.

        A kept schedule's id and next fire are its stored ones (the engine already knows them).
        REPLACE is ``put_groups``'s one-statement upsert.
        """
        if if_exists is IfExists.UPDATE:
            return self._update_many(scheduler, schedules, created_at)
        if if_exists is IfExists.REPLACE:
            (upserted,) = self.put_groups([PutGroup(scheduler, schedules, created_at)])
            return [
                (row_id, next_us, PutOutcome.CREATED if created else PutOutcome.REPLACED)
                for row_id, next_us, created in upserted
            ]
        created_us = to_us(created_at)
        prepared = []
        for schedule in schedules:
            nxt = first_fire(schedule, created_at)
            prepared.append((schedule, None if nxt is None else to_us(nxt)))
        results: list[tuple[int, int | None, PutOutcome]] = []
        history = []
        with self.transaction():
            if if_exists is IfExists.ERROR:
                stored = self._stored_names(scheduler, [s.name for s in schedules])
                if stored:
                    raise ScheduleExistsError(stored)
            for schedule, next_us in prepared:
                row = self.conn.execute(
                    "INSERT INTO schedules (scheduler, name, spec, created_at, paused, next_fire,"
                    f" version, seq) VALUES {_ONE_ROW}"
                    " ON CONFLICT (scheduler, name) DO NOTHING RETURNING id, version",
                    (scheduler, schedule.name, schedule.to_json(), created_us, next_us),
                ).fetchone()
                if row is None:  # KEEP found one stored (ERROR checked above): leave it
                    kept = self.conn.execute(
                        "SELECT id, next_fire FROM schedules WHERE scheduler = ? AND name = ?",
                        (scheduler, schedule.name),
                    ).fetchone()
                    results.append((kept[0], kept[1], PutOutcome.KEPT))
                    continue
                results.append((row[0], next_us, PutOutcome.CREATED))
                history.append(
                    HistoryRow(
                        scheduler,
                        schedule.name,
                        HistoryKind.CREATED,
                        created_us,
                        None,
                        f"{rate_text(schedule.rate)} in {schedule.timezone}",
                    )
                )
            self._history(history)
        return results

    def _update_many(
        self, scheduler: str, schedules: Sequence[Schedule], at: datetime
    ) -> list[tuple[int, int | None, PutOutcome]]:
        """``IfExists.UPDATE``: each stored schedule changed in place, keeping its creation
        instant and paused state; one not stored is created. One transaction."""
        at_us = to_us(at)
        results: list[tuple[int, int | None, PutOutcome]] = []
        history = []
        with self.transaction():
            for schedule in schedules:
                row = self.conn.execute(
                    "SELECT id, created_at, paused FROM schedules WHERE scheduler = ? AND name = ?",
                    (scheduler, schedule.name),
                ).fetchone()
                detail = f"{rate_text(schedule.rate)} in {schedule.timezone}"
                if row is None:
                    nxt = first_fire(schedule, at)
                    next_us = None if nxt is None else to_us(nxt)
                    (row_id,) = self.conn.execute(
                        "INSERT INTO schedules (scheduler, name, spec, created_at, paused,"
                        f" next_fire, version, seq) VALUES {_ONE_ROW} RETURNING id",
                        (scheduler, schedule.name, schedule.to_json(), at_us, next_us),
                    ).fetchone()
                    results.append((row_id, next_us, PutOutcome.CREATED))
                    history.append(
                        HistoryRow(
                            scheduler, schedule.name, HistoryKind.CREATED, at_us, None, detail
                        )
                    )
                    continue
                row_id, created_us, paused = row
                next_us = None if paused else _updated_next(schedule, at, from_us(created_us))
                self.conn.execute(
                    "UPDATE schedules SET spec = ?, next_fire = ?, version = version + 1"
                    " WHERE id = ?",
                    (schedule.to_json(), next_us, row_id),
                )
                results.append((row_id, next_us, PutOutcome.UPDATED))
                history.append(
                    HistoryRow(scheduler, schedule.name, HistoryKind.UPDATED, at_us, None, detail)
                )
            self._history(history)
        return results

    def _stored_names(self, scheduler: str, names: list[str]) -> list[str]:
        """Which of ``names`` are stored in ``scheduler``, in the order given."""
        found: set[str] = set()
        for start in range(0, len(names), 500):  # well under SQLite's bound-parameter limit
            chunk = names[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            found.update(
                row[0]
                for row in self.conn.execute(
                    f"SELECT name FROM schedules WHERE scheduler = ? AND name IN ({marks})",
                    (scheduler, *chunk),
                )
            )
        return [name for name in names if name in found]

    def put_groups(self, groups: Sequence[PutGroup]) -> list[list[tuple[int, int | None, bool]]]:
        """``put_many`` for several groups in one transaction: the creates of concurrent callers
        share one commit. One result list per group, in order; all or none are written."""
        rows = []  # the schedules columns, in order
        for scheduler, schedules, created_at in groups:
            created_us = to_us(created_at)
            for schedule in schedules:
                nxt = first_fire(schedule, created_at)
                next_us = None if nxt is None else to_us(nxt)
                rows.append((scheduler, schedule.name, schedule.to_json(), created_us, next_us))
        with self.transaction():
            if len(rows) <= _RETURNING_ROWS:
                # A few rows (the usual single create): each insert says its id and version.
                stored = {}
                for row in rows:
                    stored[row[0], row[1]] = self.conn.execute(
                        _UPSERT_SCHEDULE + " RETURNING id, version", row
                    ).fetchone()
            else:
                stored = self._upsert_chunks(rows)
            results, history = _put_results(groups, rows, stored)
            self._history_batch(history)
        return results

    def _upsert_chunks(
        self, rows: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """Multi-row upserts of ``_UPSERT_CHUNK`` rows, each saying the ids and versions it
        wrote: cheaper per row than executemany and a select after. RETURNING's order is not
        the rows' order, and a name put twice in one statement comes back twice: its last
        version is the highest."""
        stored: dict[tuple[str, str], tuple[int, int]] = {}
        for start in range(0, len(rows), _UPSERT_CHUNK):
            chunk = rows[start : start + _UPSERT_CHUNK]
            values = ",".join([_ONE_ROW] * len(chunk))
            params = [value for row in chunk for value in row]
            for scheduler, name, row_id, version in self.conn.execute(
                _UPSERT_SCHEDULE.replace(_ONE_ROW, values, 1)
                + " RETURNING scheduler, name, id, version",
                params,
            ):
                known = stored.get((scheduler, name))
                if known is None or version > known[1]:
                    stored[scheduler, name] = (row_id, version)
        return stored

    def delete(self, scheduler: str, name: str, at: datetime) -> bool:
        with self.transaction():
            row = self.conn.execute(
                "DELETE FROM schedules WHERE scheduler = ? AND name = ? RETURNING id",
                (scheduler, name),
            ).fetchone()
            if row is None:
                return False
            self._history([HistoryRow(scheduler, name, HistoryKind.DELETED, to_us(at), None, None)])
        return True

    def _pause_columns(self) -> str:
        """The pause's columns, or NULLs in a file (opened read-only) of a schema without them."""
        if self.has_column("schedules", "pause_reason"):
            return "paused_at, paused_by, pause_reason"
        return "NULL, NULL, NULL"

    def get(self, scheduler: str, name: str) -> Row:
        """(id, spec, created_at, paused, next_fire, version, paused_at, paused_by,
        pause_reason) or ScheduleNotFoundError."""
        return self._by_name(
            f"id, spec, created_at, paused, next_fire, version, {self._pause_columns()}",
            scheduler,
            name,
        )

    def list_rows(self, scheduler: str, prefix: str, limit: int, after: str | None) -> list[Row]:
        """Rows (name, spec, created_at, paused, next_fire, version, paused_at, paused_by,
        pause_reason), name order, limit + 1."""
        low = prefix if after is None or after < prefix else after
        rows = self.conn.execute(
            "SELECT name, spec, created_at, paused, next_fire, version,"
            f" {self._pause_columns()} FROM schedules"
            " WHERE scheduler = ? AND name >= ? AND name < ? AND name != ?"
            " ORDER BY name LIMIT ?",
            # Names are ASCII below DEL, so prefix + DEL bounds every name with that prefix.
            (scheduler, low, prefix + "\x7f", after or "", limit + 1),
        ).fetchall()
        return [tuple(row) for row in rows]

    def pause(
        self,
        scheduler: str,
        name: str,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> None:
        """Pause, keeping when, who and why with the schedule and in the history."""
        with self.transaction():
            if self._by_name("paused", scheduler, name)[0]:
                return
            at_us = to_us(at)
            self.conn.execute(
                "UPDATE schedules SET paused = 1, version = version + 1, paused_at = ?,"
                " paused_by = ?, pause_reason = ? WHERE scheduler = ? AND name = ?",
                (at_us, by, reason, scheduler, name),
            )
            detail = pause_detail(reason, by)
            self._history([HistoryRow(scheduler, name, HistoryKind.PAUSED, at_us, None, detail)])

    def resume(
        self,
        scheduler: str,
        name: str,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> tuple[int, int | None] | None:
        """Resume; returns (row id, next fire) or None when the schedule completed instead."""
        with self.transaction():
            row_id, spec, created_us, paused = self._by_name(
                "id, spec, created_at, paused", scheduler, name
            )
            if not paused:
                return int(row_id), None
            schedule = decode_spec(spec, scheduler, name)
            nxt = next_fire_after(schedule, at, created_at=from_us(created_us))
            at_us = to_us(at)
            detail = pause_detail(reason, by)
            if nxt is None:
                self.conn.execute("DELETE FROM schedules WHERE id = ?", (row_id,))
                self._history(
                    [
                        HistoryRow(scheduler, name, HistoryKind.RESUMED, at_us, None, detail),
                        HistoryRow(
                            scheduler,
                            name,
                            HistoryKind.COMPLETED,
                            at_us,
                            None,
                            "no fire left after resume",
                        ),
                    ]
                )
                return None
            self.conn.execute(
                # The schema's trigger forgets the pause's when, who and why.
                "UPDATE schedules SET paused = 0, next_fire = ?, version = version + 1"
                " WHERE id = ?",
                (to_us(nxt), row_id),
            )
            self._history([HistoryRow(scheduler, name, HistoryKind.RESUMED, at_us, None, detail)])
            return int(row_id), to_us(nxt)

    def change_mark(self) -> ChangeMark:
        """Where the store's changes stand now: its last history id, and how many times
        retention emptied the history (its ids then start over)."""
        last_id, emptied = self.conn.execute(
            "SELECT (SELECT max(id) FROM history),"
            " (SELECT value FROM meta WHERE key = 'history_emptied')"
        ).fetchone()
        return ChangeMark(emptied or 0, last_id or 0)

    def due_fires(self, after_id: int, limit: int) -> DueRows:
        """Up to ``limit`` active schedules with a next fire, ids above ``after_id``.

        The due index is loaded in such chunks, each a short read of its own: a large store
        never becomes one long read nor one large list. Read ``change_mark`` first; a change
        made meanwhile is then also seen by ``changes_since``.
        """
        return self._due_rows(
            "SELECT id, next_fire, typeof(next_fire) = 'integer' AND next_fire BETWEEN ? AND ?"
            " FROM schedules WHERE id > ? AND paused = 0 AND next_fire IS NOT NULL"
            " ORDER BY id LIMIT ?",
            after_id,
            limit,
        )

    def due_retries(self, after_id: int, limit: int) -> DueRows:
        """As ``due_fires``, for retries (a damaged retry time is left out, not reported)."""
        return self._due_rows(
            "SELECT id, next_attempt_at, typeof(next_attempt_at) = 'integer'"
            " AND next_attempt_at BETWEEN ? AND ? FROM retries WHERE id > ? ORDER BY id LIMIT ?",
            after_id,
            limit,
        )

    def _due_rows(self, select: str, after_id: int, limit: int) -> DueRows:
        rows = self.conn.execute(select, (MIN_US, MAX_US, after_id, limit)).fetchall()
        due = [(row_id, at) for row_id, at, healthy in rows if healthy]
        damaged = [row_id for row_id, _, healthy in rows if not healthy]
        return DueRows(due, damaged, rows[-1][0] if len(rows) == limit else None)

    def changes_since(self, mark: ChangeMark) -> tuple[list[tuple[int, Any]], ChangeMark]:
        """Active schedules given a next fire by operations after ``mark`` (any process), and
        the new mark. Every such operation writes a history entry in its transaction; the
        entries are read by id from the mark on (all of them, once retention emptied the
        history since: its ids started over)."""
        with self.transaction():
            now = self.change_mark()
            if now == mark:
                return [], mark
            after = mark.last_id if now.emptied == mark.emptied else 0
            # CROSS JOIN: the history's new entries first, by id; SQLite would otherwise scan
            # every schedule and look each up in the history.
            rows = self.conn.execute(
                "SELECT DISTINCT s.id, s.next_fire FROM history AS h CROSS JOIN schedules AS s"
                " ON s.scheduler = h.scheduler AND s.name = h.name"
                f" WHERE h.id > ? AND h.kind IN ({_CHANGED_KINDS})"
                " AND s.paused = 0 AND s.next_fire IS NOT NULL",
                (after,),
            ).fetchall()
        return rows, now

    def _select_by_ids(self, select: str, ids: Sequence[int]) -> list[Row]:
        """Rows of ``select ... WHERE id IN (ids)``, in chunks under SQLite's parameter limit."""
        rows: list[Row] = []
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            rows.extend(self.conn.execute(f"{select} WHERE id IN ({marks})", chunk).fetchall())
        return rows

    def load_schedules(self, ids: Sequence[int]) -> list[ScheduleRow]:
        """The rows of these ids (those that still exist)."""
        rows = self._select_by_ids(
            "SELECT id, scheduler, name, spec, created_at, paused, next_fire, version"
            " FROM schedules",
            ids,
        )
        return [ScheduleRow(*row) for row in rows]

    def load_retries(self, ids: Sequence[int]) -> list[RetryRow]:
        """The retry rows of these ids (those that still exist)."""
        rows = self._select_by_ids(
            "SELECT id, scheduler, name, scheduled_time, payload, attempts, next_attempt_at"
            " FROM retries",
            ids,
        )
        return [RetryRow._make(row) for row in rows]

    def quarantine(self, row_id: int, reason: str, at_us: int) -> None:
        """Stop firing a damaged row: keep it (for an operator) with no next fire, and record
        ``reason`` in its history and as a dead letter holding the raw stored schedule."""
        with self.transaction():
            row = self.conn.execute(
                "SELECT scheduler, name, spec, next_fire FROM schedules WHERE id = ?", (row_id,)
            ).fetchone()
            if row is None:
                return
            scheduler, name, spec, next_fire = row
            self.conn.execute("UPDATE schedules SET next_fire = NULL WHERE id = ?", (row_id,))
            raw = spec.decode("utf-8", "replace") if isinstance(spec, bytes) else str(spec)
            scheduled_us = next_fire if valid_us(next_fire) else at_us
            reason = f"CorruptDataError: {reason}; quarantined, not fired"
            self._history(
                [
                    HistoryRow(
                        str(scheduler),
                        str(name),
                        HistoryKind.DEAD_LETTERED,
                        at_us,
                        scheduled_us,
                        reason,
                    )
                ]
            )
            self.conn.execute(
                "INSERT INTO dead_letters (scheduler, name, scheduled_time, payload, attempts,"
                " reason, at) VALUES (?, ?, ?, ?, 0, ?, ?)",
                (str(scheduler), str(name), scheduled_us, raw, reason, at_us),
            )

    def commit_outcomes(self, outcome: Outcome, owner: str | None) -> list[int]:
        """Write one batch of fire outcomes atomically; returns the ids of new retry rows.

        With ``owner`` set, the batch commits only while that owner holds the lease.
        """
        conn = self.conn
        with self.transaction():
            if owner is not None:
                row = conn.execute("SELECT owner FROM lease WHERE id = 1").fetchone()
                if row is None or row[0] != owner:
                    raise LeaseLostError(f"store {self.path!r}: this process lost its lease")
            if outcome.advance:
                self._grouped("UPDATE schedules SET next_fire = ?", outcome.advance)
            if outcome.complete:
                self._grouped("DELETE FROM schedules", [(None, *row) for row in outcome.complete])
            if outcome.history:
                self._history_batch(outcome.history)
            if outcome.retry_updates:
                conn.executemany(
                    "UPDATE retries SET attempts = ?, next_attempt_at = ?, last_error = ?"
                    " WHERE id = ?",
                    outcome.retry_updates,
                )
            if outcome.retry_deletes:
                conn.executemany("DELETE FROM retries WHERE id = ?", outcome.retry_deletes)
            if outcome.dead_letters:
                conn.executemany(
                    "INSERT INTO dead_letters (scheduler, name, scheduled_time, payload, attempts,"
                    " reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    outcome.dead_letters,
                )
            new_ids = []
            for values in outcome.new_retries:
                cursor = conn.execute(
                    "INSERT INTO retries (scheduler, name, scheduled_time, payload, attempts,"
                    " next_attempt_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
                new_ids.append(int(cursor.lastrowid or 0))
        return new_ids

    def _grouped(self, change: str, rows: Sequence[tuple[Any, int, int]]) -> None:
        """``change ... WHERE id = ? AND version = ?`` for rows (value, id, version): one
        statement for each value and version shared by many rows (a burst of Singles, schedules
        created together), in chunks under SQLite's parameter limit. One statement instead of one
        a row lets the store thread hand the interpreter back to the event loop less often."""
        groups: dict[tuple[Any, int], list[int]] = {}
        for value, row_id, version in rows:
            groups.setdefault((value, version), []).append(row_id)
        set_value = "?" in change
        alone = [
            (value, ids[0], version) for (value, version), ids in groups.items() if len(ids) == 1
        ]
        if alone:
            self.conn.executemany(
                f"{change} WHERE id = ? AND version = ?",
                alone if set_value else [row[1:] for row in alone],
            )
        for (value, version), ids in groups.items():
            if len(ids) == 1:
                continue
            for start in range(0, len(ids), 900):
                chunk = ids[start : start + 900]
                marks = ",".join("?" * len(chunk))
                params = [value] if set_value else []
                self.conn.execute(
                    f"{change} WHERE version = ? AND id IN ({marks})", [*params, version, *chunk]
                )

    def _history_batch(self, rows: Sequence[HistoryValues]) -> None:
        """``_history`` as multi-row inserts of up to 150 rows (one statement each)."""
        for start in range(0, len(rows), 150):
            chunk = rows[start : start + 150]
            self.conn.execute(
                "INSERT INTO history (scheduler, name, kind, at, scheduled_time, detail) VALUES "
                + ",".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk)),
                [value for row in chunk for value in row],
            )
