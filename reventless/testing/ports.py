"""The provider under test: what every conformance suite of ``reventless.testing`` runs on.

A provider adapter proves itself by passing every suite (``ScheduledPublisherConformance``,
``EventLogConformance``, ``EventTopicConformance``, ``CommandTopicConformance`` and
``ReactionsConformance``). They all take one pytest fixture, ``provider_under_test``, which
returns a ``ProviderUnderTest``: how to open a fresh provider, and what it can show
(``Capabilities``). Parametrize that fixture over your providers and each one gets every suite.

``open(clock)`` is an async context manager yielding a ready provider on an empty store, with an
event log and, when the provider has event topics of its own (``ProvidesEventTopics``), the topic
``NOTES.name``, so that the ``NOTES`` aggregate publishes there. Where the provider hands
published messages to subscribers outside the process (through a queue), ``deliver_published``
plays that part, and ``reaction_batch`` shapes what a reaction's queue received.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import msgspec

from reventless.aggregate import AggregateSpec, CommandContext
from reventless.clock import VirtualClock
from reventless.errors import UsageError
from reventless.event_topic import EventTopic
from reventless.testing._targets import RecordingTarget

__all__ = (
    "NOTES",
    "PORTS",
    "Capabilities",
    "Note",
    "Noted",
    "ProviderUnderTest",
    "Refuse",
    "skip_unless_offered",
)

# The ports a provider can offer, one conformance suite each.
PORTS = frozenset({"scheduled_publisher", "event_log", "event_topic", "command_topic", "reactions"})


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What a provider can show; a suite checks the documented refusal where one is false.

    ScheduledPublisher: ``fires`` (fires are delivered in process, to the scheduler's target),
    ``keeps_history`` (``history()`` and backfill) and ``dst_policies`` (every ``DstPolicy`` is
    kept; else all but the default are refused with a ValidationError naming ``dst``).

    EventLog: ``global_order`` (``read_all``; else it raises UsageError),
    ``max_events_per_append`` and ``max_event_bytes`` (limits refused with nothing written),
    ``serialises_concurrent_writers`` (false only where the backend under test, an emulator,
    does not serialise conditional writes itself).

    EventTopic: ``topics_in_process`` (subscribers are called by ``publish``; else they run
    where a subscriber queue is consumed, ``deliver_published``).

    Reactions: ``reactions_in_process`` (``provider.run()`` runs them and keeps their positions,
    retries and dead letters; else each is its queue's handler, ``handle_reaction_batch``, and
    ``statuses``, ``dead_letters``, ``reset`` and ``resume`` raise UsageError).

    ``durable``: a provider opened again on the same store finds what it stored.

    ``ports``: the ports the provider offers (of ``PORTS``); the suite of any other is skipped
    for it, saying so (a provider being built, port by port).
    """

    fires: bool = True
    keeps_history: bool = True
    dst_policies: bool = True
    global_order: bool = True
    max_events_per_append: int | None = None
    max_event_bytes: int | None = None
    serialises_concurrent_writers: bool = True
    topics_in_process: bool = True
    reactions_in_process: bool = True
    durable: bool = False
    ports: frozenset[str] = PORTS

    def __post_init__(self) -> None:
        unknown = set(self.ports) - PORTS
        if unknown:
            raise UsageError(
                f"Capabilities.ports: unknown ports {sorted(unknown)}; known: {sorted(PORTS)}"
            )


def skip_unless_offered(provider_under_test: ProviderUnderTest, port: str) -> None:
    """Skip the calling test, saying why, when the provider does not offer ``port``."""
    if port not in provider_under_test.capabilities.ports:
        import pytest  # only the suites call this, and they run under pytest

        pytest.skip(f"{provider_under_test.name} does not offer the {port} port (yet)")


class Note(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """The command of the suites' aggregate: note ``text``."""

    text: str


class Refuse(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """A command that ``decide`` always refuses (raises ValueError)."""


class Noted(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """The event of a ``Note``."""

    text: str
    at: str = ""


def _decide(state: int, command: Any, context: CommandContext) -> list[Any]:
    if isinstance(command, Refuse):
        raise ValueError("refused by decide")
    at = "" if context.scheduled_time is None else context.scheduled_time.isoformat()
    return [Noted(text=command.text, at=at)]


NOTES: AggregateSpec[int] = AggregateSpec(
    "notes",
    commands=[Note, Refuse],
    events=[Noted],
    initial=0,
    decide=_decide,
    evolve=lambda state, event: state + 1,
)


class ProviderUnderTest:
    """One provider for the suites: subclass it (or set the attributes) per provider."""

    name: str = "provider"
    capabilities: Capabilities = Capabilities()

    def open(self, clock: VirtualClock) -> AbstractAsyncContextManager[Any]:
        """A fresh provider on ``clock``: an async context manager yielding it. Opened again
        within one test, it is the same store (``durable``)."""
        raise NotImplementedError("override open(clock) for your provider")

    def scheduler_target(self) -> Any:
        """A target for schedulers on this provider; with ``fires``, a ``RecordingTarget``."""
        return RecordingTarget()

    async def deliver_published(
        self, topic: EventTopic, aggregates: Sequence[AggregateSpec[Any]] = ()
    ) -> None:
        """Hand what was published on ``topic`` since the last call to its subscribers, as the
        provider does outside the process, one message after another; raise the first
        PublishError after all. In process (``topics_in_process``) there is nothing to do."""

    async def reaction_batch(self, name: str) -> dict[str, Any]:
        """What the queue of reaction ``name`` received, as its handler gets it (a Lambda SQS
        event); only where reactions do not run in process."""
        raise UsageError(f"{self.name}: reactions run in process; there is no queue of {name!r}")
