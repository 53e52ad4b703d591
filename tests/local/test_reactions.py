"""Reactions on the embedded provider: checkpoints, replay, failures, dead letters, leases."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

import reventless.local
from reventless import (
    HistoryKind,
    Plugin,
    ReactionContext,
    ReactionEvent,
    ReactionNotFoundError,
    ReactionStatus,
    UsageError,
    ValidationError,
)
from reventless.local import LocalProvider
from reventless.local._lease import Lease
from reventless.plugin import RunningPlugin
from reventless.testing import VirtualClock
from tests.reaction_app import ACCOUNTS, AUDIT, Cancel, Open, keep_renewals, make_plugin

pytestmark = pytest.mark.anyio


async def settled(provider: LocalProvider, name: str = "renewals") -> ReactionStatus:
    """The reaction's status once it has nothing pending (real time, at most 10 s)."""
    with anyio.fail_after(10):
        while True:
            for status in await provider.reactions().statuses():
                if status.name == name and status.pending == 0:
                    return status
            await anyio.sleep(0.02)


@asynccontextmanager
async def running_app(
    path: Path | str, plugin: Plugin | None = None, **provider_options: Any
) -> AsyncIterator[tuple[LocalProvider, RunningPlugin]]:
    async with (
        reventless.local.provider(path, **provider_options) as provider,
        (plugin or make_plugin()).start(provider) as running,
        anyio.create_task_group() as group,
    ):
        await group.start(provider.run)
        yield provider, running
        group.cancel_scope.cancel()


async def account_positions(provider: LocalProvider) -> list[int]:
    """The log positions of the accounts events (audit events interleave as a reaction keeps up)."""
    return [e.position for e in await provider.event_log().read_all() if e.aggregate == "accounts"]


async def audit_sources(running: RunningPlugin) -> list[str]:
    return [event.source for event in await running.aggregates["audit"].history("log")]


async def test_every_event_is_handled_in_order_and_its_effects_happen(tmp_path: Path) -> None:
    async with running_app(tmp_path / "r.db") as (provider, running):
        accounts = running.aggregates["accounts"]
        await accounts.handle("a1", Open(timezone="Europe/Berlin"))
        await accounts.handle("a2", Open())
        await accounts.handle("a1", Cancel())
        await accounts.handle("a1", Open(timezone="Asia/Tokyo"))
        status = await settled(provider)
        ops = running.schedulers["renewals"].operations
        names = [s.schedule.name for s in (await ops.list_schedules()).schedules]
        assert names == ["renew-a1", "renew-a2"]
        assert (await ops.get_schedule("renew-a1")).schedule.timezone == "Asia/Tokyo"
        assert await audit_sources(running) == [
            "accounts/a1@1",
            "accounts/a2@1",
            "accounts/a1@2",
            "accounts/a1@3",
        ]
        logged = await provider.event_log().read_all()
    assert status.state == "running" and status.last_error is None
    assert status.follows == ("accounts",)
    # The last accounts event (audit events interleave, as the reaction keeps up).
    assert status.position == max(e.position for e in logged if e.aggregate == "accounts")
    assert status.head == len(logged) == 8


async def test_a_restart_resumes_after_the_checkpoint(tmp_path: Path) -> None:
    calls: Counter[str] = Counter()

    async def counting(event: ReactionEvent, context: ReactionContext) -> None:
        calls[f"{event.aggregate_id}@{event.version}"] += 1
        await keep_renewals(event, context)

    def plugin() -> Plugin:
        made = Plugin("app")
        made.aggregate(ACCOUNTS)
        made.aggregate(AUDIT)
        made.scheduler("renewals", target=ACCOUNTS)
        made.reaction("renewals", follows=[ACCOUNTS], handler=counting)
        return made

    path = tmp_path / "r.db"
    async with running_app(path, plugin()) as (provider, running):
        await running.aggregates["accounts"].handle("a1", Open())
        await settled(provider)
    # Appended while no process runs the reaction (a web process, say).
    async with reventless.local.provider(path) as provider:
        log = provider.event_log()
        from reventless.aggregate import Aggregate

        accounts = await Aggregate.make(provider, ACCOUNTS)
        assert log is provider.event_log()
        await accounts.handle("a1", Cancel())
        await accounts.handle("a2", Open())
    async with running_app(path, plugin()) as (provider, running):
        await settled(provider)
        assert await audit_sources(running) == ["accounts/a1@1", "accounts/a1@2", "accounts/a2@1"]
    assert calls == {"a1@1": 1, "a1@2": 1, "a2@1": 1}


