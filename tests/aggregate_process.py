"""A process for the exactly-once crash test (run as a script, not collected).

With --crash, the target delivers the fire to the command topic (the command is handled and its
events committed) and then the process SIGKILLs itself before the scheduler can record the fire.
Without it, the process runs until the fire is recorded and prints the aggregate's state.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta

import anyio

import reventless.local
from reventless import Schedule, Scheduler, Single
from reventless.aggregate import Aggregate
from reventless.target import FireEnvelope
from reventless.testing import VirtualClock

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.test_aggregate import TICK, counter_spec

START = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)


class CrashAfterDelivery:
    def __init__(self, inner: object) -> None:
        self.inner = inner

    def check_payload(self, payload: str) -> None:
        self.inner.check_payload(payload)  # type: ignore[attr-defined]

    async def deliver(self, envelope: FireEnvelope) -> None:
        await self.inner.deliver(envelope)  # type: ignore[attr-defined]
        os.kill(os.getpid(), signal.SIGKILL)  # acknowledged to nobody


async def main(db: str, crash: bool) -> None:
    clock = VirtualClock(START)
    async with reventless.local.provider(
        db, clock=clock, lease_ttl=1, delivery_timeout=1
    ) as provider:
        counters = await Aggregate.make(provider, counter_spec())
        target = CrashAfterDelivery(counters.command_topic) if crash else counters.command_topic
        ops = (await Scheduler.make(provider, target=target)).operations
        if crash:
            await ops.create_schedule(
                Schedule(name="once", rate=Single(2026, 11, 27, 8, 0), payload=TICK)
            )
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            with anyio.fail_after(30):
                while not provider.is_leading:  # noqa: ASYNC110 - the dead one's lease expires
                    await anyio.sleep(0.05)
            await clock.advance(timedelta(minutes=1))
            group.cancel_scope.cancel()
        state, version = await counters.load("c-1")
        history = [entry.kind.value for entry in await ops.history("once")]
        print(json.dumps({"ticks": state.ticks, "version": version, "history": history}))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], "--crash" in sys.argv)
