"""The embedded store's rows and codecs: named rows that cross module boundaries (a schedule's
row, a retry's, a history entry...), the engine's batched outcome, stored times as integer
microseconds since the Unix epoch (UTC), and the decoding of a stored schedule."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

from reventless._fire_rows import (
    FIRED_AND_COMPLETED,
    Advance,
    AdvanceValues,
    Complete,
    CompleteValues,
    DeadLetterRow,
    HistoryRow,
    HistoryValues,
    NewRetry,
    Outcome,
    RetryDelete,
    RetryUpdate,
    from_us,
    to_us,
)
from reventless.errors import (
    CorruptDataError,
    ReventlessError,
)
from reventless.schedule import DEFAULT_DST, DstPolicy, Rate, Schedule
from reventless.scheduler_adapter import MisfirePolicy

__all__ = (
    "FIRED_AND_COMPLETED",
    "MAX_US",
    "MIN_US",
    "Advance",
    "AdvanceValues",
    "AttachmentRow",
    "ChangeMark",
    "Complete",
    "CompleteValues",
    "DeadLetterRow",
    "DueRows",
    "HistoryRow",
    "HistoryValues",
    "NewRetry",
    "Outcome",
    "PutGroup",
    "RetryDelete",
    "RetryRow",
    "RetryUpdate",
    "Row",
    "ScheduleRow",
    "StoredSchedule",
    "check_row",
    "decode_spec",
    "decode_stored",
    "from_us",
    "to_us",
    "valid_us",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


class AttachmentRow(NamedTuple):
    """A process's target on a scheduler: who (``owner`` is its lease owner id), what, when."""

    scheduler: str
    owner: str
    target: str
    payload_types: str | None
    process: str
    attached_at: int


class PutGroup(NamedTuple):
    """One caller's schedules to upsert (see ``put_groups``)."""

    scheduler: str
    schedules: Sequence[Schedule]
    created_at: datetime


class ChangeMark(NamedTuple):
    """How far an engine has read the store's changes (``SqliteStore.changes_since``): the last
    history id it saw, and how many times retention had emptied the history by then."""

    emptied: int
    last_id: int


class DueRows(NamedTuple):
    """One chunk of what the due index is built from, in id order: (id, due time in us) of
    healthy rows, the ids of rows whose due time is damaged, and the last id read (None: no
    rows are left after this chunk)."""

    due: list[tuple[int, int]]
    damaged: list[int]
    last_id: int | None


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
