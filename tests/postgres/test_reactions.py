"""Reactions on the PostgreSQL provider beyond the conformance suite, on the real server: the
watermark (a reaction never passes an append that commits late), the checkpoint committed with
the handler's appends (a failed attempt leaves no copy and publishes nothing; a runner killed
mid-run leaves no event copied twice and none skipped), failover between two processes, the
listening connection killed, and an operator's resume in another process.

The handler (``copier_app``) copies each note with a command that has no message id, so only
the reaction's transaction keeps a copy from being made twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import asyncpg
import pytest

import reventless.postgres
from reventless.aggregate import Aggregate
from reventless.errors import BackendUnavailableError, UsageError, ValidationError
from reventless.event_topic import TopicMessage
from reventless.plugin import RunningPlugin
from reventless.reaction import ReactionStatus
from reventless.testing import VirtualClock
from reventless.testing.ports import NOTES, Note
from tests.postgres.copier_app import COPIES, Copier, Copy, plugin

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = "app"


async def _until(condition: Callable[[], Any], limit: float = 20.0) -> None:
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - the runner has no event to wait on here
            await anyio.sleep(0.01)


async def _until_status(
    provider: Any, condition: Callable[[ReactionStatus], bool], limit: float = 20.0
) -> ReactionStatus:
    """The reaction's status once ``condition`` holds (polled: the database tells nobody); a
    runner just started may not have made the reaction's row yet."""
    with anyio.fail_after(limit):
        while True:
            statuses = await provider.reactions().statuses()
            if statuses and condition(statuses[0]):
                return statuses[0]
            await anyio.sleep(0.01)


@asynccontextmanager
async def _running(
    dsn: str, copier: Copier, *, poll_interval: float = 0.1, **options: Any
) -> AsyncIterator[tuple[Any, RunningPlugin]]:
    async with (
        reventless.postgres.provider(dsn, schema=SCHEMA, poll_interval=poll_interval) as p,
        plugin(copier, **options).start(p) as running,
        anyio.create_task_group() as group,
    ):
        await group.start(p.run)
        yield p, running
        group.cancel_scope.cancel()


async def _status(provider: Any) -> ReactionStatus:
    [status] = await provider.reactions().statuses()
    return status


async def _copies(provider: Any) -> Counter[str]:
    """How many copies of each note (by source) are in the log."""
    log, after, found = provider.event_log(), 0, Counter[str]()
    while batch := await log.read_all(after_position=after, limit=1000):
        after = batch[-1].position
        for stored in batch:
            if stored.aggregate == COPIES.name:
                found[COPIES.decode_event(stored).source] += 1
    return found


async def _wait_for_a_blocked_backend(admin: asyncpg.Connection) -> None:
    with anyio.fail_after(30):
        while not await admin.fetchval(  # noqa: ASYNC110 - the server has no event to wait on
            "SELECT count(*) FROM pg_locks WHERE NOT granted"
        ):
            await anyio.sleep(0.01)


@pytest.mark.parametrize(
    ("field", "value"),
    [("lease_ttl", 0), ("lease_ttl", float("nan")), ("poll_interval", True), ("poll_interval", 61)],
)
async def test_bad_lease_and_poll_times_are_refused_before_connecting(
    field: str, value: object
) -> None:
    nowhere = "postgresql://app@127.0.0.1:1/app"  # nothing listens: a connection would fail
    with pytest.raises(ValidationError, match=f"^{field} .* expected a number of seconds"):
        async with reventless.postgres.provider(nowhere, **{field: value}):  # type: ignore[arg-type]
            pass


