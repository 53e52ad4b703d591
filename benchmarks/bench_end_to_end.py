"""Fires per second end to end: fire, command, decide, append, publish, on the file store.

1,000 aggregates, each driven by its own Minutes(1) schedule through its command topic, under a
virtual clock moved one minute at a time; every fire is a command that appends one event and
publishes it. The figure is commands per second of real time, median over the minutes, and the
run checks that none was lost (events in the log == fires due).
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import msgspec

import reventless.local
from reventless import Minutes, Schedule, Scheduler, fire_times
from reventless.aggregate import Aggregate, AggregateSpec, CommandContext
from reventless.event_topic import TopicMessage
from reventless.testing import VirtualClock

START = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)


class Bump(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    pass


class Bumped(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    count: int


def decide(state: int, command: Bump, context: CommandContext) -> list[Bumped]:
    return [Bumped(count=state + 1)]


def evolve(state: int, event: Bumped) -> int:
    return event.count


SPEC = AggregateSpec(
    "meters", commands=[Bump], events=[Bumped], initial=0, decide=decide, evolve=evolve
)


async def set_up_meters(
    provider: Any, aggregates: int, subscriber: Callable[[TopicMessage], Awaitable[None]]
) -> None:
    """The meters aggregate on ``provider``, its events to ``subscriber``, and a Minutes(1)
    schedule per aggregate instance that sends it a Bump through the command topic."""
    meters = await Aggregate.make(provider, SPEC)
    meters.event_topic.subscribe(subscriber)
    ops = (await Scheduler.make(provider, target=meters.command_topic)).operations
    await ops.create_schedules(
        [
            Schedule(
                name=f"meter-{n:04d}",
                rate=Minutes(1),
                payload=f'{{"aggregateId": "m-{n:04d}", "command": "Bump"}}',
            )
            for n in range(aggregates)
        ]
    )


async def measure(aggregates: int, minutes: int, path: Path) -> dict[str, Any]:
    clock = VirtualClock(START)
    published = 0

    async def count(message: TopicMessage) -> None:
        nonlocal published
        published += 1

    async with reventless.local.provider(path, clock=clock, workers=64) as provider:
        await set_up_meters(provider, aggregates, count)
        rates = []
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            for _ in range(minutes):
                before, began = published, time.perf_counter()
                await clock.advance(timedelta(minutes=1))
                rates.append((published - before) / (time.perf_counter() - began))
            group.cancel_scope.cancel()
        stored = (
            len(await provider.event_log().read_all(limit=10_000))
            if minutes * aggregates <= 10_000
            else None
        )
        sample = Schedule(name="x", rate=Minutes(1), payload="p")
        due = sum(
            1
            for t in itertools.takewhile(
                lambda t: t <= clock.now(), fire_times(sample, created_at=START)
            )
        )
    return {
        "rate": statistics.median(rates[1:] or rates),
        "published": published,
        "expected": aggregates * due,
        "stored": stored,
    }


def end_to_end(path: str, aggregates: int, minutes: int) -> dict[str, Any]:
    result = anyio.run(measure, aggregates, minutes, Path(path))
    return {
        "commands_per_s": result["rate"],
        "lost": result["expected"] - result["published"],
        "published": result["published"],
    }