async def test_a_replay_repeats_the_handler_but_no_effect(tmp_path: Path) -> None:
    async with running_app(tmp_path / "r.db") as (provider, running):
        accounts = running.aggregates["accounts"]
        await accounts.handle("a1", Open())
        await accounts.handle("a2", Open())
        await accounts.handle("a2", Cancel())
        await settled(provider)
        await provider.reactions().reset("renewals", 0)
        status = await settled(provider)
        assert status.position == (await account_positions(provider))[-1]
        assert await audit_sources(running) == ["accounts/a1@1", "accounts/a2@1", "accounts/a2@2"]
        ops = running.schedulers["renewals"].operations
        # Commands sent again were duplicates (above). a1's schedule is ensured: unchanged. A
        # replay goes through the states again: a2's Open re-creates its schedule and its
        # Cancel deletes it; the end state is the same.
        assert [e.kind for e in await ops.history("renew-a1")] == [HistoryKind.CREATED]
        kinds = [entry.kind for entry in await ops.history("renew-a2")]
        assert kinds == [HistoryKind.CREATED, HistoryKind.DELETED] * 2
        assert [s.schedule.name for s in (await ops.list_schedules()).schedules] == ["renew-a1"]


def flaky(failures: int) -> tuple[Callable[..., Any], Counter[int]]:
    calls: Counter[int] = Counter()

    async def handler(event: ReactionEvent, context: ReactionContext) -> None:
        calls[event.position] += 1
        if event.aggregate_id == "bad" and calls[event.position] <= failures:
            raise RuntimeError(f"refused {event.aggregate_id} ({calls[event.position]})")
        await keep_renewals(event, context)

    return handler, calls


def plugin_with(handler: Callable[..., Any], **options: Any) -> Plugin:
    made = Plugin("app")
    made.aggregate(ACCOUNTS)
    made.aggregate(AUDIT)
    made.scheduler("renewals", target=ACCOUNTS)
    made.reaction("renewals", follows=[ACCOUNTS], handler=handler, **options)
    return made


async def test_a_failing_handler_is_retried_with_backoff_then_succeeds(tmp_path: Path) -> None:
    handler, calls = flaky(failures=2)
    plugin = plugin_with(handler, max_attempts=3, backoff=0.05)
    async with running_app(tmp_path / "r.db", plugin) as (provider, running):
        await running.aggregates["accounts"].handle("bad", Open())
        started = anyio.current_time()
        status = await settled(provider)
        assert anyio.current_time() - started >= 0.05 + 0.1  # two backoffs, doubling
        assert calls == {1: 3}
        assert status.last_error is None
        assert await provider.reactions().dead_letters("renewals") == []
        assert await audit_sources(running) == ["accounts/bad@1"]


async def test_an_event_that_keeps_failing_is_dead_lettered_and_stops_the_reaction(
    tmp_path: Path,
) -> None:
    handler, calls = flaky(failures=1000)
    plugin = plugin_with(handler, max_attempts=2, backoff=0)
    async with running_app(tmp_path / "r.db", plugin) as (provider, running):
        accounts = running.aggregates["accounts"]
        await accounts.handle("ok", Open())
        await accounts.handle("bad", Open())
        await accounts.handle("later", Open())
        reactions = provider.reactions()
        with anyio.fail_after(10):
            while not (statuses := await reactions.statuses()) or statuses[0].state != "stopped":  # noqa: ASYNC110
                await anyio.sleep(0.02)
        status = statuses[0]
        ok, bad, later = await account_positions(provider)
        assert status.position == ok and status.pending == 2
        assert status.last_error == f"stopped at position {bad}: RuntimeError: refused bad (2)"
        [letter] = await reactions.dead_letters("renewals")
        assert (letter.position, letter.aggregate_id, letter.attempts) == (bad, "bad", 2)
        assert (letter.reason, letter.action) == ("RuntimeError: refused bad (2)", "stopped")
        await anyio.sleep(0.2)
        assert calls[later] == 0  # nothing after the stop
        assert await audit_sources(running) == ["accounts/ok@1"]
        # Resumed without skipping, it retries the event (and stops again); skipped, it goes on.
        assert await reactions.resume("renewals", skip=True) == bad
        status = await settled(provider)
        assert status.state == "running" and status.position == later
        assert await audit_sources(running) == ["accounts/ok@1", "accounts/later@1"]


