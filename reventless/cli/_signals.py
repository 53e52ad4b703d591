"""SIGINT and SIGTERM for ``reventless run``: every signal leads to the same orderly stop, and
the stop is bounded.

The handlers are Python's own (``signal.signal``), installed before the event loop starts and
kept until the process exits, and they never raise. The usual ways let a repeated Ctrl-C raise
``KeyboardInterrupt`` at any point of the stop: asyncio's ``remove_signal_handler`` (as a signal
receiver closes after the first signal) puts back Python's default handler, which raises; raised
inside the event loop's own shutdown, it makes the loop close with callbacks still queued, among
them those that stop AnyIO's (non-daemon) worker threads, and ``threading._shutdown`` then waits
for an idle worker for good.

The first signal asks for a graceful stop (``on_stop``, called on the event loop's thread); the
stop has ``grace`` seconds. A further signal does not start another kind of stop: it only cuts
the time left to ``force`` seconds. When the time is up, a watchdog thread (a daemon, so it also
runs while the interpreter waits for other threads at exit) writes one line and ends the process
with ``os._exit``: the store is crash-safe (a fire or event under way is delivered again at the
next start), so ending there loses nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reventless.local import Stall

__all__ = ("StopSignals",)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The exit status when synchronous code held the event loop past the delivery timeout (see
# ``stalled``); distinct from 1 (an error reported) so that a supervisor can tell.
STALLED_STATUS = 3
# After the stop (or after the run ends with an error): how long the interpreter may take to exit.
EXIT_S = 10.0


class StopSignals:
    """The stop signals of one ``reventless run``; a context manager around the event loop."""

    def __init__(self, *, grace: float, force: float, as_json: bool) -> None:
        self.grace = grace
        self.force = force
        self.as_json = as_json
        self.received: list[int] = []
        self._deadline = float("inf")
        self._why = ""
        self._on_stop: Callable[[], None] | None = None
        self._previous: dict[int, Any] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._closed = False
        self._watchdog = threading.Thread(
            target=self._watch, name="reventless-stop-watchdog", daemon=True
        )

    @property
    def exit_status(self) -> int:
        """128 + the number of the signal that made the stop forced (or the first one)."""
        return 128 + (self.received[1] if len(self.received) > 1 else self.received[0])

    @property
    def forced(self) -> bool:
        """Whether more than one stop signal came."""
        return len(self.received) > 1

    def __enter__(self) -> StopSignals:
        # Started first: starting a thread from a signal handler could wait on a lock that the
        # interrupted code holds.
        self._watchdog.start()
        for number in SIGNALS:
            self._previous[number] = signal.signal(number, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.received:
            # The process is stopping: nothing interrupts the rest of its exit (Python leaves
            # ignored signals ignored while it finalizes), and the watchdog bounds it.
            for number in SIGNALS:
                signal.signal(number, signal.SIG_IGN)
            self._set_deadline(time.monotonic() + EXIT_S, "the process did not exit")
            return
        for restored, previous in self._previous.items():
            signal.signal(restored, previous)
        self._closed = True  # no signal: as if never installed (the watchdog ends)
        self._poke()
        self._watchdog.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def attach(self, on_stop: Callable[[], None]) -> None:
        """Call ``on_stop`` on the running asyncio loop at the first signal (at once if one
        came already)."""
        import asyncio

        loop = asyncio.get_running_loop()

        def call() -> None:
            # call_soon_threadsafe: it also wakes the loop out of its wait for I/O.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to stop
                loop.call_soon_threadsafe(on_stop)

        self._on_stop = call
        if self.received:
            call()

    def signal_name(self) -> str:
        return signal.Signals(self.received[0]).name

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        self.received.append(number)
        now = time.monotonic()
        if len(self.received) == 1:
            self._set_deadline(now + self.grace, f"the stop took longer than {self.grace:g} s")
            if self._on_stop is not None:
                self._on_stop()
        else:
            why = f"stopped {self.force:g} s after a repeated signal"
            self._set_deadline(now + self.force, why)

    def _set_deadline(self, deadline: float, why: str) -> None:
        if deadline < self._deadline:
            self._deadline, self._why = deadline, why
            self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # full: the watchdog wakes up anyway
            os.write(self._wake_w, b".")

    def _watch(self) -> None:
        while not self._closed:
            left = self._deadline - time.monotonic()
            if left <= 0:
                self._end()
            ready, _, _ = select.select([self._wake_r], [], [], min(left, 3600.0))
            if ready:
                os.read(self._wake_r, 512)

    def stalled(self, stall: Stall) -> None:
        """End the process: synchronous code held the event loop past the delivery timeout.

        Called on the stall watch's thread. Nothing on the loop can stop such code, and the
        process cannot stop without the loop: it ends here, with ``STALLED_STATUS``, for a
        supervisor to start it again; the fire under way was not recorded and is delivered again
        then (at-least-once; the store is crash-safe)."""
        message = (
            f"{stall.describe()}; ended the process (exit status {STALLED_STATUS}): synchronous "
            "code cannot be cut off; what was under way is delivered again at the next start"
        )
        self._write_and_exit("Stalled", message, STALLED_STATUS)

    def _end(self) -> None:
        message = f"interrupted: {self._why}; ended without finishing the stop"
        self._write_and_exit("Interrupted", message, self.exit_status)

    def _write_and_exit(self, kind: str, message: str, status: int) -> None:
        if self.as_json:
            line = json.dumps({"error": kind, "message": message, "exit_status": status})
        else:
            line = f"reventless: error: {message}"
        with contextlib.suppress(OSError):
            os.write(2, (line + "\n").encode())
        os._exit(status)
