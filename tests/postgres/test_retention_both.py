"""Retention prunes the same records the same way on the embedded store and on PostgreSQL:
the handled-message records by the age of their events (a command that appended none keeps
its record), the reactions' operations records by the history's rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import reventless.local
import reventless.postgres
from reventless.aggregate_adapter import NewEvent
from reventless.local import Retention
from reventless.testing import VirtualClock
from tests.reaction_app import make_plugin

pytestmark = pytest.mark.anyio
DAY = timedelta(days=1)


@asynccontextmanager
async def _provider(kind: str, where: Path | str, clock: VirtualClock) -> AsyncIterator[Any]:
    if kind == "local":
        async with reventless.local.provider(where, clock=clock, retention=None) as local:
            yield local
    else:
        async with reventless.postgres.provider(where, clock=clock, retention=None) as pg:
            yield pg


@pytest.mark.parametrize("kind", ["local", "postgres"])
async def test_retention_prunes_handled_messages_and_reaction_operations(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    where = tmp_path / "app.db" if kind == "local" else request.getfixturevalue("postgres_dsn")
    # The operations are stamped by the wall clock (the database's on PostgreSQL); the
    # provider's clock stands 100 days after it, so they are 100 days old to retention.
    # real clock: only the 100 days between the two clocks matter, not the hour
    base = datetime.now(UTC).replace(microsecond=0) + 100 * DAY
    clock = VirtualClock(base)
    async with _provider(kind, where, clock) as provider:
        async with make_plugin().start(provider), anyio.create_task_group() as group:
            await group.start(provider.run)
            with anyio.fail_after(20):
                while not await provider.reactions().statuses():  # noqa: ASYNC110 - the store
                    await anyio.sleep(0.02)
            group.cancel_scope.cancel()
        ops = provider.reactions()
        await ops.reset("renewals", 0, reason="first", by="ana")
        await ops.reset("renewals", 0, reason="second", by="ana")
        log = provider.event_log()
        event = [NewEvent(type="Noted", data=b"{}")]
        for version, message, at, events in (
            (0, "old", base - 40 * DAY, event),
            (1, "none", base - 40 * DAY, []),
            (1, "new", base - DAY, event),
        ):
            await log.append(
                "things",
                "a",
                expected_version=version,
                events=events,
                message_id=message,
                recorded_at=at,
            )

        kept = await provider.prune(Retention(history_age=365 * DAY, handled_age=None))
        assert (kept.reaction_operations, kept.handled_messages) == (0, 0)
        assert len(await ops.operations("renewals")) == 2

        report = await provider.prune(Retention(history_age=30 * DAY, handled_age=31 * DAY))
        assert (report.reaction_operations, report.handled_messages) == (2, 1)
        assert await ops.operations("renewals") == []
        assert not await log.was_handled("things", "a", "old")
        assert await log.was_handled("things", "a", "none")  # no event: no time, kept
        assert await log.was_handled("things", "a", "new")
        assert [e.message_id for e in await log.load("things", "a")] == ["old", "new"]
        again = await provider.prune(Retention(history_age=30 * DAY, handled_age=31 * DAY))
        assert (again.reaction_operations, again.handled_messages) == (0, 0)
