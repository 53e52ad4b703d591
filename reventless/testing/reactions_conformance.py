"""The Reactions conformance suite: ``reventless.reaction_adapter.Reactions`` on every provider.

Use it from a pytest module with a ``provider_under_test`` fixture
(``reventless.testing.ports``)::

    from reventless.testing.reactions_conformance import ReactionsConformance

    class TestReactions(ReactionsConformance):
        pass

Each test starts a plugin with the ``NOTES`` aggregate and the reaction ``"follower"`` on a
fresh provider. Where reactions run in process (``reactions_in_process``), ``provider.run()``
runs it and the suite checks the port's whole contract: a name registered once, every followed
event handled once in log order (across a restart when the provider is ``durable``), retries
then a dead letter and a stop, resume, reset (a position past the log's head refused), and
each reset and resume recorded with who, why and its positions (``operations``; a bad reason
or name of who refused). Where each reaction is its queue's handler, the suite checks the
documented UsageErrors of ``statuses``, ``dead_letters``, ``reset``, ``resume`` and
``operations``, and hands the queue's records
(``reaction_batch``) to ``handle_reaction_batch``: order per stream, a redelivery handled again
with its attempt, and a failed record holding back its stream only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import anyio
import pytest

from reventless.aggregate import Aggregate
from reventless.clock import VirtualClock
from reventless.errors import ReactionNotFoundError, UsageError, ValidationError
from reventless.plugin import Plugin, RunningPlugin
from reventless.reaction import ReactionContext, ReactionEvent, ReactionStatus
from reventless.testing.ports import NOTES, Note, ProviderUnderTest, skip_unless_offered

__all__ = ("REACTION", "ReactionsConformance")

REACTION = "follower"
START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)
_LIMIT = 20  # seconds (real time) a reaction gets to catch up before the test fails


class _Follower:
    """The reaction's handler: records (aggregate id, version, attempt) of every call, and fails
    every event of the aggregate ids in ``fail``."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self.positions: list[int] = []
        self.fail = fail

    async def __call__(self, event: ReactionEvent, context: ReactionContext) -> None:
        self.calls.append((event.aggregate_id, event.version, context.attempt))
        self.positions.append(event.position)
        if event.aggregate_id in self.fail:
            raise RuntimeError(f"cannot handle {event.aggregate_id}")

    def handled(self) -> list[tuple[str, int]]:
        """(aggregate id, version) of every call, in call order."""
        return [(aggregate_id, version) for aggregate_id, version, _ in self.calls]


def _plugin(follower: _Follower, **options: Any) -> Plugin:
    plugin = Plugin("conformance")
    plugin.aggregate(NOTES)
    plugin.reaction(REACTION, follows=[NOTES], handler=follower, **options)
    return plugin


@asynccontextmanager
async def _running(
    provider_under_test: ProviderUnderTest, plugin: Plugin
) -> AsyncIterator[tuple[Any, RunningPlugin]]:
    """The plugin started on a fresh provider (the same store when opened again in a test),
    the provider running its reactions where they run in process."""
    async with (
        provider_under_test.open(VirtualClock(START)) as provider,
        plugin.start(provider) as running,
    ):
        if not provider_under_test.capabilities.reactions_in_process:
            yield provider, running
            return
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            yield provider, running
            group.cancel_scope.cancel()


async def _settled(provider: Any, *, state: str = "running") -> ReactionStatus:
    """The reaction's status once it is in ``state`` with nothing pending (running), or stopped."""
    with anyio.fail_after(_LIMIT):
        while True:
            statuses: list[ReactionStatus] = await provider.reactions().statuses()
            for status in statuses:
                caught_up = state != "running" or status.pending == 0
                if status.name == REACTION and status.state == state and caught_up:
                    return status
            await anyio.sleep(0.01)


async def _catch_up(
    provider_under_test: ProviderUnderTest, provider: Any, running: RunningPlugin
) -> dict[str, Any]:
    """Let the reaction handle what is pending: wait for the runner in process, else hand the
    reaction queue's records to ``handle_reaction_batch``; the batch response (or none)."""
    if provider_under_test.capabilities.reactions_in_process:
        await _settled(provider)
        return {"batchItemFailures": []}
    from reventless.aws import handle_reaction_batch  # only where reactions are queue handlers

    batch = await provider_under_test.reaction_batch(REACTION)
    return await handle_reaction_batch(batch, running, REACTION)


