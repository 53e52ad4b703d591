"""Targets for tests: one that records, one that fails, one that hangs."""

from __future__ import annotations

from collections import Counter

import anyio

from reventless.target import FireEnvelope

__all__ = ("FailingTarget", "HangingTarget", "RecordingTarget")


class RecordingTarget:
    """Records every envelope delivered to it, in delivery order, in ``deliveries``.

    Each delivery has ``.schedule``, ``.scheduled_time`` (aware UTC), ``.payload`` and
    ``.fire_id``. Repeats of a fire (at-least-once) are recorded too; ``fire_ids()`` gives the
    distinct ids and ``duplicates()`` those seen more than once.
    """

    def __init__(self) -> None:
        self.deliveries: list[FireEnvelope] = []

    async def deliver(self, envelope: FireEnvelope) -> None:
        self.deliveries.append(envelope)

    def fire_ids(self) -> set[str]:
        return {delivery.fire_id for delivery in self.deliveries}

    def duplicates(self) -> dict[str, int]:
        counts = Counter(delivery.fire_id for delivery in self.deliveries)
        return {fire: count for fire, count in counts.items() if count > 1}

    def for_schedule(self, name: str) -> list[FireEnvelope]:
        return [delivery for delivery in self.deliveries if delivery.schedule == name]


class FailingTarget(RecordingTarget):
    """Raises ``ConnectionError`` for the first ``failures`` delivery attempts (every attempt
    when ``failures`` is None), then records like RecordingTarget. ``attempts`` counts all."""

    def __init__(self, failures: int | None = 1) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    async def deliver(self, envelope: FireEnvelope) -> None:
        self.attempts += 1
        if self.failures is None or self.attempts <= self.failures:
            raise ConnectionError(f"target unavailable (attempt {self.attempts})")
        await super().deliver(envelope)


class HangingTarget(RecordingTarget):
    """Never returns from deliveries of the schedules named in ``hang_on`` (all when empty);
    records the others. ``started`` counts the deliveries that began."""

    def __init__(self, hang_on: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.hang_on = hang_on
        self.started = 0

    async def deliver(self, envelope: FireEnvelope) -> None:
        self.started += 1
        if not self.hang_on or envelope.schedule in self.hang_on:
            await anyio.sleep_forever()
        await super().deliver(envelope)
