"""The EventTopic conformance suite: an aggregate's event topic on every provider.

Use it from a pytest module with a ``provider_under_test`` fixture
(``reventless.testing.ports``)::

    from reventless.testing.event_topic_conformance import EventTopicConformance

    class TestEventTopic(EventTopicConformance):
        pass

Each test takes the event topic of the ``NOTES`` aggregate on a fresh provider (the provider's
own, ``ProvidesEventTopics``, else one in process) and checks the contract of
``reventless.event_topic.EventTopic``: every subscriber gets each published message once, in
order (per aggregate instance where a queue carries them), a failing subscriber does not stop the
others and the failure names it, a cancelled subscription gets nothing more, and every field of
an event's and of a fire's message arrives as it was published. Where subscribers run outside
the process (``topics_in_process`` false), ``deliver_published`` hands them what was published.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from reventless.aggregate import Aggregate
from reventless.clock import VirtualClock
from reventless.errors import ValidationError
from reventless.event_topic import (
    EventMessage,
    EventTopic,
    FireMessage,
    PublishError,
    TopicMessage,
)
from reventless.target import FireEnvelope
from reventless.testing.ports import NOTES, Note, Noted, ProviderUnderTest, skip_unless_offered

__all__ = ("EventTopicConformance",)

START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)


class _Subscriber:
    """Records what it receives; raises for the messages of the sources in ``fail_on``."""

    def __init__(self, fail_on: tuple[str, ...] = ()) -> None:
        self.received: list[TopicMessage] = []
        self.fail_on = fail_on

    async def __call__(self, message: TopicMessage) -> None:
        if message.source in self.fail_on:
            raise RuntimeError(f"cannot take {message.source}")
        self.received.append(message)

    def texts(self) -> list[str]:
        """The texts of the notes it received, each an aggregate's event."""
        assert all(isinstance(m, EventMessage) for m in self.received), self.received
        return [m.event.text for m in self.received if isinstance(m, EventMessage)]


@asynccontextmanager
async def _topic(
    provider_under_test: ProviderUnderTest,
) -> AsyncIterator[tuple[EventTopic, Aggregate[int], Any]]:
    """The NOTES aggregate on a fresh provider, its event topic and the provider."""
    async with provider_under_test.open(VirtualClock(START)) as provider:
        aggregate = await Aggregate.make(provider, NOTES)
        yield aggregate.event_topic, aggregate, provider


