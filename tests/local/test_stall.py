"""The stall watch of ``provider.run`` embedded in an application: code that blocks the event
loop past the delivery timeout is reported at ERROR, naming the fire and the code, once per
stall, and the host process is left alone (``reventless run`` ends its own process instead:
tests/test_cli_run_blocking.py)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

import reventless.local
import reventless.local._stall
from reventless import Schedule, Scheduler, Single
from reventless.target import FireEnvelope
from reventless.testing import VirtualClock

pytestmark = pytest.mark.anyio
START = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)


class BlockingTarget:
    """Blocks the loop's thread in ``deliver`` for ``seconds``, as a careless target would."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.delivered: list[str] = []

    async def deliver(self, envelope: FireEnvelope) -> None:
        time.sleep(self.seconds)  # noqa: ASYNC251 (the mistake under test)
        self.delivered.append(envelope.schedule)


async def test_a_blocked_loop_is_logged_at_error_once_and_the_process_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small margin keeps the block short; the rule is the same as with the real 5 s.
    monkeypatch.setattr(reventless.local._stall, "MARGIN_S", 0.2)
    caplog.set_level(logging.ERROR, logger="reventless")
    clock = VirtualClock(START)
    target = BlockingTarget(2.0)  # four times the limit (0.1 s + 0.2 s): one stall all the same
    async with reventless.local.provider(
        tmp_path / "s.db", clock=clock, delivery_timeout=0.1
    ) as provider:
        scheduler = await Scheduler.make(provider, target=target)
        await scheduler.operations.create_schedule(
            Schedule(name="nightly", rate=Single(2026, 11, 27, 8, 1), payload="x")
        )
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(minutes=1))
            # The loop runs again: the engine goes on firing in this process.
            await scheduler.operations.create_schedule(
                Schedule(name="later", rate=Single(2026, 11, 27, 8, 2), payload="x")
            )
            target.seconds = 0
            await clock.advance(timedelta(minutes=1))
            group.cancel_scope.cancel()
    assert target.delivered == ["nightly", "later"]
    stalls = [r for r in caplog.records if "event loop has been held" in r.getMessage()]
    assert len(stalls) == 1, [r.getMessage() for r in caplog.records]
    message = stalls[0].getMessage()
    assert stalls[0].levelno == logging.ERROR and stalls[0].name == "reventless.engine"
    assert "in deliver at " in message and "test_stall.py:" in message, message
    assert "delivering fire nightly@2026-11-27T08:01:00Z of scheduler 'default'" in message
    assert "synchronous code cannot be cut off" in message
