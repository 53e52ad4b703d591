"""The embedded engine fires the calendar rates (virtual clock, real SQLite file)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import reventless.local
from reventless import (
    LAST,
    Cron,
    HistoryKind,
    Monthly,
    NthWeekday,
    Schedule,
    Scheduler,
    ValidationError,
    fire_times,
)
from reventless.testing import RecordingTarget, VirtualClock

pytestmark = pytest.mark.anyio
START = datetime(2026, 1, 27, 8, 0, 30, tzinfo=UTC)


@asynccontextmanager
async def running(
    path: Path, clock: VirtualClock, target: RecordingTarget, **options: Any
) -> AsyncIterator[Any]:
    async with reventless.local.provider(path, clock=clock, **options) as provider:
        scheduler = await Scheduler.make(provider, target=target)
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            yield scheduler.operations
            group.cancel_scope.cancel()


SCHEDULES = [
    Schedule(name="month-end", rate=Monthly(LAST, 18, 0), payload="p", timezone="Europe/Berlin"),
    Schedule(name="second-tue", rate=NthWeekday(2, 1, 9, 30), payload="p", timezone="UTC"),
    Schedule(
        name="office", rate=Cron("0 9-17/4 ? * MON-FRI *"), payload="p", timezone="America/St_Johns"
    ),
    Schedule(name="unix", rate=Cron("15 0 1,15 * MON"), payload="p", timezone="Pacific/Apia"),
]


async def test_the_engine_fires_every_calendar_rate_at_its_instants(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    target = RecordingTarget()
    async with running(tmp_path / "cal.db", clock, target) as ops:
        for schedule in SCHEDULES:
            await ops.create_schedule(schedule)
        await clock.advance(timedelta(days=70))
    end = START + timedelta(days=70)
    for schedule in SCHEDULES:
        expected = list(
            itertools.takewhile(lambda t: t <= end, fire_times(schedule, created_at=START))
        )
        assert expected  # every one fires within 70 days
        got = [d.scheduled_time for d in target.deliveries if d.schedule == schedule.name]
        assert got == expected, schedule.name
    month_end = [d.fire_id for d in target.deliveries if d.schedule == "month-end"]
    assert month_end == [
        "month-end@2026-01-31T17:00:00Z",
        "month-end@2026-02-28T17:00:00Z",
        "month-end@2026-03-31T16:00:00Z",  # summer time in Berlin
    ]


async def test_missed_calendar_fires_follow_the_misfire_policy(tmp_path: Path) -> None:
    path = tmp_path / "down.db"
    clock = VirtualClock(START)
    schedule = Schedule(name="quarter", rate=Cron("*/15 * * * *"), payload="p")
    async with running(path, clock, RecordingTarget()) as ops:
        await ops.create_schedule(schedule)
        await clock.advance(timedelta(hours=1))
    await clock.advance(timedelta(hours=5))  # down: nothing fires
    target = RecordingTarget()
    async with running(
        path, clock, target, misfire_policy="latest", misfire_grace=timedelta(hours=2)
    ) as ops:
        await clock.advance(timedelta(0))
        history = await ops.history("quarter", limit=1000)
    # The clock reads 14:00:30: 14:00 is the latest missed fire and is delivered.
    assert [d.fire_id for d in target.deliveries] == ["quarter@2026-01-27T14:00:00Z"]
    [missed] = [e for e in history if e.kind is HistoryKind.MISSED]
    [expired] = [e for e in history if e.kind is HistoryKind.EXPIRED]
    # Within the two hours' grace (12:00:30 to 14:00:30): 12:15 ... 13:45 are missed.
    assert missed.detail is not None and missed.detail.startswith(
        "7 fires from quarter@2026-01-27T12:15:00Z to quarter@2026-01-27T13:45:00Z"
    )
    # Older: 09:15 (the first after the engine stopped at 09:00:30) to 12:00.
    assert expired.detail is not None and expired.detail.startswith("12 fires")


async def test_a_window_bounds_the_fires_and_the_schedule_completes_after_it(
    tmp_path: Path,
) -> None:
    clock = VirtualClock(START)
    target = RecordingTarget()
    schedule = Schedule(
        name="window",
        rate=Cron("0 12 * * *"),
        payload="p",
        not_before=datetime(2026, 1, 29, 12, tzinfo=UTC),
        not_after=datetime(2026, 1, 31, 12, tzinfo=UTC),
    )
    async with running(tmp_path / "w.db", clock, target) as ops:
        await ops.create_schedule(schedule)
        await clock.advance(timedelta(days=7))
        page = await ops.list_schedules()
        history = [e.kind for e in await ops.history("window")]
    assert [d.fire_id for d in target.deliveries] == [
        "window@2026-01-29T12:00:00Z",
        "window@2026-01-30T12:00:00Z",
        "window@2026-01-31T12:00:00Z",
    ]
    assert page.schedules == []  # completed after the last fire in its window
    assert history[-1] is HistoryKind.COMPLETED


async def test_a_window_already_over_is_refused_at_create(tmp_path: Path) -> None:
    over = Schedule(
        name="over", rate=Cron("0 12 * * *"), payload="p", not_after=START - timedelta(days=1)
    )
    async with running(tmp_path / "o.db", VirtualClock(START), RecordingTarget()) as ops:
        with pytest.raises(ValidationError, match="never fire") as caught:
            await ops.create_schedule(over)
        assert caught.value.field == "schedule.not_after"
        assert (await ops.list_schedules()).schedules == []


async def test_max_fires_completes_the_schedule_after_its_last_fire(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    target = RecordingTarget()
    schedule = Schedule(name="thrice", rate=Cron("*/10 * * * *"), payload="p", max_fires=3)
    async with running(tmp_path / "m.db", clock, target) as ops:
        await ops.create_schedule(schedule)
        await clock.advance(timedelta(hours=2))
        page = await ops.list_schedules()
    assert [d.fire_id for d in target.deliveries] == [
        "thrice@2026-01-27T08:10:00Z",
        "thrice@2026-01-27T08:20:00Z",
        "thrice@2026-01-27T08:30:00Z",
    ]
    assert page.schedules == []
