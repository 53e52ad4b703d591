"""The EventTopic component: publishes messages to in-process subscribers.

An aggregate's event topic publishes every event it appends, after the append committed, as an
``EventMessage``. An event topic is also a schedule target: each fire is published as a
``FireMessage`` (the original's health-check example schedules straight into a topic). A
subscriber receives either (``TopicMessage``); each is built in one place (``event_message``,
``fire_message``), on every provider.

Subscribers are called one after another for each message. A subscriber that raises does not stop
the others; for scheduled fires the failure is raised afterwards (so the engine retries the fire),
for aggregate events it is logged and kept in ``failures`` (the events themselves are safe in the
event log; ``EventLog.read_all`` re-reads them).

A provider may offer event topics of its own (``ProvidesEventTopics``: the AWS provider's publish
to SNS FIFO); aggregates and plugins then use those, through ``topic_for``. Such a topic sets
``republishes_duplicates``: a repeat of a handled command publishes that command's events again,
so that a crash between the append and the publish loses nothing (at least once, same ids).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeAlias, runtime_checkable

import msgspec

from reventless.aggregate_adapter import AppendResult, NewEvent
from reventless.errors import ReventlessError, ValidationError
from reventless.schedule import check_name
from reventless.target import FireEnvelope, is_async_callable

__all__ = (
    "EventMessage",
    "EventTopic",
    "FireMessage",
    "ProvidesEventTopics",
    "PublishError",
    "Subscription",
    "TopicMessage",
    "event_id",
    "event_message",
    "event_messages",
    "fire_message",
    "topic_for",
)

logger = logging.getLogger("reventless.event_topic")


class EventMessage(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An aggregate's event, published on the aggregate's topic once its append committed.

    ``type`` is the event's tag, ``source`` ``"aggregate/id"``, ``message_id`` the id of the
    command that caused it (None when it had none), ``event`` the decoded event (plain JSON data
    where the subscriber does not know the aggregate), ``position`` and ``version`` its place in
    the log and in its stream, and ``event_id`` its own id (``event_id()``), the same at every
    delivery. Built by ``event_message`` only.
    """

    topic: str
    type: str
    source: str
    message_id: str | None
    event: Any
    position: int
    version: int
    event_id: str


