"""The SQLite store of the local provider: synchronous, called from one worker thread at a time.

Times are stored as integer microseconds since the Unix epoch (UTC). Every write is one
``BEGIN IMMEDIATE`` transaction, so two processes never interleave half-done writes, and a crash
leaves either all of a transaction or none of it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from reventless.errors import (
    BackendUnavailableError,
    CorruptDataError,
    PermissionDeniedError,
    ReventlessError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    ValidationError,
)
from reventless.fire_times import fire_times, first_fire, next_fire_after
from reventless.local._schema import check, is_ours, upgrade
from reventless.schedule import DEFAULT_DST, DstPolicy, Rate, Schedule, Single, rate_text
from reventless.scheduler_adapter import HistoryKind, IfExists, MisfirePolicy, PutOutcome

__all__ = (
    "FIRED_AND_COMPLETED",
    "AttachmentRow",
    "DueRows",
    "PutGroup",
    "ScheduleRow",
    "SqliteStore",
    "StoredSchedule",
    "check_row",
    "decode_stored",
    "from_us",
    "to_us",
    "translate_sqlite_error",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# sqlite3 error names (extended codes start with these) -> the error to raise. One table, walked by
# a test; anything not listed is a BackendUnavailableError.
ERROR_TABLE: tuple[tuple[str, type[ReventlessError], str], ...] = (
    ("SQLITE_BUSY", BackendUnavailableError, "the database is locked by another connection"),
    ("SQLITE_LOCKED", BackendUnavailableError, "a table is locked"),
    ("SQLITE_READONLY", PermissionDeniedError, "the database file is read-only"),
    ("SQLITE_PERM", PermissionDeniedError, "access to the database file was denied"),
    ("SQLITE_AUTH", PermissionDeniedError, "access to the database file was denied"),
    ("SQLITE_CANTOPEN", BackendUnavailableError, "the database file cannot be opened"),
    ("SQLITE_FULL", BackendUnavailableError, "the disk is full"),
    ("SQLITE_IOERR", BackendUnavailableError, "a disk I/O error occurred"),
    ("SQLITE_CORRUPT", CorruptDataError, "the database file is damaged"),
    ("SQLITE_NOTADB", CorruptDataError, "the file is not a SQLite database"),
)


def _error_name(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def translate_sqlite_error(exc: sqlite3.Error, path: str) -> ReventlessError:
    """Map a sqlite3 exception to the ReventlessError tree (use with ``raise ... from exc``)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    for prefix, error_type, meaning in ERROR_TABLE:
        if name.startswith(prefix):
            return error_type(f"store {path!r}: {meaning} ({name}: {exc})")
    return BackendUnavailableError(f"store {path!r}: {type(exc).__name__}: {exc}")


def to_us(instant: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch."""
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    """Integer microseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=value)


def decode_spec(spec: bytes | str, scheduler: str, name: str) -> Schedule:
    """Decode a stored schedule, turning damage into CorruptDataError naming the row."""
    try:
        return Schedule.from_json(spec)
    except ReventlessError as exc:
        raise CorruptDataError(
            f"stored schedule {name!r} of scheduler {scheduler!r} cannot be decoded: {exc}"
        ) from exc


