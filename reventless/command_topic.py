"""The CommandTopic component: delivers commands to one aggregate.

Commands for one aggregate instance are handled one at a time, in the order they arrive;
commands for different instances run concurrently. Every command carries a message id (for a
scheduled fire, its fire id); the aggregate records it with the events it causes, so a message
delivered twice, also across a crash, changes the aggregate once.

A CommandTopic is a schedule target: ``Scheduler.make(provider, target=orders.command_topic)``.
The scheduler then refuses, at create time, a payload that does not name one of the aggregate's
commands; at fire time, a payload that no longer decodes is dead-lettered at once with the reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from reventless.errors import DeliveryRefusedError, ValidationError
from reventless.target import FireEnvelope

if TYPE_CHECKING:
    from reventless.aggregate import Aggregate, HandleResult

__all__ = ("CommandTopic",)


class _IdLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        # fast_acquire: a free lock (the usual case) is taken without a turn of the event loop.
        self.lock = anyio.Lock(fast_acquire=True)
        self.users = 0


class CommandTopic:
    """Delivers commands to ``aggregate``, in order per aggregate id."""

    def __init__(self, aggregate: Aggregate[Any]) -> None:
        self.aggregate = aggregate
        self.name = aggregate.name
        self._locks: dict[str, _IdLock] = {}

    def check_payload(self, payload: str) -> None:
        """Refuse a schedule payload that does not name one of the aggregate's commands."""
        self.aggregate.spec.decode_payload(payload)

    async def send(
        self,
        aggregate_id: str,
        command: Any,
        *,
        message_id: str | None = None,
        scheduled_time: datetime | None = None,
    ) -> HandleResult:
        """Handle ``command`` on ``aggregate_id`` after the commands sent to it before."""
        entry = self._locks.get(aggregate_id)
        if entry is None:
            entry = self._locks[aggregate_id] = _IdLock()
        entry.users += 1
        try:
            async with entry.lock:  # anyio locks are fair: first come, first handled
                return await self.aggregate.handle(
                    aggregate_id, command, message_id=message_id, scheduled_time=scheduled_time
                )
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[aggregate_id]

    async def deliver(self, envelope: FireEnvelope) -> None:
        """Schedule target: decode the payload into a command and send it under the fire id."""
        try:
            aggregate_id, command = self.aggregate.spec.decode_payload(envelope.payload)
        except ValidationError as exc:
            # The aggregate changed after the schedule was made: no retry can fix this.
            raise DeliveryRefusedError(
                f"payload of {envelope.fire_id} no longer decodes for {self.name}: {exc}"
            ) from exc
        await self.send(
            aggregate_id,
            command,
            message_id=envelope.fire_id,
            scheduled_time=envelope.scheduled_time,
        )