async def _send(running: RunningPlugin, *commands: tuple[str, str]) -> None:
    for aggregate_id, text in commands:
        await running.aggregates[NOTES.name].handle(aggregate_id, Note(text=text))


def _per_stream(handled: list[tuple[str, int]]) -> dict[str, list[int]]:
    streams: dict[str, list[int]] = {}
    for aggregate_id, version in handled:
        streams.setdefault(aggregate_id, []).append(version)
    return streams


class ReactionsConformance:
    """The contract of ``reventless.reaction_adapter.Reactions``, as tests."""

    @pytest.fixture(autouse=True)
    def _offered(self, provider_under_test: ProviderUnderTest) -> None:
        skip_unless_offered(provider_under_test, "reactions")

    @pytest.mark.anyio
    async def test_a_name_is_registered_once_and_unregister_frees_it(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        follower = _Follower()
        plugin = _plugin(follower)
        async with _running(provider_under_test, plugin) as (provider, running):
            reactions = provider.reactions()
            reaction = running.reactions[REACTION]
            with pytest.raises(UsageError, match=f"'{REACTION}'"):
                reactions.register(reaction, running)
            with pytest.raises(UsageError, match=f"'{REACTION}'"):
                async with _plugin(_Follower()).start(provider):
                    pass
            reactions.unregister(REACTION)
            reactions.unregister(REACTION)  # no error: none is registered
            reactions.unregister("never-registered")
            reactions.register(reaction, running)
            await _send(running, ("n1", "after re-registering"))
            assert (await _catch_up(provider_under_test, provider, running)) == {
                "batchItemFailures": []
            }
            assert follower.handled() == [("n1", 1)], follower.calls

    @pytest.mark.anyio
    async def test_every_followed_event_is_handled_once_in_order_across_a_restart(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        follower = _Follower()
        in_process = provider_under_test.capabilities.reactions_in_process
        async with _running(provider_under_test, _plugin(follower)) as (provider, running):
            await _send(running, ("n1", "a"), ("n2", "b"), ("n1", "c"), ("n2", "d"))
            await _catch_up(provider_under_test, provider, running)
            first = follower.handled()
            assert _per_stream(first) == {"n1": [1, 2], "n2": [1, 2]}
            if in_process:  # one runner follows the log: log order
                assert follower.positions == sorted(follower.positions)
                assert first == [("n1", 1), ("n2", 1), ("n1", 2), ("n2", 2)]
        if not provider_under_test.capabilities.durable:
            return
        # Appended while nothing runs the reaction (a web process, say), then a restart.
        async with provider_under_test.open(VirtualClock(START)) as provider:
            notes = await Aggregate.make(provider, NOTES)
            await notes.handle("n2", Note(text="e"))
            await notes.handle("n3", Note(text="f"))
        async with _running(provider_under_test, _plugin(follower)) as (provider, running):
            await _send(running, ("n1", "g"))
            await _catch_up(provider_under_test, provider, running)
        assert sorted(follower.handled()[len(first) :]) == [("n1", 3), ("n2", 3), ("n3", 1)]
        assert _per_stream(follower.handled()) == {"n1": [1, 2, 3], "n2": [1, 2, 3], "n3": [1]}
        if in_process:
            assert follower.positions == sorted(follower.positions)

    @pytest.mark.anyio
    async def test_operations_are_kept_or_refused_as_documented(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        async with _running(provider_under_test, _plugin(_Follower())) as (provider, running):
            reactions = provider.reactions()
            if not provider_under_test.capabilities.reactions_in_process:
                for call in (
                    reactions.statuses,
                    lambda: reactions.dead_letters(REACTION),
                    lambda: reactions.reset(REACTION, 0),
                    lambda: reactions.resume(REACTION),
                    lambda: reactions.resume(REACTION, skip=True),
                    lambda: reactions.reset(REACTION, 0, reason="replay", by="ann"),
                    lambda: reactions.resume(REACTION, reason="fixed", by="ann"),
                    lambda: reactions.operations(REACTION),
                ):
                    with pytest.raises(UsageError):
                        await call()
                return
            await _send(running, ("n1", "a"), ("n1", "b"))
            status = await _settled(provider)
            assert (status.follows, status.position, status.head) == (("notes",), 2, 2)
            assert status.last_error is None
            assert await reactions.dead_letters(REACTION) == []
            missing_calls: list[Callable[[], Awaitable[Any]]] = [
                lambda: reactions.dead_letters("missing"),
                lambda: reactions.reset("missing", 0),
                lambda: reactions.resume("missing"),
                lambda: reactions.operations("missing"),
            ]
            for missing in missing_calls:
                with pytest.raises(ReactionNotFoundError):
                    await missing()
            bad_calls: list[Callable[[], Awaitable[Any]]] = [
                lambda: reactions.reset(REACTION, 3),  # past the head
                lambda: reactions.reset(REACTION, -1),
                lambda: reactions.dead_letters(REACTION, limit=0),
                lambda: reactions.dead_letters("bad name"),
                lambda: reactions.operations(REACTION, limit=0),
                lambda: reactions.operations(REACTION, limit=10_001),
                lambda: reactions.operations("bad name"),
            ]
            for bad in bad_calls:
                with pytest.raises(ValidationError):
                    await bad()
            assert (await _settled(provider)).position == 2  # nothing moved
            assert await reactions.operations(REACTION) == []  # nothing recorded either

    @pytest.mark.anyio
    async def test_a_reset_hands_the_events_after_it_again(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        follower = _Follower()
        async with _running(provider_under_test, _plugin(follower)) as (provider, running):
            if not provider_under_test.capabilities.reactions_in_process:
                with pytest.raises(UsageError, match="cannot be moved"):
                    await provider.reactions().reset(REACTION, 0)
                return
            await _send(running, ("n1", "a"), ("n2", "b"), ("n1", "c"))
            await _settled(provider)
            await provider.reactions().reset(REACTION, 1)
            await _settled(provider)
            assert follower.handled() == [
                ("n1", 1),
                ("n2", 1),
                ("n1", 2),
                ("n2", 1),
                ("n1", 2),
            ]

    @pytest.mark.anyio
    async def test_a_failing_event_is_retried_then_dead_lettered_and_holds_back_its_stream(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        follower = _Follower(fail=("bad",))
        plugin = _plugin(follower, max_attempts=2, backoff=0)
        async with _running(provider_under_test, plugin) as (provider, running):
            await _send(running, ("ok", "a"), ("bad", "b"), ("bad", "c"), ("later", "d"))
            if not provider_under_test.capabilities.reactions_in_process:
                await self._fails_on_aws(provider_under_test, running, follower)
                return
            reactions = provider.reactions()
            status = await _settled(provider, state="stopped")
            ok, bad, _, later = [e.position for e in await provider.event_log().read_all()]
            assert status.position == ok and status.pending == 3
            assert status.last_error == (
                f"stopped at position {bad}: RuntimeError: cannot handle bad"
            )
            [letter] = await reactions.dead_letters(REACTION)
            assert (letter.position, letter.aggregate_id, letter.version) == (bad, "bad", 1)
            assert (letter.attempts, letter.action) == (2, "stopped")
            assert letter.reason == "RuntimeError: cannot handle bad"
            assert follower.calls == [("ok", 1, 1), ("bad", 1, 1), ("bad", 1, 2)]
            # Resumed, it retries the event it stopped at (and stops again there).
            assert await reactions.resume(REACTION, reason="try again", by="ann") == ok
            await _settled(provider, state="stopped")
            assert follower.calls[3:] == [("bad", 1, 1), ("bad", 1, 2)]
            # Skipped, it goes on after it (the event stays in the dead letters).
            follower.fail = ()
            assert await reactions.resume(REACTION, skip=True, reason="poison") == bad
            status = await _settled(provider)
            assert status.position == later and status.last_error is None
            assert follower.handled()[-2:] == [("bad", 2), ("later", 1)]
            assert len(await reactions.dead_letters(REACTION)) == 2
            skipped, resumed = await reactions.operations(REACTION)
            assert (resumed.action, resumed.by, resumed.reason) == ("resume", "ann", "try again")
            assert (resumed.from_position, resumed.to_position) == (ok, ok)
            assert (skipped.action, skipped.by, skipped.reason) == ("skip", None, "poison")
            assert (skipped.from_position, skipped.to_position) == (ok, bad)
            assert resumed.from_state == skipped.from_state == "stopped"

    @pytest.mark.anyio
    async def test_each_operation_is_recorded_with_who_why_and_the_positions(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        async with _running(provider_under_test, _plugin(_Follower())) as (provider, running):
            reactions = provider.reactions()
            if not provider_under_test.capabilities.reactions_in_process:
                with pytest.raises(UsageError, match="not available"):
                    await reactions.operations(REACTION)
                return
            await _send(running, ("n1", "a"), ("n2", "b"), ("n1", "c"))
            await _settled(provider)
            await reactions.reset(REACTION, 1, reason="replay <n2> & on", by="ann")
            await _settled(provider)
            assert await reactions.resume(REACTION, by="bo") == 3  # running: recorded all the same
            await reactions.reset(REACTION, 0)
            await _settled(provider)
            newest, resumed, replayed = await reactions.operations(REACTION)
            assert [op.action for op in (newest, resumed, replayed)] == ["reset", "resume", "reset"]
            assert (replayed.by, replayed.reason) == ("ann", "replay <n2> & on")
            assert (replayed.from_position, replayed.to_position) == (3, 1)
            assert (resumed.by, resumed.reason) == ("bo", None)
            assert (resumed.from_position, resumed.to_position) == (3, 3)
            assert (newest.by, newest.reason, newest.from_position, newest.to_position) == (
                None,
                None,
                3,
                0,
            )
            assert {op.reaction for op in (newest, resumed, replayed)} == {REACTION}
            assert {op.from_state for op in (newest, resumed, replayed)} == {"running"}
            assert newest.id > resumed.id > replayed.id
            assert newest.at >= resumed.at >= replayed.at
            assert all(op.at.utcoffset() == timedelta(0) for op in (newest, resumed, replayed))
            assert await reactions.operations(REACTION, limit=2) == [newest, resumed]
        if not provider_under_test.capabilities.durable:
            return
        async with provider_under_test.open(VirtualClock(START)) as provider:
            kept = await provider.reactions().operations(REACTION)
        assert kept == [newest, resumed, replayed]

    @pytest.mark.anyio
    async def test_a_bad_reason_or_by_is_refused_naming_it_and_nothing_is_written(
        self, provider_under_test: ProviderUnderTest
    ) -> None:
        if not provider_under_test.capabilities.reactions_in_process:
            pytest.skip("the provider has no reset or resume to refuse (see the test above)")
        async with _running(provider_under_test, _plugin(_Follower())) as (provider, running):
            reactions = provider.reactions()
            await _send(running, ("n1", "a"), ("n1", "b"))
            await _settled(provider)
            bad: list[tuple[str, dict[str, Any]]] = [
                ("reason", {"reason": "two\nlines"}),
                ("reason", {"reason": ""}),
                ("reason", {"reason": "x" * 257}),
                ("reason", {"reason": 42}),
                ("by", {"by": "tab\there"}),
                ("by", {"by": ""}),
                ("by", {"by": "y" * 101}),
            ]
            for field, note in bad:
                calls: list[Callable[[], Awaitable[Any]]] = [
                    partial(reactions.reset, REACTION, 0, **note),
                    partial(reactions.resume, REACTION, **note),
                    partial(reactions.resume, REACTION, skip=True, **note),
                ]
                for call in calls:
                    with pytest.raises(ValidationError) as refused:
                        await call()
                    assert (refused.value.field, refused.value.value) == (field, note[field])
            assert (await _settled(provider)).position == 2  # not reset
            assert await reactions.operations(REACTION) == []
            # The longest of each is taken whole.
            await reactions.resume(REACTION, reason="r" * 256, by="b" * 100)
            [longest] = await reactions.operations(REACTION)
            assert (longest.reason, longest.by) == ("r" * 256, "b" * 100)

    async def _fails_on_aws(
        self, provider_under_test: ProviderUnderTest, running: RunningPlugin, follower: _Follower
    ) -> None:
        from reventless.aws import handle_reaction_batch

        batch = await provider_under_test.reaction_batch(REACTION)
        ids = {
            record["messageId"]: record["attributes"]["MessageGroupId"]
            for record in batch["Records"]
        }
        response = await handle_reaction_batch(batch, running, REACTION)
        failed = [ids[item["itemIdentifier"]] for item in response["batchItemFailures"]]
        assert failed == ["bad", "bad"]  # the failed record, and the one behind it, untouched
        assert sorted(follower.handled()) == [("bad", 1), ("later", 1), ("ok", 1)]
        # SQS delivers the failed records again, counting the receives: the attempt.
        again = {
            "Records": [r for r in batch["Records"] if r["attributes"]["MessageGroupId"] == "bad"]
        }
        for record in again["Records"]:
            record["attributes"]["ApproximateReceiveCount"] = "2"
        follower.fail = ()
        assert await handle_reaction_batch(again, running, REACTION) == {"batchItemFailures": []}
        assert [call for call in follower.calls if call[0] == "bad"] == [
            ("bad", 1, 1),
            ("bad", 1, 2),
            ("bad", 2, 2),
        ]
