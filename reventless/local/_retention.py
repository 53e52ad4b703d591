"""Retention: how long the local store keeps the records that grow with every fire.

History, dead letters, handled-message records (the event log's exactly-once guard) and the
reactions' operations records (resets and resumes) are deleted by age and by count, oldest
first, in small batches (one short transaction each), so the engine's own store calls are never
held up for long. The leader prunes in the background; ``LocalProvider.prune`` and
``reventless schedules prune`` prune on demand.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import anyio
import anyio.lowlevel
import msgspec

from reventless.errors import ValidationError
from reventless.local._rows import to_us
from reventless.local._store_runner import StoreRunner

__all__ = ("PruneReport", "Retention", "prune")

_MIN_AGE = timedelta(hours=1)
_MIN_ROWS = 1000
# The longest a fire may be delivered again after it was first attempted: retries end at
# RetryPolicy.max_event_age (at most 24 h); a redrive can resend a dead letter while it is kept.
_MAX_EVENT_AGE = timedelta(hours=24)


class Retention(msgspec.Struct, frozen=True, kw_only=True):
    """What the local store keeps; None keeps that kind of record forever.

    - ``history_age`` / ``history_rows``: history entries older than this, and beyond this many
      (the newest are kept), are deleted. Default 30 days, 10 million rows (about 700 MB). The
      reactions' operations records (an operator's reset, resume or skip: the reactions'
      history) are kept by the same rules, counted apart.
    - ``dead_letter_age`` / ``dead_letter_rows``: the same for dead letters (30 days, 100,000).
    - ``handled_age``: handled-message records (which make a repeated command a no-op) whose
      events were recorded longer ago than this are deleted (the record of a command that
      appended no event carries no time and is kept). It must cover the longest possible
      redelivery of a fire, the dead letters' age plus 24 h of retries, so that exactly-once
      still holds: the default is 31 days, and it must be None when dead letters are kept
      forever.
    - ``every``: how often the leader prunes (real time, 1 s to 1 day; default 1 minute);
      ``batch``: rows per transaction (10 to 100,000; default 1000).

    Backfill reads the history to tell delivered fires: it refuses ranges whose history was
    pruned.
    """

    history_age: timedelta | None = timedelta(days=30)
    history_rows: int | None = 10_000_000
    dead_letter_age: timedelta | None = timedelta(days=30)
    dead_letter_rows: int | None = 100_000
    handled_age: timedelta | None = timedelta(days=31)
    every: timedelta = timedelta(minutes=1)
    batch: int = 1000

    def __post_init__(self) -> None:
        for field in ("history_age", "dead_letter_age", "handled_age"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, timedelta) or value < _MIN_AGE):
                raise ValidationError(field, value, "None or a timedelta of at least 1 hour")
        for field in ("history_rows", "dead_letter_rows"):
            value = getattr(self, field)
            if value is not None and (type(value) is not int or value < _MIN_ROWS):
                raise ValidationError(field, value, f"None or a whole number from {_MIN_ROWS}")
        if not isinstance(self.every, timedelta) or not (
            timedelta(seconds=1) <= self.every <= timedelta(days=1)
        ):
            raise ValidationError("every", self.every, "a timedelta from 1 second to 1 day")
        if type(self.batch) is not int or not 10 <= self.batch <= 100_000:
            raise ValidationError("batch", self.batch, "a whole number from 10 to 100,000")
        self._check_handled()

    def _check_handled(self) -> None:
        if self.handled_age is None:
            return
        if self.dead_letter_age is None:
            raise ValidationError(
                "handled_age",
                self.handled_age,
                "None while dead letters are kept forever (dead_letter_age=None)",
                message=(
                    "handled_age must be None while dead_letter_age is None: a dead letter can "
                    "be redriven at any time, and its command must still be recognised as "
                    "handled"
                ),
            )
        least = self.dead_letter_age + _MAX_EVENT_AGE
        if self.handled_age < least:
            raise ValidationError(
                "handled_age",
                self.handled_age,
                f"at least dead_letter_age + 24 h ({least})",
                message=(
                    f"handled_age {self.handled_age} is shorter than the longest redelivery of a "
                    f"fire (dead_letter_age + 24 h of retries = {least}); a command delivered "
                    "again after its record was pruned would be applied twice"
                ),
            )


class PruneReport(msgspec.Struct, frozen=True, kw_only=True):
    """Rows deleted by one prune."""

    history: int = 0
    dead_letters: int = 0
    handled_messages: int = 0
    reaction_operations: int = 0


async def prune(runner: StoreRunner, retention: Retention, now: datetime) -> PruneReport:
    """Delete what ``retention`` no longer keeps, one batch per store call, until none is left."""
    store = runner.store

    def cutoff(age: timedelta | None) -> int | None:
        return None if age is None else to_us(now - age)

    counts = []
    for step, age, rows in (
        (store.prune_history, retention.history_age, retention.history_rows),
        (store.prune_dead_letters, retention.dead_letter_age, retention.dead_letter_rows),
        (store.prune_handled, retention.handled_age, None),
        (store.prune_reaction_operations, retention.history_age, retention.history_rows),
    ):
        total = 0
        while True:
            deleted = await runner.call(step, cutoff(age), rows, retention.batch)
            total += deleted
            if deleted < retention.batch:
                break
            await anyio.lowlevel.checkpoint()  # let the engine's calls in between batches
        counts.append(total)
    return PruneReport(
        history=counts[0],
        dead_letters=counts[1],
        handled_messages=counts[2],
        reaction_operations=counts[3],
    )
