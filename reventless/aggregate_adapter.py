"""The EventLog port: where an aggregate's events are kept, with optimistic concurrency.

This module is the whole contract; adapters do not repeat it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import msgspec

from reventless.errors import ValidationError

__all__ = ("AppendResult", "EventLog", "NewEvent", "StoredEvent", "check_read")


class NewEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An event to append: its type name and its JSON body."""

    type: str
    data: bytes


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An event as stored. ``version`` counts the events of one stream from 1. ``position``
    orders all events of the log where the log keeps one order for all streams (see
    ``EventLog.read_all``); a log without one (DynamoDB) sets it to ``version``. ``message_id``
    is the id of the command that caused it."""

    position: int
    aggregate: str
    aggregate_id: str
    version: int
    type: str
    data: bytes
    message_id: str | None
    recorded_at: datetime


class AppendResult(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What ``append`` did: ``duplicate`` is true when ``message_id`` had been handled before,
    in which case nothing was written. ``version`` is the stream's version afterwards."""

    duplicate: bool
    version: int
    positions: tuple[int, ...] = ()


@runtime_checkable
class EventLog(Protocol):
    """Streams of events, one per aggregate instance (``aggregate``, ``aggregate_id``).

    Message ids are deduplicated per stream: an id recorded by an append to one stream makes a
    later append with that id to the same stream a duplicate, and is no concern of any other
    stream, also of the same aggregate (one scheduled fire or message sent to two instances is
    handled by each). A record is kept as long as the stream's events.
    """

    async def load(
        self, aggregate: str, aggregate_id: str, *, after_version: int = 0
    ) -> list[StoredEvent]:
        """The stream's events with versions above ``after_version``, in version order."""
        ...

    async def append(
        self,
        aggregate: str,
        aggregate_id: str,
        *,
        expected_version: int,
        events: Sequence[NewEvent],
        message_id: str | None,
        recorded_at: datetime,
    ) -> AppendResult:
        """Append ``events`` (possibly none) in one atomic step.

        - When ``message_id`` was already recorded for this stream (``aggregate``,
          ``aggregate_id``), nothing is written and the result says ``duplicate``; this check
          comes before the version check. The same id recorded for another stream does not
          count.
        - Otherwise, when the stream's version is not ``expected_version``, nothing is written
          and ConflictError is raised: another writer came first; reload and decide again.
        - Otherwise the events get versions ``expected_version + 1 ...`` and ``message_id`` is
          recorded for this stream, durably, together with them (also when ``events`` is
          empty).
        :raises ConflictError: the stream moved on.
        :raises BackendUnavailableError: the store could not be written; nothing was.
        """
        ...

    async def was_handled(self, aggregate: str, aggregate_id: str, message_id: str) -> bool:
        """Whether an append with this message id was recorded for the stream (``aggregate``,
        ``aggregate_id``)."""
        ...

    async def handled_events(
        self, aggregate: str, aggregate_id: str, message_id: str
    ) -> list[StoredEvent] | None:
        """The events an append with this message id wrote to the stream, in version order
        (empty when it wrote none), or None when no such append was recorded: what a repeat of
        the message re-publishes, so that a crash between append and publish loses nothing."""
        ...

    async def read_all(
        self,
        *,
        after_position: int = 0,
        limit: int = 1000,
        aggregates: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        """Events of every stream after ``after_position``, in position order, at most ``limit``
        (1 to 10,000): how a subscriber catches up after a restart. With ``aggregates``, only
        the events of those aggregates (of none, when it is empty).

        A read never passes over an event that later becomes visible: every event at a position
        up to the last one returned is either returned or never will be (so a reader may keep
        the last position it read as its checkpoint). Only a log with one order for all streams
        offers it (SQLite, PostgreSQL). A log without one (DynamoDB) raises UsageError: there,
        the event topic is the feed; so do ``head_position`` and ``count``.
        :raises ValidationError: ``after_position`` not a whole number from 0, ``limit`` out of
            range, or ``aggregates`` not a collection of names (a single string is refused, not
            read as its characters).
        :raises UsageError: the log keeps no order across streams.
        """
        ...

    async def head_position(self) -> int:
        """The position of the last event ``read_all`` would return now, 0 when it would return
        none: a reader whose checkpoint is there has read everything so far.
        :raises UsageError: the log keeps no order across streams.
        """
        ...

    async def count(
        self, *, after_position: int = 0, aggregates: Sequence[str] | None = None
    ) -> int:
        """How many events ``read_all`` with these arguments and no limit would return now: a
        reader's lag.
        :raises ValidationError: ``after_position`` or ``aggregates`` as ``read_all`` says.
        :raises UsageError: the log keeps no order across streams.
        """
        ...


def check_read(after_position: object, limit: object, aggregates: object) -> tuple[str, ...] | None:
    """``read_all``'s and ``count``'s arguments checked (for adapters): ``aggregates`` as a
    tuple, or None for every aggregate; ``limit`` None for ``count``, which takes none.
    :raises ValidationError: as ``read_all`` says."""
    if type(after_position) is not int or after_position < 0:
        raise ValidationError("after_position", after_position, "a whole number, 0 or more")
    if limit is not None and (type(limit) is not int or not 1 <= limit <= 10_000):
        raise ValidationError("limit", limit, "a whole number from 1 to 10,000")
    if aggregates is None:
        return None
    if isinstance(aggregates, str | bytes) or not isinstance(aggregates, Collection):
        raise ValidationError("aggregates", aggregates, "a list of aggregate names, or None")
    names = tuple(aggregates)
    for name in names:
        if not isinstance(name, str) or not name.isprintable():  # no NUL, no lone surrogate
            raise ValidationError(
                "aggregates", aggregates, "a list of aggregate names (printable text)"
            )
    return names
