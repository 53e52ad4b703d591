"""API traps a newcomer fell into, each refused up front with the fix in the message: a plain
``def deliver``, an aggregate passed as a target, a provider used without ``async with``, and a
scheduler or aggregate used after its provider closed (local here; AWS in tests/aws)."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

import reventless.local
from reventless import (
    Aggregate,
    AggregateSpec,
    CommandContext,
    EventTopic,
    Minutes,
    Plugin,
    Schedule,
    Scheduler,
    TopicMessage,
    UsageError,
    ValidationError,
)
from reventless.plugin import ObservedTarget
from reventless.target import FireEnvelope, check_target, is_async_callable
from reventless.testing import RecordingTarget, VirtualClock

pytestmark = pytest.mark.anyio
START = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)


class Ping(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    pass


class Pinged(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    pass


def _decide(state: int, command: Any, context: CommandContext) -> list[Any]:
    return [Pinged()]


SPEC: AggregateSpec[int] = AggregateSpec(
    "pings", commands=[Ping], events=[Pinged], initial=0, decide=_decide, evolve=lambda s, e: s + 1
)


# -- targets ---------------------------------------------------------------------------------------


class PlainDeliver:
    """The trap: a side effect, then None where an awaitable was expected."""

    def __init__(self) -> None:
        self.effects = 0

    def deliver(self, envelope: FireEnvelope) -> None:
        self.effects += 1


class ReturnsAwaitable:
    """Returns an awaitable from a plain def: refused, since only calling it could tell."""

    def __init__(self) -> None:
        self.inner = RecordingTarget()

    def deliver(self, envelope: FireEnvelope) -> Awaitable[None]:
        return self.inner.deliver(envelope)


class AsyncCallable:
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    async def __call__(self, envelope: FireEnvelope) -> None:
        self.seen.append(envelope.fire_id)


class CallableDeliver:
    """``deliver`` is an object whose ``__call__`` is async."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.deliver = AsyncCallable(self.seen)


async def _record(seen: list[str], envelope: FireEnvelope) -> None:
    seen.append(envelope.fire_id)


