"""The units of work the engine hands to its delivery workers."""

from __future__ import annotations

from typing import NamedTuple

from reventless.misfire import FireRange
from reventless.target import Target

__all__ = ("DeliveryFailure", "FireJob", "RetryJob")


class DeliveryFailure(NamedTuple):
    """Why a delivery failed; ``permanent`` failures are dead-lettered without retries."""

    reason: str
    permanent: bool


class FireJob:
    """The due fires of one schedule row, planned under the misfire policy."""

    __slots__ = (
        "completed",
        "deliver",
        "expired",
        "missed",
        "name",
        "next_us",
        "payload",
        "row_id",
        "scheduler",
        "target",
        "version",
    )

    def __init__(
        self,
        row_id: int,
        scheduler: str,
        name: str,
        payload: str,
        target: Target,
        version: int,
    ) -> None:
        self.row_id = row_id
        self.scheduler = scheduler
        self.name = name
        self.payload = payload
        self.target = target
        self.version = version
        self.deliver: list[int] = []
        self.missed: FireRange | None = None
        self.expired: FireRange | None = None
        # After the job: the row's next fire (None and completed: the row is deleted).
        self.next_us: int | None = None
        self.completed = False


class RetryJob:
    """One failed fire, to be delivered again."""

    __slots__ = (
        "attempts",
        "name",
        "next_us",
        "payload",
        "row_id",
        "scheduled_us",
        "scheduler",
        "target",
    )

    def __init__(
        self,
        row_id: int,
        scheduler: str,
        name: str,
        payload: str,
        target: Target,
        attempts: int,
        scheduled_us: int,
    ) -> None:
        self.row_id = row_id
        self.scheduler = scheduler
        self.name = name
        self.payload = payload
        self.target = target
        self.attempts = attempts
        self.scheduled_us = scheduled_us
        # After the job: when the retry row fires again (None: it was deleted).
        self.next_us: int | None = None
