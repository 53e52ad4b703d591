"""A real engine process for the crash and lease tests (run as a script, not collected).

It runs the local engine on a SQLite file under a ScaledClock that all processes of one test
share (simulated time = T0 + (real now - R0) x speed), and appends every delivery to a log file
as "<fire id> <pid> <unix time>" lines. SIGTERM stops it gracefully.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from datetime import datetime, timedelta

import anyio

import reventless.local
from reventless import Daily, Hours, Minutes, Schedule, Scheduler, Single, Weekdays
from reventless.clock import ScaledClock
from reventless.target import FireEnvelope


def crash_schedules(start: datetime) -> list[Schedule]:
    once = start + timedelta(hours=4)
    return [
        Schedule(name="every-minute", rate=Minutes(1), payload="m1"),
        Schedule(name="every-7-minutes", rate=Minutes(7), payload="m7", timezone="Europe/Berlin"),
        Schedule(name="hourly", rate=Hours(1), payload="h1"),
        Schedule(name="nightly-berlin", rate=Daily(2, 30), payload="d", timezone="Europe/Berlin"),
        Schedule(name="weekdays-ny", rate=Weekdays(9, 0), payload="w", timezone="America/New_York"),
        Schedule(
            name="once",
            rate=Single(once.year, once.month, once.day, once.hour, once.minute),
            payload="s",
        ),
    ]


class LogTarget:
    """Appends each delivery to a file with one write(2) on an O_APPEND descriptor."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.pid = os.getpid()

    async def deliver(self, envelope: FireEnvelope) -> None:
        os.write(self.fd, f"{envelope.fire_id} {self.pid} {time.time():.6f}\n".encode())


async def main(args: argparse.Namespace) -> None:
    t0 = datetime.fromisoformat(args.t0)
    start = t0 + timedelta(seconds=(time.time() - args.r0) * args.speed)
    clock = ScaledClock(args.speed, start=start)
    async with reventless.local.provider(
        args.db,
        clock=clock,
        misfire_policy="all",
        misfire_grace=timedelta(days=30),
        lease_ttl=args.lease_ttl,
        delivery_timeout=args.delivery_timeout,
        poll_interval=0.1,
    ) as provider:
        scheduler = await Scheduler.make(provider, target=LogTarget(args.log))
        if args.create:
            await scheduler.operations.create_schedules(crash_schedules(t0))
        if args.create_extra:
            await scheduler.operations.create_schedule(
                Schedule(name=args.create_extra, rate=Minutes(2), payload="x")
            )
        print("ready", flush=True)
        async with anyio.create_task_group() as group:
            group.start_soon(provider.run)
            with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    group.cancel_scope.cancel()
                    break


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("log")
    parser.add_argument("--t0", required=True)
    parser.add_argument("--r0", type=float, required=True)
    parser.add_argument("--speed", type=float, required=True)
    parser.add_argument("--lease-ttl", type=float, default=20.0)
    # A standby takes over after lease_ttl + delivery_timeout + 1 s (the lease's fence).
    parser.add_argument("--delivery-timeout", type=float, default=0.5)
    parser.add_argument("--create", action="store_true")
    parser.add_argument("--create-extra")
    anyio.run(main, parser.parse_args())
