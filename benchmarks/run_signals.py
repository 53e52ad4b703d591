"""Repeated stop signals to ``reventless run``, as many times as asked: ``python
benchmarks/run_signals.py [TRIES] [SEED]`` (default 60 tries).

Each try starts ``reventless run tests.signal_app`` on a fresh store (twenty schedules fire at
once, each delivery takes 3 s in an AnyIO worker thread), waits until the plugin is imported (the
stop signals' handlers are in place) and then a random 0-5 s (start-up, deliveries under way, or
idle after them), and sends SIGINT or SIGTERM 2, 3 or 12 times at random gaps of 0-0.3 s. A try
passes when the process exits within 10 s of the second signal, prints no traceback, and exits
with 128 + the signal's number, or with 0 after a graceful stop ("stopped", nothing on stderr)
that was over before the second signal came (counted apart). Prints one line per try and a
summary; exit status 1 if any try failed.
"""

from __future__ import annotations

import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_cli_run_signals import BOUND_S, signal_and_wait, start, wait_for


def main() -> int:
    tries = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 21)
    failed = graceful_stops = 0
    took_all = []
    for n in range(tries):
        sig = rng.choice([signal.SIGINT, signal.SIGTERM])
        count = rng.choice([2, 3, 12])
        delay = rng.uniform(0, 5)
        with tempfile.TemporaryDirectory() as folder:
            process = start(Path(folder))
            wait_for(Path(folder) / "mark", process)
            time.sleep(delay)
            status, out, err, took = signal_and_wait(process, sig, count, rng)
        graceful = status == 0 and err == "" and out.endswith("stopped\n")
        ok = (status == 128 + sig or graceful) and took < BOUND_S and "Traceback" not in err
        graceful_stops += graceful
        failed += not ok
        took_all.append(took)
        name = signal.Signals(sig).name
        print(
            f"{n:3} {name} x{count:<2} after {delay:.2f}s: status {status}, exit {took:.2f}s "
            f"after the second signal{'' if ok else ' FAILED: ' + err.strip()[-300:]}",
            flush=True,
        )
    print(
        f"{tries - failed}/{tries} passed ({graceful_stops} graceful stops over before the "
        f"second signal); slowest exit {max(took_all):.2f}s after the second signal"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
