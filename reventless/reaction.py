"""Reactions: durable event processors that follow aggregates' events and act on them.

::

    async def on_user(event: ReactionEvent, context: ReactionContext) -> None:
        if isinstance(event.event, UserSignedUp):
            reminder = Schedule(name=f"reminder-{event.aggregate_id}", ...)
            await context.ensure_schedule("users", reminder)
        elif isinstance(event.event, SubscriptionCancelled):
            await context.delete_schedule("renewals", f"renew-{event.aggregate_id}")

    plugin.reaction("reminders", follows=[USERS], handler=on_user)

A reaction is declared in a plugin and runs wherever the plugin runs (``reventless run``, or
``provider.run()`` after ``plugin.start(provider)``). The provider keeps a durable checkpoint per
reaction; its handler is called at least once for every event of the aggregates it follows, one
event at a time, in log order (so in order per stream). The handler code knows nothing of the
transport: ``Reaction.handle(stored_event, running, attempt=n)`` is what every runner calls, the
embedded provider's polling loop as much as a queue consumer.

Effects through the context are exactly once where reventless controls them:

- ``send`` gives each command a message id derived from the event (``idempotency_key`` and
  the command's number within the handling), so a repeat after a crash is a duplicate the
  aggregate ignores;
- ``ensure_schedule`` / ``create_schedule`` (``if_exists="keep"`` by default) and
  ``delete_schedule`` are idempotent by schedule name;
- anything else (an HTTP call) happens at least once: pass ``idempotency_key`` along.

A handler that raises (or runs past ``timeout``) is retried with exponential backoff; after
``max_attempts`` the event goes to the reaction's dead letters with the reason, and the reaction
stops there (``on_failure="stop"``, the default: order matters) or skips the event
(``on_failure="skip"``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import anyio
import msgspec

from reventless._observe import reaction_span
from reventless.aggregate import Aggregate, AggregateSpec, HandleResult
from reventless.aggregate_adapter import StoredEvent
from reventless.clock import Clock, Hold
from reventless.errors import UsageError, ValidationError
from reventless.event_topic import EventTopic
from reventless.schedule import Schedule, check_name
from reventless.scheduler import Scheduler, SchedulerOperations
from reventless.scheduler_adapter import IfExists, PutOutcome
from reventless.target import is_async_callable

__all__ = (
    "Components",
    "OnFailure",
    "Reaction",
    "ReactionContext",
    "ReactionDeadLetter",
    "ReactionEvent",
    "ReactionOperation",
    "ReactionStatus",
)

_NAME = re.compile(r"[0-9A-Za-z._-]{1,64}")


class Components(Protocol):
    """What a reaction reaches: the started plugin's components by name. A ``RunningPlugin``
    is one; so is anything with these three mappings (a test's own, say)."""

    @property
    def aggregates(self) -> Mapping[str, Aggregate[Any]]: ...

    @property
    def schedulers(self) -> Mapping[str, Scheduler]: ...

    @property
    def event_topics(self) -> Mapping[str, EventTopic]: ...


class OnFailure(enum.StrEnum):
    """What a reaction does with an event whose handler failed every attempt: it goes to the
    dead letters either way; ``STOP`` then halts the reaction before it (until resumed or
    reset), ``SKIP`` goes on with the next event."""

    STOP = "stop"
    SKIP = "skip"


class ReactionEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event as a reaction's handler receives it: ``event`` is the decoded event Struct;
    ``position`` its place in the log, ``version`` its place in its stream
    (``aggregate``/``aggregate_id``), ``message_id`` the id of the command that caused it."""

    aggregate: str
    aggregate_id: str
    version: int
    position: int
    type: str
    event: Any
    message_id: str | None
    recorded_at: datetime


class ReactionStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where a reaction stands: ``position`` is the log position of the last event it handled
    (0: none yet), ``head`` the log's last position, ``pending`` how many events of the
    aggregates it follows come after ``position`` (its lag). ``state`` is ``"running"`` or
    ``"stopped"`` (a dead letter halted it); ``last_error`` the latest failure, cleared by the
    next success; ``holder`` the lease owner id of the process running it (None: nobody) and
    ``lease_until`` when that lease lapses."""

    name: str
    follows: tuple[str, ...]
    position: int
    head: int
    pending: int
    state: str
    last_error: str | None
    holder: str | None
    lease_until: datetime | None
    updated_at: datetime


class ReactionDeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """An event a reaction's handler failed on every attempt, with the last reason; ``action``
    is what the reaction did next: ``"stopped"`` or ``"skipped"``."""

    id: int
    reaction: str
    position: int
    aggregate: str
    aggregate_id: str
    version: int
    type: str
    attempts: int
    reason: str
    action: str
    at: datetime


class ReactionOperation(msgspec.Struct, frozen=True, kw_only=True):
    """An operator's action on a reaction, as recorded: ``action`` is ``"reset"``,
    ``"resume"`` (the event it stopped at is retried) or ``"skip"`` (resumed after that
    event); ``at`` when, ``by`` who and ``reason`` why (each None when not said); the
    reaction's position went from ``from_position`` to ``to_position``, and its state was
    ``from_state`` (``"running"`` or ``"stopped"``) before; it is running after every one."""

    id: int
    reaction: str
    action: str
    at: datetime
    by: str | None
    reason: str | None
    from_position: int
    to_position: int
    from_state: str


Handler = Callable[[ReactionEvent, "ReactionContext"], Awaitable[None]]


class Reaction:
    """The declaration of a reaction (use ``Plugin.reaction``, which makes one).

    - ``name``: 1-64 letters, digits, ``.``, ``_``, ``-``; the checkpoint is stored under it, so
      renaming a reaction starts a new one from the beginning.
    - ``follows``: the AggregateSpecs whose events it handles (declared on the same plugin).
    - ``handler``: ``async def handler(event: ReactionEvent, context: ReactionContext)``.
    - ``on_failure``: ``"stop"`` (default) or ``"skip"``, see ``OnFailure``.
    - ``max_attempts``: calls of the handler for one event before it is dead-lettered (1-100,
      default 5); ``backoff``: real seconds before the first retry (0-60, default 0.5), doubled
      for each further one up to ``max_backoff`` (0-3600, default 60).
    - ``timeout``: real seconds (0.01-900, default 30) one call may take before it counts as a
      failure; a standby takes over a dead runner's reaction within the provider's lease time
      plus this.
    - ``start``: where a reaction that has no checkpoint yet begins: ``"beginning"`` (default:
      every event ever appended) or ``"end"`` (only events appended from its first run on).
    """

    def __init__(
        self,
        name: str,
        *,
        follows: Sequence[AggregateSpec[Any]],
        handler: Handler,
        on_failure: OnFailure | str = OnFailure.STOP,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 60.0,
        timeout: float = 30.0,
        start: str = "beginning",
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValidationError("reaction name", name, "1-64 letters, digits, '.', '_', '-'")
        if isinstance(follows, (str, AggregateSpec)) or not isinstance(follows, Sequence):
            raise ValidationError("follows", follows, "a list of AggregateSpec")
        if not follows or not all(isinstance(spec, AggregateSpec) for spec in follows):
            raise ValidationError("follows", follows, "a non-empty list of AggregateSpec")
        if not is_async_callable(handler):
            raise ValidationError("handler", handler, "an async function (event, context) -> None")
        if not (isinstance(on_failure, str) and on_failure in {p.value for p in OnFailure}):
            raise ValidationError("on_failure", on_failure, "'stop' or 'skip'")
        if type(max_attempts) is not int or not 1 <= max_attempts <= 100:
            raise ValidationError("max_attempts", max_attempts, "a whole number from 1 to 100")
        _check_seconds("backoff", backoff, 0, 60)
        _check_seconds("max_backoff", max_backoff, 0, 3600)
        _check_seconds("timeout", timeout, 0.01, 900)
        if start not in ("beginning", "end"):
            raise ValidationError("start", start, "'beginning' or 'end'")
        self.name = name
        self.follows: dict[str, AggregateSpec[Any]] = {spec.name: spec for spec in follows}
        self.handler = handler
        self.on_failure = OnFailure(on_failure)
        self.max_attempts = max_attempts
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.timeout = float(timeout)
        self.start = start

    def retry_delay(self, attempt: int) -> float:
        """Real seconds to wait after failed attempt number ``attempt`` (from 1)."""
        return float(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))

    def decode(self, stored: StoredEvent) -> ReactionEvent:
        """The handler's view of a stored event.
        :raises ValidationError: the event is not of an aggregate this reaction follows, or its
        type or body is not one the aggregate's spec declares."""
        spec = self.follows.get(stored.aggregate)
        if spec is None:
            raise ValidationError(
                "event aggregate", stored.aggregate, f"one of {', '.join(self.follows)}"
            )
        try:
            event = spec.decode_event(stored)
        except msgspec.DecodeError as exc:
            raise ValidationError(
                "stored event", f"{stored.type} at position {stored.position}", str(exc)
            ) from exc
        return ReactionEvent(
            aggregate=stored.aggregate,
            aggregate_id=stored.aggregate_id,
            version=stored.version,
            position=stored.position,
            type=stored.type,
            event=event,
            message_id=stored.message_id,
            recorded_at=stored.recorded_at,
        )

    async def handle(
        self, stored: StoredEvent, running: Components, *, attempt: int = 1
    ) -> ReactionContext:
        """Decode ``stored`` and call the handler once, within ``timeout``; returns the context
        (``context.effects`` counts what it did). Whatever the handler raises propagates; a
        timeout raises TimeoutError. Every runner (any transport) handles an event through this.
        """
        event = self.decode(stored)
        context = ReactionContext(self.name, event, running, attempt)
        with (
            reaction_span(self.name, stored.type, stored.position, attempt),
            anyio.fail_after(self.timeout),
        ):
            await self.handler(event, context)
        return context


class ReactionContext:
    """What a reaction's handler may do besides reading the event.

    ``idempotency_key`` is unique to this reaction and event (``reaction:aggregate/id@version``)
    and the same on every attempt and replay: hand it to anything called out to. ``attempt``
    counts from 1. ``running`` is the started plugin (its aggregates and schedulers by name).
    """

    def __init__(
        self, reaction: str, event: ReactionEvent, running: Components, attempt: int
    ) -> None:
        self.reaction = reaction
        self.event = event
        self.running = running
        self.attempt = attempt
        self.idempotency_key = f"{reaction}:{event.aggregate}/{event.aggregate_id}@{event.version}"
        self.effects = 0
        self._sent = 0

    def aggregate(self, name: str | AggregateSpec[Any]) -> Aggregate[Any]:
        """The plugin's aggregate by name or spec."""
        key = name.name if isinstance(name, AggregateSpec) else name
        found = self.running.aggregates.get(key) if isinstance(key, str) else None
        if found is None:
            raise ValidationError(
                "aggregate",
                name,
                f"one of the plugin's aggregates: {sorted(self.running.aggregates)}",
            )
        return found

    def scheduler(self, name: str) -> SchedulerOperations:
        """The operations of the plugin's scheduler ``name``: idempotent only through
        ``ensure_schedule``, ``create_schedule(..., if_exists="keep")`` and deletion."""
        found = self.running.schedulers.get(name) if isinstance(name, str) else None
        if found is None:
            raise ValidationError(
                "scheduler",
                name,
                f"one of the plugin's schedulers: {sorted(self.running.schedulers)}",
            )
        return found.operations

    async def send(
        self, aggregate: str | AggregateSpec[Any], aggregate_id: str, command: Any
    ) -> HandleResult:
        """Send ``command`` to an aggregate instance with a message id derived from the event
        (``idempotency_key#n`` for the n-th command sent while handling it): sent again after a
        crash or by a replay, it is a duplicate that changes nothing."""
        target = self.aggregate(aggregate)
        self._sent += 1
        self.effects += 1
        return await target.handle(
            aggregate_id, command, message_id=f"{self.idempotency_key}#{self._sent}"
        )

    async def ensure_schedule(self, scheduler: str, schedule: Schedule) -> PutOutcome:
        """Create ``schedule`` unless the very same one is stored (see
        ``SchedulerOperations.ensure_schedule``): repeating it changes nothing."""
        operations = self.scheduler(scheduler)
        self.effects += 1
        return await operations.ensure_schedule(schedule)

    async def create_schedule(
        self, scheduler: str, schedule: Schedule, *, if_exists: IfExists | str = IfExists.KEEP
    ) -> PutOutcome:
        """Create ``schedule``; by default one stored under its name is kept as it is, so a
        repeat changes nothing. ``"replace"`` re-anchors it on every repeat."""
        operations = self.scheduler(scheduler)
        self.effects += 1
        return await operations.create_schedule(schedule, if_exists=if_exists)

    async def delete_schedule(self, scheduler: str, name: str) -> bool:
        """Delete a schedule by name; False when there was none (as on a repeat)."""
        operations = self.scheduler(scheduler)
        self.effects += 1
        return await operations.delete_schedule(check_name(name))


def _check_seconds(field: str, value: object, low: float, high: float) -> None:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not low <= value <= high  # also refuses nan
    ):
        raise ValidationError(field, value, f"a number of seconds from {low:g} to {high:g}")


