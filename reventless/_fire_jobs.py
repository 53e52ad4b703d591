"""The units of work the engine hands to its delivery workers."""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from reventless.target import Target

__all__ = ("DeliveryFailure", "FireJob", "RetryJob")


class DeliveryFailure(NamedTuple):
    """Why a delivery failed; ``permanent`` failures are dead-lettered without retries."""

    reason: str
    permanent: bool


# Jobs are msgspec Structs with gc=False: cheap to make, and not tracked by the cyclic garbage
# collector (they hold no cycles). A burst keeps thousands in flight; tracked, they would make
# each full collection, and so the longest pause of the event loop, longer.


class FireJob(msgspec.Struct, gc=False):
    """The due fires of one schedule row, planned under the misfire policy."""

    row_id: int
    scheduler: str
    name: str
    payload: str
    target: Target
    version: int
    deliver: tuple[int, ...] = ()  # fire instants to deliver, in us
    # Missed and expired instants as their history rows will say them: (last instant in us,
    # detail, how many instants). Plain tuples of plain values: the garbage collector soon
    # stops tracking them.
    missed: tuple[int, str, int] | None = None
    expired: tuple[int, str, int] | None = None
    # After the job: the row's next fire (None and completed: the row is deleted).
    next_us: int | None = None
    completed: bool = False


class RetryJob(msgspec.Struct, gc=False):
    """One failed fire, to be delivered again."""

    row_id: int
    scheduler: str
    name: str
    payload: str
    target: Target
    attempts: int
    scheduled_us: int
    # After the job: when the retry row fires again (None: it was deleted).
    next_us: int | None = None
