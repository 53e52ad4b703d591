"""A plugin for the PostgreSQL engine's process tests (``tests/postgres/test_engine_processes.py``):
the scheduler ``burst`` sends its fires to the ``notes`` aggregate. Each handling of a command
appends ``FIRE_ID PID TIME`` (``time.time()``) to the file ``$REVENTLESS_TEST_DELIVERIES`` (a
delivery, whether or not its transaction commits), then blocks ``$REVENTLESS_TEST_DELAY``
seconds (a slow target, so a test can kill the process mid-batch)."""

from __future__ import annotations

import os
import time
from typing import Any

from reventless.aggregate import AggregateSpec, CommandContext
from reventless.plugin import Plugin
from reventless.testing.ports import Note, Noted

DELIVERIES = os.environ.get("REVENTLESS_TEST_DELIVERIES", os.devnull)
DELAY = float(os.environ.get("REVENTLESS_TEST_DELAY", "0"))


def _decide(state: int, command: Any, context: CommandContext) -> list[Any]:
    with open(DELIVERIES, "a") as log:
        log.write(f"{context.message_id} {os.getpid()} {time.time()}\n")
    if DELAY:
        time.sleep(DELAY)  # a slow target: it holds the batch open
    return [Noted(text=command.text)]


NOTES: AggregateSpec[int] = AggregateSpec(
    "notes", commands=[Note], events=[Noted], initial=0, decide=_decide, evolve=lambda s, e: s + 1
)

plugin = Plugin("burst")
plugin.aggregate(NOTES)
plugin.scheduler("burst", target=NOTES)