def check_reaction_name(name: object) -> str:
    """A reaction name as the operations take it."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError("reaction", name, "1-64 letters, digits, '.', '_', '-'")
    return name


def already_running(name: str) -> UsageError:
    """A second reaction of ``name`` registered on one provider."""
    return UsageError(
        f"reaction {name!r} is already running on this provider; a name is "
        "declared once (a second plugin with it would share its checkpoint)"
    )


class HandlingHold:
    """A runner's hold on a virtual clock (``Clock.hold``) while events appended in this
    process wait to be handled, so that a test that moves time on sees the reaction's
    effects; ``target`` is the last such event's position."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._hold: Hold | None = None
        self.target = 0

    def appended(self, position: int) -> None:
        """An event was appended in this process at ``position``: hold until it is handled."""
        self.take()
        self.target = max(self.target, position)

    def take(self) -> None:
        if self._hold is None:
            self._hold = self._clock.hold()

    def release(self) -> None:
        if self._hold is not None:
            self._hold.release()
            self._hold = None


def not_running(name: str) -> UsageError:
    return UsageError(f"reaction {name!r} is not declared in a started plugin on this provider")


# -- what every provider's operations share (one place, so the providers cannot drift) ----------


def check_operations_limit(limit: object) -> int:
    """``limit`` of ``dead_letters`` and ``operations``: a whole number from 1 to 10,000."""
    if type(limit) is not int or not 1 <= limit <= 10_000:
        raise ValidationError("limit", limit, "a whole number from 1 to 10,000")
    return limit


