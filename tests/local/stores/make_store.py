"""Write a store with the reventless of the tree it runs in: ``PYTHONPATH=TREE python
make_store.py OUT.db``. Kept to make the fixture files of earlier schemas in this folder again,
from the commits ``tests/local/test_schema.py`` names (``git archive COMMIT reventless``);
it uses only what every one of them has."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import anyio
import msgspec

import reventless.local
from reventless import Daily, Minutes, Schedule, Scheduler
from reventless.testing import RecordingTarget, VirtualClock

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


class Tick(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    pass


class Ticked(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    number: int


def decide(state: int, command: object, context: object) -> list[Ticked]:
    return [Ticked(number=state + 1)]


def evolve(state: int, event: Ticked) -> int:
    return event.number


async def main(path: str) -> None:
    clock = VirtualClock(T0)
    async with reventless.local.provider(path, clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(5), payload="t"))
        await ops.create_schedule(
            Schedule(name="report", rate=Daily(9, 0), payload="r", timezone="Europe/Berlin")
        )
        await ops.create_schedule(Schedule(name="gone", rate=Minutes(1), payload="g"))
        await ops.delete_schedule("gone")
        await ops.pause_schedule("report")
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(minutes=11))  # tick fires at 08:05 and 08:10
            group.cancel_scope.cancel()
        try:
            from reventless.aggregate import Aggregate, AggregateSpec
        except ImportError:
            return  # before the event log
        spec = AggregateSpec(
            "counters", commands=[Tick], events=[Ticked], initial=0, decide=decide, evolve=evolve
        )
        counters = await Aggregate.make(provider, spec)
        await counters.handle("c-1", Tick(), message_id="m-1")
        await counters.handle("c-1", Tick(), message_id="m-2")
        await counters.handle("c-2", Tick(), message_id="m-1")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