async def test_a_reaction_does_not_pass_an_append_that_commits_late(postgres_dsn: str) -> None:
    copier = Copier()
    async with _running(postgres_dsn, copier) as (provider, running):
        notes = running.aggregates[NOTES.name]
        await notes.handle("a", Note(text="a"))
        await _until(lambda: len(copier.calls) == 1)
        before = (await _until_status(provider, lambda s: s.position > 0)).position
        admin = await asyncpg.connect(postgres_dsn)
        try:
            # Hold an append open between its INSERT of events and its commit: another
            # transaction holds the key of its message id (``test_event_log`` does the same).
            blocker = admin.transaction()
            await blocker.start()
            await admin.execute(
                f"INSERT INTO {SCHEMA}.handled_messages VALUES ('notes', 'held', 'm-held')"
            )
            watcher = await asyncpg.connect(postgres_dsn)
            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(
                        lambda: notes.handle("held", Note(text="held"), message_id="m-held")
                    )
                    await _wait_for_a_blocked_backend(watcher)
                    await notes.handle("b", Note(text="b"))  # commits, and notifies
                    await anyio.sleep(1.0)  # a notification and ten polls
                    assert len(copier.calls) == 1  # not b, whose position is visible
                    status = await _status(provider)
                    # Neither is pending as read_all sees the log: b is behind the watermark.
                    assert (status.position, status.pending) == (before, 0)
                    await blocker.rollback()
            finally:
                await watcher.close()
        finally:
            await admin.close()
        await _until_status(provider, lambda s: s.pending == 0 and len(copier.calls) == 3)
        notes_read = [e for e in await provider.event_log().read_all() if e.aggregate == "notes"]
        assert [e.aggregate_id for e in notes_read] == ["a", "held", "b"]
        assert [position for position, _ in copier.calls] == [e.position for e in notes_read]
        assert sorted(await _copies(provider)) == ["notes/a/1", "notes/b/1", "notes/held/1"]


async def test_handlers_appending_twice_among_busy_writers_leave_read_all_gap_free(
    postgres_dsn: str,
) -> None:
    """Each handling appends to two streams, one of them shared with writers outside the
    reaction (so it meets busy streams and rolls back), while a reader tails ``read_all``: the
    reader ends with every event once, in position order, and each note has its two copies."""
    copier = Copier(also_to="shared")
    async with _running(postgres_dsn, copier) as (provider, running):
        log, notes = provider.event_log(), running.aggregates[NOTES.name]
        copies = running.aggregates[COPIES.name]
        done = anyio.Event()
        seen: list[int] = []

        async def write(writer: int) -> None:
            for n in range(20):
                await notes.handle(f"n{writer}", Note(text=str(n)))
                await copies.handle("shared", Copy(source=f"direct/{writer}/{n}"))

        async def follow() -> None:
            cursor = 0
            while True:
                finished = done.is_set()
                batch = await log.read_all(after_position=cursor, limit=7)
                seen.extend(e.position for e in batch)
                if batch:
                    cursor = batch[-1].position
                elif finished:
                    return
                else:
                    await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as outer:
            outer.start_soon(follow)
            async with anyio.create_task_group() as group:
                for writer in range(4):
                    group.start_soon(write, writer)
            await _until_status(provider, lambda s: s.pending == 0, 60)
            done.set()
        everything = await log.read_all(limit=10_000)
        assert seen == [e.position for e in everything]
        found = await _copies(provider)
        notes_made = [e for e in everything if e.aggregate == NOTES.name]
        assert len(notes_made) == 80
        assert {source: found[source] for source in found if source.startswith("notes/")} == {
            f"notes/{e.aggregate_id}/{e.version}": 2 for e in notes_made
        }
        assert sum(count for source, count in found.items() if source.startswith("direct/")) == 80


async def test_a_virtual_clock_waits_for_the_events_appended_in_process(
    postgres_dsn: str,
) -> None:
    """A test that moves virtual time on after a command sees the reaction's effects: the
    runner holds the clock from the append until it handled the event."""
    clock = VirtualClock(datetime(2026, 3, 20, 6, 0, tzinfo=UTC))
    copier = Copier()
    async with (
        reventless.postgres.provider(postgres_dsn, schema=SCHEMA, clock=clock) as provider,
        plugin(copier).start(provider) as running,
        anyio.create_task_group() as group,
    ):
        await group.start(provider.run)
        for n in range(3):
            await running.aggregates[NOTES.name].handle(f"n{n}", Note(text=str(n)))
            await clock.wait_idle()  # returns once the runner let go of the clock
            assert len(copier.calls) == n + 1
            assert (await _copies(provider))[f"notes/n{n}/1"] == 1
        group.cancel_scope.cancel()


