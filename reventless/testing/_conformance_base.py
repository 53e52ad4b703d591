"""The ScheduledPublisher conformance suite's shared part: its harness, its schedules and the
base of its test classes (the capabilities and fixtures). ``conformance`` has the suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from reventless.schedule import (
    LAST,
    Cron,
    Daily,
    Days,
    DstPolicy,
    Hours,
    Minutes,
    Monthly,
    NthWeekday,
    Schedule,
    Single,
    Weekdays,
    WeekdaysAndSaturday,
)
from reventless.scheduler import Scheduler
from reventless.testing import RecordingTarget, VirtualClock
from reventless.testing.ports import ProviderUnderTest, skip_unless_offered

__all__ = ("PAUSE_REASON", "START", "Harness", "ProviderFactory", "SuiteBase", "harness")

ProviderFactory = Callable[[VirtualClock], AbstractAsyncContextManager[Any]]
START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)
# A reason with what a stored form could trip on: quotes, marks of its own, text that is not
# ASCII, markup.
PAUSE_REASON = 'deploy "v2" <b>freeze</b> rate=Minutes(5) paused_at=x by=3:abc reason= é ✓'


class Harness:
    """A provider with a virtual clock, a scheduler and a recording target, engine running."""

    def __init__(
        self, provider: Any, clock: VirtualClock, scheduler: Scheduler, target: RecordingTarget
    ) -> None:
        self.provider = provider
        self.clock = clock
        self.scheduler = scheduler
        self.ops = scheduler.operations
        self.target = target

    async def advance(self, delta: timedelta, step: timedelta | None = None) -> None:
        """Advance the clock by ``delta``, in ``step``-sized moves when given."""
        if step is None:
            await self.clock.advance(delta)
            return
        end = self.clock.now() + delta
        while self.clock.now() < end:
            await self.clock.advance(min(step, end - self.clock.now()))


@asynccontextmanager
async def harness(
    factory: ProviderFactory,
    *,
    start: datetime = START,
    run: bool = True,
    target: Any = None,
) -> AsyncIterator[Harness]:
    clock = VirtualClock(start)
    target = RecordingTarget() if target is None else target
    async with factory(clock) as provider:
        scheduler = await Scheduler.make(provider, target=target)
        if not run:
            yield Harness(provider, clock, scheduler, target)
            return
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            yield Harness(provider, clock, scheduler, target)
            group.cancel_scope.cancel()


def _mixed_schedules() -> list[Schedule]:
    """All seven variants and the calendar rates, in zones whose clocks change in the test
    windows."""
    return [
        Schedule(name="daily-gap", rate=Daily(2, 30), payload="a", timezone="Europe/Berlin"),
        Schedule(
            name="weekdays-ny", rate=Weekdays(17, 0), payload="b", timezone="America/New_York"
        ),
        Schedule(
            name="mon-sat-lhi",
            rate=WeekdaysAndSaturday(1, 45),
            payload="c",
            timezone="Australia/Lord_Howe",
        ),
        Schedule(name="minutes-45", rate=Minutes(45), payload="d", timezone="Europe/Berlin"),
        Schedule(name="hours-5", rate=Hours(5), payload="e"),
        Schedule(name="days-2", rate=Days(2), payload="f", timezone="America/Santiago"),
        Schedule(
            name="single-berlin",
            rate=Single(2026, 3, 29, 3, 0),
            payload="g",
            timezone="Europe/Berlin",
        ),
        Schedule(
            name="single-overlap",
            rate=Single(2026, 10, 25, 2, 30),
            payload="h",
            timezone="Europe/Berlin",
        ),
        Schedule(name="daily-apia", rate=Daily(0, 0), payload="i", timezone="Pacific/Apia"),
        Schedule(
            name="month-end", rate=Monthly(LAST, 2, 30), payload="j", timezone="Europe/Berlin"
        ),
        Schedule(
            name="last-sunday",
            rate=NthWeekday(LAST, 6, 2, 15),
            payload="k",
            timezone="Europe/Berlin",
        ),
        Schedule(
            name="cron-night",
            rate=Cron("*/20 1-3 ? * SUN *"),
            payload="l",
            timezone="Europe/Berlin",
        ),
    ]


def _dst_schedules() -> list[Schedule]:
    """Wall-clock rates and Singles under every non-default DST policy, in zones whose clocks
    change in the test windows (Berlin, Dublin, Lord Howe, Troll)."""
    shift = DstPolicy(gap="shift")
    last = DstPolicy(overlap="last")
    both = DstPolicy(gap="shift", overlap="both")
    return [
        Schedule(
            name="shift-berlin", rate=Daily(2, 30), payload="a", timezone="Europe/Berlin", dst=shift
        ),
        Schedule(
            name="both-dublin", rate=Daily(1, 30), payload="b", timezone="Europe/Dublin", dst=both
        ),
        Schedule(
            name="last-troll",
            rate=Weekdays(2, 0),
            payload="c",
            timezone="Antarctica/Troll",
            dst=last,
        ),
        Schedule(
            name="both-lhi",
            rate=WeekdaysAndSaturday(1, 45),
            payload="d",
            timezone="Australia/Lord_Howe",
            dst=both,
        ),
        Schedule(
            name="single-gap",
            rate=Single(2026, 3, 29, 2, 30),
            payload="e",
            timezone="Europe/Berlin",
            dst=shift,
        ),
        Schedule(
            name="single-both",
            rate=Single(2026, 10, 25, 2, 30),
            payload="f",
            timezone="Europe/Berlin",
            dst=both,
        ),
    ]


class SuiteBase:
    """The base of the suite's test classes: what the adapter can show (read from the
    ``provider_under_test`` fixture's capabilities, which ``ScheduledPublisherConformance``
    describes), and the fixtures its tests take."""

    @pytest.fixture(autouse=True)
    def _offered(self, provider_under_test: ProviderUnderTest) -> None:
        skip_unless_offered(provider_under_test, "scheduled_publisher")

    fires: bool = True
    keeps_history: bool = True
    dst_policies: bool = True

    @pytest.fixture(autouse=True)
    def _capabilities(self, provider_under_test: ProviderUnderTest) -> None:
        capabilities = provider_under_test.capabilities
        self.fires = capabilities.fires
        self.keeps_history = capabilities.keeps_history
        self.dst_policies = capabilities.dst_policies

    @pytest.fixture
    def provider_factory(self, provider_under_test: ProviderUnderTest) -> ProviderFactory:
        return provider_under_test.open

    @pytest.fixture
    def target_factory(self, provider_under_test: ProviderUnderTest) -> Callable[[], Any]:
        return provider_under_test.scheduler_target

    def _needs_fires(self) -> None:
        if not self.fires:
            pytest.skip("this adapter's fires cannot be observed here")
