"""The async builder of the Aggregate component: binds a spec to a provider's event log."""

from __future__ import annotations

from typing import Any

from reventless.aggregate import Aggregate, AggregateProvider, AggregateSpec
from reventless.errors import ValidationError
from reventless.event_topic import EventTopic

__all__ = ("make_aggregate",)


async def make_aggregate(provider: AggregateProvider, spec: AggregateSpec[Any]) -> Aggregate[Any]:
    """Build an Aggregate with its command topic and event topic."""
    if not isinstance(spec, AggregateSpec):
        raise ValidationError("spec", spec, "an AggregateSpec")
    return Aggregate(spec, provider.event_log(), provider.clock, EventTopic(spec.name))