class EventTopicConformance:
    """The contract of ``reventless.event_topic.EventTopic``, as tests."""

    @pytest.fixture(autouse=True)
    def _offered(self, provider_under_test: ProviderUnderTest) -> None:
        skip_unless_offered(provider_under_test, "event_topic")

    @pytest.mark.anyio
    async def test_every_subscriber_gets_each_event_once_in_order(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        async with _topic(provider_under_test) as (topic, aggregate, _):
            first, second = _Subscriber(), _Subscriber()
            topic.subscribe(first, name="first")
            topic.subscribe(second, name="second")
            sent = [("n1", "a"), ("n2", "b"), ("n1", "c"), ("n2", "d"), ("n1", "e")]
            for aggregate_id, text in sent:
                await aggregate.handle(aggregate_id, Note(text=text), message_id=f"m-{text}")
            await provider_under_test.deliver_published(topic, [NOTES])
            assert topic.published == len(sent)
            for subscriber in (first, second):
                got = list(
                    zip([m.source for m in subscriber.received], subscriber.texts(), strict=True)
                )
                expected = [(f"notes/{aggregate_id}", text) for aggregate_id, text in sent]
                if provider_under_test.capabilities.topics_in_process:
                    assert got == expected  # in publish order
                else:  # a FIFO queue keeps the order of each aggregate instance
                    assert sorted(got) == sorted(expected)
                    for source in ("notes/n1", "notes/n2"):
                        mine = [text for s, text in got if s == source]
                        assert mine == [text for s, text in expected if s == source]

    @pytest.mark.anyio
    async def test_an_event_message_carries_every_field(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        async with _topic(provider_under_test) as (topic, aggregate, provider):
            subscriber = _Subscriber()
            topic.subscribe(subscriber)
            await aggregate.handle("n1", Note(text="first"), message_id="web-1")
            await aggregate.handle("n1", Note(text="second"), message_id="web-2")
            await provider_under_test.deliver_published(topic, [NOTES])
            stored = await provider.event_log().load(NOTES.name, "n1")
            assert subscriber.received == [
                EventMessage(
                    topic=topic.name,
                    type="Noted",
                    source="notes/n1",
                    message_id=f"web-{version}",
                    event=Noted(text=text),
                    position=stored[version - 1].position,
                    version=version,
                    event_id=f"notes/n1/{version}",
                )
                for version, text in ((1, "first"), (2, "second"))
            ]

    @pytest.mark.anyio
    async def test_a_fire_message_carries_every_field(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        async with _topic(provider_under_test) as (topic, _, _provider):
            subscriber = _Subscriber()
            topic.subscribe(subscriber)
            scheduled = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
            envelope = FireEnvelope(
                schedule="health-check", scheduled_time=scheduled, payload='{"ping": "é"}'
            )
            await topic.deliver(envelope)
            await provider_under_test.deliver_published(topic, [NOTES])
            assert subscriber.received == [
                FireMessage(
                    topic=topic.name,
                    source="health-check",
                    message_id="health-check@2026-03-20T09:00:00Z",
                    scheduled_time=scheduled,
                    data='{"ping": "é"}',
                )
            ]
            assert subscriber.received[0].type == "ScheduledFire"
            assert topic.published == 1

    @pytest.mark.anyio
    async def test_a_failing_subscriber_does_not_stop_the_others_and_is_named(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        async with _topic(provider_under_test) as (topic, _, _provider):
            before, after = _Subscriber(), _Subscriber()
            topic.subscribe(before, name="before")
            topic.subscribe(_Subscriber(fail_on=("bad",)), name="failing")
            topic.subscribe(after, name="after")
            for schedule in ("good", "bad", "later"):
                envelope = FireEnvelope(schedule=schedule, scheduled_time=START, payload="p")
                if schedule != "bad":
                    await _publish_fire(provider_under_test, topic, envelope)
                    continue
                with pytest.raises(PublishError, match="failing: RuntimeError: cannot take bad"):
                    await _publish_fire(provider_under_test, topic, envelope)
            for subscriber in (before, after):
                assert [m.source for m in subscriber.received] == ["good", "bad", "later"]
            [(name, message, reason)] = topic.failures
            assert (name, message.source) == ("failing", "bad")
            assert reason == "RuntimeError: cannot take bad"

    @pytest.mark.anyio
    async def test_a_cancelled_subscription_gets_nothing_more(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        async with _topic(provider_under_test) as (topic, aggregate, _):
            kept, cancelled = _Subscriber(), _Subscriber()
            topic.subscribe(kept)
            subscription = topic.subscribe(cancelled)
            await aggregate.handle("n1", Note(text="both"))
            await provider_under_test.deliver_published(topic, [NOTES])
            subscription.cancel()
            await aggregate.handle("n1", Note(text="one"))
            await provider_under_test.deliver_published(topic, [NOTES])
            assert kept.texts() == ["both", "one"]
            assert cancelled.texts() == ["both"]

    @pytest.mark.anyio
    async def test_a_plain_function_is_refused_as_a_subscriber(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        def plain(message: TopicMessage) -> None:
            pass

        async with _topic(provider_under_test) as (topic, aggregate, _):
            with pytest.raises(ValidationError, match="not an async function"):
                topic.subscribe(plain)  # type: ignore[arg-type]
            subscriber = _Subscriber()
            topic.subscribe(subscriber)
            await aggregate.handle("n1", Note(text="only the async one"))
            await provider_under_test.deliver_published(topic, [NOTES])
            assert len(subscriber.received) == 1


async def _publish_fire(
    provider_under_test: ProviderUnderTest, topic: EventTopic, envelope: FireEnvelope
) -> None:
    """Publish a fire and hand it to the subscribers (where that is not the publish itself)."""
    await topic.deliver(envelope)
    await provider_under_test.deliver_published(topic)
