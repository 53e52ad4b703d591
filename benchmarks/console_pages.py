"""How long the console takes to answer on a store of 10,000 schedules (no peer: a check that
paging keeps pages cheap, not a comparison). ``python benchmarks/console_pages.py [N]``.

Fills a temporary store with N schedules (default 10,000; one in a hundred paused), serves the
console with ``reventless web`` in a process of its own, and prints the median of 7 requests of
each page: the first page, a page deep in the list, a filter that scans every schedule (state
paused), a schedule's page, the week ahead (computed once a minute: the first request, then the
cached one) and ``/healthz`` (reads every schedule).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import reventless.local
from reventless import Minutes, Schedule, Scheduler
from reventless.testing import RecordingTarget
from tests.web.console_store import ConsoleProcess


async def fill(db: Path, count: int) -> None:
    async with reventless.local.provider(db) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget(), name="ops")).operations
        await ops.create_schedules(
            [
                Schedule(name=f"job-{i:05d}", rate=Minutes(1 + i % 240), payload="p")
                for i in range(count)
            ]
        )
        for i in range(0, count, 100):
            await ops.pause_schedule(f"job-{i:05d}", reason="benchmark")


def median_ms(client: httpx.Client, path: str, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        assert answer.status_code in (200, 503), (path, answer.status_code)
    return statistics.median(times)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.db"
        anyio.run(fill, db, count)
        server = ConsoleProcess(db, token=None)
        try:
            with httpx.Client(base_url=server.url, timeout=120) as client:
                began = time.perf_counter()
                client.get("/timeline")
                first_timeline = (time.perf_counter() - began) * 1000
                deep = f"/schedules?after=ops/job-{count * 3 // 4:05d}"
                for label, path in (
                    ("first page (50 rows)", "/schedules"),
                    ("a page 3/4 down the list", deep),
                    ("state=paused (scans all)", "/schedules?state=paused"),
                    ("a schedule's page", "/schedules/ops/job-00042"),
                    ("week ahead, cached", "/timeline"),
                    ("/healthz (reads all)", "/healthz"),
                ):
                    print(f"{label:28} {median_ms(client, path):8.1f} ms")
                print(f"{'week ahead, computed':28} {first_timeline:8.1f} ms (one request)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