class FireMessage(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A scheduled fire, published on a topic that is a schedule's target.

    ``source`` is the schedule's name, ``message_id`` the fire id, ``scheduled_time`` the fire's
    nominal time and ``data`` the schedule's payload; ``type`` is always ``"ScheduledFire"``.
    Built by ``fire_message`` only.
    """

    type: ClassVar[str] = "ScheduledFire"

    topic: str
    source: str
    message_id: str
    scheduled_time: datetime
    data: str


TopicMessage: TypeAlias = EventMessage | FireMessage
"""What a topic's subscriber receives: an ``EventMessage`` or a ``FireMessage`` (match on the
type)."""


def event_message(
    topic: str,
    aggregate: str,
    aggregate_id: str,
    event: Any,
    *,
    version: int,
    position: int,
    message_id: str | None,
    kind: str | None = None,
) -> EventMessage:
    """The message of one appended event: ``kind`` is the event's type, by default the tag of
    its Struct (given where ``event`` is plain JSON data)."""
    return EventMessage(
        topic=topic,
        type=type(event).__struct_config__.tag if kind is None else kind,
        source=f"{aggregate}/{aggregate_id}",
        message_id=message_id,
        event=event,
        position=position,
        version=version,
        event_id=event_id(aggregate, aggregate_id, version),
    )


def event_messages(
    topic: str,
    aggregate: str,
    aggregate_id: str,
    events: Sequence[Any],
    result: AppendResult,
    message_id: str | None,
) -> list[EventMessage]:
    """The messages of ``events``, which one append wrote to the stream with ``result``."""
    first_version = result.version - len(events) + 1
    return [
        event_message(
            topic,
            aggregate,
            aggregate_id,
            event,
            version=first_version + offset,
            position=position,
            message_id=message_id,
        )
        for offset, (event, position) in enumerate(zip(events, result.positions, strict=True))
    ]


def fire_message(topic: str, envelope: FireEnvelope) -> FireMessage:
    """The message of one scheduled fire published on ``topic``."""
    return FireMessage(
        topic=topic,
        source=envelope.schedule,
        message_id=envelope.fire_id,
        scheduled_time=envelope.scheduled_time,
        data=envelope.payload,
    )


def event_id(aggregate: str, aggregate_id: str, version: int) -> str:
    """The id of one event: ``"orders/o-1/3"``, the same at every delivery of it."""
    return f"{aggregate}/{aggregate_id}/{version}"


class PublishError(ReventlessError):
    """One or more subscribers failed on a message; the message says which and why."""


Handler = Callable[[TopicMessage], Awaitable[None]]


class Subscription:
    """Returned by ``subscribe``; ``cancel()`` stops the deliveries."""

    def __init__(self, topic: EventTopic, name: str, handler: Handler) -> None:
        self._topic = topic
        self.name = name
        self.handler = handler

    def cancel(self) -> None:
        self._topic._subscriptions = [s for s in self._topic._subscriptions if s is not self]


class EventTopic:
    """A named topic with in-process subscribers."""

    republishes_duplicates = False  # in-process subscribers saw the events at the append

    def __init__(self, name: str) -> None:
        check_name(name)
        self.name = name
        self._subscriptions: list[Subscription] = []
        self.failures: list[tuple[str, TopicMessage, str]] = []
        self.published = 0

    def subscribe(self, handler: Handler, *, name: str | None = None) -> Subscription:
        """Call ``await handler(message)`` for every message published from now on.

        ``handler`` must be ``async def`` (or a partial or callable object of one: see
        ``reventless.target.is_async_callable``); a plain ``def`` is refused here rather than
        failing after its side effect on every message.
        """
        if not is_async_callable(handler):
            label = getattr(handler, "__qualname__", type(handler).__qualname__)
            raise ValidationError(
                "handler",
                handler,
                "an async callable taking a TopicMessage",
                message=(
                    f"handler {label} is not an async function; write 'async def "
                    f"{getattr(handler, '__name__', 'handler')}(message)': the topic awaits "
                    "each call"
                    if callable(handler)
                    else None
                ),
            )
        label = name or str(getattr(handler, "__name__", "subscriber"))
        subscription = Subscription(self, label, handler)
        self._subscriptions.append(subscription)
        return subscription

    async def publish(self, message: TopicMessage) -> None:
        """Deliver to every subscriber; raise PublishError afterwards if any of them failed."""
        self.published += 1
        await self.fan_out(message)

    async def fan_out(self, message: TopicMessage) -> None:
        """Call every subscriber with ``message``, one after another; raise PublishError
        afterwards if any of them failed."""
        errors = []
        for subscription in list(self._subscriptions):
            try:
                await subscription.handler(message)
            except Exception as exc:
                errors.append(f"{subscription.name}: {type(exc).__name__}: {exc}")
                self.failures.append((subscription.name, message, f"{type(exc).__name__}: {exc}"))
        if errors:
            label = message.message_id
            if isinstance(message, EventMessage):
                label = message.message_id or str(message.position)
            raise PublishError(
                f"topic {self.name!r}: {len(errors)} subscriber(s) failed on "
                f"{message.type} ({label}): " + "; ".join(errors)
            )

    async def deliver(self, envelope: FireEnvelope) -> None:
        """Schedule target: publish the fire as a ``ScheduledFire`` message."""
        await self.publish(fire_message(self.name, envelope))

    def check_publishable(
        self,
        aggregate: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        *,
        version: int = 0,
        message_id: str | None = None,
    ) -> None:
        """Refuse, before they are appended, events this topic could never publish (too big
        for a message); ``version`` is the stream's version before them, ``message_id`` the
        command's. In process, every event can be."""

    async def publish_events(
        self,
        aggregate: str,
        aggregate_id: str,
        events: Sequence[Any],
        result: AppendResult,
        message_id: str | None,
    ) -> None:
        """Publish events that were just appended. Failures are logged and kept, not raised: the
        command has already taken effect."""
        for message in event_messages(
            self.name, aggregate, aggregate_id, events, result, message_id
        ):
            try:
                await self.publish(message)
            except PublishError as exc:
                logger.error("%s (the event is kept at log position %d)", exc, message.position)


@runtime_checkable
class ProvidesEventTopics(Protocol):
    """An optional capability of a provider: event topics of its own (the AWS provider's are
    SNS FIFO topics)."""

    def event_topic(self, name: str) -> EventTopic:
        """The topic named ``name``; UsageError when the provider was given none by that name."""
        ...


def topic_for(provider: object, name: str) -> EventTopic:
    """The event topic ``name`` of ``provider``: its own when it offers topics, else one in
    process."""
    if isinstance(provider, ProvidesEventTopics):
        return provider.event_topic(name)
    return EventTopic(name)
