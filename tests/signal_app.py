"""A plugin for the stop-signal tests of ``reventless run`` (tests/test_cli_run_signals.py).

Twenty schedules fire as it starts; each delivery spends ``SIGNAL_APP_DELIVERY`` seconds in an
AnyIO worker thread (the kind of thread that kept the process alive), and a graceful stop waits
for deliveries under way. ``SIGNAL_APP_START`` seconds of shielded start-up work hold the start.
The file ``SIGNAL_APP_MARK`` is made on import (the stop signals' handlers are in place by then)
and ``SIGNAL_APP_MARK.delivering`` when the first delivery begins.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from reventless import Schedule, Single
from reventless.plugin import Plugin

MARK = Path(os.environ["SIGNAL_APP_MARK"]) if "SIGNAL_APP_MARK" in os.environ else None
DELIVERY_S = float(os.environ.get("SIGNAL_APP_DELIVERY", "3"))
START_S = float(os.environ.get("SIGNAL_APP_START", "0"))

if MARK is not None:
    MARK.touch()
# real clock: Singles due this minute, declared within it whatever the time of day
now = datetime.now(UTC)
if now.second >= 55:  # the Singles below must still be in this minute when they are declared
    time.sleep(61 - now.second)
    now = datetime.now(UTC)  # real clock: as above
at = Single(now.year, now.month, now.day, now.hour, now.minute)
plugin = Plugin("signals")
plugin.event_topic("ticks")
plugin.scheduler(
    "ticks",
    target="ticks",
    schedules=[Schedule(name=f"tick-{i}", rate=at, payload="x") for i in range(20)],
)


@plugin.on_start
async def start(running: Any) -> None:
    async def slow(message: Any) -> None:
        if MARK is not None:
            MARK.with_suffix(".delivering").touch()
        await anyio.to_thread.run_sync(time.sleep, DELIVERY_S)

    running.event_topics["ticks"].subscribe(slow)
    if START_S:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(time.sleep, START_S)
