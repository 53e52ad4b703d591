"""The ScheduledPublisher port: what a provider implements to store and fire schedules.

This module is the whole contract of an adapter; adapters do not repeat it. The Scheduler component
validates every input before calling a port method (names, schedules, the Single-in-the-past rule,
limits), so an adapter receives only valid values. ``reventless.testing.conformance`` checks an
adapter against this contract.

Every method that takes ``scheduler`` works inside that scheduler's namespace: the same schedule
name in two schedulers names two schedules. Instants passed in (``created_at``, ``at``) come from
the provider's Clock and are aware UTC datetimes; an adapter never reads the time itself for these.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from reventless.errors import CorruptDataError, ValidationError
from reventless.misfire import MisfirePolicy
from reventless.schedule import Schedule
from reventless.target import Target

if TYPE_CHECKING:
    from reventless.clock import Clock

__all__ = (
    "DamagedSchedule",
    "DeadLetter",
    "EngineStatus",
    "HistoryEntry",
    "HistoryKind",
    "IfExists",
    "MisfirePolicy",
    "PublisherOverview",
    "PutOutcome",
    "RetryPolicy",
    "SchedulePage",
    "ScheduleState",
    "ScheduledPublisher",
    "SchedulerProvider",
    "check_pause_note",
    "pause_detail",
)

# The longest pause or resume reason, and the longest name of who paused, in characters.
MAX_REASON = 256
MAX_BY = 100


class PutOutcome(enum.StrEnum):
    """Whether ``put`` made a new schedule or replaced one of the same name."""

    CREATED = "created"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"  # ensure_schedule found the very same schedule stored
    KEPT = "kept"  # if_exists="keep" found a schedule of that name stored: left as it was
    COMPLETED = "completed"  # ensure_schedule found a past Single that completed: left alone
    UPDATED = "updated"  # if_exists="update" changed a stored schedule in place


class IfExists(enum.StrEnum):
    """What a create does when a schedule with the same name is stored already.

    ``REPLACE`` (the default) replaces it whole, re-anchoring intervals; ``KEEP`` leaves it exactly
    as it is (outcome ``KEPT``); ``ERROR`` writes nothing and raises ``ScheduleExistsError``;
    ``UPDATE`` changes it in place (outcome ``UPDATED``): its creation instant (an interval's
    anchor), its paused state and its history are kept, and its next fire is its first one after
    the update under the new schedule. With none stored, ``UPDATE`` creates it as ``REPLACE``
    does.
    """

    REPLACE = "replace"
    KEEP = "keep"
    ERROR = "error"
    UPDATE = "update"


class HistoryKind(enum.StrEnum):
    """The recorded facts of a schedule's life."""

    CREATED = "created"
    REPLACED = "replaced"
    PAUSED = "paused"
    RESUMED = "resumed"
    FIRED = "fired"
    FAILED = "failed"
    MISSED = "missed"
    EXPIRED = "expired"
    DEAD_LETTERED = "dead_lettered"
    COMPLETED = "completed"
    DELETED = "deleted"
    UPDATED = "updated"  # changed in place (if_exists="update"), anchor and history kept
    TRIGGERED = "triggered"  # an operator fired it now (trigger_schedule)
    BACKFILLED = "backfilled"  # an operator queued a missed instant again (backfill)
    REDRIVEN = "redriven"  # an operator sent a dead letter again (redrive)


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How long a failing delivery is retried before it is dead-lettered (AWS RetryPolicy).

    ``max_attempts``: retries after the first failure, 0 to 185 (default 185).
    ``max_event_age``: how long after its scheduled time a fire may still be retried, 60 s to
    24 h (default 24 h). Whichever runs out first ends the retries.
    """

    max_attempts: int = 185
    max_event_age: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if type(self.max_attempts) is not int or not 0 <= self.max_attempts <= 185:
            raise ValidationError("max_attempts", self.max_attempts, "a whole number from 0 to 185")
        if not isinstance(self.max_event_age, timedelta) or not (
            timedelta(seconds=60) <= self.max_event_age <= timedelta(hours=24)
        ):
            raise ValidationError(
                "max_event_age", self.max_event_age, "a timedelta from 60 seconds to 24 hours"
            )


class ScheduleState(msgspec.Struct, frozen=True, kw_only=True):
    """A stored schedule and where it stands.

    ``created_at`` is the instant of the last create (it anchors intervals). ``next_fire`` is the
    next instant it will fire, or None when paused or when nothing is left. ``version`` grows with
    every change (replace, pause, resume).

    While paused, ``paused_at`` is the instant of the pause, ``paused_by`` who paused it and
    ``pause_reason`` why, as given to ``pause`` (None where not given); all three are None while
    the schedule is active. A schedule stored before these fields existed reads with all three
    None, also while paused.
    """

    schedule: Schedule
    created_at: datetime
    paused: bool
    next_fire: datetime | None
    version: int
    paused_at: datetime | None = None
    paused_by: str | None = None
    pause_reason: str | None = None


class SchedulePage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of ``list_schedules``: schedules in name order, and the next page's token.

    ``foreign`` names schedules on this page's stretch of names that the backend holds but
    reventless did not write (a remote backend can hold those); they are reported, not read.
    ``damaged`` lists stored schedules on this stretch that cannot be read back (a damaged
    row): they are reported with the reason, and the healthy ones are listed as usual.
    """

    schedules: list[ScheduleState]
    next_token: str | None
    foreign: list[str] = []
    damaged: list[DamagedSchedule] = []


