"""The async builder of the Aggregate component: binds a spec to a provider's event log."""

from __future__ import annotations

from typing import Any

from reventless.aggregate import Aggregate, AggregateProvider, AggregateSpec

__all__ = ("make_aggregate",)


async def make_aggregate(provider: AggregateProvider, spec: AggregateSpec[Any]) -> Aggregate[Any]:
    """Build an Aggregate with its command topic and event topic (``Aggregate.make``)."""
    return await Aggregate.make(provider, spec)