async def test_on_failure_skip_dead_letters_and_goes_on(tmp_path: Path) -> None:
    handler, _ = flaky(failures=1000)
    plugin = plugin_with(handler, max_attempts=1, on_failure="skip")
    async with running_app(tmp_path / "r.db", plugin) as (provider, running):
        accounts = running.aggregates["accounts"]
        await accounts.handle("bad", Open())
        await accounts.handle("later", Open())
        status = await settled(provider)
        assert status.state == "running"
        assert status.position == (await account_positions(provider))[-1]
        [letter] = await provider.reactions().dead_letters("renewals")
        assert letter.action == "skipped" and letter.attempts == 1
        assert await audit_sources(running) == ["accounts/later@1"]


async def test_a_handler_past_its_timeout_counts_as_failed(tmp_path: Path) -> None:
    async def slow(event: ReactionEvent, context: ReactionContext) -> None:
        await anyio.sleep(5)

    plugin = plugin_with(slow, max_attempts=1, timeout=0.05, on_failure="skip")
    async with running_app(tmp_path / "r.db", plugin) as (provider, running):
        await running.aggregates["accounts"].handle("a", Open())
        await settled(provider)
        [letter] = await provider.reactions().dead_letters("renewals")
        assert letter.reason.startswith("TimeoutError")


async def test_one_runner_per_reaction_and_a_standby_takes_over(tmp_path: Path) -> None:
    """Two processes' providers on one file run the same plugin: one handles each event; when it
    stops, the other takes over."""
    path = tmp_path / "r.db"
    handled: list[str] = []

    def plugin(who: str) -> Plugin:
        async def handler(event: ReactionEvent, context: ReactionContext) -> None:
            handled.append(f"{who}:{event.aggregate_id}")
            await keep_renewals(event, context)

        return plugin_with(handler, timeout=0.5)

    async with running_app(path, plugin("first"), lease_ttl=1) as (first, running):
        async with anyio.create_task_group() as group:

            async def standby() -> None:
                async with running_app(path, plugin("second"), lease_ttl=1):
                    await anyio.sleep_forever()

            group.start_soon(standby)
            await anyio.sleep(0.3)
            await running.aggregates["accounts"].handle("a1", Open())
            await settled(first)
            holder = (await first.reactions().statuses())[0].holder
            assert holder is not None
            assert handled == ["first:a1"]
            group.cancel_scope.cancel()
        group.cancel_scope.cancel()
    async with running_app(path, plugin("second"), lease_ttl=1) as (second, running):
        await running.aggregates["accounts"].handle("a2", Open())
        await settled(second)
    assert handled == ["first:a1", "second:a2"]


async def test_a_standby_takes_over_a_reaction_held_by_a_process_that_died(
    tmp_path: Path,
) -> None:
    """A lease row left by a dead process (never released) lapses after ttl + timeout + 1 s."""
    path = tmp_path / "r.db"
    async with running_app(path, plugin_with(keep_renewals, timeout=0.5), lease_ttl=1) as (
        provider,
        running,
    ):
        await running.aggregates["accounts"].handle("a1", Open())
        await settled(provider)
        runner = provider.reactions()
        store = runner.runner.store
        # Another owner took the row just now, as a live process would, and then died.
        taken = anyio.current_time()
        await runner.runner.call(
            store.conn.execute,
            "UPDATE reactions SET owner = 'dead', lease_until = ? WHERE name = 'renewals'",
            (datetime.now(UTC).timestamp() + 2.5,),  # real clock: leases are in real time
        )
        await anyio.sleep(0.6)  # our renewal fails: standing by
        await running.aggregates["accounts"].handle("a2", Open())
        status = await settled(provider)
        assert 2.4 <= anyio.current_time() - taken <= 6  # not before the dead lease lapsed
        assert status.holder == runner.owner


async def test_a_virtual_clock_waits_for_the_reaction() -> None:
    clock = VirtualClock(datetime(2026, 3, 23, 8, tzinfo=UTC))
    async with running_app(":memory:", clock=clock) as (_, running):
        await running.aggregates["accounts"].handle("a1", Open())
        await clock.wait_idle()
        ops = running.schedulers["renewals"].operations
        assert [s.schedule.name for s in (await ops.list_schedules()).schedules] == ["renew-a1"]


