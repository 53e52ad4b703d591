"""The stall watch: notices an event loop held by synchronous code, which no timeout can cut off.

Deliveries, handlers, ``decide`` and ``evolve`` run on the event loop's thread. The delivery
timeout cancels what *awaits*; code that blocks (``time.sleep``, a blocking socket, a long
computation) holds the whole loop, and nothing that runs on the loop, the timeout included, gets
a turn until it returns. So a task on the loop stamps the time every ``_BEAT_S``, and a daemon
thread looks at the stamp: once it is older than the delivery timeout plus ``MARGIN_S``, the
loop is stalled. The thread then reads the loop thread's stack to say where it is held (the
innermost frame, the fire being delivered, the aggregate and command being handled) and calls
``on_stall`` once per stall; by default that logs at ERROR (a library does not end its host's
process; ``reventless run`` passes one that ends the process, see ``reventless.cli._run``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from types import FrameType

import anyio

__all__ = ("MARGIN_S", "Stall", "StallWatch")

# Beyond the delivery timeout: a loop that did not turn for this much longer is held by code that
# does not await. Large enough that a busy machine's hiccups are not taken for a stall.
MARGIN_S = 5.0
_BEAT_S = 0.25
_log = logging.getLogger("reventless.engine")
_STDLIB = tuple(
    {os.path.realpath(sysconfig.get_paths()[key]) + os.sep for key in ("stdlib", "platstdlib")}
)


class Stall:
    """One stall: how long the loop has not turned, the limit, and where it is held."""

    __slots__ = ("held_s", "limit_s", "where")

    def __init__(self, held_s: float, limit_s: float, where: str) -> None:
        self.held_s = held_s
        self.limit_s = limit_s
        self.where = where

    def describe(self) -> str:
        return (
            f"the event loop has been held for {self.held_s:.1f} s (more than the delivery "
            f"timeout plus {MARGIN_S:g} s, {self.limit_s:g} s) by code that does not await: "
            f"{self.where}"
        )


def _log_stall(stall: Stall) -> None:
    _log.error(
        "%s; synchronous code cannot be cut off by the delivery timeout, nor stopped: fires, "
        "deliveries and the lease wait until it returns",
        stall.describe(),
    )


class StallWatch:
    """Watches the event loop it runs on while ``run`` runs; see the module's docstring."""

    def __init__(self, delivery_timeout: float, on_stall: Callable[[Stall], None] | None) -> None:
        self.limit_s = delivery_timeout + MARGIN_S
        self.on_stall = on_stall or _log_stall
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._loop_thread = threading.get_ident()

    async def run(self) -> None:
        """Stamp the time until cancelled, with the watching thread beside."""
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._stop.clear()
        thread = threading.Thread(target=self._watch, name="reventless-stall-watch", daemon=True)
        thread.start()
        try:
            while True:
                self._beat = time.monotonic()
                await anyio.sleep(_BEAT_S)
        finally:
            self._stop.set()

    def _watch(self) -> None:
        reported = None  # the beat of the stall already reported
        while not self._stop.wait(_BEAT_S):
            beat = self._beat
            held = time.monotonic() - beat
            if held <= self.limit_s or beat == reported:
                continue
            reported = beat
            try:
                self.on_stall(Stall(held, self.limit_s, where_held(self._loop_thread)))
            except Exception:  # the watch outlives a failing report  # pragma: no cover
                _log.exception("reporting a stalled event loop failed")


def where_held(thread_id: int) -> str:
    """Where the thread ``thread_id`` is: its innermost frame of the application's code, and the
    fire, aggregate and command under way when the stack shows them."""
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return "(its stack could not be read)"
    innermost = frame
    code_frame: FrameType | None = None
    context: list[str] = []
    while frame is not None:
        if code_frame is None and not _in_stdlib(frame):
            code_frame = frame
        with contextlib.suppress(Exception):  # a best effort: the location alone still helps
            context += _context(frame)
        frame = frame.f_back
    at = code_frame or innermost
    where = f"in {at.f_code.co_name} at {at.f_code.co_filename}:{at.f_lineno}"
    if at is not innermost:
        where += f" (inside {innermost.f_code.co_name} at {innermost.f_code.co_filename}:"
        where += f"{innermost.f_lineno})"
    # Outermost first: the fire, then the aggregate it drives.
    return where + "".join(f", {part}" for part in reversed(context))


def _in_stdlib(frame: FrameType) -> bool:
    return os.path.realpath(frame.f_code.co_filename).startswith(_STDLIB)


def _context(frame: FrameType) -> list[str]:
    from reventless.aggregate import Aggregate
    from reventless.local._engine import Engine
    from reventless.target import fire_id

    code = frame.f_code
    if code is Engine._deliver.__code__:
        local = frame.f_locals
        job, envelope = local.get("job"), local.get("envelope")
        if job is not None and envelope is not None:
            fire = fire_id(job.name, envelope.scheduled_time)
            return [f"delivering fire {fire} of scheduler {job.scheduler!r}"]
    elif code is Aggregate._handle.__code__:
        local = frame.f_locals
        owner, command = local.get("self"), local.get("command")
        if owner is not None:
            return [
                f"handling {type(command).__name__} on aggregate {owner.name!r} id "
                f"{local.get('aggregate_id')!r}"
            ]
    return []