def check_reset_position(position: object) -> int:
    """``position`` of ``reset`` before the log's head is known: a log position, 0 or more."""
    if type(position) is not int or position < 0:
        raise ValidationError("position", position, "a log position, 0 or more")
    return position


def check_reset_within_head(position: int, head: int) -> None:
    """Refuse a reset past the log's head: the events appended up to that position would
    never be handled."""
    if position > head:
        raise ValidationError(
            "position",
            position,
            f"a log position from 0 to the log's head, {head} (past it, the events "
            "appended until then would be skipped)",
        )


# The columns of the stored rows, in the order every provider selects them.
_DEAD_LETTER_COLUMNS = (
    "id", "reaction", "position", "aggregate", "aggregate_id", "version", "type", "attempts",
    "reason", "action", "at",
)  # fmt: skip
_OPERATION_COLUMNS = (
    "id", "reaction", "action", "at", "by", "reason", "from_position", "to_position",
    "from_state",
)  # fmt: skip


def dead_letter_of_row(row: Sequence[Any], at: datetime) -> ReactionDeadLetter:
    """A dead letter from its stored columns (``_DEAD_LETTER_COLUMNS``), with ``at`` as the
    provider reads its time."""
    return ReactionDeadLetter(**{**dict(zip(_DEAD_LETTER_COLUMNS, row, strict=False)), "at": at})


def operation_of_row(row: Sequence[Any], at: datetime) -> ReactionOperation:
    """An operation from its stored columns (``_OPERATION_COLUMNS``, ``by`` stored as
    ``done_by``), with ``at`` as the provider reads its time."""
    return ReactionOperation(**{**dict(zip(_OPERATION_COLUMNS, row, strict=False)), "at": at})


def dead_letter_columns(
    name: str, event: StoredEvent, attempts: int, reason: str, action: OnFailure
) -> tuple[Any, ...]:
    """The stored columns of a new dead letter (reaction, position, aggregate, aggregate_id,
    version, type, attempts, reason, action), in that order; the time is the provider's."""
    return (
        name,
        event.position,
        event.aggregate,
        event.aggregate_id,
        event.version,
        event.type,
        attempts,
        reason,
        "skipped" if action is OnFailure.SKIP else "stopped",
    )


def stopped_error(event: StoredEvent, reason: str) -> str:
    """The ``last_error`` of a reaction stopped at ``event``."""
    return f"stopped at position {event.position}: {reason}"