class _StoredSchedule(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A stored schedule as read back: the rate kept as raw JSON (decoded through a cache)."""

    name: str
    rate: msgspec.Raw
    payload: str
    timezone: str = "UTC"
    dst: msgspec.Raw = msgspec.Raw(b"")  # absent: the default policy
    misfire: str | None = None  # absent: the engine's policy
    not_before: datetime | None = None  # absent: no window
    not_after: datetime | None = None
    jitter_minutes: int | None = None  # absent: on time
    max_fires: int | None = None  # absent: no count


_STORED = msgspec.json.Decoder(_StoredSchedule)
_RATE = msgspec.json.Decoder(Rate)
_DST = msgspec.json.Decoder(DstPolicy)


class StoredSchedule(NamedTuple):
    """A stored row's schedule as the engine fires it.

    ``timing`` has the row's rate and zone, all that fire times depend on; its name and payload
    are placeholders, shared by every row of that rate and zone. ``payload`` is the row's own,
    and so is ``misfire``, the schedule's misfire policy (None: the engine's).
    """

    timing: Schedule
    payload: str
    misfire: MisfirePolicy | None = None


# Timing schedules by (the stored rate's JSON, the zone, the DST policy's JSON): a few distinct
# ones serve most rows, each validated once by Schedule itself. Bounded: emptied when full.
_TIMINGS: dict[
    tuple[bytes, str, bytes, datetime | None, datetime | None, int | None, int | None], Schedule
] = {}
_MAX_TIMINGS = 4096


def decode_stored(spec: bytes | str, scheduler: str, name: str) -> StoredSchedule:
    """The schedule of a stored row, for firing it, without running create-time validation for
    every row again (the row was valid when it was written): the name and payload are only
    checked against the row, the rate and zone once per distinct pair.

    Refused with CorruptDataError naming the row: bytes that are not a stored schedule, a rate
    out of its ranges, a zone that does not load, a Single in a DST gap of its zone, an empty
    payload, a name that is not the row's. ``decode_spec`` is the full check, for what is shown
    to people.
    """
    try:
        stored = _STORED.decode(spec)
        key = (
            bytes(stored.rate),
            stored.timezone,
            bytes(stored.dst),
            stored.not_before,
            stored.not_after,
            stored.jitter_minutes,
            stored.max_fires,
        )
        timing = _TIMINGS.get(key)
        if timing is None:
            timing = _timing(*key)
        if stored.name != name or not stored.payload:
            raise ValueError(f"its name {stored.name!r} or its payload does not fit the row")
        misfire = None if stored.misfire is None else MisfirePolicy(stored.misfire)
    except (msgspec.MsgspecError, ReventlessError, ValueError, TypeError) as exc:
        raise CorruptDataError(
            f"stored schedule {name!r} of scheduler {scheduler!r} cannot be decoded: {exc}"
        ) from exc
    return StoredSchedule(timing, stored.payload, misfire)


def _timing(
    raw: bytes,
    timezone: str,
    dst: bytes,
    not_before: datetime | None,
    not_after: datetime | None,
    jitter_minutes: int | None,
    max_fires: int | None,
) -> Schedule:
    """A schedule of this rate, zone, DST policy and window, validated by Schedule (a Single in
    a DST gap under "skip", a zone that does not load and a rate out of range are all refused
    here)."""
    timing = Schedule(
        name="stored",
        rate=_RATE.decode(raw),
        payload="-",
        timezone=timezone,
        dst=_DST.decode(dst) if dst else DEFAULT_DST,
        not_before=not_before,
        not_after=not_after,
        jitter_minutes=jitter_minutes,
        max_fires=max_fires,
    )
    if len(_TIMINGS) >= _MAX_TIMINGS:
        _TIMINGS.clear()
    _TIMINGS[raw, timezone, dst, not_before, not_after, jitter_minutes, max_fires] = timing
    return timing


Row = tuple[Any, ...]

# The smallest and largest instants a stored time may hold (1970 to 9999, in microseconds).
MIN_US = 0  # 1970-01-01: nothing reventless stores is older
MAX_US = 253_402_300_799_999_999

# Attachments kept per scheduler besides the lease holder's: each process run adds one.
_KEEP_ATTACHMENTS = 16


class ScheduleRow(msgspec.Struct, gc=False):
    """A row of ``schedules`` as the engine reads it (columns not yet checked). A Struct with
    gc=False rather than a NamedTuple: a burst holds batches of them, and untracked they add
    nothing to the garbage collector's pauses."""

    id: int
    scheduler: str
    name: str
    spec: bytes
    created_at: int
    paused: int
    next_fire: int | None
    version: int