class PartialDeliver:
    """``deliver`` is a functools.partial of an async function."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.deliver = functools.partial(_record, self.seen)


async def test_a_plain_def_deliver_is_refused_at_make_naming_the_target_and_the_fix() -> None:
    target = PlainDeliver()
    async with reventless.local.provider(":memory:", clock=VirtualClock(START)) as provider:
        with pytest.raises(ValidationError) as caught:
            await Scheduler.make(provider, target=target)  # type: ignore[arg-type]
        message = str(caught.value)
        assert caught.value.field == "target"
        assert "PlainDeliver" in message
        assert "async def deliver(self, envelope)" in message
        # Nothing was attached: the name is still free for a proper target, which fires.
        good = RecordingTarget()
        scheduler = await Scheduler.make(provider, target=good)
        await scheduler.operations.create_schedule(Schedule(name="s", rate=Minutes(1), payload="p"))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            clock = provider.clock
            assert isinstance(clock, VirtualClock)
            await clock.advance(timedelta(minutes=2))
            group.cancel_scope.cancel()
    assert target.effects == 0
    assert len(good.deliveries) == 1


async def test_a_deliver_returning_an_awaitable_without_async_def_is_refused() -> None:
    """The documented decision: declared async or refused (wrap it, or mark it on 3.12+)."""
    with pytest.raises(ValidationError, match="markcoroutinefunction"):
        check_target(ReturnsAwaitable())


@pytest.mark.parametrize("make", [CallableDeliver, PartialDeliver])
async def test_awaitable_returning_deliver_forms_are_accepted_and_fire(
    make: Callable[[], CallableDeliver | PartialDeliver],
) -> None:
    target = make()
    clock = VirtualClock(START)
    async with reventless.local.provider(":memory:", clock=clock) as provider:
        scheduler = await Scheduler.make(provider, target=target)  # type: ignore[arg-type]
        await scheduler.operations.create_schedule(Schedule(name="s", rate=Minutes(1), payload="p"))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(minutes=2))
            group.cancel_scope.cancel()
    assert target.seen == ["s@2026-11-27T08:02:00Z"]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="inspect.markcoroutinefunction is 3.12+")
def test_a_deliver_marked_as_a_coroutine_function_is_accepted() -> None:
    inner = RecordingTarget()

    class Marked:
        def __init__(self) -> None:
            self.deliver = inspect.markcoroutinefunction(  # type: ignore[attr-defined]
                lambda envelope: inner.deliver(envelope)
            )

    target = Marked()
    assert check_target(target) is target


def test_is_async_callable_tells_declared_async_from_plain() -> None:
    async def coroutine_function(x: int) -> None:
        return None

    def plain(x: int) -> None:
        return None

    assert is_async_callable(coroutine_function)
    assert is_async_callable(functools.partial(functools.partial(coroutine_function), 1))
    assert is_async_callable(RecordingTarget().deliver)
    assert is_async_callable(AsyncCallable([]))
    assert not is_async_callable(plain)
    assert not is_async_callable(functools.partial(plain, 1))
    assert not is_async_callable(AsyncCallable)  # the class: calling it makes an instance
    assert not is_async_callable(None)
    assert not is_async_callable(print)


async def test_a_target_class_instead_of_an_instance_is_refused() -> None:
    async with reventless.local.provider(":memory:") as provider:
        with pytest.raises(ValidationError, match=r"class RecordingTarget, not an instance"):
            await Scheduler.make(provider, target=RecordingTarget)  # type: ignore[arg-type]


async def test_an_object_without_deliver_is_refused() -> None:
    async with reventless.local.provider(":memory:") as provider:
        with pytest.raises(ValidationError, match=r"target str has no 'deliver' method"):
            await Scheduler.make(provider, target="orders")  # type: ignore[arg-type]


async def test_an_aggregate_as_a_target_points_to_its_command_topic() -> None:
    async with reventless.local.provider(":memory:") as provider:
        pings = await Aggregate.make(provider, SPEC)
        with pytest.raises(ValidationError) as caught:
            await Scheduler.make(provider, target=pings)  # type: ignore[arg-type]
        assert "Aggregate 'pings'" in str(caught.value)
        assert "target=aggregate.command_topic" in str(caught.value)
        with pytest.raises(ValidationError, match=r"AggregateSpec 'pings'.*command_topic"):
            await Scheduler.make(provider, target=SPEC)  # type: ignore[arg-type]
        # What the message says works.
        scheduler = await Scheduler.make(provider, target=pings.command_topic)
        assert scheduler.target is pings.command_topic


async def test_a_plain_def_subscriber_is_refused_and_async_ones_are_accepted() -> None:
    topic = EventTopic("health")
    calls: list[TopicMessage] = []

    def plain(message: TopicMessage) -> None:
        calls.append(message)

    async def handler(message: TopicMessage) -> None:
        calls.append(message)

    with pytest.raises(ValidationError, match=r"handler .*plain is not an async function"):
        topic.subscribe(plain)  # type: ignore[arg-type]
    topic.subscribe(handler)
    topic.subscribe(functools.partial(handler))
    await topic.deliver(
        FireEnvelope(schedule="s", scheduled_time=START.replace(second=0), payload="p")
    )
    assert len(calls) == 2


def test_observed_target_refuses_a_plain_inner_target_or_callback() -> None:
    async def on_fire(scheduler: str, envelope: FireEnvelope, error: BaseException | None) -> None:
        return None

    def plain_on_fire(scheduler: str, envelope: FireEnvelope, error: BaseException | None) -> None:
        return None

    with pytest.raises(ValidationError, match="inner PlainDeliver"):
        ObservedTarget("s", PlainDeliver(), on_fire)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="on_fire"):
        ObservedTarget("s", RecordingTarget(), plain_on_fire)  # type: ignore[arg-type]
    ObservedTarget("s", RecordingTarget(), on_fire)


async def test_a_plugin_whose_target_wrapper_returns_a_plain_target_fails_at_start() -> None:
    plugin = Plugin("shop")
    plugin.event_topic("health")
    plugin.scheduler("health", target="health")
    async with reventless.local.provider(":memory:") as provider:
        with pytest.raises(ValidationError, match="PlainDeliver"):
            async with plugin.start(provider, wrap_target=lambda name, t: PlainDeliver()):  # type: ignore[arg-type,return-value]
                pass


async def test_plugin_scheduler_targets_name_what_to_pass_instead() -> None:
    plugin = Plugin("shop")
    spec = plugin.aggregate(SPEC)
    plugin.event_topic("health")
    async with reventless.local.provider(":memory:") as provider:
        pings = await Aggregate.make(provider, spec)
    cases = [
        (pings, r"Aggregate 'pings'; pass the spec"),
        (pings.command_topic, r"CommandTopic 'pings'; pass its aggregate's spec"),
        (EventTopic("health"), r"EventTopic 'health'; pass its name"),
    ]
    for target, pattern in cases:
        with pytest.raises(ValidationError, match=pattern):
            plugin.scheduler("s", target=target)  # type: ignore[arg-type]


# -- providers used without async with -----------------------------------------------------------

FIX = "async with reventless.local.provider(...) as provider:"


async def test_a_provider_used_without_async_with_says_how(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    context = reventless.local.provider(path)
    for use in (
        lambda: context.scheduled_publisher(),  # type: ignore[attr-defined]
        lambda: context.event_log(),  # type: ignore[attr-defined]
        lambda: context.clock,  # type: ignore[attr-defined]
        lambda: context.run,  # type: ignore[attr-defined]
    ):
        with pytest.raises(UsageError) as caught:
            use()
        assert FIX in str(caught.value)
    with pytest.raises(UsageError, match="async with"):
        await Scheduler.make(context, target=RecordingTarget())  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="async with"):
        await Aggregate.make(context, SPEC)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="cannot be awaited"):
        await context  # type: ignore[misc]
    with pytest.raises(UsageError, match="not 'with'"), context:  # type: ignore[attr-defined]
        pass
    assert not hasattr(context, "no_such_thing")
    assert not path.exists()  # nothing was opened
    # The same object still works the right way, once.
    async with context as provider:
        assert provider.path == str(path)
    with pytest.raises(UsageError, match="entered already"):
        async with context:
            pass


async def test_async_with_passes_errors_through_and_closes_the_store(tmp_path: Path) -> None:
    made: list[Scheduler] = []

    async def use_and_fail() -> None:
        async with reventless.local.provider(tmp_path / "x.db") as provider:
            made.append(await Scheduler.make(provider, target=RecordingTarget()))
            raise KeyError("inside")

    with pytest.raises(KeyError):
        await use_and_fail()
    [scheduler] = made
    with pytest.raises(UsageError, match="closed"):
        await scheduler.operations.list_schedules()


async def test_argument_errors_still_surface_on_entering() -> None:
    context = reventless.local.provider(":memory:", workers=0)
    with pytest.raises(ValidationError, match="workers"):
        async with context:
            pass


# -- use after the provider closed ---------------------------------------------------------------


async def test_a_scheduler_or_aggregate_used_after_its_provider_closed_is_a_usage_error(
    tmp_path: Path,
) -> None:
    async with reventless.local.provider(tmp_path / "x.db") as provider:
        scheduler = await Scheduler.make(provider, target=RecordingTarget())
        pings = await Aggregate.make(provider, SPEC)
        await pings.handle("a", Ping())
    schedule = Schedule(name="s", rate=Minutes(5), payload="p")
    uses: list[Callable[[], Awaitable[Any]]] = [
        lambda: scheduler.operations.create_schedule(schedule),
        lambda: scheduler.operations.get_schedule("s"),
        lambda: scheduler.operations.list_schedules(),
        lambda: scheduler.operations.delete_schedule("s"),
        lambda: pings.handle("a", Ping(), message_id="m"),
        lambda: pings.load("b"),
        lambda: pings.command_topic.send("a", Ping()),
        lambda: provider.run(),
    ]
    for use in uses:
        with pytest.raises(UsageError) as caught:
            await use()
        assert "closed" in str(caught.value)
        assert "async with reventless.local.provider(...) as provider:" in str(caught.value)
    with pytest.raises(UsageError, match="closed"):
        provider.scheduled_publisher()
    with pytest.raises(UsageError, match="closed"):
        provider.event_log()


async def test_a_wrapped_command_topic_still_checks_payloads_at_create(
    anyio_backend: str, tmp_path: Path
) -> None:
    """ObservedTarget forwards check_payload through __getattr__, which a runtime Protocol check
    no longer sees from Python 3.12; the operations read the attribute instead."""

    async def on_fire(scheduler: str, envelope: FireEnvelope, error: BaseException | None) -> None:
        return None

    async with reventless.local.provider(tmp_path / "s.db") as provider:
        pings = await Aggregate.make(provider, SPEC)
        wrapped = ObservedTarget("pings", pings.command_topic, on_fire)
        scheduler = await Scheduler.make(provider, target=wrapped)
        with pytest.raises(ValidationError, match="refused by the target"):
            await scheduler.operations.create_schedule(
                Schedule(name="bad", rate=Minutes(5), payload='{"type": "Pong"}')
            )
