"""A plugin for ``tests/test_cli_run_says.py``: one schedule a minute into an event topic."""

from __future__ import annotations

from reventless import Minutes, Schedule
from reventless.plugin import Plugin

plugin = Plugin("minutes")
plugin.event_topic("ticks")
plugin.scheduler(
    "ticks",
    target="ticks",
    schedules=[Schedule(name="every-minute", rate=Minutes(1), payload="tick")],
)
