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
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from reventless.errors import (
    DeliveryRefusedError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    UsageError,
    ValidationError,
)
from reventless.fire_times import fire_times, next_fire_after
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
from reventless.scheduler_adapter import HistoryKind, IfExists, PutOutcome
from reventless.target import FireEnvelope
from reventless.testing import RecordingTarget, VirtualClock
from reventless.testing.ports import ProviderUnderTest, skip_unless_offered

__all__ = ("Harness", "ProviderFactory", "ScheduledPublisherConformance")

ProviderFactory = Callable[[VirtualClock], AbstractAsyncContextManager[Any]]
START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)


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


class ScheduledPublisherConformance:
    """The contract of ``reventless.scheduler_adapter.ScheduledPublisher``, as tests.

    The ``provider_under_test`` fixture's capabilities say what an adapter can show: ``fires``
    (fires observable in-process), ``keeps_history`` (``history()`` is supported) and
    ``dst_policies`` (it keeps every ``DstPolicy``; when false it must refuse all but the
    default with a ValidationError naming ``dst``, writing nothing). Its ``scheduler_target()``
    makes the targets (a queue on AWS); with ``fires`` the target must be a ``RecordingTarget``.
    """

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

    # -- the control plane -------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_create_then_get_returns_the_schedule(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            schedule = Schedule(
                name="report", rate=Weekdays(17, 0), payload='{"x": 1}', timezone="Europe/Berlin"
            )
            assert await h.ops.create_schedule(schedule) is PutOutcome.CREATED
            state = await h.ops.get_schedule("report")
            assert state.schedule == schedule
            assert state.created_at == START
            assert state.paused is False
            assert state.next_fire == next_fire_after(schedule, START)

    @pytest.mark.anyio
    async def test_create_with_an_existing_name_replaces_it_whole(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            first = Schedule(name="job", rate=Minutes(5), payload="one", timezone="Asia/Tokyo")
            await h.ops.create_schedule(first)
            await h.ops.pause_schedule("job")
            before = await h.ops.get_schedule("job")
            await h.clock.advance(timedelta(minutes=2))
            second = Schedule(name="job", rate=Hours(2), payload="two")
            assert await h.ops.create_schedule(second) is PutOutcome.REPLACED
            state = await h.ops.get_schedule("job")
            assert state.schedule == second
            assert state.paused is False
            assert state.created_at == START + timedelta(minutes=2)
            assert state.version > before.version
            assert state.next_fire == datetime(2026, 3, 20, 8, 3, tzinfo=UTC)

    @pytest.mark.anyio
    async def test_update_keeps_the_anchor_the_pause_and_the_history(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            first = Schedule(name="job", rate=Minutes(30), payload="one")
            await h.ops.create_schedule(first)
            await h.clock.advance(timedelta(minutes=47))
            second = Schedule(name="job", rate=Minutes(20), payload="two")
            assert await h.ops.update_schedule(second) is PutOutcome.UPDATED
            state = await h.ops.get_schedule("job")
            assert state.schedule == second
            assert state.created_at == START  # the anchor is kept: the grid goes on from it
            assert state.next_fire == next_fire_after(second, h.clock.now(), created_at=START)
            await h.ops.pause_schedule("job")
            third = Schedule(name="job", rate=Hours(1), payload="three")
            assert await h.ops.update_schedule(third) is PutOutcome.UPDATED
            paused = await h.ops.get_schedule("job")
            assert (paused.paused, paused.next_fire, paused.schedule) == (True, None, third)
            if self.keeps_history:
                kinds = [entry.kind for entry in await h.ops.history("job")]
                assert kinds == [
                    HistoryKind.CREATED,
                    HistoryKind.UPDATED,
                    HistoryKind.PAUSED,
                    HistoryKind.UPDATED,
                ]
            with pytest.raises(ScheduleNotFoundError):
                await h.ops.update_schedule(Schedule(name="missing", rate=Hours(1), payload="p"))
            page = await h.ops.list_schedules()
            assert [s.schedule.name for s in page.schedules] == ["job"]  # nothing was created

    @pytest.mark.anyio
    async def test_create_if_exists_keep_leaves_the_stored_one_untouched(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            first = Schedule(name="job", rate=Minutes(5), payload="one")
            await h.ops.create_schedule(first)
            await h.ops.pause_schedule("job")
            before = await h.ops.get_schedule("job")
            await h.clock.advance(timedelta(minutes=2))
            second = Schedule(name="job", rate=Hours(2), payload="two")
            assert await h.ops.create_schedule(second, if_exists="keep") is PutOutcome.KEPT
            assert await h.ops.get_schedule("job") == before
            fresh = Schedule(name="new", rate=Hours(2), payload="two")
            outcomes = await h.ops.create_schedules([second, fresh], if_exists=IfExists.KEEP)
            assert outcomes == [PutOutcome.KEPT, PutOutcome.CREATED]
            assert await h.ops.get_schedule("job") == before
            assert (await h.ops.get_schedule("new")).schedule == fresh

    @pytest.mark.anyio
    async def test_create_if_exists_error_writes_nothing_and_names_every_stored_one(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            stored = [Schedule(name=n, rate=Daily(9, 0), payload="p") for n in ("a", "c")]
            await h.ops.create_schedules(stored)
            with pytest.raises(ScheduleExistsError, match="'a'") as refused:
                await h.ops.create_schedule(
                    Schedule(name="a", rate=Hours(1), payload="q"), if_exists="error"
                )
            assert refused.value.names == ["a"]
            batch = [Schedule(name=n, rate=Hours(1), payload="q") for n in ("a", "b", "c")]
            with pytest.raises(ScheduleExistsError) as refused:
                await h.ops.create_schedules(batch, if_exists="error")
            assert refused.value.names == ["a", "c"]
            page = await h.ops.list_schedules()
            assert [s.schedule for s in page.schedules] == stored
            fresh = Schedule(name="b", rate=Hours(1), payload="q")
            assert await h.ops.create_schedule(fresh, if_exists="error") is PutOutcome.CREATED
            with pytest.raises(ValidationError, match="if_exists"):
                await h.ops.create_schedule(fresh, if_exists="overwrite")
            assert (await h.ops.get_schedule("b")).schedule == fresh

    @pytest.mark.anyio
    async def test_delete_is_idempotent(self, provider_factory: Any, target_factory: Any) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            await h.ops.create_schedule(Schedule(name="gone", rate=Daily(9, 0), payload="p"))
            assert await h.ops.delete_schedule("gone") is True
            assert await h.ops.delete_schedule("gone") is False
            assert await h.ops.delete_schedule("never-was") is False
            with pytest.raises(ScheduleNotFoundError):
                await h.ops.get_schedule("gone")

    @pytest.mark.anyio
    async def test_list_filters_by_prefix_and_pages_in_name_order(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            names = [f"user-{number:03d}" for number in range(25)] + ["admin", "user", "userx"]
            await h.ops.create_schedules(
                [Schedule(name=name, rate=Hours(1), payload="p") for name in reversed(names)]
            )
            seen: list[str] = []
            token = None
            pages = 0
            while True:
                page = await h.ops.list_schedules(prefix="user-", limit=10, after=token)
                pages += 1
                seen += [state.schedule.name for state in page.schedules]
                token = page.next_token
                if token is None:
                    break
            assert seen == sorted(name for name in names if name.startswith("user-"))
            assert pages == 3
            everything = await h.ops.list_schedules(limit=1000)
            assert [s.schedule.name for s in everything.schedules] == sorted(names)
            assert everything.next_token is None

    @pytest.mark.anyio
    async def test_batch_create_is_all_or_nothing(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            good = Schedule(name="a", rate=Daily(9, 0), payload="p")
            past = Schedule(name="b", rate=Single(2026, 3, 20, 5, 59), payload="p")
            with pytest.raises(ValidationError, match="past"):
                await h.ops.create_schedules([good, past])
            with pytest.raises(ValidationError, match="already in this batch"):
                await h.ops.create_schedules([good, good])
            assert (await h.ops.list_schedules()).schedules == []

    @pytest.mark.anyio
    async def test_single_in_the_past_is_refused_but_the_current_minute_is_not(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            with pytest.raises(ValidationError, match="in the past") as caught:
                await h.ops.create_schedule(
                    Schedule(name="late", rate=Single(2026, 3, 20, 5, 59), payload="p")
                )
            assert caught.value.field == "schedule.rate"
            await h.ops.create_schedule(
                Schedule(name="now", rate=Single(2026, 3, 20, 6, 0), payload="p")
            )
            with pytest.raises(ScheduleNotFoundError):
                await h.ops.get_schedule("late")

    @pytest.mark.anyio
    async def test_pause_and_resume(self, provider_factory: Any, target_factory: Any) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            schedule = Schedule(name="tick", rate=Minutes(10), payload="p")
            await h.ops.create_schedule(schedule)
            paused = await h.ops.pause_schedule("tick")
            assert paused.paused is True
            assert paused.next_fire is None
            again = await h.ops.pause_schedule("tick")
            assert again.version == paused.version  # pausing a paused schedule changes nothing
            await h.clock.advance(timedelta(minutes=33))
            resumed = await h.ops.resume_schedule("tick")
            assert resumed is not None and resumed.paused is False
            assert resumed.next_fire == next_fire_after(schedule, h.clock.now(), created_at=START)
            with pytest.raises(ScheduleNotFoundError):
                await h.ops.pause_schedule("missing")
            with pytest.raises(ScheduleNotFoundError):
                await h.ops.resume_schedule("missing")

    @pytest.mark.anyio
    async def test_history_records_each_change(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        if not self.keeps_history:
            pytest.skip("this adapter keeps no history")
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            await h.ops.create_schedule(Schedule(name="h", rate=Daily(9, 0), payload="p"))
            await h.ops.create_schedule(Schedule(name="h", rate=Daily(10, 0), payload="p"))
            await h.ops.pause_schedule("h")
            await h.ops.resume_schedule("h")
            await h.ops.delete_schedule("h")
            kinds = [entry.kind for entry in await h.ops.history("h")]
            assert kinds == [
                HistoryKind.CREATED,
                HistoryKind.REPLACED,
                HistoryKind.PAUSED,
                HistoryKind.RESUMED,
                HistoryKind.DELETED,
            ]

    @pytest.mark.anyio
    async def test_schedulers_have_separate_namespaces(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            other = await Scheduler.make(h.provider, target=target_factory(), name="other")
            await h.ops.create_schedule(Schedule(name="same", rate=Daily(9, 0), payload="one"))
            await other.operations.create_schedule(
                Schedule(name="same", rate=Daily(10, 0), payload="two")
            )
            assert (await h.ops.get_schedule("same")).schedule.payload == "one"
            assert (await other.operations.get_schedule("same")).schedule.payload == "two"
            assert await other.operations.delete_schedule("same") is True
            assert (await h.ops.get_schedule("same")).schedule.payload == "one"

    @pytest.mark.anyio
    async def test_a_second_scheduler_with_a_taken_name_is_refused(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            with pytest.raises(UsageError, match="'default'"):
                await Scheduler.make(h.provider, target=target_factory())
            await h.ops.create_schedule(Schedule(name="kept", rate=Daily(9, 0), payload="one"))
            assert (await h.ops.get_schedule("kept")).schedule.payload == "one"
            assert h.scheduler.target is h.target

    @pytest.mark.anyio
    async def test_bad_input_is_refused_before_the_adapter(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            for call in (
                lambda: h.ops.get_schedule("bad name"),
                lambda: h.ops.delete_schedule("x" * 65),
                lambda: h.ops.list_schedules(prefix="no spaces"),
                lambda: h.ops.list_schedules(limit=0),
                lambda: h.ops.create_schedule("Daily(9, 0)"),  # type: ignore[arg-type]
                lambda: h.ops.preview("x", count=0),
            ):
                with pytest.raises(ValidationError):
                    await call()
            assert (await h.ops.list_schedules()).schedules == []

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
            assert await h.ops.trigger_schedule("report") == "report@2026-03-20T06:01:01Z"
            await h.advance(timedelta(seconds=5))
            assert [d.fire_id for d in h.target.deliveries] == [
                "report@2026-03-20T06:00:30Z",
                "report@2026-03-20T06:01:01Z",
            ]
            assert h.target.deliveries[0].payload == "p"
            state = await h.ops.get_schedule("report")
            assert state.next_fire == datetime(2026, 3, 20, 9, 0, tzinfo=UTC)  # untouched
            if self.keeps_history:
                kinds = [entry.kind for entry in await h.ops.history("report")]
                assert kinds.count(HistoryKind.TRIGGERED) == 2
                assert kinds.count(HistoryKind.FIRED) == 2
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
            queued = await h.ops.backfill("tick", start, end)
            assert queued == [f"tick@2026-03-20T06:{m}1:00Z" for m in (2, 3, 4, 5)]
            assert await h.ops.backfill("tick", start, end) == []  # queued already
            await h.advance(timedelta(seconds=1))
            assert await h.ops.backfill("tick", start, end) == []  # delivered now
            times = sorted(d.scheduled_time.strftime("%H:%M") for d in h.target.deliveries)
            assert times == ["06:11", "06:21", "06:31", "06:41", "06:51"]
            kinds = [entry.kind for entry in await h.ops.history("tick")]
            assert kinds.count(HistoryKind.BACKFILLED) == 4
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
            assert await h.ops.redrive(schedule="a") == ["a@2026-03-20T06:02:00Z"]
            assert await h.ops.redrive() == []  # nothing left to send
            await h.advance(timedelta(seconds=1))
            assert sorted(d.fire_id for d in target.deliveries) == [
                "a@2026-03-20T06:02:00Z",
                "b@2026-03-20T06:02:00Z",
            ]
            assert await h.ops.dead_letters() == []
            if self.keeps_history:
                kinds = [entry.kind for entry in await h.ops.history("a")]
                assert kinds[-2:] == [HistoryKind.REDRIVEN, HistoryKind.FIRED]


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
