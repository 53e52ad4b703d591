"""A plugin for ``tests/postgres/test_cli_run_postgres.py``: the scheduler ``slow`` delivers to
the event topic ``slow``, whose one subscriber awaits ``$SLOW_APP_SLEEP`` seconds (default an
hour) per message, so that fires stay undelivered while the engine runs (the test makes the
schedules)."""

from __future__ import annotations

import os
from typing import Any

import anyio

from reventless.plugin import Plugin, RunningPlugin

SLEEP_S = float(os.environ.get("SLOW_APP_SLEEP", "3600"))

plugin = Plugin("slow")
plugin.event_topic("slow")
plugin.scheduler("slow", target="slow")


async def _linger(message: Any) -> None:
    await anyio.sleep(SLEEP_S)


@plugin.on_start
async def _subscribe(running: RunningPlugin) -> None:
    running.event_topics["slow"].subscribe(_linger)