async def test_a_failed_attempt_leaves_no_copy_and_publishes_nothing(postgres_dsn: str) -> None:
    copier = Copier(failing=("n2",), fail_attempts=(1, 2))
    published: list[TopicMessage] = []

    async def subscriber(message: TopicMessage) -> None:
        published.append(message)

    async with _running(postgres_dsn, copier, backoff=0, max_attempts=3) as (provider, running):
        running.aggregates[COPIES.name].event_topic.subscribe(subscriber)
        for aggregate_id in ("n1", "n2", "n3"):
            await running.aggregates[NOTES.name].handle(aggregate_id, Note(text=aggregate_id))
        await _until_status(provider, lambda s: s.pending == 0 and len(copier.calls) == 5)
        await _until(lambda: len(published) == 3)
        status = await _status(provider)
        assert status.last_error is None and status.state == "running"
        # Two attempts on n2 appended a copy each and failed: both rolled back.
        assert await _copies(provider) == Counter(
            {"notes/n1/1": 1, "notes/n2/1": 1, "notes/n3/1": 1}
        )
        assert [attempt for position, attempt in copier.calls] == [1, 1, 2, 3, 1]
        assert sorted(m.event.source for m in published) == [
            "notes/n1/1",
            "notes/n2/1",
            "notes/n3/1",
        ]
        # The copy stream's cached state was dropped with the rollbacks: it appends on.
        copies = running.aggregates[COPIES.name]
        assert (await copies.load("of-n2"))[1] == 1


async def test_a_dead_letter_stops_it_and_a_resume_elsewhere_wakes_it(postgres_dsn: str) -> None:
    copier = Copier(failing=("bad",))
    # Polling every 30 s: only a notification can wake the runner within the test's limits.
    options = {"backoff": 0, "max_attempts": 3, "poll_interval": 30.0}
    async with _running(postgres_dsn, copier, **options) as (provider, running):
        await _until(lambda: provider.reactions().listener.connected == 1)
        for aggregate_id in ("ok", "bad", "later"):
            await running.aggregates[NOTES.name].handle(aggregate_id, Note(text=aggregate_id))
        await _until(lambda: len(copier.calls) == 4)
        status = await _until_status(provider, lambda s: s.state == "stopped", 5)
        ok, bad, later = [
            e.position for e in await provider.event_log().read_all() if e.aggregate == "notes"
        ]
        assert status.position >= ok and status.last_error is not None
        [letter] = await provider.reactions().dead_letters("copier")
        assert (letter.position, letter.attempts, letter.action) == (bad, 3, "stopped")
        assert await _copies(provider) == Counter({"notes/ok/1": 1})
        # An operator in another process lets it skip the event: the runner hears of it.
        async with reventless.postgres.provider(postgres_dsn, schema=SCHEMA) as operator:
            started = time.monotonic()
            assert await operator.reactions().resume("copier", skip=True) == bad
            await _until_status(provider, lambda s: s.position >= later, 5)
            assert time.monotonic() - started < 5  # not the 30 s poll
        assert await _copies(provider) == Counter({"notes/ok/1": 1, "notes/later/1": 1})


async def test_a_killed_listening_connection_is_replaced_and_wakes_go_on(
    postgres_dsn: str,
) -> None:
    copier = Copier()
    async with _running(postgres_dsn, copier, poll_interval=30.0) as (provider, running):
        listener = provider.reactions().listener
        await _until(lambda: listener.connected == 1)
        notes = running.aggregates[NOTES.name]
        await notes.handle("n1", Note(text="one"))
        await _until_status(provider, lambda s: s.pending == 0 and len(copier.calls) == 1, 5)
        admin = await asyncpg.connect(postgres_dsn)
        try:
            query = "SELECT pid FROM pg_stat_activity WHERE application_name = 'reventless-listen'"
            [first] = [row[0] for row in await admin.fetch(query)]
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
            await _until(lambda: listener.connected == 2, 10)
            [second] = [row[0] for row in await admin.fetch(query)]
            assert second != first
        finally:
            await admin.close()
        started = time.monotonic()
        await notes.handle("n2", Note(text="two"))
        await _until_status(provider, lambda s: s.pending == 0 and len(copier.calls) == 2, 5)
        assert time.monotonic() - started < 5  # woken by a notification, not the 30 s poll
        assert await _copies(provider) == Counter({"notes/n1/1": 1, "notes/n2/1": 1})