class RetryRow(NamedTuple):
    id: int
    scheduler: str
    name: str
    scheduled_time: int
    payload: str
    attempts: int
    next_attempt_at: int


# Stored for the usual last fire of a schedule (a Single): one row instead of 'fired' and
# 'completed' at the same moment; ``history`` reads it back as those two.
FIRED_AND_COMPLETED = "fired+completed"


class HistoryRow(NamedTuple):
    scheduler: str
    name: str
    kind: str  # a HistoryKind value, or FIRED_AND_COMPLETED
    at: int
    scheduled_time: int | None
    detail: str | None


class DeadLetterRow(NamedTuple):
    scheduler: str
    name: str
    scheduled_time: int
    payload: str
    attempts: int
    reason: str
    at: int


class AttachmentRow(NamedTuple):
    """A process's target on a scheduler: who (``owner`` is its lease owner id), what, when."""

    scheduler: str
    owner: str
    target: str
    payload_types: str | None
    process: str
    attached_at: int


class NewRetry(NamedTuple):
    scheduler: str
    name: str
    scheduled_time: int
    payload: str
    attempts: int
    next_attempt_at: int
    last_error: str


class Advance(NamedTuple):
    next_fire: int | None
    id: int
    version: int


class Complete(NamedTuple):
    id: int
    version: int


class RetryUpdate(NamedTuple):
    attempts: int
    next_attempt_at: int
    last_error: str
    id: int


class RetryDelete(NamedTuple):
    id: int


class PutGroup(NamedTuple):
    """One caller's schedules to upsert (see ``put_groups``)."""

    scheduler: str
    schedules: Sequence[Schedule]
    created_at: datetime


_ONE_ROW = "(?, ?, ?, ?, 0, ?, 1, ?)"
_UPSERT_SCHEDULE = (
    "INSERT INTO schedules (scheduler, name, spec, created_at, paused, next_fire, version, seq)"
    f" VALUES {_ONE_ROW}"
    " ON CONFLICT (scheduler, name) DO UPDATE SET spec = excluded.spec,"
    " created_at = excluded.created_at, paused = 0,"
    " next_fire = excluded.next_fire, version = version + 1, seq = excluded.seq"
)
# Up to this many rows, an insert each with RETURNING; beyond, multi-row inserts of up to
# _UPSERT_CHUNK rows (7 parameters each: far below SQLite's 32,766).
_RETURNING_ROWS = 8
_UPSERT_CHUNK = 500

# As plain str: SQLite binds an exact str faster than a str subclass such as HistoryKind.
_CREATED, _REPLACED = HistoryKind.CREATED.value, HistoryKind.REPLACED.value


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


class DueRows(NamedTuple):
    """One chunk of what the due index is built from, in id order: (id, due time in us) of
    healthy rows, the ids of rows whose due time is damaged, and the last id read (None: no
    rows are left after this chunk)."""

    due: list[tuple[int, int]]
    damaged: list[int]
    last_id: int | None


def _instants(
    schedule: Schedule, created_at: datetime, start: datetime, stop: datetime, most: int
) -> list[int]:
    """The schedule's fire instants in [start, stop] as microseconds; at most ``most``."""
    found: list[int] = []
    # No fire is before the schedule's creation (1970 at the earliest): starting there also
    # keeps a start such as datetime.min inside the datetime range.
    start = max(start, created_at)
    if stop < start:
        return found
    for instant in fire_times(
        schedule, created_at=created_at, after=start - timedelta(microseconds=1)
    ):
        if instant > stop:
            break
        if len(found) == most:
            raise ValidationError(
                "end",
                stop,
                f"a range holding at most {most} fires of {schedule.name!r}",
                message=(
                    f"the range from {start.isoformat()} to {stop.isoformat()} holds more than "
                    f"{most} fires of {schedule.name!r}; backfill it in smaller ranges"
                ),
            )
        found.append(to_us(instant))
    return found


