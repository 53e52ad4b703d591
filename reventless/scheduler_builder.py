"""The async builder of the Scheduler component: binds a provider's adapter and a target."""

from __future__ import annotations

from reventless.scheduler import Scheduler
from reventless.scheduler_adapter import SchedulerProvider
from reventless.target import Target

__all__ = ("SchedulerProvider", "make_scheduler")  # SchedulerProvider: re-exported


async def make_scheduler(
    provider: SchedulerProvider, *, target: Target, name: str = "default"
) -> Scheduler:
    """Build a Scheduler: validate, attach the target, return the component (``Scheduler.make``)."""
    return await Scheduler.make(provider, target=target, name=name)