class DamagedSchedule(msgspec.Struct, frozen=True, kw_only=True):
    """A stored schedule that cannot be read back, and why (``CorruptDataError``'s message).

    It does not fire; its history and dead letters say so. Delete it, or create it anew.
    """

    name: str
    reason: str


class EngineStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The engine that fires a backend's schedules, as far as the backend can tell.

    ``holder`` names the process holding the engine's lease (``"pid 41 on host"``), None when no
    engine runs (or the one that held it is known to have died). ``last_seen`` is its last
    heartbeat (when it last took or renewed its lease; None where not recorded) and
    ``lease_until`` when a standby may take over unless it renews.
    """

    holder: str | None
    last_seen: datetime | None = None
    lease_until: datetime | None = None


class PublisherOverview(msgspec.Struct, frozen=True, kw_only=True):
    """What ``overview`` answers: the schedulers a backend holds, in name order, and its engine."""

    schedulers: list[str]
    engine: EngineStatus


def check_pause_note(reason: object, by: object) -> tuple[str | None, str | None]:
    """``reason`` and ``by`` of a pause or resume, checked: each None, or printable text (no
    control characters, no line breaks) of 1 to ``MAX_REASON`` / ``MAX_BY`` characters.

    :raises ValidationError: naming the field, the value and what is allowed.
    """
    return _note("reason", reason, MAX_REASON), _note("by", by, MAX_BY)


def _note(field: str, value: object, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= limit or not value.isprintable():
        raise ValidationError(
            field, value, f"None, or 1 to {limit} printable characters on one line"
        )
    return value


def pause_detail(reason: str | None, by: str | None) -> str | None:
    """The history detail of a ``paused`` or ``resumed`` entry: ``"by NAME: REASON"``, ``"by
    NAME"`` or ``"REASON"``; None when neither was given."""
    if by is None:
        return reason
    return f"by {by}" if reason is None else f"by {by}: {reason}"


def page_of_rows(
    rows: Sequence[Sequence[Any]], limit: int, state_of: Callable[[Any], ScheduleState]
) -> SchedulePage:
    """A ``list_schedules`` page of up to ``limit + 1`` stored rows in name order (the name
    first in each; one past ``limit`` says there are more): ``state_of`` reads a row, and a
    row it finds damaged (CorruptDataError) is listed as such instead of failing the page."""
    states, damaged = [], []
    for row in rows[:limit]:
        try:
            states.append(state_of(row))
        except CorruptDataError as exc:
            damaged.append(DamagedSchedule(name=str(row[0]), reason=str(exc)))
    next_token = str(rows[limit - 1][0]) if len(rows) > limit else None
    return SchedulePage(schedules=states, next_token=next_token, damaged=damaged)


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded fact. ``fire_id`` and ``scheduled_time`` are set for facts about a fire."""

    kind: HistoryKind
    at: datetime
    schedule: str
    fire_id: str | None = None
    scheduled_time: datetime | None = None
    detail: str | None = None


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A fire that could not be delivered, with everything needed to deliver it by hand."""

    schedule: str
    fire_id: str
    scheduled_time: datetime
    payload: str
    attempts: int
    reason: str
    at: datetime


