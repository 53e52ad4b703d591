"""The CommandTopic conformance suite: an aggregate's command topic on every provider.

Use it from a pytest module with a ``provider_under_test`` fixture
(``reventless.testing.ports``)::

    from reventless.testing.command_topic_conformance import CommandTopicConformance

    class TestCommandTopic(CommandTopicConformance):
        pass

Each test makes the ``NOTES`` aggregate on a fresh provider (its event log and, when the provider
has them, its event topic) and checks the contract of ``reventless.aggregate.CommandTopic``:
commands for one aggregate id are handled in arrival order, different ids concurrently, a
repeated message id changes nothing, a fire envelope becomes a command whose message id is the
fire id, and a payload that no longer decodes is refused with DeliveryRefusedError.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.abc
import pytest

from reventless.aggregate import Aggregate, CommandTopic, command_payload
from reventless.aggregate_adapter import AppendResult, EventLog, NewEvent, StoredEvent
from reventless.clock import VirtualClock
from reventless.errors import DeliveryRefusedError, ValidationError
from reventless.event_topic import topic_for
from reventless.target import FireEnvelope
from reventless.testing.ports import (
    NOTES,
    Note,
    Noted,
    ProviderUnderTest,
    Refuse,
    skip_unless_offered,
)

__all__ = ("CommandTopicConformance",)

START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)
_LIMIT = 30  # seconds: a generous bound on one test's waits (a hang fails instead of blocking)


class _HeldLog:
    """The provider's event log, except that appends to the ids in ``held`` wait until
    ``release`` is set: a command on such an id is held inside the topic."""

    def __init__(self, log: EventLog, held: set[str]) -> None:
        self._log = log
        self.held = held
        self.release = anyio.Event()
        self.waiting = anyio.Event()

    async def append(
        self,
        aggregate: str,
        aggregate_id: str,
        *,
        expected_version: int,
        events: Sequence[NewEvent],
        message_id: str | None,
        recorded_at: datetime,
    ) -> AppendResult:
        if aggregate_id in self.held:
            self.waiting.set()
            await self.release.wait()
        return await self._log.append(
            aggregate,
            aggregate_id,
            expected_version=expected_version,
            events=events,
            message_id=message_id,
            recorded_at=recorded_at,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


@asynccontextmanager
async def _notes(
    provider_under_test: ProviderUnderTest, held: set[str] | None = None
) -> AsyncIterator[tuple[CommandTopic, Any, _HeldLog]]:
    """The NOTES aggregate's command topic on a fresh provider, the provider, and the log the
    aggregate appends through (appends to ``held`` ids wait for its ``release``)."""
    async with provider_under_test.open(VirtualClock(START)) as provider:
        log = _HeldLog(provider.event_log(), held or set())
        aggregate = Aggregate(NOTES, log, provider.clock, topic_for(provider, NOTES.name))
        yield aggregate.command_topic, provider, log


async def _stored(provider: Any, aggregate_id: str) -> list[StoredEvent]:
    events: list[StoredEvent] = await provider.event_log().load(NOTES.name, aggregate_id)
    return events


class CommandTopicConformance:
    """The contract of ``reventless.aggregate.CommandTopic``, as tests."""

    @pytest.fixture(autouse=True)
    def _offered(self, provider_under_test: ProviderUnderTest) -> None:
        skip_unless_offered(provider_under_test, "command_topic")

    @pytest.mark.anyio
    async def test_commands_for_one_id_are_handled_in_arrival_order(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        async with _notes(provider_under_test, held={"n1"}) as (topic, provider, log):
            results: dict[int, Any] = {}

            async def send(index: int, *, task_status: anyio.abc.TaskStatus[None]) -> None:
                task_status.started()  # the send below queues before the next one starts
                results[index] = await topic.send("n1", Note(text=str(index)))

            with anyio.fail_after(_LIMIT):
                async with anyio.create_task_group() as group:
                    for index in range(6):
                        await group.start(send, index)
                    await log.waiting.wait()
                    log.release.set()
            assert [results[index].version for index in range(6)] == [1, 2, 3, 4, 5, 6]
            stored = await _stored(provider, "n1")
            assert [NOTES.decode_event(event).text for event in stored] == [
                str(index) for index in range(6)
            ]

    @pytest.mark.anyio
    async def test_different_ids_are_handled_concurrently(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        async with _notes(provider_under_test, held={"held"}) as (topic, provider, log):
            with anyio.fail_after(_LIMIT):
                async with anyio.create_task_group() as group:
                    group.start_soon(topic.send, "held", Note(text="waits"))
                    await log.waiting.wait()
                    # "held" is inside the topic, waiting: another id does not queue behind it.
                    free = await topic.send("free", Note(text="goes"))
                    assert free.version == 1 and await _stored(provider, "held") == []
                    log.release.set()
            assert [e.version for e in await _stored(provider, "held")] == [1]

    @pytest.mark.anyio
    async def test_a_repeated_message_id_changes_nothing(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        async with _notes(provider_under_test) as (topic, provider, _):
            first = await topic.send("n1", Note(text="once"), message_id="web-1")
            assert (first.duplicate, first.version, first.events) == (
                False,
                1,
                (Noted(text="once"),),
            )
            again = await topic.send("n1", Note(text="twice"), message_id="web-1")
            assert (again.duplicate, again.version, again.events) == (True, 1, ())
            other = await topic.send("n2", Note(text="elsewhere"), message_id="web-1")
            assert other.duplicate is False  # message ids are per aggregate id
            stored = await _stored(provider, "n1")
            assert [(e.version, e.message_id) for e in stored] == [(1, "web-1")]
            assert NOTES.decode_event(stored[0]) == Noted(text="once")

    @pytest.mark.anyio
    async def test_a_refused_command_writes_nothing_and_the_id_goes_on(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        async with _notes(provider_under_test) as (topic, provider, _):
            with pytest.raises(ValueError, match="refused by decide"):
                await topic.send("n1", Refuse(), message_id="bad")
            assert await _stored(provider, "n1") == []
            after = await topic.send("n1", Note(text="next"), message_id="bad")
            assert (after.duplicate, after.version) == (False, 1)  # "bad" was not recorded

    @pytest.mark.anyio
    async def test_a_fire_becomes_a_command_with_the_fire_id_as_message_id(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        async with _notes(provider_under_test) as (topic, provider, _):
            scheduled = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
            envelope = FireEnvelope(
                schedule="remind",
                scheduled_time=scheduled,
                payload=command_payload("n1", Note(text="fired")),
            )
            topic.check_payload(envelope.payload)
            await topic.deliver(envelope)
            await topic.deliver(envelope)  # delivered twice (at least once): handled once
            [stored] = await _stored(provider, "n1")
            assert stored.message_id == envelope.fire_id == "remind@2026-03-20T09:00:00Z"
            # The command saw the fire's nominal time in its context.
            assert NOTES.decode_event(stored) == Noted(text="fired", at=scheduled.isoformat())

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        "payload",
        [
            '{"aggregateId": "n1", "command": "Forgotten"}',
            '{"aggregateId": "n1", "command": "Note", "text": 7}',
            "not json",
        ],
        ids=["unknown-command", "bad-field", "not-json"],
    )
    async def test_a_payload_that_no_longer_decodes_is_refused_and_writes_nothing(
        self, provider_under_test: ProviderUnderTest, payload: str
    ) -> None:
        async with _notes(provider_under_test) as (topic, provider, _):
            envelope = FireEnvelope(schedule="old", scheduled_time=START, payload=payload)
            with pytest.raises(ValidationError):
                topic.check_payload(payload)
            with pytest.raises(DeliveryRefusedError, match=r"old@2026-03-20T06:00:30Z"):
                await topic.deliver(envelope)
            assert await _stored(provider, "n1") == []
