"""The rows of a fire's bookkeeping, shared by the engines (``_fire_bookkeeping``): history
entries, dead letters, retries, the advance or completion of a schedule, a batch's ``Outcome``;
stored times as integer microseconds since the Unix epoch (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

__all__ = (
    "FIRED_AND_COMPLETED",
    "Advance",
    "AdvanceValues",
    "Complete",
    "CompleteValues",
    "DeadLetterRow",
    "HistoryRow",
    "HistoryValues",
    "NewRetry",
    "Outcome",
    "RetryDelete",
    "RetryUpdate",
    "from_us",
    "to_us",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(instant: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch."""
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    """Integer microseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=value)


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