@runtime_checkable
class ScheduledPublisher(Protocol):
    """Stores schedules and publishes their fires to the attached target.

    Firing obligations (the conformance suite checks them): each fire instant comes from
    ``reventless.next_fire_after`` with the stored ``created_at`` as the interval anchor; each fire
    delivers a ``FireEnvelope`` whose fire id is stable across retries and restarts; delivery is
    at-least-once; a failing delivery is retried under the provider's RetryPolicy and then kept as
    a dead letter; nothing is dropped without a history entry saying so.
    """

    async def attach(self, scheduler: str, target: Target) -> None:
        """Bind ``target`` as the destination of every fire of ``scheduler``.

        Fires of a scheduler with no attached target wait until one is attached. One provider
        (one adapter instance) binds one target per scheduler name: a second ``attach`` of the
        same name raises ``UsageError`` and changes nothing, whatever the target, because the
        second scheduler would silently take the first one's fires; the message asks for a
        distinct name. Other processes attaching the same name to the same backend are peers
        (standbys of one deployment), not duplicates.
        :raises UsageError: this provider already has a scheduler of this name.
        :raises ValidationError: the adapter cannot deliver to this kind of target.
        """
        ...

    async def put(
        self,
        scheduler: str,
        schedule: Schedule,
        *,
        created_at: datetime,
        if_exists: IfExists = IfExists.REPLACE,
    ) -> PutOutcome:
        """Create ``schedule``; ``if_exists`` says what happens to a stored one of the same name.

        ``REPLACE``: the stored one is replaced whole and atomically: it takes every field of the
        new schedule, is active (not paused) and anchors intervals at ``created_at``
        (``REPLACED``). ``KEEP``: the stored one is left exactly as it is and nothing is recorded
        (``KEPT``). ``ERROR``: nothing is written. The check and the write are one atomic step, so
        two processes creating the same name with ``KEEP`` or ``ERROR`` make one schedule.
        Records ``created`` or ``replaced`` in the history.
        :raises ScheduleExistsError: ``ERROR`` and a schedule of that name is stored.
        :raises BackendUnavailableError: the store could not be written; nothing was stored.
        """
        ...

    async def put_many(
        self,
        scheduler: str,
        schedules: Sequence[Schedule],
        *,
        created_at: datetime,
        if_exists: IfExists = IfExists.REPLACE,
    ) -> list[PutOutcome]:
        """``put`` for many schedules in one atomic step: all are stored, or none is.

        Names within one call are distinct (the caller checks). Returns one outcome per schedule,
        in order. With ``ERROR``, one stored name refuses the whole batch, and the error names
        every stored one.
        """
        ...

    async def delete(self, scheduler: str, name: str, *, at: datetime) -> bool:
        """Delete a schedule. Returns False, and changes nothing, when there was none.

        Records ``deleted`` when there was one. Fires already due and being retried still complete.
        """
        ...

    async def get(self, scheduler: str, name: str) -> ScheduleState:
        """The stored schedule.

        :raises ScheduleNotFoundError: there is none by that name.
        :raises CorruptDataError: the stored row cannot be decoded.
        """
        ...

    async def list_schedules(
        self, scheduler: str, *, prefix: str = "", limit: int = 100, after: str | None = None
    ) -> SchedulePage:
        """Schedules whose names start with ``prefix``, in name order, at most ``limit`` (1-1000).

        ``after`` is a ``next_token`` from a previous page: the page starts after that name.
        A row that cannot be decoded does not fail the page: it is reported in ``damaged``.
        """
        ...

    async def pause(
        self,
        scheduler: str,
        name: str,
        *,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> ScheduleState:
        """Stop a schedule from firing; pausing a paused schedule changes nothing (its first
        pause's instant, ``by`` and ``reason`` stay).

        The returned state, and every read until it is resumed or replaced, carries
        ``paused_at=at``, ``paused_by=by`` and ``pause_reason=reason``: they are stored with the
        schedule itself, not only in the history. Records ``paused`` with ``pause_detail(reason,
        by)`` as its detail. ``reason`` and ``by`` arrive checked (``check_pause_note``); an
        adapter whose backend has less room than that refuses what does not fit with
        ValidationError naming ``reason`` or ``by``, before writing anything.
        :raises ScheduleNotFoundError: there is none by that name.
        :raises ValidationError: the backend cannot hold this reason and name with the schedule.
        """
        ...

    async def resume(
        self,
        scheduler: str,
        name: str,
        *,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> ScheduleState | None:
        """Let a paused schedule fire again from the first fire strictly after ``at``.

        Nothing missed while paused is delivered. A Single whose instant passed while paused
        completes without firing (recorded as ``completed``) and None is returned. Resuming an
        active schedule changes nothing. The pause's instant, ``by`` and reason are cleared; the
        resume records ``resumed`` with ``pause_detail(reason, by)`` as its detail where the
        backend keeps a history (elsewhere they are not kept).
        :raises ScheduleNotFoundError: there is none by that name.
        """
        ...

    async def overview(self) -> PublisherOverview:
        """Every scheduler of the backend (one with a stored schedule, a recorded history entry
        or an attached target), in name order, and the engine firing them (``EngineStatus``).

        Reads only: it works on a store opened read-only, and it is cheap enough to poll (a
        console, a health check).
        :raises UsageError: the backend fires by itself and keeps no list of schedulers (AWS:
            EventBridge Scheduler fires; a scheduler's schedule group is named by a hash).
        """
        ...

    async def history(self, scheduler: str, name: str, *, limit: int = 100) -> list[HistoryEntry]:
        """The most recent recorded facts of one schedule (also after it was deleted), oldest
        first, at most ``limit``."""
        ...

    async def dead_letters(self, scheduler: str, *, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters of a scheduler, oldest first, at most ``limit``."""
        ...

    async def trigger(
        self,
        scheduler: str,
        name: str,
        *,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> str:
        """Deliver one extra fire of a stored schedule now; returns its fire id.

        The extra fire's ``scheduledTime`` is ``at`` cut to the whole second, moved one second
        on when that is a whole minute: every scheduled fire is on a whole UTC minute, so the
        fire id never collides with one. The schedule itself is untouched (also when paused).
        The fire is retried and dead-lettered like any other; records ``triggered``, with
        ``pause_detail(reason, by)`` as its detail where the backend keeps a history (``reason``
        and ``by`` arrive checked, as for ``pause``; elsewhere they are not kept).
        :raises ScheduleNotFoundError: there is none by that name.
        :raises UsageError: the backend cannot deliver an extra fire (the message says why).
        """
        ...

    async def backfill(
        self,
        scheduler: str,
        name: str,
        *,
        start: datetime,
        end: datetime,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> list[str]:
        """Deliver the fires of ``start`` to ``end`` (inclusive) that were not delivered.

        The instants are the schedule's own (``fire_times`` with the stored ``created_at``),
        before the schedule's next fire (those ahead are the engine's) and no later than
        ``at``. An instant with a recorded delivery, or already queued, is left out, so a
        second call delivers nothing new (idempotent by fire id while the history holds the
        deliveries). Returns the fire ids queued, in order; records ``backfilled`` for each,
        with ``pause_detail(reason, by)`` as its detail.
        The caller limits the range to 10,000 instants.
        :raises ScheduleNotFoundError: there is none by that name.
        :raises UsageError: the backend cannot tell which fires were delivered.
        """
        ...

    async def redrive(
        self,
        scheduler: str,
        *,
        schedule: str | None = None,
        fire_ids: Sequence[str] | None = None,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> list[str]:
        """Deliver dead letters again: all of the scheduler's, those of ``schedule``, or those
        whose fire id is in ``fire_ids``. Returns the fire ids sent again.

        Each is taken out of the dead letters and delivered with its stored payload and fire
        id, retried and dead-lettered again like any fire; records ``redriven`` (its detail
        ``pause_detail(reason, by)``). A dead letter that was never a delivery (a damaged
        schedule quarantined) is not sent.
        :raises UsageError: the backend keeps no dead letters it can send again.
        """
        ...


class SchedulerProvider(Protocol):
    """What a provider offers the Scheduler builder."""

    @property
    def clock(self) -> Clock:
        """The provider's clock; operations take "now" from it."""
        ...

    def scheduled_publisher(self) -> ScheduledPublisher:
        """The provider's ScheduledPublisher adapter."""
        ...
