"""Pages a single durable create writes (an analysis, not a figure of the performance page):
``python benchmarks/pages_per_create.py [COUNT]``; with ``PYTHONPATH=TREE`` for another tree.

Each page a transaction changes is one frame of the WAL (its header and the page), so the WAL's
growth over COUNT creates, one transaction each, with 10,000 schedules stored and checkpoints
off, divided by COUNT, is the B-tree pages written per create (page splits included). Also the
median time of the store call alone (no event loop), on the file store at the durability of the
benchmarks (WAL, synchronous=NORMAL).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_engine import START, _schedules

from reventless.local._rows import PutGroup
from reventless.local._store import SqliteStore


def main(count: int) -> str:
    with tempfile.TemporaryDirectory(prefix="reventless-pages-") as folder:
        path = Path(folder) / "pages.db"
        store = SqliteStore(path)
        try:
            store.conn.execute("PRAGMA wal_autocheckpoint = 0")
            store.put_groups([PutGroup("default", _schedules(10_000, prefix="p"), START)])
            store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            page_size = int(store.conn.execute("PRAGMA page_size").fetchone()[0])
            wal = Path(f"{path}-wal")
            spent = []
            for schedule in _schedules(count):
                began = time.perf_counter()
                store.put_groups([PutGroup("default", [schedule], START)])
                spent.append(time.perf_counter() - began)
            frames = (wal.stat().st_size - 32) / (page_size + 24)  # 32: the WAL's header
        finally:
            store.close()
    return (
        f"{frames / count:.2f} pages written per create ({count:,} creates, 10,000 stored); "
        f"the store call alone: median {statistics.median(spent) * 1e6:.0f} us"
    )


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
