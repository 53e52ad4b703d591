"""A plugin for ``tests/test_cli_run_blocking.py``: an aggregate whose ``decide`` blocks its
thread (``time.sleep``) for ``BLOCKING_APP_SLEEP`` seconds, the event loop's thread included.

A Single fire for the current minute is due at once. ``decide`` touches ``BLOCKING_APP_MARK``
before it blocks, so that a test knows when the loop is held.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from reventless import Schedule, Single
from reventless.aggregate import AggregateSpec
from reventless.plugin import Plugin

MARK = Path(os.environ["BLOCKING_APP_MARK"])
SLEEP_S = float(os.environ.get("BLOCKING_APP_SLEEP", "3600"))


class Work(msgspec.Struct, tag=True, frozen=True):
    pass


class Worked(msgspec.Struct, tag=True, frozen=True):
    pass


def decide(state: int, command: Any, context: Any) -> list[Worked]:
    MARK.touch()
    time.sleep(SLEEP_S)  # blocks the event loop's thread: no timeout can cut this off
    return [Worked()]


def evolve(state: int, event: Any) -> int:
    return state + 1


worker = AggregateSpec(
    "worker", commands=[Work], events=[Worked], initial=0, decide=decide, evolve=evolve
)
# real clock: a fire due now, at whatever hour; the assertions do not look at the time
now = datetime.now(UTC)
if now.second >= 55:  # the Single below must still be in this minute when it is declared
    time.sleep(61 - now.second)
    now = datetime.now(UTC)  # real clock: as above
plugin = Plugin("blocking")
plugin.aggregate(worker)
plugin.scheduler(
    "jobs",
    target=worker,
    schedules=[
        Schedule(
            name="work",
            rate=Single(now.year, now.month, now.day, now.hour, now.minute),
            payload='{"aggregateId": "w1", "command": "Work"}',
        )
    ],
)
