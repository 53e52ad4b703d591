"""The provider port: what the components are built on, and its optional capabilities.

A provider is what ``reventless.local.provider(...)`` and ``reventless.aws.provider(...)``
return. Every provider offers a clock, a ScheduledPublisher and an EventLog (``Provider``); the
rest are capabilities, each a protocol of its own that a provider has or has not:

- ``ProvidesEventTopics``: event topics of its own (AWS: SNS FIFO topics); without it, topics
  live in the process;
- ``ProvidesReactions``: it runs reactions (``reventless.reaction_adapter.Reactions``).

``Plugin.start(provider)`` takes any ``Provider`` and uses the capabilities it finds.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from reventless.aggregate_adapter import EventLog
from reventless.clock import Clock
from reventless.event_topic import ProvidesEventTopics
from reventless.reaction_adapter import Reactions
from reventless.scheduler_adapter import ScheduledPublisher

__all__ = ("Provider", "ProvidesEventTopics", "ProvidesReactions")


class Provider(Protocol):
    """What every provider offers the components."""

    @property
    def clock(self) -> Clock:
        """The provider's clock: "now" for operations, the engine's fires and the events."""
        ...

    def scheduled_publisher(self) -> ScheduledPublisher:
        """The ScheduledPublisher adapter that schedulers made on this provider use."""
        ...

    def event_log(self) -> EventLog:
        """The EventLog adapter that aggregates made on this provider use."""
        ...


@runtime_checkable
class ProvidesReactions(Protocol):
    """A capability: the provider runs reactions."""

    def reactions(self) -> Reactions:
        """The provider's reactions: their runner and their operations."""
        ...
