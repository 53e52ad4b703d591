"""Schedules that drive aggregates: end to end, exactly-once effect, concurrency, bad payloads."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

import reventless.local
from reventless import (
    ConflictError,
    Daily,
    HistoryKind,
    Hours,
    Minutes,
    RetryPolicy,
    Schedule,
    Scheduler,
    ValidationError,
    fire_times,
)
from reventless.aggregate import Aggregate, AggregateSpec, CommandContext, command_payload
from reventless.event_topic import EventTopic, TopicMessage
from reventless.target import FireEnvelope
from reventless.testing import VirtualClock

pytestmark = pytest.mark.anyio
START = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)


class Tick(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """A field-less command, named by a string in payloads."""


class Add(msgspec.Struct, tag=True, frozen=True, kw_only=True, rename="camel"):
    amount_due: int


class Ticked(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    number: int
    scheduled_for: datetime | None


class Added(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    amount: int


class Counter(msgspec.Struct, frozen=True, kw_only=True):
    ticks: int = 0
    total: int = 0


def decide(state: Counter, command: Any, context: CommandContext) -> list[Any]:
    if isinstance(command, Tick):
        return [Ticked(number=state.ticks + 1, scheduled_for=context.scheduled_time)]
    if command.amount_due < 0:
        raise ValueError(f"cannot add {command.amount_due}")
    return [Added(amount=command.amount_due)]


def evolve(state: Counter, event: Any) -> Counter:
    if isinstance(event, Ticked):
        return Counter(ticks=event.number, total=state.total)
    return Counter(ticks=state.ticks, total=state.total + event.amount)


def counter_spec(**options: Any) -> AggregateSpec[Counter]:
    return AggregateSpec(
        "counters",
        commands=[Tick, Add],
        events=[Ticked, Added],
        initial=Counter(),
        decide=decide,
        evolve=evolve,
        **options,
    )


@asynccontextmanager
async def world(
    path: str | Path = ":memory:", spec: AggregateSpec[Counter] | None = None, **options: Any
) -> AsyncIterator[tuple[Any, Aggregate[Counter], VirtualClock]]:
    clock = VirtualClock(START)
    async with reventless.local.provider(path, clock=clock, **options) as provider:
        counters = await Aggregate.make(provider, spec or counter_spec(route={"Add": "ledger"}))
        ops = (await Scheduler.make(provider, target=counters.command_topic)).operations
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            yield ops, counters, clock
            group.cancel_scope.cancel()


TICK = '{"aggregateId": "c-1", "command": "Tick"}'


async def test_fires_become_commands_events_and_published_messages() -> None:
    async with world() as (ops, counters, clock):
        published: list[TopicMessage] = []

        async def collect(message: TopicMessage) -> None:
            published.append(message)

        counters.event_topic.subscribe(collect)
        ticking = Schedule(name="tick", rate=Minutes(7), payload=TICK)
        adding = Schedule(
            name="add",
            rate=Daily(9, 0),
            timezone="Europe/Berlin",
            payload='{"type": "Add", "amountDue": 5}',
        )
        await ops.create_schedules([ticking, adding])
        await clock.advance(timedelta(days=3))
        end = clock.now()
        expected_ticks = list(
            itertools.takewhile(lambda t: t <= end, fire_times(ticking, created_at=START))
        )
        expected_adds = list(
            itertools.takewhile(lambda t: t <= end, fire_times(adding, created_at=START))
        )
        state, version = await counters.load("c-1")
        assert state.ticks == len(expected_ticks) == version
        # The handler saw each fire's nominal time, in order.
        history = await counters.history("c-1")
        assert [event.scheduled_for for event in history] == expected_ticks
        ledger, _ = await counters.load("ledger")  # routed by the spec's mapping
        assert ledger.total == 5 * len(expected_adds) == 15
        assert len(published) == len(expected_ticks) + len(expected_adds)
        tick_messages = [m for m in published if m.type == "Ticked"]
        assert [m.message_id for m in tick_messages] == [
            f"tick@{t:%Y-%m-%dT%H:%M:%SZ}" for t in expected_ticks
        ]
        assert {m.source for m in tick_messages} == {"counters/c-1"}


async def test_the_same_fire_delivered_twice_changes_the_aggregate_once() -> None:
    async with world() as (_, counters, _):
        envelope = FireEnvelope(schedule="tick", scheduled_time=START, payload=TICK)
        await counters.command_topic.deliver(envelope)
        await counters.command_topic.deliver(envelope)
        again = await counters.command_topic.send("c-1", Tick(), message_id=envelope.fire_id)
        assert again.duplicate is True
        assert await counters.load("c-1") == (Counter(ticks=1), 1)


async def test_a_repeat_refused_by_the_newer_state_is_still_a_harmless_repeat() -> None:
    """decide would now raise for this command, but the message was handled before."""

    def strict_decide(state: Counter, command: Any, context: CommandContext) -> list[Any]:
        if state.ticks >= 1:
            raise RuntimeError("only one tick allowed")
        return decide(state, command, context)

    spec = AggregateSpec(
        "counters",
        commands=[Tick, Add],
        events=[Ticked, Added],
        initial=Counter(),
        decide=strict_decide,
        evolve=evolve,
    )
    async with world(spec=spec) as (_, counters, _):
        first = await counters.command_topic.send("c-1", Tick(), message_id="m-1")
        repeat = await counters.command_topic.send("c-1", Tick(), message_id="m-1")
        assert (first.duplicate, repeat.duplicate) == (False, True)
        with pytest.raises(RuntimeError, match="only one tick"):
            await counters.command_topic.send("c-1", Tick(), message_id="m-2")


async def test_the_same_message_id_for_two_instances_is_handled_by_each(tmp_path: Path) -> None:
    """Message ids are deduplicated per stream, not per aggregate type."""
    async with world(tmp_path / "store.db") as (_, counters, _):
        to_a = await counters.command_topic.send("user-a", Tick(), message_id="welcome")
        to_b = await counters.command_topic.send("user-b", Tick(), message_id="welcome")
        again_b = await counters.command_topic.send("user-b", Tick(), message_id="welcome")
        assert (to_a.duplicate, to_b.duplicate, again_b.duplicate) == (False, False, True)
        assert await counters.load("user-a") == (Counter(ticks=1), 1)
        assert await counters.load("user-b") == (Counter(ticks=1), 1)
    # Durably so: a fresh process on the same file sees the same.
    async with world(tmp_path / "store.db") as (_, counters, _):
        again_a = await counters.command_topic.send("user-a", Tick(), message_id="welcome")
        to_c = await counters.command_topic.send("user-c", Tick(), message_id="welcome")
        assert (again_a.duplicate, to_c.duplicate) == (True, False)


async def test_a_refused_command_is_not_taken_for_a_repeat_of_another_instances_message() -> None:
    """The refusal path asks whether the message was handled: for this stream only."""

    def refuse_b(state: Counter, command: Any, context: CommandContext) -> list[Any]:
        if context.aggregate_id == "c-b":
            raise RuntimeError("c-b refuses")
        return decide(state, command, context)

    spec = AggregateSpec(
        "counters",
        commands=[Tick, Add],
        events=[Ticked, Added],
        initial=Counter(),
        decide=refuse_b,
        evolve=evolve,
    )
    async with world(spec=spec) as (_, counters, _):
        await counters.command_topic.send("c-a", Tick(), message_id="m-1")
        with pytest.raises(RuntimeError, match="c-b refuses"):
            await counters.command_topic.send("c-b", Tick(), message_id="m-1")


async def test_two_writers_on_one_stream_both_apply_without_lost_events(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    async with reventless.local.provider(tmp_path / "c.db", clock=clock) as provider:
        first = await Aggregate.make(provider, counter_spec())
        second = await Aggregate.make(provider, counter_spec())  # its own cache: a second writer
        await first.load("c-1")
        await second.handle("c-1", Tick(), message_id="from-second")
        result = await first.handle("c-1", Tick(), message_id="from-first")  # conflicts, retries
        assert result.version == 2
        events = await first.history("c-1")
        assert [event.number for event in events] == [1, 2]
        assert await second.load("c-1") == (Counter(ticks=2), 2)


async def test_concurrent_commands_for_one_id_are_handled_one_at_a_time_in_order() -> None:
    async with world() as (_, counters, _):
        arrived: list[int] = []

        async def send(number: int) -> None:
            arrived.append(number)  # trio starts tasks in any order: note when each arrives
            await counters.command_topic.send("c-1", Add(amount_due=number))

        async with anyio.create_task_group() as group:
            for number in range(50):
                group.start_soon(send, number)
                group.start_soon(counters.command_topic.send, f"other-{number}", Tick())
        state, version = await counters.load("c-1")
        assert (state.total, version) == (sum(range(50)), 50)
        amounts = [event.amount for event in await counters.history("c-1")]
        assert amounts == arrived  # first come, first handled


async def test_an_endlessly_conflicting_stream_gives_up_with_a_conflict_error() -> None:
    class AlwaysConflicting:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        async def append(self, *args: Any, **kwargs: Any) -> Any:
            raise ConflictError("someone else wrote first")

    async with world() as (_, counters, _):
        counters._log = AlwaysConflicting(counters._log)  # a fake event log: fault injection
        with pytest.raises(ConflictError, match="kept changing"):
            await counters.handle("c-1", Tick())


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ('{"aggregateId": "c-1", "command": "Explode"}', "one of counters's commands: Add, Tick"),
        ('{"aggregateId": "c-1"}', 'as {"command": ...}'),
        ("not json", "a JSON object"),
        ('["Tick"]', "a JSON object"),
        ('{"type": "Add", "amountDue": "five"}', "Expected `int`, got `str`"),
        ('{"type": "Add", "amountDue": 1, "extra": true}', "unknown field"),
        ('{"command": "Tick"}', "a route for Tick"),
        ('{"aggregateId": "bad id!", "command": "Tick"}', "aggregateId 'bad id!'"),
    ],
)
async def test_bad_payloads_are_refused_at_create_with_what_was_expected(
    payload: str, says: str
) -> None:
    async with world() as (ops, _, _):
        with pytest.raises(ValidationError, match="refused by the target") as caught:
            await ops.create_schedule(Schedule(name="bad", rate=Hours(1), payload=payload))
        assert says in str(caught.value)
        assert (await ops.list_schedules()).schedules == []


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (
            '{"aggregate_id": "c-1", "command": "Tick"}',
            "aggregate_id (did you mean 'aggregateId'?)",
        ),
        ('{"AggregateID": "c-1", "command": "Tick"}', "AggregateID (did you mean 'aggregateId'?)"),
        ('{"aggregateId": "c-1", "command": "Tik"}', "'Tik' is not allowed (did you mean 'Tick'?)"),
        ('{"aggregateId": "c-1", "command": "tick"}', "(did you mean 'Tick'?)"),
        ('{"type": "Add", "amount_due": 1}', "amount_due (did you mean 'amountDue'?)"),
        ('{"type": "Add", "amountDu": 1}', "amountDu (did you mean 'amountDue'?)"),
        ('{"aggregateId": "c-1", "Command": "Tick"}', "did you mean 'command' for 'Command'?"),
        ('{"aggregateId": "c-1", "typ": "Tick"}', "did you mean 'type' for 'typ'?"),
    ],
)
async def test_near_miss_payloads_name_what_was_meant(payload: str, says: str) -> None:
    async with world() as (ops, _, _):
        with pytest.raises(ValidationError, match="refused by the target") as caught:
            await ops.create_schedule(Schedule(name="bad", rate=Hours(1), payload=payload))
        assert says in str(caught.value)
        assert (await ops.list_schedules()).schedules == []


def test_a_far_miss_gets_no_guess() -> None:
    spec = counter_spec()
    for payload in (
        '{"aggregateId": "c-1", "command": "Explode"}',
        '{"type": "Add", "amountDue": 1, "zzz": 1}',
        '{"aggregateId": "c-1", "verb": "Tick"}',
    ):
        with pytest.raises(ValidationError) as caught:
            spec.decode_payload(payload)
        assert "did you mean" not in str(caught.value)


async def test_unknown_aggregate_ids_are_refused_when_the_spec_lists_its_ids() -> None:
    spec = counter_spec(accepts_id={"c-1", "c-2"})
    async with world(spec=spec) as (ops, counters, _):
        with pytest.raises(ValidationError, match="an id of an existing counters: c-1, c-2"):
            await ops.create_schedule(
                Schedule(
                    name="x", rate=Hours(1), payload='{"aggregateId": "c-9", "command": "Tick"}'
                )
            )
        with pytest.raises(ValidationError):
            await counters.handle("c-9", Tick())


async def test_a_payload_that_no_longer_decodes_is_dead_lettered_at_once(tmp_path: Path) -> None:
    path = tmp_path / "changed.db"
    async with world(path) as (ops, _, clock):
        await ops.create_schedule(
            Schedule(name="add", rate=Hours(1), payload='{"type": "Add", "amountDue": 2}')
        )
    # The aggregate changes: Add is gone. The stored schedule's next fire must not vanish.
    narrower = AggregateSpec(
        "counters",
        commands=[Tick],
        events=[Ticked, Added],
        initial=Counter(),
        decide=decide,
        evolve=evolve,
    )
    async with world(path, spec=narrower) as (ops, _, clock):
        await clock.advance(timedelta(hours=1, minutes=1))
        [letter] = await ops.dead_letters()
        assert letter.attempts == 1
        assert "no longer decodes" in letter.reason and "Add" in letter.reason
        assert "not retried" in letter.reason
        assert letter.payload == '{"type": "Add", "amountDue": 2}'


async def test_a_handler_that_raises_is_retried_then_dead_lettered_with_the_error() -> None:
    async with world(retry_policy=RetryPolicy(max_attempts=2)) as (ops, counters, clock):
        await ops.create_schedule(
            Schedule(name="minus", rate=Hours(1), payload='{"type": "Add", "amountDue": -3}')
        )
        await clock.advance(timedelta(hours=1, minutes=1))
        [letter] = await ops.dead_letters()
        assert letter.attempts == 3
        assert "ValueError: cannot add -3" in letter.reason
        kinds = [e.kind for e in await ops.history("minus")]
        assert kinds.count(HistoryKind.FAILED) == 3
        assert (await counters.load("ledger"))[1] == 0  # nothing half-applied


async def test_an_event_topic_is_a_schedule_target() -> None:
    clock = VirtualClock(START)
    async with reventless.local.provider(":memory:", clock=clock) as provider:
        health = EventTopic("health")
        beats: list[TopicMessage] = []
        failing = {"on": True}

        async def monitor(message: TopicMessage) -> None:
            beats.append(message)

        async def flaky(message: TopicMessage) -> None:
            if failing["on"]:
                failing["on"] = False
                raise ConnectionError("monitoring backend down")

        health.subscribe(monitor)
        health.subscribe(flaky)
        ops = (await Scheduler.make(provider, target=health)).operations
        await ops.create_schedule(
            Schedule(name="health-check", rate=Minutes(5), payload='{"check": "ping"}')
        )
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(minutes=11))
            group.cancel_scope.cancel()
        # The first fire failed in one subscriber, was retried (the other saw it twice: at-least
        # once), and every fire reached the monitor with its fire id and payload.
        ids = [b.message_id for b in beats]
        assert sorted(set(ids)) == [
            "health-check@2026-11-27T08:06:00Z",
            "health-check@2026-11-27T08:11:00Z",
        ]
        assert all(b.type == "ScheduledFire" and b.data == '{"check": "ping"}' for b in beats)
        history = await ops.history("health-check")
        assert [e.kind for e in history].count(HistoryKind.FAILED) == 1


def test_command_payload_builds_what_decode_reads() -> None:
    spec = counter_spec()
    payload = command_payload("c-7", Add(amount_due=4))
    assert payload == '{"aggregateId":"c-7","command":"Add","amountDue":4}'
    assert spec.decode_payload(payload) == ("c-7", Add(amount_due=4))


def test_specs_refuse_untagged_types_and_bad_names() -> None:
    class Plain(msgspec.Struct):
        pass

    with pytest.raises(ValidationError, match="declared with a tag"):
        AggregateSpec(
            "x", commands=[Plain], events=[Ticked], initial=0, decide=decide, evolve=evolve
        )
    with pytest.raises(ValidationError, match="aggregate name"):
        AggregateSpec(
            "no spaces", commands=[Tick], events=[Ticked], initial=0, decide=decide, evolve=evolve
        )


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_a_crash_between_delivery_and_acknowledgement_changes_the_aggregate_once(
    tmp_path: Path,
) -> None:
    import json
    import signal
    import subprocess
    import sys

    script = Path(__file__).with_name("aggregate_process.py")
    db = str(tmp_path / "crash.db")
    crashed = subprocess.run(
        [sys.executable, str(script), db, "--crash"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    again = subprocess.run(
        [sys.executable, str(script), db], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(again.stdout)
    # Delivered twice (once before the crash, once after), handled once, recorded once.
    assert (result["ticks"], result["version"]) == (1, 1)
    assert result["history"] == ["created", "fired", "completed"]


async def test_an_event_that_does_not_match_its_declared_types_is_refused_before_the_append(
    anyio_backend: str,
) -> None:
    """msgspec builds Structs without checking field types; an event with None in an int field
    would be appended and then never read back (load and reactions would fail forever)."""

    def bad_decide(state: Counter, command: Any, context: CommandContext) -> list[Any]:
        return [Added(amount=None)]  # type: ignore[arg-type]

    spec = AggregateSpec(
        "counters",
        commands=[Tick, Add],
        events=[Ticked, Added],
        initial=Counter(),
        decide=bad_decide,
        evolve=evolve,
    )
    async with world(spec=spec) as (_, counters, _):
        with pytest.raises(ValidationError, match="does not match its declared field types"):
            await counters.command_topic.send("c-1", Add(amount_due=1), message_id="m-1")
        assert await counters.load("c-1") == (Counter(), 0)
