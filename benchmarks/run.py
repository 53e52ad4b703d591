"""Run the benchmarks: ``python benchmarks/run.py [--quick] [--only NAME ...] [options]``.

Every figure is measured beside its peers in the same run: each side of each benchmark runs in
a fresh process (reventless, APScheduler 3.11, APScheduler 4.0.0a6, croniter, cronsim), the sides
take turns, and each figure is the median of three such processes. The results go to a JSON file
(``benchmarks/results.json`` by default), from which the table is printed and, with
``--write-docs``, ``docs/performance.md`` is written.

Options:

- ``--quick``: small sizes, for a quick look (the published page comes from a full run).
- ``--only NAME ...``: these benchmarks only (names as printed by ``--list``), merged into the
  existing results file.
- ``--baseline DIR``: also run reventless's side from the source tree in DIR (for example an
  export of an earlier commit), as a "before" column.
- ``--json PATH``: where the results go (default ``benchmarks/results.json``).
- ``--write-docs``: regenerate ``docs/performance.md`` from the results file. Alone (or with
  ``--json``) it measures nothing; with ``--full`` it measures everything first.
- ``--full``: measure every benchmark (what a bare ``run.py`` does), for use with
  ``--write-docs``.

APScheduler 4 cannot share an environment with 3.11; it runs from its own virtual environment,
``benchmarks/.venv-aps4`` (or ``$REVENTLESS_APS4_VENV``), made here with pip when missing.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import report  # noqa: E402 - the benchmarks folder is not a package

RESULTS = BENCH / "results.json"
APS4_REQUIREMENTS = (
    "apscheduler==4.0.0a6",
    "sqlalchemy[asyncio]>=2.0",
    "aiosqlite>=0.20",
    # Its SQLAlchemy data store on PostgreSQL (bench_pg_engine.py).
    "asyncpg>=0.30",
    # APScheduler 4.0.0a6 imports it without declaring it.
    "sniffio>=1.3",
)
ROUNDS = 3
# Passes of each next-fire measurement in a process; the fastest counts (see _common). These
# pure functions are quick to measure and their speed on a shared machine swings by up to two
# between processes (the neighbours' load), so they get more rounds.
PASSES = 15
NEXT_FIRE_ROUNDS = 5
APS4_BURST = 5000
# Sizes of the full run and of --quick.
FULL = {
    "starts": 5000,
    "walks": 10,
    "walk": 1000,
    "prefill": 10_000,
    "singles": 1000,
    "tasks": 100,
    "per_task": 50,
    "batch_total": 1_000_000,
    "big": 1_000_000,
    "memory": 100_000,
    "burst": 100_000,
    "catch_up": 100_000,
    "aggregates": 1000,
    "minutes": 10,
    "dst": 20_000,
}
QUICK = {
    "starts": 2000,
    "walks": 4,
    "walk": 500,
    "prefill": 2000,
    "singles": 300,
    "tasks": 100,
    "per_task": 10,
    "batch_total": 100_000,
    "big": 100_000,
    "memory": 20_000,
    "burst": 20_000,
    "catch_up": 20_000,
    "aggregates": 1000,
    "minutes": 4,
    "dst": 2000,
}


@dataclass
class Benchmark:
    """One benchmark: which function measures each side, and its arguments for a size table."""

    name: str
    sides: dict[str, tuple[str, str]]
    arguments: Callable[[dict[str, int], Path], dict[str, Any]]
    rounds: int = ROUNDS
    # A store of this many schedules (a key of the size table), made once and untimed, copied
    # for reventless's side of each round.
    prepared: str | None = None
    # Sides given the path of a fresh store file (reventless's "before" side as "ours").
    paths: frozenset[str] = frozenset()
    # Arguments that differ for one side: side -> (size table -> arguments to replace).
    overrides: dict[str, Callable[[dict[str, int]], dict[str, Any]]] = field(default_factory=dict)


def _path(arguments: Callable[[dict[str, int]], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    return lambda sizes, folder: arguments(sizes)


BENCHMARKS: list[Benchmark] = [
    Benchmark(
        "next_fire_single",
        {
            "ours": ("bench_fire_times", "single"),
            "aps3": ("peers_aps3", "aps3_single"),
            "croniter": ("peers_aps3", "croniter_single"),
            "cronsim": ("peers_aps3", "cronsim_single"),
        },
        _path(lambda s: {"count": s["starts"], "repeats": PASSES}),
        rounds=NEXT_FIRE_ROUNDS,
    ),
    Benchmark(
        "next_fire_calendar",
        {
            "ours": ("bench_fire_times", "calendar"),
            "aps3": ("peers_aps3", "aps3_calendar"),
            "croniter": ("peers_aps3", "croniter_calendar"),
            "cronsim": ("peers_aps3", "cronsim_calendar"),
        },
        _path(lambda s: {"count": s["starts"], "repeats": PASSES}),
        rounds=NEXT_FIRE_ROUNDS,
    ),
    Benchmark(
        "next_fire_batch",
        {
            "ours": ("bench_fire_times", "batch"),
            "aps3": ("peers_aps3", "aps3_batch"),
            "aps4": ("peers_aps4", "aps4_batch"),
            "croniter": ("peers_aps3", "croniter_batch"),
            "cronsim": ("peers_aps3", "cronsim_batch"),
        },
        _path(lambda s: {"count": s["walks"], "length": s["walk"], "repeats": PASSES}),
        rounds=NEXT_FIRE_ROUNDS,
    ),
    Benchmark(
        "dst_disagreements",
        {"ours": ("bench_fire_times", "dst")},
        _path(lambda s: {"count": s["dst"]}),
        rounds=1,
    ),
    Benchmark(
        "single_create",
        {
            "ours": ("bench_engine", "creates"),
            "aps3": ("peers_aps3", "aps3_creates"),
            "aps4": ("peers_aps4", "aps4_creates"),
        },
        _path(lambda s: {"prefill": s["prefill"], "count": s["singles"], "rounds": 3}),
        paths=frozenset({"ours", "aps3", "aps4"}),
    ),
    Benchmark(
        "concurrent_create",
        {
            "ours": ("bench_engine", "concurrent_creates"),
            "aps3": ("peers_aps3", "aps3_concurrent_creates"),
            "aps4": ("peers_aps4", "aps4_concurrent_creates"),
        },
        _path(lambda s: {"tasks": s["tasks"], "per_task": s["per_task"]}),
        paths=frozenset({"ours", "aps3", "aps4"}),
    ),
    Benchmark(
        "batch_create",
        {"ours": ("bench_engine", "batch_creates")},
        _path(lambda s: {"total": s["batch_total"]}),
        paths=frozenset({"ours"}),
    ),
    Benchmark(
        "startup_big",
        {"ours": ("bench_engine", "startup")},
        _path(lambda s: {"count": s["big"]}),
        prepared="big",
    ),
    Benchmark(
        "memory",
        {
            "ours": ("bench_engine", "startup"),
            "aps3": ("peers_aps3", "aps3_memory"),
            "aps4": ("peers_aps4", "aps4_memory"),
        },
        _path(lambda s: {"count": s["memory"]}),
        prepared="memory",
    ),
    Benchmark(
        "created_while_running",
        {"ours": ("bench_engine", "created_while_running")},
        _path(lambda s: {"count": s["memory"]}),
        paths=frozenset({"ours"}),
    ),
    Benchmark(
        "burst",
        {
            "ours": ("bench_engine", "burst"),
            "aps3": ("peers_aps3", "aps3_burst"),
            "aps4": ("peers_aps4", "aps4_burst"),
        },
        _path(lambda s: {"count": s["burst"]}),
        paths=frozenset({"ours"}),
        # APScheduler 4's memory store slows down with the number due (10k: 50 s): fewer.
        overrides={"aps4": lambda s: {"count": min(s["burst"], APS4_BURST)}},
    ),
    Benchmark(
        "catch_up",
        {"ours": ("bench_engine", "catch_up")},
        _path(lambda s: {"count": s["catch_up"]}),
        paths=frozenset({"ours"}),
    ),
    Benchmark(
        "end_to_end",
        {"ours": ("bench_end_to_end", "end_to_end")},
        _path(lambda s: {"aggregates": s["aggregates"], "minutes": s["minutes"]}),
        paths=frozenset({"ours"}),
    ),
]


@dataclass
class Interpreters:
    """Which Python runs which side, and with which source tree for reventless."""

    ours: str = sys.executable
    before: str | None = None  # a source tree to run reventless's side from, as "before"
    aps4: str | None = None
    errors: dict[str, str] = field(default_factory=dict)

    def command(self, side: str) -> tuple[str, dict[str, str]] | None:
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        env.pop("PYTHONPATH", None)
        if side == "ours":
            env["PYTHONPATH"] = str(ROOT)
        elif side == "before":
            assert self.before is not None
            env["PYTHONPATH"] = self.before
        if side == "aps4":
            return None if self.aps4 is None else (self.aps4, env)
        return self.ours, env


def aps4_python() -> str:
    """The interpreter of APScheduler 4's environment; made (pip install) when missing."""
    venv = Path(os.environ.get("REVENTLESS_APS4_VENV", BENCH / ".venv-aps4"))
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    stamp = venv / ".reventless-requirements"
    wanted = "\n".join(APS4_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    print(f"making {venv} for APScheduler 4 ({', '.join(APS4_REQUIREMENTS)})", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *APS4_REQUIREMENTS,
        ],
        check=True,
    )
    stamp.write_text(wanted)
    return str(python)


