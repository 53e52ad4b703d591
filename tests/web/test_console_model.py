"""What the console computes, on a real store with a virtual clock: the schedule rows (DST
notes, states, paging and filters across many schedules), the week-ahead counts and the
reactions' lag; and the rate in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import reventless.local
from reventless import (
    LAST,
    Cron,
    Daily,
    Days,
    Hours,
    Minutes,
    Monthly,
    NthWeekday,
    Schedule,
    Scheduler,
    Single,
    Weekdays,
    WeekdaysAndSaturday,
)
from reventless.fire_times import fire_times
from reventless.testing import RecordingTarget, VirtualClock
from reventless.web._model import ConsoleModel
from reventless.web._words import rate_words

pytestmark = pytest.mark.anyio

START = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # Friday; Berlin springs forward on Sunday


async def test_rows_carry_next_fires_with_dst_notes_and_states(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    async with reventless.local.provider(tmp_path / "a.db", clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget(), name="ops")).operations
        await ops.create_schedule(
            Schedule(name="night", rate=Daily(2, 30), payload="x", timezone="Europe/Berlin")
        )
        await ops.create_schedule(Schedule(name="held", rate=Minutes(5), payload="y"))
        await ops.pause_schedule("held", reason="vendor down", by="ana")
        model = ConsoleModel(provider)
        page = await model.schedules(["ops"])
        rows = {row.state.schedule.name: row for row in page.rows}
        night = rows["night"]
        assert night.status == "active" and night.rate == "every day at 02:30"
        assert [fire.at for fire in night.next_fires] == [
            datetime(2026, 3, 28, 1, 30, tzinfo=UTC),  # 02:30 CET
            datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST; the 29th has no 02:30
            datetime(2026, 3, 31, 0, 30, tzinfo=UTC),
        ]
        assert [bool(fire.notes) for fire in night.next_fires] == [False, True, False]
        assert "2026-03-29" in night.next_fires[1].notes[0]
        held = rows["held"]
        assert held.status == "paused" and held.next_fires == []
        assert (held.state.paused_by, held.state.pause_reason) == ("ana", "vendor down")
        # Late: an active schedule whose next fire is past by more than the threshold (no
        # engine ran while the clock moved on).
        await clock.advance(timedelta(hours=14))
        late = {r.state.schedule.name: r.status for r in (await model.schedules(["ops"])).rows}
        assert late == {"night": "late", "held": "paused"}


async def test_pages_and_filters_cover_every_schedule_once(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    async with reventless.local.provider(tmp_path / "a.db", clock=clock) as provider:
        made = {}
        for scheduler in ("a", "b"):
            made[scheduler] = (
                await Scheduler.make(provider, target=RecordingTarget(), name=scheduler)
            ).operations
            await made[scheduler].create_schedules(
                [
                    Schedule(name=f"job-{i:04d}", rate=Minutes(1 + i % 60), payload="p")
                    for i in range(1200)
                ]
            )
        for i in range(0, 1200, 100):
            await made["b"].pause_schedule(f"job-{i:04d}", reason="r")
        model = ConsoleModel(provider)
        seen: list[str] = []
        after = None
        pages = 0
        while True:
            page = await model.schedules(["a", "b"], after=after, limit=300)
            seen += [f"{row.scheduler}/{row.state.schedule.name}" for row in page.rows]
            pages += 1
            after = page.next_token
            if after is None:
                break
        expected = [f"{s}/job-{i:04d}" for s in ("a", "b") for i in range(1200)]
        assert seen == expected and pages == 8
        paused = await model.schedules(["a", "b"], state="paused", limit=50)
        names = [f"{row.scheduler}/{row.state.schedule.name}" for row in paused.rows]
        assert names == [f"b/job-{i:04d}" for i in range(0, 1200, 100)]
        assert paused.next_token is None and paused.scanned == 2400
        texts = await model.schedules(["a", "b"], text="JOB-001", limit=50)
        assert len(texts.rows) == 20 and texts.next_token is None
        by_rate = await model.schedules(["a"], text="every 60 minutes", limit=50)
        assert [row.state.schedule.name for row in by_rate.rows][:2] == ["job-0059", "job-0119"]


async def test_the_week_ahead_counts_fires_per_hour_and_leaves_paused_ones_out(
    tmp_path: Path,
) -> None:
    clock = VirtualClock(datetime(2026, 3, 20, 6, 0, tzinfo=UTC))
    async with reventless.local.provider(tmp_path / "a.db", clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget(), name="ops")).operations
        await ops.create_schedule(Schedule(name="half", rate=Minutes(30), payload="x"))
        await ops.create_schedule(Schedule(name="nine", rate=Daily(9, 0), payload="x"))
        await ops.create_schedule(Schedule(name="held", rate=Minutes(1), payload="x"))
        await ops.pause_schedule("held")
        timeline = await ConsoleModel(provider).timeline(["ops"])
        hours = timeline.counts["ops"]
        assert timeline.start == datetime(2026, 3, 20, 6, 0, tzinfo=UTC)
        assert len(hours) == 168
        # Half-hourly from 06:30: one fire in the first hour, two in every other; the daily
        # 09:00 adds one at hour 3 of each day.
        expected = [1] + [2] * 167
        for day in range(7):
            expected[3 + 24 * day] += 1
        assert hours == expected
        assert timeline.capped == []


async def test_interval_counts_match_every_fire_counted_one_by_one(tmp_path: Path) -> None:
    start = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)
    clock = VirtualClock(start + timedelta(seconds=17))
    schedules = [
        Schedule(name="seven", rate=Minutes(7), payload="x", max_fires=500),
        Schedule(name="five-h", rate=Hours(5), payload="x", not_after=start + timedelta(days=4)),
        Schedule(name="two-d", rate=Days(2), payload="x", not_before=start + timedelta(days=1)),
        Schedule(name="minute", rate=Minutes(1), payload="x"),
    ]
    async with reventless.local.provider(tmp_path / "a.db", clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget(), name="ops")).operations
        await ops.create_schedules(schedules)
        await clock.advance(timedelta(hours=2, minutes=30))  # the week starts at 08:00
        timeline = await ConsoleModel(provider).timeline(["ops"])
        expected = [0] * 168
        for schedule in schedules:
            state = await ops.get_schedule(schedule.name)
            for instant in fire_times(schedule, created_at=state.created_at):
                offset = instant - timeline.start
                if offset >= timedelta(hours=168):
                    break
                if offset >= timedelta(0):
                    expected[int(offset.total_seconds() // 3600)] += 1
        assert timeline.start == start + timedelta(hours=2)
        assert timeline.counts["ops"] == expected


async def test_reaction_lag_is_the_age_of_the_oldest_unhandled_event(tmp_path: Path) -> None:
    from tests.web.console_store import Engine

    engine = Engine(tmp_path / "app.db").start()  # the reaction stops on its poison event
    engine.stop()
    # real clock: the engine stamped the events with it; only the 10 minutes on top matter.
    later = datetime.now(UTC) + timedelta(minutes=10)
    async with reventless.local.provider(
        engine.db, clock=VirtualClock(later), read_only=True
    ) as provider:
        views, missing = await ConsoleModel(provider).reactions()
    assert missing is None
    (view,) = views
    assert view.status.state == "stopped" and view.status.pending == 2
    assert view.lag is not None and timedelta(minutes=10) <= view.lag < timedelta(minutes=11)
    assert [letter.position for letter in view.dead_letters] == [1]


def test_rates_in_words() -> None:
    cases = {
        Minutes(1): "every minute",
        Minutes(15): "every 15 minutes",
        Hours(2): "every 2 hours",
        Days(1): "every day",
        Daily(9, 5): "every day at 09:05",
        Weekdays(17, 0): "Monday to Friday at 17:00",
        WeekdaysAndSaturday(8, 0): "Monday to Saturday at 08:00",
        Monthly(1, 6, 0): "the 1st of each month at 06:00",
        Monthly(22, 6, 0): "the 22nd of each month at 06:00",
        Monthly(13, 6, 0): "the 13th of each month at 06:00",
        Monthly(LAST, 23, 30): "the last day of each month at 23:30",
        NthWeekday(2, 1, 9, 0): "the second Tuesday of each month at 09:00",
        NthWeekday(LAST, 4, 17, 0): "the last Friday of each month at 17:00",
        Cron("0 9 ? * MON *"): "cron 0 9 ? * MON *",
        Single(2026, 12, 24, 18, 0): "once, on 2026-12-24 at 18:00",
    }
    assert {rate: rate_words(rate) for rate in cases} == cases
