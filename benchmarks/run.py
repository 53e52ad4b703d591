"""Run every benchmark: ``python benchmarks/run.py [NAME ...] [--quick]``.

Each benchmark measures reventless beside its peers in the same process and prints medians and
ratios, because these machines are shared and absolute numbers drift from run to run.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BENCHMARKS = (
    "bench_fire_times",
    "bench_engine",
    "bench_end_to_end",
    "bench_reaction_latency",
    "bench_store_growth",
)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    chosen = [name for name in argv if not name.startswith("-")] or list(BENCHMARKS)
    failed = 0
    for name in chosen:
        module = importlib.import_module(name)
        print(f"\n===== {name} =====", flush=True)
        failed += 0 if module.main(quick=quick) else 1
    print(f"\n{len(chosen) - failed} benchmark(s) met their targets, {failed} did not")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
