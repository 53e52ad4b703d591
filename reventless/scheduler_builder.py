"""The async builder of the Scheduler component: binds a provider's adapter and a target."""

from __future__ import annotations

from typing import Protocol

from reventless.clock import Clock
from reventless.errors import ValidationError
from reventless.schedule import check_name
from reventless.scheduler import Scheduler, SchedulerOperations
from reventless.scheduler_adapter import ScheduledPublisher
from reventless.target import Target

__all__ = ("SchedulerProvider", "make_scheduler")


class SchedulerProvider(Protocol):
    """What a provider offers the Scheduler builder."""

    @property
    def clock(self) -> Clock:
        """The provider's clock; operations take "now" from it."""
        ...

    def scheduled_publisher(self) -> ScheduledPublisher:
        """The provider's ScheduledPublisher adapter."""
        ...


async def make_scheduler(
    provider: SchedulerProvider, *, target: Target, name: str = "default"
) -> Scheduler:
    """Build a Scheduler: validate, attach the target, return the component."""
    try:
        check_name(name)
    except ValidationError as exc:
        raise ValidationError("scheduler name", name, exc.allowed) from exc
    if not callable(getattr(target, "deliver", None)):
        raise ValidationError(
            "target", target, "an object with 'async def deliver(envelope)' (a Target)"
        )
    publisher = provider.scheduled_publisher()
    await publisher.attach(name, target)
    operations = SchedulerOperations(name, publisher, provider.clock, target)
    return Scheduler(name, operations, target)