def run_side(
    interpreters: Interpreters, side: str, module: str, function: str, kwargs: dict[str, Any]
) -> dict[str, Any]:
    found = interpreters.command(side)
    if found is None:
        return {"error": interpreters.errors.get(side, "not available")}
    python, env = found
    done = subprocess.run(
        [python, str(BENCH / "worker.py"), module, function, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(BENCH),
        timeout=3600,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit status {done.returncode}"}
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def _sides(benchmark: Benchmark, interpreters: Interpreters) -> list[str]:
    sides = list(benchmark.sides)
    if interpreters.before is not None and "ours" in sides:
        sides.insert(1, "before")
    return sides


def run_benchmark(
    benchmark: Benchmark, sizes: dict[str, int], interpreters: Interpreters, folder: Path
) -> dict[str, Any]:
    """Each side ``rounds`` times, the sides taking turns; the median of each figure."""
    kwargs = benchmark.arguments(sizes, folder)
    prepared: Path | None = None
    if benchmark.prepared is not None:
        prepared = folder / f"prepared-{benchmark.prepared}.db"
        if not prepared.exists():
            made = run_side(
                interpreters,
                "ours",
                "bench_engine",
                "prepare_store",
                {"path": str(prepared), "total": sizes[benchmark.prepared]},
            )
            if "error" in made:
                raise RuntimeError(f"preparing {prepared.name}: {made['error']}")
    raw: dict[str, list[dict[str, Any]]] = {side: [] for side in _sides(benchmark, interpreters)}
    for round_number in range(benchmark.rounds):
        for side in raw:
            module, function = benchmark.sides["ours" if side == "before" else side]
            arguments = dict(kwargs)
            if side in benchmark.overrides:
                arguments.update(benchmark.overrides[side](sizes))
            store = folder / f"{benchmark.name}-{side}.db"
            as_side = "ours" if side == "before" else side
            if prepared is not None and as_side == "ours":
                shutil.copyfile(prepared, store)
                arguments["path"] = str(store)
            elif as_side in benchmark.paths:
                arguments["path"] = str(store)
            began = time.perf_counter()
            result = run_side(interpreters, side, module, function, arguments)
            print(
                f"  {benchmark.name:<22} round {round_number + 1} {side:<9} "
                f"{time.perf_counter() - began:6.1f} s  {_brief(result)}",
                flush=True,
            )
            raw[side].append(result)
            for leftover in folder.glob(f"{benchmark.name}-*"):
                leftover.unlink()
    return {
        "raw": raw,
        "median": {side: report.median_of(runs) for side, runs in raw.items()},
        "rounds": benchmark.rounds,
    }


def _brief(result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR " + str(result["error"])[:200]
    text = json.dumps(result)
    return text if len(text) < 160 else text[:157] + "..."


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def versions(interpreters: Interpreters) -> dict[str, str]:
    found = run_side(interpreters, "ours", "report", "installed_versions", {})
    if interpreters.aps4 is not None:
        aps4 = run_side(interpreters, "aps4", "report", "installed_versions", {})
        found["APScheduler 4"] = aps4.get("APScheduler", "?")
    return {key: str(value) for key, value in found.items()}


def main(argv: list[str]) -> int:
    args = list(argv)
    quick = _flag(args, "--quick")
    write_docs = _flag(args, "--write-docs")
    full = _flag(args, "--full")
    path = Path(_option(args, "--json") or RESULTS)
    baseline = _option(args, "--baseline")
    if _flag(args, "--list"):
        print("\n".join(benchmark.name for benchmark in BENCHMARKS))
        return 0
    only = set(_options(args, "--only")) or {benchmark.name for benchmark in BENCHMARKS}
    if args:
        print(f"unknown arguments: {' '.join(args)}\n\n{__doc__}", file=sys.stderr)
        return 2
    measuring = full or quick or baseline is not None or "--only" in argv or not write_docs
    results = json.loads(path.read_text()) if path.exists() else {}
    if measuring:
        results = measure(results, only, quick, baseline, argv)
        path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(f"\nresults: {path}")
    print()
    print(report.console(results))
    if write_docs:
        report.write_page(results, ROOT / "docs" / "performance.md")
        print(f"wrote {ROOT / 'docs' / 'performance.md'}")
    return 0 if not measuring or report.all_met(results) else 1


def measure(
    results: dict[str, Any], only: set[str], quick: bool, baseline: str | None, argv: list[str]
) -> dict[str, Any]:
    interpreters = Interpreters(before=baseline)
    if any("aps4" in b.sides for b in BENCHMARKS if b.name in only):
        try:
            interpreters.aps4 = aps4_python()
        except (OSError, subprocess.CalledProcessError) as exc:
            interpreters.errors["aps4"] = f"could not make its environment: {exc}"
            print(interpreters.errors["aps4"], file=sys.stderr)
    sizes = QUICK if quick else FULL
    benchmarks = results.get("benchmarks", {}) if results.get("quick") == quick else {}
    with tempfile.TemporaryDirectory(prefix="reventless-bench-") as folder:
        for benchmark in BENCHMARKS:
            if benchmark.name in only:
                print(f"{benchmark.name}", flush=True)
                benchmarks[benchmark.name] = run_benchmark(
                    benchmark, sizes, interpreters, Path(folder)
                )
    return {
        "benchmarks": benchmarks,
        "quick": quick,
        "sizes": {**sizes, "aps4_burst": min(sizes["burst"], APS4_BURST)},
        "rounds": ROUNDS,
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": versions(interpreters),
        "baseline": baseline is not None,
        "command": "python benchmarks/run.py " + " ".join(argv),
    }


def _flag(args: list[str], name: str) -> bool:
    if name in args:
        args.remove(name)
        return True
    return False


def _option(args: list[str], name: str) -> str | None:
    if name not in args:
        return None
    index = args.index(name)
    value = args[index + 1]
    del args[index : index + 2]
    return value


def _options(args: list[str], name: str) -> list[str]:
    if name not in args:
        return []
    index = args.index(name)
    values = []
    while index + 1 < len(args) and not args[index + 1].startswith("--"):
        values.append(args.pop(index + 1))
    args.pop(index)
    return values


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
