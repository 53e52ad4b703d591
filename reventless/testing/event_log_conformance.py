"""The EventLog conformance suite: one set of tests for every event log adapter.

Use it from a pytest module of your own (it needs pytest and anyio's pytest plugin) with a
``provider_under_test`` fixture returning a ``reventless.testing.ports.ProviderUnderTest``::

    from reventless.testing.event_log_conformance import EventLogConformance

    class TestEventLog(EventLogConformance):
        pass

Every test opens a fresh provider and takes its ``event_log()``; the capabilities say what the
log can show (``global_order``: ``read_all`` is offered, else it raises UsageError;
``max_events_per_append``, ``max_event_bytes``; ``serialises_concurrent_writers``). The tests
check the contract of ``reventless.aggregate_adapter.EventLog``: versions, optimistic
concurrency, message ids per stream (a repeat wins over a conflict), empty appends, loading from
a version, the events of a handled message, limits refused with nothing written, and
``read_all`` (of every aggregate or some), ``head_position`` and ``count``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from reventless.aggregate_adapter import EventLog, NewEvent
from reventless.clock import VirtualClock
from reventless.errors import ConflictError, UsageError, ValidationError
from reventless.testing.ports import ProviderUnderTest, skip_unless_offered

__all__ = ("EventLogConformance", "EventLogFactory")

EventLogFactory = Callable[[], AbstractAsyncContextManager[EventLog]]
AT = datetime(2026, 3, 20, 6, 0, 30, 123456, tzinfo=UTC)


@asynccontextmanager
async def _event_log(provider_under_test: ProviderUnderTest) -> AsyncIterator[EventLog]:
    async with provider_under_test.open(VirtualClock(AT)) as provider:
        yield provider.event_log()


def events(*bodies: str) -> list[NewEvent]:
    return [NewEvent(type=f"E{index}", data=body.encode()) for index, body in enumerate(bodies)]


class EventLogConformance:
    """The contract of ``reventless.aggregate_adapter.EventLog``, as tests."""

    @pytest.fixture(autouse=True)
    def _offered(self, provider_under_test: ProviderUnderTest) -> None:
        skip_unless_offered(provider_under_test, "event_log")

    global_order: bool = True
    max_events_per_append: int | None = None
    max_event_bytes: int | None = None
    # False where the backend under test does not serialise concurrent conditional writes
    # itself (moto's DynamoDB, which checks a transaction's conditions and writes in separate
    # steps); the adapter's guarantee then rests on the real service's.
    serialises_concurrent_writers: bool = True

    @pytest.fixture(autouse=True)
    def _capabilities(self, provider_under_test: ProviderUnderTest) -> None:
        capabilities = provider_under_test.capabilities
        self.global_order = capabilities.global_order
        self.max_events_per_append = capabilities.max_events_per_append
        self.max_event_bytes = capabilities.max_event_bytes
        self.serialises_concurrent_writers = capabilities.serialises_concurrent_writers

    @pytest.fixture
    def event_log_factory(self, provider_under_test: ProviderUnderTest) -> EventLogFactory:
        return lambda: _event_log(provider_under_test)

    # -- appending and loading -------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_an_append_gets_the_next_versions_and_loads_back_exactly(
        self, event_log_factory: EventLogFactory
    ) -> None:
        async with event_log_factory() as log:
            first = await log.append(
                "orders",
                "o-1",
                expected_version=0,
                events=events('{"a":1}', "{}"),
                message_id="m1",
                recorded_at=AT,
            )
            assert (first.duplicate, first.version, len(first.positions)) == (False, 2, 2)
            second = await log.append(
                "orders",
                "o-1",
                expected_version=2,
                events=events('{"b":2}'),
                message_id=None,
                recorded_at=AT + timedelta(seconds=1),
            )
            assert (second.duplicate, second.version) == (False, 3)
            loaded = await log.load("orders", "o-1")
            assert [(e.version, e.type, e.data, e.message_id) for e in loaded] == [
                (1, "E0", b'{"a":1}', "m1"),
                (2, "E1", b"{}", "m1"),
                (3, "E0", b'{"b":2}', None),
            ]
            assert all(e.aggregate == "orders" and e.aggregate_id == "o-1" for e in loaded)
            assert [e.recorded_at for e in loaded] == [AT, AT, AT + timedelta(seconds=1)]
            assert [e.position for e in loaded[:2]] == list(first.positions)
            assert loaded[2].position == second.positions[0]

    @pytest.mark.anyio
    async def test_load_after_a_version_and_of_an_unknown_stream(
        self, event_log_factory: EventLogFactory
    ) -> None:
        async with event_log_factory() as log:
            await log.append(
                "orders",
                "o-1",
                expected_version=0,
                events=events("1", "2", "3"),
                message_id=None,
                recorded_at=AT,
            )
            assert [e.version for e in await log.load("orders", "o-1", after_version=1)] == [2, 3]
            assert await log.load("orders", "o-1", after_version=3) == []
            assert await log.load("orders", "o-2") == []
            assert await log.load("other", "o-1") == []

    @pytest.mark.anyio
    async def test_streams_are_apart_and_versions_stay_contiguous(
        self, event_log_factory: EventLogFactory
    ) -> None:
        async with event_log_factory() as log:
            for round_ in range(4):
                for stream in ("a", "b"):
                    await log.append(
                        "orders",
                        stream,
                        expected_version=round_,
                        events=events(stream),
                        message_id=f"{stream}-{round_}",
                        recorded_at=AT,
                    )
            for stream in ("a", "b"):
                loaded = await log.load("orders", stream)
                assert [e.version for e in loaded] == [1, 2, 3, 4]
                assert {e.data for e in loaded} == {stream.encode()}

    # -- optimistic concurrency -----------------------------------------------------------------

    @pytest.mark.anyio
    @pytest.mark.parametrize("expected", [0, 1, 3, 9])
    async def test_an_expected_version_behind_or_ahead_conflicts_and_writes_nothing(
        self, event_log_factory: EventLogFactory, expected: int
    ) -> None:
        async with event_log_factory() as log:
            await log.append(
                "orders",
                "o-1",
                expected_version=0,
                events=events("1", "2"),
                message_id="first",
                recorded_at=AT,
            )
            with pytest.raises(ConflictError):
                await log.append(
                    "orders",
                    "o-1",
                    expected_version=expected,
                    events=events("x"),
                    message_id="late",
                    recorded_at=AT,
                )
            assert [e.version for e in await log.load("orders", "o-1")] == [1, 2]
            assert not await log.was_handled("orders", "o-1", "late")

    @pytest.mark.anyio
    async def test_concurrent_appends_at_one_version_make_exactly_one_winner(
        self, event_log_factory: EventLogFactory
    ) -> None:
        if not self.serialises_concurrent_writers:
            pytest.skip("this backend does not serialise concurrent conditional writes")
        outcomes: list[object] = []
        async with event_log_factory() as log:

            async def write(index: int) -> None:
                try:
                    outcomes.append(
                        await log.append(
                            "orders",
                            "o-1",
                            expected_version=0,
                            events=events(str(index)),
                            message_id=f"m{index}",
                            recorded_at=AT,
                        )
                    )
                except ConflictError as exc:
                    outcomes.append(exc)

            async with anyio.create_task_group() as group:
                for index in range(5):
                    group.start_soon(write, index)
            winners = [o for o in outcomes if not isinstance(o, ConflictError)]
            assert len(winners) == 1 and len(outcomes) == 5, outcomes
            assert len(await log.load("orders", "o-1")) == 1

    # -- message ids ------------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_a_repeated_message_id_is_a_duplicate_even_at_a_stale_version(
        self, event_log_factory: EventLogFactory
    ) -> None:
        """The duplicate check comes before the version check."""
        async with event_log_factory() as log:
            await log.append(
                "orders",
                "o-1",
                expected_version=0,
                events=events("1"),
                message_id="m1",
                recorded_at=AT,
            )
            await log.append(
                "orders",
                "o-1",
                expected_version=1,
                events=events("2", "3"),
                message_id="m2",
                recorded_at=AT,
            )
            for expected in (0, 1, 3, 7):
                again = await log.append(
                    "orders",
                    "o-1",
                    expected_version=expected,
                    events=events("x"),
                    message_id="m1",
                    recorded_at=AT,
                )
                assert (again.duplicate, again.version, again.positions) == (True, 3, ())
            assert [e.data for e in await log.load("orders", "o-1")] == [b"1", b"2", b"3"]

    @pytest.mark.anyio
    async def test_message_ids_are_per_stream(self, event_log_factory: EventLogFactory) -> None:
        async with event_log_factory() as log:
            await log.append(
                "orders",
                "o-1",
                expected_version=0,
                events=events("1"),
                message_id="fire@2026",
                recorded_at=AT,
            )
            other = await log.append(
                "orders",
                "o-2",
                expected_version=0,
                events=events("1"),
                message_id="fire@2026",
                recorded_at=AT,
            )
            other_type = await log.append(
                "users",
                "o-1",
                expected_version=0,
                events=events("1"),
                message_id="fire@2026",
                recorded_at=AT,
            )
            assert not other.duplicate and not other_type.duplicate
            assert await log.was_handled("orders", "o-1", "fire@2026")
            assert await log.was_handled("orders", "o-2", "fire@2026")
            assert not await log.was_handled("orders", "o-3", "fire@2026")
            assert not await log.was_handled("orders", "o-1", "never")

    @pytest.mark.anyio
    async def test_an_empty_append_records_its_message_id_and_checks_the_version(
        self, event_log_factory: EventLogFactory
    ) -> None:
        async with event_log_factory() as log:
            quiet = await log.append(
                "orders",
                "o-1",
                expected_version=0,
                events=[],
                message_id="quiet",
                recorded_at=AT,
            )
            assert (quiet.duplicate, quiet.version, quiet.positions) == (False, 0, ())
            assert await log.was_handled("orders", "o-1", "quiet")
            assert await log.handled_events("orders", "o-1", "quiet") == []
            again = await log.append(
                "orders",
                "o-1",
                expected_version=0,
                events=events("1"),
                message_id="quiet",
                recorded_at=AT,
            )
            assert again.duplicate and await log.load("orders", "o-1") == []
            bare = await log.append(
                "orders", "o-1", expected_version=0, events=[], message_id=None, recorded_at=AT
            )
            assert (bare.duplicate, bare.version) == (False, 0)
            with pytest.raises(ConflictError):
                await log.append(
                    "orders",
                    "o-1",
                    expected_version=2,
                    events=[],
                    message_id=None,
                    recorded_at=AT,
                )
            # An empty append does not move the stream: the next event is still version 1.
            await log.append(
                "orders",
                "o-1",
                expected_version=0,
                events=events("1"),
                message_id="next",
                recorded_at=AT,
            )
            assert [e.version for e in await log.load("orders", "o-1")] == [1]

    @pytest.mark.anyio
    async def test_handled_events_are_the_events_of_that_message_only(
        self, event_log_factory: EventLogFactory
    ) -> None:
        async with event_log_factory() as log:
            await log.append(
                "orders",
                "o-1",
                expected_version=0,
                events=events("1"),
                message_id="m1",
                recorded_at=AT,
            )
            await log.append(
                "orders",
                "o-1",
                expected_version=1,
                events=events("2", "3"),
                message_id="m2",
                recorded_at=AT,
            )
            await log.append(
                "orders",
                "o-1",
                expected_version=3,
                events=events("4"),
                message_id=None,
                recorded_at=AT,
            )
            handled = await log.handled_events("orders", "o-1", "m2")
            assert handled is not None
            assert [(e.version, e.data, e.message_id) for e in handled] == [
                (2, b"2", "m2"),
                (3, b"3", "m2"),
            ]
            assert await log.handled_events("orders", "o-1", "m3") is None
            assert await log.handled_events("orders", "o-2", "m2") is None

    # -- limits and typed errors ------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_more_events_than_one_append_takes_are_refused_with_nothing_written(
        self, event_log_factory: EventLogFactory
    ) -> None:
        limit = self.max_events_per_append
        if limit is None:
            pytest.skip("this log takes any number of events in one append")
        async with event_log_factory() as log:
            full = await log.append(
                "orders",
                "o-1",
                expected_version=0,
                events=events(*["e"] * limit),
                message_id="full",
                recorded_at=AT,
            )
            assert full.version == limit
            with pytest.raises(ValidationError) as caught:
                await log.append(
                    "orders",
                    "o-2",
                    expected_version=0,
                    events=events(*["e"] * (limit + 1)),
                    message_id="over",
                    recorded_at=AT,
                )
            assert str(limit) in str(caught.value)
            assert await log.load("orders", "o-2") == []
            assert not await log.was_handled("orders", "o-2", "over")

    @pytest.mark.anyio
    async def test_an_event_over_the_size_limit_is_refused_with_nothing_written(
        self, event_log_factory: EventLogFactory
    ) -> None:
        limit = self.max_event_bytes
        if limit is None:
            pytest.skip("this log takes events of any size")
        async with event_log_factory() as log:
            big = [NewEvent(type="Big", data=b"x" * (limit + 1))]
            with pytest.raises(ValidationError) as caught:
                await log.append(
                    "orders",
                    "o-1",
                    expected_version=0,
                    events=[*events("ok"), *big],
                    message_id="big",
                    recorded_at=AT,
                )
            assert "Big" in str(caught.value)
            assert await log.load("orders", "o-1") == []
            assert not await log.was_handled("orders", "o-1", "big")

    # -- reading every stream ---------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_read_all_returns_every_stream_in_position_order(
        self, event_log_factory: EventLogFactory
    ) -> None:
        async with event_log_factory() as log:
            if not self.global_order:
                with pytest.raises(UsageError):
                    await log.read_all()
                return
            await log.append(
                "orders",
                "a",
                expected_version=0,
                events=events("a1", "a2"),
                message_id=None,
                recorded_at=AT,
            )
            await log.append(
                "users",
                "b",
                expected_version=0,
                events=events("b1"),
                message_id=None,
                recorded_at=AT,
            )
            everything = await log.read_all()
            assert [e.data for e in everything] == [b"a1", b"a2", b"b1"]
            positions = [e.position for e in everything]
            assert positions == sorted(positions) and len(set(positions)) == 3
            rest = await log.read_all(after_position=positions[0], limit=1)
            assert [e.data for e in rest] == [b"a2"]

    @pytest.mark.anyio
    @pytest.mark.parametrize("limit", [0, 10_001, -1])
    async def test_read_all_refuses_a_limit_out_of_range(
        self, event_log_factory: EventLogFactory, limit: Any
    ) -> None:
        if not self.global_order:
            pytest.skip("read_all is not offered by this log")
        async with event_log_factory() as log:
            with pytest.raises(ValidationError, match="limit"):
                await log.read_all(limit=limit)

    @pytest.mark.anyio
    async def test_read_all_head_position_and_count_of_some_aggregates(
        self, event_log_factory: EventLogFactory
    ) -> None:
        async with event_log_factory() as log:
            if not self.global_order:
                with pytest.raises(UsageError):
                    await log.read_all(aggregates=["orders"])
                with pytest.raises(UsageError):
                    await log.head_position()
                with pytest.raises(UsageError):
                    await log.count()
                return
            assert (await log.head_position(), await log.count()) == (0, 0)
            for aggregate, aggregate_id, bodies in (
                ("orders", "a", ("a1", "a2")),
                ("users", "b", ("b1",)),
                ("orders", "c", ("c1",)),
            ):
                await log.append(
                    aggregate,
                    aggregate_id,
                    expected_version=0,
                    events=events(*bodies),
                    message_id=None,
                    recorded_at=AT,
                )
            everything = await log.read_all()
            positions = [e.position for e in everything]
            assert await log.head_position() == positions[-1]
            orders = await log.read_all(aggregates=["orders"])
            assert [e.data for e in orders] == [b"a1", b"a2", b"c1"]
            assert [e.position for e in orders] == [positions[0], positions[1], positions[3]]
            assert [e.data for e in await log.read_all(aggregates=("users", "unknown"))] == [b"b1"]
            assert await log.read_all(aggregates=[]) == []
            later = await log.read_all(after_position=positions[0], limit=1, aggregates=["orders"])
            assert [e.data for e in later] == [b"a2"]
            assert await log.read_all(after_position=positions[-1]) == []
            assert await log.count() == 4
            assert await log.count(after_position=positions[0]) == 3
            assert await log.count(after_position=positions[1], aggregates=["orders"]) == 1
            assert await log.count(aggregates=["users"]) == 1
            assert await log.count(aggregates=[]) == 0
            assert await log.count(after_position=positions[-1]) == 0

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("aggregates", "orders"),
            ("aggregates", [1]),
            ("aggregates", ["orders\x00"]),
            ("aggregates", ["\ud800"]),
            ("aggregates", 3),
            ("after_position", -1),
            ("after_position", "3"),
            ("after_position", True),
        ],
        ids=[
            "one-string",
            "not-a-string",
            "with-nul",
            "lone-surrogate",
            "not-a-list",
            "negative",
            "text",
            "bool",
        ],
    )
    async def test_read_all_and_count_refuse_bad_arguments_naming_them(
        self, event_log_factory: EventLogFactory, field: str, value: Any
    ) -> None:
        if not self.global_order:
            pytest.skip("read_all is not offered by this log")
        async with event_log_factory() as log:
            with pytest.raises(ValidationError, match=field):
                await log.read_all(**{field: value})
            with pytest.raises(ValidationError, match=field):
                await log.count(**{field: value})