async def test_every_connection_killed_mid_run_loses_and_doubles_nothing(
    postgres_dsn: str,
) -> None:
    """Every connection to the database is cut twice while notes keep coming (the server
    restarting looks the same to a client): the runner stands by, reconnects and goes on."""
    copier = Copier()
    async with _running(postgres_dsn, copier, backoff=0.05) as (provider, running):
        notes = running.aggregates[NOTES.name]
        sent = 0

        async def send(count: int) -> None:
            nonlocal sent
            for _ in range(count):
                for _attempt in range(50):  # a cut connection: send again (same message id)
                    try:
                        await notes.handle(
                            f"n{sent % 5}", Note(text=str(sent)), message_id=f"m{sent}"
                        )
                        break
                    except BackendUnavailableError:
                        await anyio.sleep(0.05)
                sent += 1

        admin = await asyncpg.connect(postgres_dsn)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(send, 120)
                for calls in (30, 60):
                    await _until(lambda calls=calls: len(copier.calls) >= calls)
                    await admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
        finally:
            await admin.close()
        status = await _until_status(provider, lambda s: s.pending == 0, 30)
        assert status.state == "running"
        stored = await provider.event_log().read_all(limit=10_000)
        sources = [f"notes/{e.aggregate_id}/{e.version}" for e in stored if e.aggregate == "notes"]
        assert len(sources) == sent == 120
        assert await _copies(provider) == Counter(sources)


async def test_on_a_small_pool_of_its_own_run_is_refused_and_a_minimal_one_works(
    postgres_dsn: str,
) -> None:
    """``run()`` runs the engine beside the reactions: on a pool of the user's too small for
    its claim loops it is refused, typed, before anything runs; on the smallest pool it takes
    (``claimers`` + 2) the reactions work, by polling where the pool lends no listener."""
    small = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=1)
    try:
        async with reventless.postgres.provider(small, schema=SCHEMA) as provider:
            with pytest.raises(UsageError, match="max_connections=4"):
                await provider.run()
    finally:
        await small.close()
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=3)
    try:
        copier = Copier()
        async with (
            reventless.postgres.provider(
                pool, schema=SCHEMA, poll_interval=0.05, claimers=1
            ) as provider,
            plugin(copier).start(provider) as running,
            anyio.create_task_group() as group,
        ):
            await group.start(provider.run)
            for n in range(5):
                await running.aggregates[NOTES.name].handle(f"n{n}", Note(text=str(n)))
            await _until_status(provider, lambda s: s.pending == 0 and len(copier.calls) == 5)
            assert len(await _copies(provider)) == 5
            group.cancel_scope.cancel()
    finally:
        await pool.close()


# -- two runner processes --------------------------------------------------------------------

LEASE_TTL = 1.0
TIMEOUT = 1.0  # the copier's, in copier_app
LEASE_HOLD = LEASE_TTL + TIMEOUT + 1.0  # how long a lease lasts after its last renewal


