"""The ScheduledPublisher conformance suite: one set of tests for every adapter.

Use it from a pytest module of your own (it needs pytest and anyio's pytest plugin) with a
``provider_under_test`` fixture returning a ``reventless.testing.ports.ProviderUnderTest``::

    from reventless.testing.conformance import ScheduledPublisherConformance

    class TestScheduledPublisher(ScheduledPublisherConformance):
        pass

``provider_under_test.open(clock)`` takes a ``VirtualClock`` and yields a provider: an object
with ``clock``, ``scheduled_publisher()`` and, when it ``fires``, ``run()``. Its capabilities
(``fires``, ``keeps_history``, ``dst_policies``) say what the adapter can show. Every test drives
the adapter through the Scheduler component and checks what it stores, and, with ``fires``,
every fire it delivers against ``fire_times`` of the core.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reventless.errors import (
    DeliveryRefusedError,
    ScheduleNotFoundError,
    ValidationError,
)
from reventless.fire_times import fire_times, next_fire_after
from reventless.schedule import (
    Daily,
    Days,
    DstPolicy,
    Minutes,
    Schedule,
    Single,
)
from reventless.scheduler_adapter import HistoryKind
from reventless.target import FireEnvelope
from reventless.testing import RecordingTarget
from reventless.testing._conformance_base import (
    PAUSE_REASON,
    START,
    Harness,
    ProviderFactory,
    _dst_schedules,
    _mixed_schedules,
    harness,
)
from reventless.testing._conformance_control import ControlPlaneTests

__all__ = ("Harness", "ProviderFactory", "ScheduledPublisherConformance")


class ScheduledPublisherConformance(ControlPlaneTests):
    """The contract of ``reventless.scheduler_adapter.ScheduledPublisher``, as tests.

    The ``provider_under_test`` fixture's capabilities say what an adapter can show: ``fires``
    (fires observable in-process), ``keeps_history`` (``history()`` is supported) and
    ``dst_policies`` (it keeps every ``DstPolicy``; when false it must refuse all but the
    default with a ValidationError naming ``dst``, writing nothing). Its ``scheduler_target()``
    makes the targets (a queue on AWS); with ``fires`` the target must be a ``RecordingTarget``.
    """

    # -- firing ------------------------------------------------------------------------------------

    async def _check_window(
        self,
        provider_factory: Any,
        start: datetime,
        days: int,
        candidates: list[Schedule] | None = None,
    ) -> None:
        async with harness(provider_factory, start=start) as h:
            schedules = [
                s
                for s in (candidates or _mixed_schedules())
                if not isinstance(s.rate, Single) or next_fire_after(s, start) is not None
            ]
            await h.ops.create_schedules(schedules)
            await h.advance(timedelta(days=days), step=timedelta(hours=7))
            end = h.clock.now()
            for schedule in schedules:
                expected = list(
                    itertools.takewhile(
                        lambda instant: instant <= end,
                        fire_times(schedule, created_at=start),
                    )
                )
                got = h.target.for_schedule(schedule.name)
                assert [d.scheduled_time for d in got] == expected, schedule.name
                assert all(d.payload == schedule.payload for d in got)
            assert h.target.duplicates() == {}

    @pytest.mark.anyio
    async def test_every_variant_fires_exactly_per_the_core_across_spring_changes(
        self, provider_factory: Any
    ) -> None:
        self._needs_fires()
        await self._check_window(provider_factory, START, days=21)

    @pytest.mark.anyio
    async def test_every_variant_fires_exactly_per_the_core_across_autumn_changes(
        self, provider_factory: Any
    ) -> None:
        self._needs_fires()
        await self._check_window(
            provider_factory, datetime(2026, 10, 20, 11, 11, 11, tzinfo=UTC), days=21
        )

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        ("start", "days"),
        [(START, 21), (datetime(2026, 10, 20, 11, 11, 11, tzinfo=UTC), 21)],
        ids=["spring", "autumn"],
    )
    async def test_dst_policies_fire_exactly_per_the_core(
        self, provider_factory: Any, start: datetime, days: int
    ) -> None:
        self._needs_fires()
        if not self.dst_policies:
            pytest.skip("this adapter keeps only the default DST policy")
        await self._check_window(provider_factory, start, days, _dst_schedules())

    @pytest.mark.anyio
    async def test_both_occurrences_fire_with_their_own_fire_ids(
        self, provider_factory: Any
    ) -> None:
        self._needs_fires()
        if not self.dst_policies:
            pytest.skip("this adapter keeps only the default DST policy")
        start = datetime(2026, 10, 24, 12, tzinfo=UTC)
        async with harness(provider_factory, start=start) as h:
            both = DstPolicy(overlap="both")
            await h.ops.create_schedules(
                [
                    Schedule(
                        name="meter",
                        rate=Daily(1, 30),
                        payload="p",
                        timezone="Europe/Dublin",
                        dst=both,
                    ),
                    Schedule(
                        name="once-twice",
                        rate=Single(2026, 10, 25, 1, 30),
                        payload="p",
                        timezone="Europe/Dublin",
                        dst=both,
                    ),
                ]
            )
            assert (await h.ops.get_schedule("meter")).schedule.dst == both
            await h.advance(timedelta(hours=14), step=timedelta(minutes=20))
            ids = [d.fire_id for d in h.target.deliveries]
            assert sorted(ids) == [
                "meter@2026-10-25T00:30:00Z",
                "meter@2026-10-25T01:30:00Z",
                "once-twice@2026-10-25T00:30:00Z",
                "once-twice@2026-10-25T01:30:00Z",
            ]
            with pytest.raises(ScheduleNotFoundError):
                await h.ops.get_schedule("once-twice")  # complete after its second fire

    @pytest.mark.anyio
    async def test_a_dst_policy_is_kept_or_refused_before_any_write(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            plain = Schedule(name="plain", rate=Daily(9, 0), payload="p")
            policy = _dst_schedules()[0]
            if self.dst_policies:
                await h.ops.create_schedules([plain, policy])
                assert (await h.ops.get_schedule(policy.name)).schedule == policy
                return
            with pytest.raises(ValidationError) as refused:
                await h.ops.create_schedule(policy)
            assert refused.value.field == "dst"
            with pytest.raises(ValidationError):
                await h.ops.create_schedules([plain, policy])
            assert (await h.ops.list_schedules()).schedules == []

    @pytest.mark.anyio
    async def test_the_envelope_carries_the_nominal_time_and_fire_id(
        self, provider_factory: Any
    ) -> None:
        self._needs_fires()
        async with harness(provider_factory) as h:
            await h.ops.create_schedule(
                Schedule(
                    name="daily-report", rate=Daily(9, 0), payload='{"type": "GenerateReport"}'
                )
            )
            await h.advance(timedelta(days=1))
            [delivery] = h.target.deliveries
            assert delivery.scheduled_time == datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
            assert delivery.fire_id == "daily-report@2026-03-20T09:00:00Z"
            assert delivery.to_json() == (
                b'{"schedule":"daily-report","scheduledTime":"2026-03-20T09:00:00Z",'
                b'"payload":"{\\"type\\": \\"GenerateReport\\"}"}'
            )
            history = await h.ops.history("daily-report")
            assert history[-1].kind is HistoryKind.FIRED
            assert history[-1].fire_id == delivery.fire_id

    @pytest.mark.anyio
    async def test_a_single_fires_once_then_completes(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        self._needs_fires()
        async with harness(provider_factory) as h:
            await h.ops.create_schedule(
                Schedule(name="meeting", rate=Single(2026, 3, 20, 7, 15), payload="p")
            )
            await h.advance(timedelta(days=2))
            assert [d.fire_id for d in h.target.deliveries] == ["meeting@2026-03-20T07:15:00Z"]
            with pytest.raises(ScheduleNotFoundError):
                await h.ops.get_schedule("meeting")
            kinds = [entry.kind for entry in await h.ops.history("meeting")]
            assert kinds == [HistoryKind.CREATED, HistoryKind.FIRED, HistoryKind.COMPLETED]

    @pytest.mark.anyio
    async def test_a_single_in_the_current_minute_fires_at_once(
        self, provider_factory: Any
    ) -> None:
        self._needs_fires()
        async with harness(provider_factory) as h:
            await h.ops.create_schedule(
                Schedule(name="now", rate=Single(2026, 3, 20, 6, 0), payload="p")
            )
            await h.advance(timedelta(0))
            assert [d.fire_id for d in h.target.deliveries] == ["now@2026-03-20T06:00:00Z"]

    @pytest.mark.anyio
    async def test_paused_schedules_do_not_fire_and_resume_does_not_catch_up(
        self, provider_factory: Any
    ) -> None:
        self._needs_fires()
        async with harness(provider_factory) as h:
            await h.ops.create_schedule(Schedule(name="tick", rate=Minutes(10), payload="p"))
            await h.advance(timedelta(minutes=25))
            assert len(h.target.deliveries) == 2
            await h.ops.pause_schedule("tick")
            await h.advance(timedelta(hours=2))
            assert len(h.target.deliveries) == 2
            await h.ops.resume_schedule("tick")
            await h.advance(timedelta(minutes=20))
            times = [d.scheduled_time.strftime("%H:%M") for d in h.target.deliveries]
            assert times == ["06:11", "06:21", "08:31", "08:41"]

    @pytest.mark.anyio
    async def test_deleted_schedules_stop_firing(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        self._needs_fires()
        async with harness(provider_factory) as h:
            await h.ops.create_schedule(Schedule(name="tick", rate=Minutes(1), payload="p"))
            await h.advance(timedelta(minutes=3))
            await h.ops.delete_schedule("tick")
            await h.advance(timedelta(hours=1))
            assert len(h.target.deliveries) == 2  # 06:02 and 06:03

    @pytest.mark.anyio
    async def test_replacing_an_interval_restarts_its_anchor(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        """The dead-man's switch: re-creating before it fires pushes the fire back."""
        self._needs_fires()
        async with harness(provider_factory) as h:
            switch = Schedule(name="dead-man", rate=Minutes(10), payload="p")
            await h.ops.create_schedule(switch)
            for _ in range(5):
                await h.advance(timedelta(minutes=8))
                await h.ops.create_schedule(switch)
            assert h.target.deliveries == []
            await h.advance(timedelta(minutes=11))
            assert len(h.target.deliveries) == 1

    @pytest.mark.anyio
    async def test_an_earlier_schedule_wakes_a_sleeping_engine(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        self._needs_fires()
        async with harness(provider_factory) as h:
            await h.ops.create_schedule(Schedule(name="far", rate=Days(30), payload="p"))
            await h.advance(timedelta(minutes=1))
            await h.ops.create_schedule(Schedule(name="near", rate=Minutes(2), payload="p"))
            await h.advance(timedelta(minutes=3))
            assert [d.fire_id for d in h.target.deliveries] == ["near@2026-03-20T06:04:00Z"]

    # -- repair: trigger, backfill, redrive ------------------------------------------------------

    @pytest.mark.anyio
    async def test_trigger_fires_once_now_with_a_fire_id_no_schedule_fire_has(
        self, provider_factory: Any
    ) -> None:
        self._needs_fires()
        async with harness(provider_factory) as h:
            await h.ops.create_schedule(Schedule(name="report", rate=Daily(9, 0), payload="p"))
            assert await h.ops.trigger_schedule("report") == "report@2026-03-20T06:00:30Z"
            await h.advance(timedelta(seconds=30))  # now 06:01:00, a whole minute
            # A whole minute is every scheduled fire's: the extra fire takes the next second.
            with pytest.raises(ValidationError, match="reason"):
                await h.ops.trigger_schedule("report", reason="two\nlines")
            fire = await h.ops.trigger_schedule("report", reason=PAUSE_REASON, by="ana")
            assert fire == "report@2026-03-20T06:01:01Z"
            await h.advance(timedelta(seconds=5))
            assert [d.fire_id for d in h.target.deliveries] == [
                "report@2026-03-20T06:00:30Z",
                "report@2026-03-20T06:01:01Z",
            ]
            assert h.target.deliveries[0].payload == "p"
            state = await h.ops.get_schedule("report")
            assert state.next_fire == datetime(2026, 3, 20, 9, 0, tzinfo=UTC)  # untouched
            if self.keeps_history:
                entries = await h.ops.history("report")
                triggered = [e.detail for e in entries if e.kind is HistoryKind.TRIGGERED]
                assert triggered == [None, f"by ana: {PAUSE_REASON}"]
                assert [e.kind for e in entries].count(HistoryKind.FIRED) == 2
            with pytest.raises(ScheduleNotFoundError):
                await h.ops.trigger_schedule("missing")

    @pytest.mark.anyio
    async def test_backfill_delivers_the_fires_not_delivered_and_nothing_twice(
        self, provider_factory: Any
    ) -> None:
        self._needs_fires()
        if not self.keeps_history:
            pytest.skip("backfill needs the record of deliveries")
        async with harness(provider_factory) as h:
            await h.ops.create_schedule(Schedule(name="tick", rate=Minutes(10), payload="p"))
            await h.advance(timedelta(minutes=15))  # 06:11 delivered
            await h.ops.pause_schedule("tick")
            await h.advance(timedelta(minutes=45))
            await h.ops.resume_schedule("tick")  # 06:21 to 06:51 missed while paused
            start = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)
            end = datetime(2026, 3, 20, 8, 0, tzinfo=UTC)  # past the next fire (07:11)
            queued = await h.ops.backfill("tick", start, end, reason="missed while paused")
            assert queued == [f"tick@2026-03-20T06:{m}1:00Z" for m in (2, 3, 4, 5)]
            assert await h.ops.backfill("tick", start, end) == []  # queued already
            await h.advance(timedelta(seconds=1))
            assert await h.ops.backfill("tick", start, end) == []  # delivered now
            times = sorted(d.scheduled_time.strftime("%H:%M") for d in h.target.deliveries)
            assert times == ["06:11", "06:21", "06:31", "06:41", "06:51"]
            entries = await h.ops.history("tick")
            backfilled = [e.detail for e in entries if e.kind is HistoryKind.BACKFILLED]
            assert backfilled == ["missed while paused"] * 4
            with pytest.raises(ValidationError, match="end"):
                await h.ops.backfill("tick", end, start)
            with pytest.raises(ScheduleNotFoundError):
                await h.ops.backfill("missing", start, end)

    @pytest.mark.anyio
    async def test_redrive_delivers_dead_letters_again_once(self, provider_factory: Any) -> None:
        self._needs_fires()
        target = _RefusesFirst(refusals=2)
        async with harness(provider_factory, target=target) as h:
            await h.ops.create_schedule(Schedule(name="a", rate=Minutes(1), payload="pa"))
            await h.ops.create_schedule(Schedule(name="b", rate=Minutes(1), payload="pb"))
            await h.advance(timedelta(seconds=91))  # 06:02: both refused, dead-lettered
            await h.ops.delete_schedule("a")
            await h.ops.delete_schedule("b")
            letters = await h.ops.dead_letters()
            assert sorted(d.fire_id for d in letters) == [
                "a@2026-03-20T06:02:00Z",
                "b@2026-03-20T06:02:00Z",
            ]
            with pytest.raises(ValidationError, match="fire_ids"):
                await h.ops.redrive(schedule="a", fire_ids=["a@2026-03-20T06:02:00Z"])
            with pytest.raises(ValidationError, match="fire_ids"):
                await h.ops.redrive(fire_ids=["not a fire id"])
            assert await h.ops.redrive(fire_ids=["b@2026-03-20T06:02:00Z"]) == [
                "b@2026-03-20T06:02:00Z"
            ]
            assert await h.ops.redrive(schedule="a", reason="fixed", by="bo") == [
                "a@2026-03-20T06:02:00Z"
            ]
            assert await h.ops.redrive() == []  # nothing left to send
            await h.advance(timedelta(seconds=1))
            assert sorted(d.fire_id for d in target.deliveries) == [
                "a@2026-03-20T06:02:00Z",
                "b@2026-03-20T06:02:00Z",
            ]
            assert await h.ops.dead_letters() == []
            if self.keeps_history:
                entries = await h.ops.history("a")
                assert [e.kind for e in entries[-2:]] == [HistoryKind.REDRIVEN, HistoryKind.FIRED]
                assert entries[-2].detail == "by bo: fixed"


class _RefusesFirst(RecordingTarget):
    """Refuses (DeliveryRefusedError: dead-lettered at once) its first ``refusals`` deliveries."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals

    async def deliver(self, envelope: FireEnvelope) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            raise DeliveryRefusedError(f"refused {envelope.fire_id}")
        await super().deliver(envelope)