async def test_operations_refuse_bad_input(tmp_path: Path) -> None:
    async with reventless.local.provider(tmp_path / "r.db") as provider:
        reactions = provider.reactions()
        assert await reactions.statuses() == []
        with pytest.raises(ReactionNotFoundError, match="no reaction named 'nope'"):
            await reactions.dead_letters("nope")
        with pytest.raises(ReactionNotFoundError):
            await reactions.reset("nope", 0)
        with pytest.raises(ReactionNotFoundError):
            await reactions.resume("nope")
        with pytest.raises(ValidationError, match="limit"):
            await reactions.dead_letters("nope", limit=0)
        with pytest.raises(ValidationError, match="position"):
            await reactions.reset("nope", -1)
        with pytest.raises(ValidationError, match="reaction"):
            await reactions.reset("no such", 0)


def test_declarations_are_checked() -> None:
    plugin = Plugin("p")
    plugin.aggregate(ACCOUNTS)
    with pytest.raises(ValidationError, match="follows"):
        plugin.reaction("r", follows=[AUDIT], handler=keep_renewals)
    with pytest.raises(ValidationError, match="follows"):
        plugin.reaction("r", follows=ACCOUNTS, handler=keep_renewals)  # type: ignore[arg-type]

    def plain(event: ReactionEvent, context: ReactionContext) -> None: ...

    with pytest.raises(ValidationError, match="handler"):
        plugin.reaction("r", follows=[ACCOUNTS], handler=plain)  # type: ignore[arg-type]
    for option, value in [
        ("on_failure", "retry"),
        ("max_attempts", 0),
        ("backoff", -1),
        ("timeout", 0),
        ("start", "middle"),
    ]:
        with pytest.raises(ValidationError, match=option):
            plugin.reaction("r", follows=[ACCOUNTS], handler=keep_renewals, **{option: value})
    plugin.reaction("r", follows=[ACCOUNTS], handler=keep_renewals)
    with pytest.raises(ValidationError, match="not declared yet"):
        plugin.reaction("r", follows=[ACCOUNTS], handler=keep_renewals)


async def test_a_provider_that_runs_no_reactions_refuses_the_plugin() -> None:
    class Bare:
        def __init__(self, inner: LocalProvider) -> None:
            self.clock = inner.clock
            self.event_log = inner.event_log
            self.scheduled_publisher = inner.scheduled_publisher

    async with reventless.local.provider(":memory:") as provider:
        with pytest.raises(UsageError, match="does not run reactions"):
            async with make_plugin().start(Bare(provider)):
                pass


async def test_a_reaction_that_starts_at_the_end_skips_the_history(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    async with reventless.local.provider(path) as provider:
        from reventless.aggregate import Aggregate

        accounts = await Aggregate.make(provider, ACCOUNTS)
        await accounts.handle("old", Open())
    async with running_app(path, make_plugin(start="end")) as (provider, running):
        await running.aggregates["accounts"].handle("new", Open())
        await settled(provider)
        assert await audit_sources(running) == ["accounts/new@1"]


async def test_a_reaction_registered_again_at_once_handles_each_event_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unregistered and registered again while the provider runs (a plugin restarted in the
    process): the old runner's lease release must not land after the new runner took the lease
    (both are this process's), or the new runner's checkpoint writes fail and it handles the
    same event over and over. A slow release (the store thread busy) makes the order certain."""
    release = Lease.release

    async def slow_release(self: Lease) -> None:
        await anyio.sleep(0.3)
        await release(self)

    monkeypatch.setattr(Lease, "release", slow_release)
    calls: Counter[str] = Counter()

    async def counting(event: ReactionEvent, context: ReactionContext) -> None:
        calls[f"{event.aggregate_id}@{event.version}"] += 1

    made = Plugin("app")
    made.aggregate(ACCOUNTS)
    reaction = made.reaction("renewals", follows=[ACCOUNTS], handler=counting)
    async with running_app(tmp_path / "r.db", made) as (provider, running):
        await running.aggregates["accounts"].handle("a0", Open())
        await settled(provider)
        reactions = provider.reactions()
        reactions.unregister("renewals")
        reactions.register(reaction, running)
        await anyio.sleep(0.5)  # the old runner's release has landed by now
        await running.aggregates["accounts"].handle("a1", Open())
        await settled(provider)
        await anyio.sleep(0.2)  # a runner whose checkpoint writes fail repeats by now
        assert calls == {"a0@1": 1, "a1@1": 1}