def _start_runner(dsn: str, record: Path, linger: str = "") -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "REVENTLESS_TEST_HANDLED": str(record),
        "REVENTLESS_TEST_LINGER": linger,
        "PYTHONPATH": str(ROOT),
    }
    runner = subprocess.Popen(
        [sys.executable, "-m", "tests.postgres.copier_app", dsn, SCHEMA, str(LEASE_TTL)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert runner.stdout is not None
    assert runner.stdout.readline().strip() == "ready"
    return runner


def _handled(record: Path) -> list[tuple[int, int, float]]:
    """(pid, position, time) of every call of the handler in the runner processes."""
    if not record.exists():
        return []
    lines = [line.split() for line in record.read_text().splitlines()]
    return [(int(pid), int(line[0]), float(line[1])) for pid, *line in lines if len(line) == 2]


async def test_a_killed_runner_is_replaced_within_the_lease_and_nothing_is_doubled_or_lost(
    postgres_dsn: str, tmp_path: Path
) -> None:
    record = tmp_path / "handled"
    async with reventless.postgres.provider(postgres_dsn, schema=SCHEMA) as provider:
        notes = await Aggregate.make(provider, NOTES)
        runners = [_start_runner(postgres_dsn, record)]
        try:
            await _until_status(provider, lambda s: s.holder is not None)
            runners.append(_start_runner(postgres_dsn, record))
            sent = 0

            async def send(count: int) -> None:
                nonlocal sent
                for _ in range(count):
                    await notes.handle(f"n{sent % 7}", Note(text=str(sent)))
                    sent += 1
                    await anyio.sleep(0.002)

            await send(150)
            # Kill the holder while it works (the notes keep coming).
            holder = _handled(record)[-1][0]
            [victim] = [r for r in runners if r.pid == holder]
            async with anyio.create_task_group() as group:
                group.start_soon(send, 150)
                await anyio.sleep(0.1)
                victim.send_signal(signal.SIGKILL)
                killed_at = time.time()
            victim.wait()
            await _until_status(provider, lambda s: s.pending == 0, 30)
        finally:
            for runner in runners:
                runner.kill()
                runner.wait()
                assert runner.stdout is not None
                runner.stdout.close()
        copies = await _copies(provider)
        stored = await provider.event_log().read_all(limit=10_000)
        sources = [f"notes/{e.aggregate_id}/{e.version}" for e in stored if e.aggregate == "notes"]
        assert len(sources) == sent == 300
        assert copies == Counter(sources)  # every note copied, and only once
    handled = _handled(record)
    survivor = [at for pid, _, at in handled if pid != holder]
    takeover = min(survivor) - killed_at
    assert takeover <= LEASE_HOLD + 1.0, takeover
    # Outside the database a call may repeat: at most the one under way at the kill.
    repeats = Counter(position for _, position, _ in handled)
    assert sum(count - 1 for count in repeats.values()) <= 1


async def test_a_holder_frozen_inside_its_transaction_holds_up_appends_only_briefly(
    postgres_dsn: str, tmp_path: Path
) -> None:
    """The holder is stopped (SIGSTOP) while its handler's transaction holds the append lock:
    the server ends that transaction once it idled for the handler's timeout + 1 s, appends go
    on, the standby takes over; woken again (SIGCONT), the old holder doubles nothing."""
    record = tmp_path / "handled"
    async with reventless.postgres.provider(postgres_dsn, schema=SCHEMA) as provider:
        notes = await Aggregate.make(provider, NOTES)
        runners = [_start_runner(postgres_dsn, record, linger="slow")]
        try:
            await _until_status(provider, lambda s: s.holder is not None)
            runners.append(_start_runner(postgres_dsn, record, linger="slow"))
            await notes.handle("slow", Note(text="lingers inside its transaction"))
            await _until(lambda: "appended" in record.read_text() if record.exists() else False)
            [frozen] = [r for r in runners if f"{r.pid} appended" in record.read_text()]
            frozen.send_signal(signal.SIGSTOP)
            started = time.monotonic()
            with anyio.fail_after(TIMEOUT + 1.0 + 1.0):  # the idle limit, and slack
                await notes.handle("n1", Note(text="waits for the append lock"))
            assert time.monotonic() - started > 0.5  # it did wait: the lock was held
            await _until_status(provider, lambda s: s.pending == 0, 30)
            frozen.send_signal(signal.SIGCONT)
            await notes.handle("n2", Note(text="after the wake"))
            await _until_status(provider, lambda s: s.pending == 0, 30)
            await anyio.sleep(0.5)  # the woken holder's commit, had it one, would land now
        finally:
            for runner in runners:
                runner.kill()
                runner.wait()
                assert runner.stdout is not None
                runner.stdout.close()
        stored = await provider.event_log().read_all(limit=10_000)
        sources = [f"notes/{e.aggregate_id}/{e.version}" for e in stored if e.aggregate == "notes"]
        assert sorted(sources) == ["notes/n1/1", "notes/n2/1", "notes/slow/1"]
        assert await _copies(provider) == Counter(sources)