def valid_us(value: object) -> bool:
    """Whether a stored time is an integer within the datetime range."""
    return type(value) is int and MIN_US <= value <= MAX_US


def check_row(row: ScheduleRow) -> None:
    """Raise CorruptDataError naming the row and column when a column holds what no writer wrote."""
    created, nxt = row.created_at, row.next_fire
    if (
        type(created) is int
        and MIN_US <= created <= MAX_US
        and (nxt is None or (type(nxt) is int and MIN_US <= nxt <= MAX_US))
        and type(row.paused) is int
        and type(row.version) is int
    ):
        return  # the usual row, checked in one expression: this runs for every fire
    problems = []
    if not valid_us(created):
        problems.append(f"created_at={created!r}")
    if nxt is not None and not valid_us(nxt):
        problems.append(f"next_fire={nxt!r}")
    if type(row.paused) is not int or type(row.version) is not int:
        problems.append(f"paused={row.paused!r}, version={row.version!r}")
    raise CorruptDataError(
        f"stored schedule {row.name!r} of scheduler {row.scheduler!r} is damaged: "
        + ", ".join(problems)
        + " (times are integer microseconds from 1970 to year 9999)"
    )


class SqliteStore:
    """One connection to one SQLite file (or ``:memory:``), used from one thread at a time."""

    def __init__(
        self, path: str | Path, lock_timeout: float = 5.0, *, read_only: bool = False
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        if "\x00" in self.path:  # sqlite3 would raise a bare ValueError
            raise ValidationError("path", self.path, "a file path without NUL characters")
        self.tables: frozenset[str] = frozenset()  # the tables this file has (see has_table)
        try:
            self.conn = self._open(lock_timeout, immutable=False)
        except sqlite3.Error as exc:
            if not (read_only and _error_name(exc) == "SQLITE_CANTOPEN"):
                raise translate_sqlite_error(exc, self.path) from exc
            # A WAL store in a folder this process cannot write has no shared-memory file to
            # open; nobody can write it either, so it is read as an immutable file.
            try:
                self.conn = self._open(lock_timeout, immutable=True)
            except sqlite3.Error as again:
                raise translate_sqlite_error(again, self.path) from again

    def _open(self, lock_timeout: float, *, immutable: bool) -> sqlite3.Connection:
        """A connection ready for use (schema made or checked); closed again if that fails."""
        if self.read_only:
            # Reads a store it may not write (a read-only file or folder); nothing is created.
            flags = "mode=ro&immutable=1" if immutable else "mode=ro"
            uri = f"{Path(self.path).resolve().as_uri()}?{flags}"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
        self.conn = conn
        try:
            # SQLite waits out another connection's lock for this long, then the call fails.
            self.busy_timeout_ms = int(lock_timeout * 1000)
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            if not self.read_only:
                self._prepare(lock_timeout)
            self._check_schema()
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, lock_timeout: float) -> None:
        # Another application's database is refused before anything is written to it, the
        # switch to WAL (a change of the file's header) included.
        is_ours(self.conn, self.path)
        if self.path != ":memory:":
            mode = self._switch_to_wal(lock_timeout)
            if mode != "wal":
                raise BackendUnavailableError(
                    f"store {self.path!r}: could not switch to WAL mode (got {mode!r})"
                )
        # WAL + NORMAL: a committed transaction survives a process crash; only a power loss
        # can take back the last few.
        self.conn.execute("PRAGMA synchronous = NORMAL")
        upgrade(self.conn, self.path)

    def _switch_to_wal(self, lock_timeout: float) -> str:
        """Switch a new file to WAL. SQLite answers BUSY at once, without its busy handler,
        while another connection opens the same new file, so the wait is done here."""
        deadline = time.monotonic() + lock_timeout
        pause = 0.002
        while True:
            try:
                return str(self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if not _error_name(exc).startswith("SQLITE_BUSY") or time.monotonic() > deadline:
                    raise
            time.sleep(pause)  # a worker thread: the event loop is not blocked
            pause = min(pause * 2, 0.05)

    def _check_schema(self) -> None:
        self.tables = check(self.conn, self.path)

    def has_table(self, table: str) -> bool:
        """Whether the file has ``table``: always, once opened for writing; a file opened
        read-only may be of an older schema, and gains the table when a writer opens it."""
        if table not in self.tables and _table_exists(self.conn, table):
            self.tables = check(self.conn, self.path)
        return table in self.tables

    def close(self) -> None:
        self.conn.close()

    # -- transactions ---------------------------------------------------------------------------

    def transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    def _bump_seq(self) -> int:
        row = self.conn.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'seq' RETURNING value"
        ).fetchone()
        return int(row[0])

    def _history(self, rows: Iterable[HistoryRow]) -> None:
        self.conn.executemany(
            "INSERT INTO history (scheduler, name, kind, at, scheduled_time, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    # -- operations -----------------------------------------------------------------------------

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
            seq = self._bump_seq()
            for schedule, next_us in prepared:
                row = self.conn.execute(
                    "INSERT INTO schedules (scheduler, name, spec, created_at, paused, next_fire,"
                    " version, seq) VALUES (?, ?, ?, ?, 0, ?, 1, ?)"
                    " ON CONFLICT (scheduler, name) DO NOTHING RETURNING id, version",
                    (scheduler, schedule.name, schedule.to_json(), created_us, next_us, seq),
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
            seq = self._bump_seq()
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
                        " next_fire, version, seq) VALUES (?, ?, ?, ?, 0, ?, 1, ?) RETURNING id",
                        (scheduler, schedule.name, schedule.to_json(), at_us, next_us, seq),
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
                    "UPDATE schedules SET spec = ?, next_fire = ?, version = version + 1, seq = ?"
                    " WHERE id = ?",
                    (schedule.to_json(), next_us, seq, row_id),
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
            seq = self._bump_seq()
            if len(rows) <= _RETURNING_ROWS:
                # A few rows (the usual single create): each insert says its id and version.
                stored = {}
                for row in rows:
                    stored[row[0], row[1]] = self.conn.execute(
                        _UPSERT_SCHEDULE + " RETURNING id, version", (*row, seq)
                    ).fetchone()
            else:
                stored = self._upsert_chunks(rows, seq)
            results, history = _put_results(groups, rows, stored)
            self._history_batch(history)
        return results

    def _upsert_chunks(
        self, rows: Sequence[tuple[Any, ...]], seq: int
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """Multi-row upserts of ``_UPSERT_CHUNK`` rows, each saying the ids and versions it
        wrote: cheaper per row than executemany and a select after. RETURNING's order is not
        the rows' order, and a name put twice in one statement comes back twice: its last
        version is the highest."""
        stored: dict[tuple[str, str], tuple[int, int]] = {}
        for start in range(0, len(rows), _UPSERT_CHUNK):
            chunk = rows[start : start + _UPSERT_CHUNK]
            values = ",".join([_ONE_ROW] * len(chunk))
            params = [value for row in chunk for value in (*row, seq)]
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
            self._bump_seq()
            self._history([HistoryRow(scheduler, name, HistoryKind.DELETED, to_us(at), None, None)])
        return True

    def _by_name(self, columns: str, scheduler: str, name: str) -> Row:
        row = self.conn.execute(
            f"SELECT {columns} FROM schedules WHERE scheduler = ? AND name = ?", (scheduler, name)
        ).fetchone()
        if row is None:
            raise ScheduleNotFoundError(name)
        return tuple(row)

    def get(self, scheduler: str, name: str) -> Row:
        """(id, spec, created_at, paused, next_fire, version) or ScheduleNotFoundError."""
        return self._by_name("id, spec, created_at, paused, next_fire, version", scheduler, name)

    def list_rows(self, scheduler: str, prefix: str, limit: int, after: str | None) -> list[Row]:
        """Rows (name, spec, created_at, paused, next_fire, version), name order, limit + 1."""
        low = prefix if after is None or after < prefix else after
        rows = self.conn.execute(
            "SELECT name, spec, created_at, paused, next_fire, version FROM schedules"
            " WHERE scheduler = ? AND name >= ? AND name < ? AND name != ?"
            " ORDER BY name LIMIT ?",
            # Names are ASCII below DEL, so prefix + DEL bounds every name with that prefix.
            (scheduler, low, prefix + "\x7f", after or "", limit + 1),
        ).fetchall()
        return [tuple(row) for row in rows]

    def pause(self, scheduler: str, name: str, at: datetime) -> None:
        with self.transaction():
            if self._by_name("paused", scheduler, name)[0]:
                return
            seq = self._bump_seq()
            self.conn.execute(
                "UPDATE schedules SET paused = 1, version = version + 1, seq = ?"
                " WHERE scheduler = ? AND name = ?",
                (seq, scheduler, name),
            )
            self._history([HistoryRow(scheduler, name, HistoryKind.PAUSED, to_us(at), None, None)])

    def resume(self, scheduler: str, name: str, at: datetime) -> tuple[int, int | None] | None:
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
            seq = self._bump_seq()
            if nxt is None:
                self.conn.execute("DELETE FROM schedules WHERE id = ?", (row_id,))
                self._history(
                    [
                        HistoryRow(scheduler, name, HistoryKind.RESUMED, at_us, None, None),
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
                "UPDATE schedules SET paused = 0, next_fire = ?, version = version + 1, seq = ?"
                " WHERE id = ?",
                (to_us(nxt), seq, row_id),
            )
            self._history([HistoryRow(scheduler, name, HistoryKind.RESUMED, at_us, None, None)])
            return int(row_id), to_us(nxt)

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

    # -- schedulers and the processes attached to them ------------------------------------------

    def record_attachment(self, row: AttachmentRow) -> None:
        """Record (or renew) a process's target on a scheduler; forget the oldest others."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO attachments (scheduler, owner, target, payload_types, process,"
                " attached_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scheduler, owner) DO UPDATE"
                " SET target = excluded.target, payload_types = excluded.payload_types,"
                " process = excluded.process, attached_at = excluded.attached_at",
                row,
            )
            self.conn.execute(
                "DELETE FROM attachments WHERE scheduler = ?1 AND owner NOT IN"
                " (SELECT owner FROM lease) AND owner NOT IN (SELECT owner FROM attachments"
                " WHERE scheduler = ?1 ORDER BY attached_at DESC LIMIT ?2)",
                (row.scheduler, _KEEP_ATTACHMENTS),
            )

    def attachments(self) -> list[AttachmentRow]:
        """Every recorded attachment, newest first (none in an older file opened read-only)."""
        if not self.has_table("attachments"):
            return []
        rows = self.conn.execute(
            "SELECT scheduler, owner, target, payload_types, process, attached_at"
            " FROM attachments ORDER BY attached_at DESC, rowid DESC"
        ).fetchall()
        return [AttachmentRow._make(row) for row in rows]

    def schedule_counts(self) -> list[tuple[str, int, int]]:
        """(scheduler, schedules, paused schedules) for every scheduler holding schedules."""
        rows = self.conn.execute(
            "SELECT scheduler, count(*), total(paused != 0) FROM schedules GROUP BY scheduler"
        ).fetchall()
        return [(str(name), int(count), int(paused)) for name, count, paused in rows]

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

    def lease_holder(self) -> tuple[str, float] | None:
        """(owner, expires_at in Unix seconds) of the lease row, if there is one."""
        row = self.conn.execute("SELECT owner, expires_at FROM lease WHERE id = 1").fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

    def lease_renewed_us(self) -> int | None:
        """When the lease was last taken or renewed (None: never, or by a release before it
        recorded this)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'lease_renewed_us'").fetchone()
        return None if row is None else int(row[0])

    # -- the engine's side ----------------------------------------------------------------------

    def current_seq(self) -> int:
        return int(self.conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0])

    def due_fires(self, after_id: int, limit: int) -> DueRows:
        """Up to ``limit`` active schedules with a next fire, ids above ``after_id``.

        The due index is loaded in such chunks, each a short read of its own: a large store
        never becomes one long read nor one large list. Read ``current_seq`` first; a change
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

    def changes_since(self, seq: int) -> tuple[list[tuple[int, Any]], int]:
        """Active schedules changed by operations after ``seq`` (any process), and the new seq."""
        with self.transaction():
            now_seq = self.current_seq()
            if now_seq == seq:
                return [], seq
            rows = self.conn.execute(
                "SELECT id, next_fire FROM schedules WHERE seq > ? AND paused = 0"
                " AND next_fire IS NOT NULL",
                (seq,),
            ).fetchall()
        return rows, now_seq

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

    # -- the lease ------------------------------------------------------------------------------

    def try_lease(self, owner: str, now: float, ttl: float) -> tuple[bool, float]:
        """Take or renew the engine's lease when it is free, expired or already ours: (held,
        when the lease it did not get lapses)."""
        with self.transaction():
            row = self.conn.execute("SELECT owner, expires_at FROM lease WHERE id = 1").fetchone()
            if row is not None and row[0] != owner and row[1] > now:
                return False, float(row[1])
            self.conn.execute(
                "INSERT INTO lease (id, owner, expires_at) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET owner = excluded.owner,"
                " expires_at = excluded.expires_at",
                (owner, now + ttl),
            )
            # When the holder was last seen alive, for status readers (`reventless schedulers`).
            self.conn.execute(
                "INSERT INTO meta VALUES ('lease_renewed_us', ?) ON CONFLICT (key)"
                " DO UPDATE SET value = excluded.value",
                (int(now * 1_000_000),),
            )
        return True, 0.0

    def release_lease(self, owner: str) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM lease WHERE id = 1 AND owner = ?", (owner,))

    # -- repair: trigger, backfill, redrive (queued as retry rows of attempt 0) -------------------

    def _queue_repairs(
        self, scheduler: str, items: Sequence[tuple[str, int, str]], kind: HistoryKind, at_us: int
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
            HistoryRow(scheduler, name, kind, at_us, scheduled_us, None)
            for name, scheduled_us, _ in items
        )
        return ids

    def trigger(self, scheduler: str, name: str, at_us: int) -> tuple[int, int]:
        """Queue one extra fire of a stored schedule; (retry row id, its scheduled time).

        The scheduled time is ``at_us`` cut to the second and never a whole minute, so its fire
        id cannot be one of the schedule's (they are all on whole minutes).
        """
        with self.transaction():
            (spec,) = self._by_name("spec", scheduler, name)
            schedule = decode_spec(spec, scheduler, name)
            scheduled_us = at_us - at_us % 1_000_000
            if scheduled_us % 60_000_000 == 0:
                scheduled_us += 1_000_000
            [row_id] = self._queue_repairs(
                scheduler, [(name, scheduled_us, schedule.payload)], HistoryKind.TRIGGERED, at_us
            )
        return row_id, scheduled_us

    def backfill(
        self, scheduler: str, name: str, start: datetime, end: datetime, at: datetime, most: int
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
            instants = _instants(schedule, from_us(created_us), start, stop, most)
            if not instants:
                return []
            pruned = self.history_pruned_until()
            if pruned is not None and instants[0] <= pruned:
                raise ValidationError(
                    "start",
                    start,
                    f"an instant after {from_us(pruned).isoformat()}",
                    message=(
                        f"backfill start {start.isoformat()}: the history up to "
                        f"{from_us(pruned).isoformat()} was pruned (retention), so the fires "
                        "delivered before then cannot be told; start after that instant"
                    ),
                )
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
            )
        return list(zip(ids, todo, strict=True))

    def redrive(
        self,
        scheduler: str,
        name: str | None,
        fires: Sequence[tuple[str, int]] | None,
        at_us: int,
    ) -> list[tuple[int, str, int]]:
        """Move dead letters back to delivery: all, one schedule's, or those of (name, scheduled
        second) in ``fires``; [(retry row id, name, scheduled_us)]. Quarantined rows (attempts
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
            rows = self.conn.execute(query + " ORDER BY id", params).fetchall()
            if fires is not None:
                wanted = {(fire_name, second) for fire_name, second in fires}
                rows = [row for row in rows if (row[1], row[2] // 1_000_000) in wanted]
            # One delivery per fire, also when it was dead-lettered more than once.
            picked: dict[tuple[str, int], tuple[str, int, str]] = {}
            for _, row_name, scheduled_us, payload in rows:
                picked.setdefault((row_name, scheduled_us), (row_name, scheduled_us, payload))
            self.conn.executemany(
                "DELETE FROM dead_letters WHERE id = ?", [(row[0],) for row in rows]
            )
            items = list(picked.values())
            ids = self._queue_repairs(scheduler, items, HistoryKind.REDRIVEN, at_us)
        return [(row_id, item[0], item[1]) for row_id, item in zip(ids, items, strict=True)]

    def queued_repairs(self) -> list[tuple[int, int]]:
        """(id, next_attempt_at) of the repairs queued (by any process) and not yet attempted.

        Retry row ids are reused once the highest is deleted, so the pair names one repair.
        """
        rows = self.conn.execute(
            "SELECT id, next_attempt_at FROM retries WHERE attempts = 0"
        ).fetchall()
        return [(int(row_id), int(at_us)) for row_id, at_us in rows]

    # -- retention --------------------------------------------------------------------------------

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
        where backfill can no longer tell delivered fires."""
        with self.transaction():
            doomed = self._prune_batch("history", cutoff_us, keep_rows, batch)
            if doomed:
                self.conn.execute(
                    "INSERT INTO meta VALUES ('history_pruned_until', ?) ON CONFLICT (key)"
                    " DO UPDATE SET value = max(value, excluded.value)",
                    (max(at for _, at in doomed),),
                )
        return len(doomed)

    def prune_dead_letters(self, cutoff_us: int | None, keep_rows: int | None, batch: int) -> int:
        with self.transaction():
            return len(self._prune_batch("dead_letters", cutoff_us, keep_rows, batch))

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


def _table_exists(conn: sqlite3.Connection, table: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    return row.fetchone() is not None


class LeaseLostError(BackendUnavailableError):
    """Another process holds the lease now; this one must stop firing."""


# The values of a HistoryRow, an Advance and a Complete. The fire path appends plain tuples of
# them: the garbage collector stops tracking a plain tuple of plain values at its first pass,
# but tracks a NamedTuple as long as it lives, and a burst keeps thousands waiting for a commit.
HistoryValues = tuple[str, str, str, int, int | None, str | None]
AdvanceValues = tuple[int | None, int, int]
CompleteValues = tuple[int, int]


class Outcome:
    """Rows to write for one batch of finished fires (plain lists: this is the hot path)."""

    __slots__ = (
        "advance",
        "complete",
        "dead_letters",
        "history",
        "new_retries",
        "retry_deletes",
        "retry_updates",
    )

    def __init__(self) -> None:
        self.advance: list[AdvanceValues] = []
        self.complete: list[CompleteValues] = []
        self.history: list[HistoryValues] = []
        self.new_retries: list[NewRetry] = []
        self.retry_updates: list[RetryUpdate] = []
        self.retry_deletes: list[RetryDelete] = []
        self.dead_letters: list[DeadLetterRow] = []

    def extend(self, other: Outcome) -> None:
        self.advance += other.advance
        self.complete += other.complete
        self.history += other.history
        self.new_retries += other.new_retries
        self.retry_updates += other.retry_updates
        self.retry_deletes += other.retry_deletes
        self.dead_letters += other.dead_letters


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
