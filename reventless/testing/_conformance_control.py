"""The ScheduledPublisher conformance suite's tests of the control plane: create, replace,
update, delete, list, pause and resume, history, namespaces and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reventless.errors import (
    ScheduleExistsError,
    ScheduleNotFoundError,
    UsageError,
    ValidationError,
)
from reventless.fire_times import next_fire_after
from reventless.schedule import (
    Daily,
    Hours,
    Minutes,
    Schedule,
    Single,
    Weekdays,
)
from reventless.scheduler import Scheduler
from reventless.scheduler_adapter import HistoryKind, IfExists, PutOutcome
from reventless.testing._conformance_base import PAUSE_REASON, START, SuiteBase, harness
from reventless.testing.ports import ProviderUnderTest

__all__ = ("ControlPlaneTests",)


class ControlPlaneTests(SuiteBase):
    """The control plane of ``reventless.scheduler_adapter.ScheduledPublisher``, as tests."""

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
    async def test_a_pause_keeps_who_when_and_why_with_the_schedule(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            await h.ops.create_schedule(Schedule(name="tick", rate=Minutes(10), payload="p"))
            await h.ops.create_schedule(Schedule(name="tock", rate=Daily(9, 0), payload="p"))
            active = await h.ops.get_schedule("tick")
            assert (active.paused_at, active.paused_by, active.pause_reason) == (None, None, None)
            await h.clock.advance(timedelta(minutes=3, seconds=7))
            paused = await h.ops.pause_schedule("tick", reason=PAUSE_REASON, by="ops: ana")
            expected = (h.clock.now(), "ops: ana", PAUSE_REASON)
            assert (paused.paused_at, paused.paused_by, paused.pause_reason) == expected
            stored = await h.ops.get_schedule("tick")
            assert (stored.paused_at, stored.paused_by, stored.pause_reason) == expected
            listed = {s.schedule.name: s for s in (await h.ops.list_schedules()).schedules}
            tick = listed["tick"]
            assert (tick.paused_at, tick.paused_by, tick.pause_reason) == expected
            assert listed["tock"].pause_reason is None and listed["tock"].paused_at is None
            # Pausing again changes nothing, its first reason included.
            again = await h.ops.pause_schedule("tick", reason="another", by="bo")
            assert (again.paused_at, again.paused_by, again.pause_reason) == expected
            # An update in place keeps the pause, and why.
            await h.ops.update_schedule(Schedule(name="tick", rate=Minutes(15), payload="p"))
            updated = await h.ops.get_schedule("tick")
            assert updated.paused is True
            assert (updated.paused_at, updated.paused_by, updated.pause_reason) == expected
            resumed = await h.ops.resume_schedule("tick", reason="fixed", by="bo")
            assert resumed is not None and resumed.paused is False
            assert (resumed.paused_at, resumed.paused_by, resumed.pause_reason) == (
                None,
                None,
                None,
            )
            # Neither is required; a replace makes the schedule active, its pause gone.
            bare = await h.ops.pause_schedule("tock")
            assert (bare.paused_at, bare.paused_by, bare.pause_reason) == (
                h.clock.now(),
                None,
                None,
            )
            await h.ops.resume_schedule("tock")
            only_reason = await h.ops.pause_schedule("tock", reason="only why")
            assert (only_reason.paused_by, only_reason.pause_reason) == (None, "only why")
            await h.ops.create_schedule(Schedule(name="tock", rate=Daily(10, 0), payload="p"))
            replaced = await h.ops.get_schedule("tock")
            assert replaced.paused is False and replaced.pause_reason is None

    @pytest.mark.anyio
    async def test_a_bad_pause_reason_or_name_is_refused_and_nothing_is_written(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            await h.ops.create_schedule(Schedule(name="tick", rate=Minutes(10), payload="p"))
            before = await h.ops.get_schedule("tick")
            bad: list[tuple[str, dict[str, Any]]] = [
                ("reason", {"reason": "two\nlines"}),
                ("reason", {"reason": ""}),
                ("reason", {"reason": "x" * 257}),
                ("reason", {"reason": 42}),
                ("by", {"by": "tab\there"}),
                ("by", {"by": "y" * 101}),
            ]
            for field, note in bad:
                with pytest.raises(ValidationError) as refused:
                    await h.ops.pause_schedule("tick", **note)
                assert refused.value.field == field
                assert refused.value.value == note[field]
                with pytest.raises(ValidationError):
                    await h.ops.resume_schedule("tick", **note)
            assert await h.ops.get_schedule("tick") == before
            if self.keeps_history:
                kinds = [entry.kind for entry in await h.ops.history("tick")]
                assert kinds == [HistoryKind.CREATED]

    @pytest.mark.anyio
    async def test_history_records_the_reasons_of_pause_and_resume(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        if not self.keeps_history:
            pytest.skip("this adapter keeps no history")
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            await h.ops.create_schedule(Schedule(name="h", rate=Daily(9, 0), payload="p"))
            await h.ops.pause_schedule("h", reason=PAUSE_REASON, by="ana")
            await h.ops.resume_schedule("h", reason="fixed")
            await h.ops.pause_schedule("h", by="bo")
            await h.ops.resume_schedule("h")
            entries = [(e.kind, e.detail) for e in await h.ops.history("h")][1:]
            assert entries == [
                (HistoryKind.PAUSED, f"by ana: {PAUSE_REASON}"),
                (HistoryKind.RESUMED, "fixed"),
                (HistoryKind.PAUSED, "by bo"),
                (HistoryKind.RESUMED, None),
            ]

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

    # -- the overview: schedulers and engine -------------------------------------------------------

    @pytest.mark.anyio
    async def test_overview_lists_the_schedulers_in_name_order(
        self, provider_factory: Any, target_factory: Any
    ) -> None:
        async with harness(provider_factory, run=False, target=target_factory()) as h:
            publisher = h.provider.scheduled_publisher()
            if not self.fires:
                with pytest.raises(UsageError, match="not available"):
                    await publisher.overview()
                return
            other = await Scheduler.make(h.provider, target=target_factory(), name="billing")
            await other.operations.create_schedule(
                Schedule(name="invoice", rate=Daily(9, 0), payload="x")
            )
            overview = await publisher.overview()
            assert overview.schedulers == ["billing", "default"]
            # No engine runs yet: nothing fires these schedules.
            assert overview.engine.holder is None

    @pytest.mark.anyio
    async def test_overview_names_the_running_engine_and_its_heartbeat(
        self, provider_under_test: ProviderUnderTest, target_factory: Any
    ) -> None:
        self._needs_fires()
        if not provider_under_test.capabilities.durable:
            pytest.skip("a store of one process keeps no lease: no engine to name")
        async with harness(provider_under_test.open, target=target_factory()) as h:
            engine = (await h.provider.scheduled_publisher().overview()).engine
            assert engine.holder is not None
            assert engine.last_seen is not None and engine.lease_until is not None
            assert engine.last_seen <= engine.lease_until
