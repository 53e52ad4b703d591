"""Turn the benchmarks' JSON into the console table and ``docs/performance.md``.

Standard library only, and a pure function of the JSON: a test renders the page from the
committed ``benchmarks/results.json`` and checks that ``docs/performance.md`` is exactly that, so
the page never says anything the measurements did not.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIDES = {
    "ours": "reventless",
    "before": "before",
    "aps3": "APS 3.11",
    "aps4": "APS 4.0a6",
    "croniter": "croniter",
    "cronsim": "cronsim",
}
WALL_CASES = ("Daily(9, 0) UTC", "Daily(9, 0) Europe/Berlin", "Weekdays(17, 0) Europe/Berlin")
INTERVAL_CASES = ("Minutes(5) UTC",)
CALENDAR_CASES = (
    "Monthly(-1, 18, 0) Europe/Berlin",
    "NthWeekday(2, 1, 9, 0) Europe/Berlin",
    "Cron(0 9 ? * 3#2 *) Europe/Berlin",
    "Cron(*/15 9-17 * * 1-5) Europe/Berlin",
)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each number over the runs; other values from the first run. A run that
    failed makes the whole side an error (no median of fewer runs)."""
    failed = [run["error"] for run in runs if "error" in run]
    if failed:
        return {"error": failed[0]}
    return _median(runs)


def _median(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, dict):
        return {key: _median([value[key] for value in values]) for key in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return statistics.median(values)
    return first


@dataclass(frozen=True)
class Target:
    """``at_least`` or ``at_most`` ``value``: of the figure itself, or of its ratio to
    ``reference`` (benchmark, side, key) when that is set."""

    at_least: bool
    value: float
    reference: tuple[str, str, tuple[str, ...]] | None = None

    def text(self) -> str:
        sign = ">=" if self.at_least else "<="
        if self.reference is None:
            return f"{sign} {_number(self.value)}"
        benchmark, side, _ = self.reference
        what = SIDES[side] + (" single adds" if benchmark == "single_create" else "")
        return f"{sign} {self.value:g}x {what}"


@dataclass(frozen=True)
class Row:
    label: str
    unit: str
    benchmark: str
    key: tuple[str, ...]
    peers: tuple[str, ...] = ()
    target: Target | None = None


def rows(results: dict[str, Any]) -> list[Row]:
    sizes = results.get("sizes", {})

    def size(key: str) -> str:
        return _count(sizes.get(key, 0))

    def vs_aps3(benchmark: str, key: tuple[str, ...], factor: float, at_least: bool) -> Target:
        return Target(at_least, factor, (benchmark, "aps3", key))

    table: list[Row] = []
    for benchmark, what, peers in (
        ("next_fire_single", "next fire after an instant", ("aps3", "croniter", "cronsim")),
        ("next_fire_batch", "consecutive fires", ("aps3", "aps4", "croniter", "cronsim")),
    ):
        unit = "calls/s" if benchmark == "next_fire_single" else "fires/s"
        for case in WALL_CASES + INTERVAL_CASES:
            factor = 4.0 if case in WALL_CASES else 1.5
            table.append(
                Row(
                    f"{what}: {case}",
                    unit,
                    benchmark,
                    (case,),
                    peers,
                    vs_aps3(benchmark, (case,), factor, True),
                )
            )
    for case in CALENDAR_CASES:
        # Issue 25: at least 4x both APScheduler 3's CronTrigger and croniter.
        for peer, label, peers in (
            ("aps3", f"next fire after an instant: {case}", ("aps3", "croniter", "cronsim")),
            ("croniter", "  the same, against croniter", ("croniter",)),
        ):
            table.append(
                Row(
                    label,
                    "calls/s",
                    "next_fire_calendar",
                    (case,),
                    peers,
                    Target(True, 4.0, ("next_fire_calendar", peer, (case,))),
                )
            )
    table += [
        Row(
            f"durable create, one at a time ({size('prefill')} stored)",
            "creates/s",
            "single_create",
            ("rate",),
            ("aps3", "aps4"),
            vs_aps3("single_create", ("rate",), 2.5, True),
        ),
        Row(
            f"{sizes.get('tasks', 0)} tasks creating concurrently",
            "creates/s",
            "concurrent_create",
            ("rate",),
            ("aps3", "aps4"),
            vs_aps3("single_create", ("rate",), 10.0, True),
        ),
        Row(
            "batch create (10k a batch), first batches",
            "creates/s",
            "batch_create",
            ("first",),
            target=Target(True, 50_000),
        ),
        Row(
            f"batch create, last batches (to {size('batch_total')} stored)",
            "creates/s",
            "batch_create",
            ("last",),
            target=Target(True, 50_000),
        ),
        Row(
            f"RSS per schedule, engine running, {size('big')} stored",
            "bytes",
            "startup_big",
            ("bytes_per_schedule",),
            target=Target(False, 120),
        ),
        Row(
            f"start-up peak RSS over steady state, {size('big')} stored",
            "x",
            "startup_big",
            ("peak_over_steady",),
            target=Target(False, 1.3),
        ),
        Row(
            f"longest event-loop stall loading {size('big')} at start-up",
            "ms",
            "startup_big",
            ("stall_ms",),
            target=Target(False, 50),
        ),
        Row(f"start-up time, {size('big')} stored", "s", "startup_big", ("start_s",)),
        Row(
            f"RSS per schedule, {size('memory')} stored (peers: in memory)",
            "bytes",
            "memory",
            ("bytes_per_schedule",),
            ("aps3", "aps4"),
        ),
        Row(
            f"RSS per schedule, {size('memory')} created while the engine runs",
            "bytes",
            "created_while_running",
            ("bytes_per_schedule",),
        ),
        Row(
            f"burst of {size('burst')} due at once (peers: in memory)",
            "fires/s",
            "burst",
            ("fires_per_s",),
            ("aps3", "aps4"),
            vs_aps3("burst", ("fires_per_s",), 2.0, True),
        ),
        Row(
            "  CPU per fire in the burst",
            "us",
            "burst",
            ("cpu_us_per_fire",),
            ("aps3", "aps4"),
            vs_aps3("burst", ("cpu_us_per_fire",), 0.5, False),
        ),
        Row(
            "  longest event-loop stall in the burst",
            "ms",
            "burst",
            ("stall_ms",),
            ("aps3", "aps4"),
            Target(False, 50),
        ),
        Row(
            "  longest garbage-collector pause in the burst",
            "ms",
            "burst",
            ("gc_ms",),
            ("aps3", "aps4"),
        ),
        Row(
            f"longest stall catching up a day down, {size('catch_up')} schedules",
            "ms",
            "catch_up",
            ("stall_ms",),
            target=Target(False, 50),
        ),
        Row(f"  time to catch up ({size('catch_up')} fires)", "s", "catch_up", ("seconds",)),
        Row("  longest garbage-collector pause catching up", "ms", "catch_up", ("gc_ms",)),
        Row(
            f"end to end, {sizes.get('aggregates', 0):,} aggregates",
            "commands/s",
            "end_to_end",
            ("commands_per_s",),
            target=Target(True, 10_000),
        ),
        Row("  commands lost end to end", "", "end_to_end", ("lost",), target=Target(False, 0)),
    ]
    return table


def figure(results: dict[str, Any], benchmark: str, side: str, key: tuple[str, ...]) -> Any:
    """A median figure; None when it was not measured, the error text when it failed."""
    value: Any = results.get("benchmarks", {}).get(benchmark, {}).get("median", {}).get(side)
    if isinstance(value, dict) and "error" in value:
        return str(value["error"])
    for part in key:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def assess(results: dict[str, Any], row: Row) -> tuple[float | None, bool | None]:
    """(the ratio the target is about, or None; whether the target is met, or None)."""
    ours = figure(results, row.benchmark, "ours", row.key)
    target = row.target
    if ours is None:
        return None, None  # not measured in this run
    if not isinstance(ours, (int, float)):
        return None, None if target is None else False
    ratio = None
    if target is not None and target.reference is not None:
        peer = figure(results, *target.reference)
        if not isinstance(peer, (int, float)) or not peer:
            return None, False
        ratio = round_ratio(results, row.benchmark, row.key, target.reference) or ours / peer
    elif row.peers:
        peer = figure(results, row.benchmark, row.peers[0], row.key)
        if isinstance(peer, (int, float)) and peer:
            ratio = ours / peer
    if target is None:
        return ratio, None
    value = ours if target.reference is None else ratio
    assert value is not None
    met = value >= target.value if target.at_least else value <= target.value
    return ratio, met


def round_ratio(
    results: dict[str, Any],
    benchmark: str,
    key: tuple[str, ...],
    reference: tuple[str, str, tuple[str, ...]],
) -> float | None:
    """The median over the rounds of ours / the peer in the same round, when the peer is in
    the same benchmark: the two ran one after the other, so a spell of load from the rest of a
    shared machine weighs on both. None when that cannot be had."""
    peer_benchmark, side, peer_key = reference
    raw = results.get("benchmarks", {}).get(benchmark, {}).get("raw", {})
    if peer_benchmark != benchmark or "ours" not in raw or side not in raw:
        return None
    ratios = []
    for ours_run, peer_run in zip(raw["ours"], raw[side], strict=False):
        mine, theirs = _dig(ours_run, key), _dig(peer_run, peer_key)
        if isinstance(mine, (int, float)) and isinstance(theirs, (int, float)) and theirs:
            ratios.append(mine / theirs)
    return statistics.median(ratios) if ratios else None


def _dig(value: Any, key: tuple[str, ...]) -> Any:
    for part in key:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def all_met(results: dict[str, Any]) -> bool:
    return all(assess(results, row)[1] is not False for row in rows(results))


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return "error"
    if isinstance(value, int) or abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:.2f}"


def _count(value: int) -> str:
    if value >= 1_000_000 and value % 1_000_000 == 0:
        return f"{value // 1_000_000}M"
    if value >= 1000 and value % 1000 == 0:
        return f"{value // 1000}k"
    return f"{value:,}"


def _columns(results: dict[str, Any], before: bool) -> list[str]:
    sides = ["ours"] + (["before"] if before and results.get("baseline") else [])
    return [*sides, "aps3", "aps4", "croniter", "cronsim"]


def table_cells(results: dict[str, Any], *, before: bool = True) -> list[list[str]]:
    """Header and one list of cells per row: figure, unit, sides..., ratio, target, met.
    ``before``: with the column of an earlier reventless (``run.py --baseline``), if measured."""
    columns = _columns(results, before)
    header = ["figure", "unit"] + [SIDES[side] for side in columns] + ["ratio", "target", ""]
    lines = [header]
    for row in rows(results):
        cells = [row.label, row.unit]
        for side in columns:
            shown = side in ("ours", "before") or side in row.peers
            cells.append(_number(figure(results, row.benchmark, side, row.key)) if shown else "")
        ratio, met = assess(results, row)
        cells.append("" if ratio is None else f"{ratio:.2f}x")
        cells.append("" if row.target is None else row.target.text())
        cells.append({True: "met", False: "NOT MET", None: ""}[met])
        lines.append(cells)
    return lines


def console(results: dict[str, Any]) -> str:
    if not results.get("benchmarks"):
        return "no results yet"
    lines = table_cells(results)
    widths = [max(len(line[index]) for line in lines) for index in range(len(lines[0]))]
    out = []
    for line in lines:
        cells = [
            cell.ljust(width) if index in (0, 1) else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    out.append(
        "(medians of 3 fresh processes per side, 5 for next fire; ratio: reventless / the peer "
        "its target names, round by round, else the first peer shown)"
    )
    errors = _errors(results)
    out += [f"error: {text}" for text in errors]
    return "\n".join(out)


def _errors(results: dict[str, Any]) -> list[str]:
    found = []
    for name, benchmark in results.get("benchmarks", {}).items():
        for side, value in benchmark.get("median", {}).items():
            if isinstance(value, dict) and "error" in value:
                found.append(f"{name} / {SIDES.get(side, side)}: {value['error']}")
    return found


def _markdown_table(lines: list[list[str]]) -> str:
    header, *body = lines
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for cells in body:
        escaped = [cell.replace("|", "\\|") for cell in cells]
        escaped[-1] = {"NOT MET": "**not met**"}.get(escaped[-1], escaped[-1])
        out.append("| " + " | ".join(escaped) + " |")
    return "\n".join(out)


def _settings(results: dict[str, Any]) -> list[str]:
    lines = []
    for side in ("ours", "aps3", "aps4"):
        found = figure(results, "single_create", side, ("settings",))
        if isinstance(found, dict):
            text = ", ".join(f"{key}={value}" for key, value in sorted(found.items()))
            lines.append(f"- {SIDES[side]}: {text} (read back with PRAGMA from its connection)")
    return lines


def _gaps(results: dict[str, Any]) -> list[str]:
    gaps = []
    for row in rows(results):
        ratio, met = assess(results, row)
        if met is False and row.target is not None:
            ours = _number(figure(results, row.benchmark, "ours", row.key))
            shown = (
                f"{ours} {row.unit}".rstrip()
                if ratio is None or row.target.reference is None
                else f"{ratio:.2f}x"
            )
            why = WHY_SHORT.get(row.benchmark)
            gaps.append(
                f"- {row.label.strip()}: {shown}, target {row.target.text()}"
                + (f". {why}." if why else "")
            )
    return gaps


# What holds a figure back, by benchmark, shown with a target not met (from profiles of the
# code measured: `benchmarks/` has no other source for these words).
WHY_SHORT = {
    "single_create": (
        "A create is one SQLite transaction of four statements that writes four B-tree pages "
        "(the row, its name index, the history row and its index; six until schema version 2 "
        "dropped the change counter). The store call (the statements, the first fire, the "
        "encoding, the history text) is still about 60% of a create; most of the rest is the "
        "event loop's part: the group commit's turn of the loop, in which concurrent creates "
        "join the transaction, and the scheduler's checks"
    ),
    "batch_create": (
        "Per row, SQLite's inserts into four B-trees (the row, its name index, the history row "
        "and its index) take about half the time; preparing the rows (first fire, encoding, "
        "history text) most of the rest. The target is absolute: on a machine shared with "
        "other work the figure moves with the load"
    ),
    "end_to_end": (
        "Each command costs about 85-90 us of the event loop thread's CPU (decoding the "
        "payload, the aggregate's lock, decide, encoding, the append's group commit, "
        "publishing, the fire's bookkeeping) and about 45-50 us of the store thread's "
        "(`cpu_split.py end_to_end`, quiet machine), and the two threads mostly take turns: "
        "some 130-140 us of CPU per command, about 7,000-7,500 commands/s. The target is "
        "absolute: on a machine shared with other work the figure moves with the load"
    ),
    "concurrent_create": (
        "The 100 tasks' creates go in group commits of about 100; each flush is one "
        "transaction in the store's thread (first fire, encoding, four B-tree inserts, the "
        "history text a row), while the event loop, its creates all waiting, has nothing to "
        "do: the two threads take turns rather than overlap"
    ),
    "burst": (
        "Per fire the event loop's thread spends more than twice the store thread's CPU (the "
        "row from the due batch, the misfire plan, the envelope and its fire id, the delivery "
        "by a worker, the outcome for the group commit; the store thread reads the due rows "
        "and records the fire and the Single's completion: `cpu_split.py burst`). The store "
        "thread reads the next batch's rows while the loop plans this one, so the loop's own "
        "part bounds the rate; APScheduler 3.11's in-memory burst writes nothing"
    ),
    "catch_up": (
        "The garbage collector's longest pause (the row below) is part of it: a full "
        "collection runs between two turns of the loop, however short the engine's steps. "
        "The target is absolute: on a machine shared with other work the figure moves with "
        "the load"
    ),
}


def _dst(results: dict[str, Any]) -> list[str]:
    counts = results.get("benchmarks", {}).get("dst_disagreements", {}).get("median", {})
    counts = counts.get("ours", {})
    if not isinstance(counts, dict) or not counts or "error" in counts:
        return []
    peers = sorted({peer for row in counts.values() for peer in row})
    lines = [
        "| case | " + " | ".join(SIDES[peer] for peer in peers) + " |",
        "|---|" + "---|" * len(peers),
    ]
    for case, row in sorted(counts.items()):  # as the JSON file has them (sorted keys)
        lines.append(f"| {case} | " + " | ".join(f"{row[peer]:,}" for peer in peers) + " |")
    return lines


PAGE_INTRO = """\
# Performance

Every figure below was measured in one run on one machine, beside its peers: APScheduler 3.11,
APScheduler 4.0.0a6 where it has the feature, croniter (one iterator, reused) and cronsim. The
ratios are what this page stands behind; absolute numbers move with the machine. The page is
written by `benchmarks/run.py --write-docs` from `benchmarks/results.json`, and a test checks that
it is exactly what that file makes, so it cannot drift from what the code measured.

The PostgreSQL provider's figures (fires/s with one to three engines, creates, lateness at a
steady rate, failover, chaos with killed processes) come from benchmarks of their own, against a
real server, beside APScheduler 4, PgQueuer and procrastinate on the same server: see
[Running on PostgreSQL](postgres.md#figures).
"""

METHOD = """\
## How it is measured

- Each side of each benchmark runs in a fresh process; the sides take turns, three rounds (five
  for next fire); each figure is the median of the rounds.
- Writes are compared at equal durability: SQLite in WAL mode with `synchronous=NORMAL` on every
  side, read back with `PRAGMA` from the connection that writes (see Settings).
- Memory is resident set size (RSS) of the process, measured before and after, with the engine
  running and SQLite's page cache included; not tracemalloc.
- A burst is timed from the moment firing starts until the last fire is delivered and recorded:
  for reventless, from the virtual clock reaching the due minute; for APScheduler, from resuming
  (3.11) or starting (4) the scheduler after the jobs' run time passed. Adding the jobs is not
  counted on either side. reventless writes each fire to its SQLite file; APScheduler's burst uses
  its in-memory store, which persists nothing. APScheduler 4.0.0a6 fires fewer (the note under
  the table says how many): its memory store slows down with the number of schedules due.
- CPU per fire is process CPU time (all threads) over the firing window, divided by the fires.
- Stalls: the longest gap seen by a task that sleeps 1 ms in a loop on the same event loop.
- next fire: calls per second of CPU time (a pure function waits for nothing, so CPU time
  leaves out the rest of the machine's load), the fastest of fifteen passes in each process, for
  every side alike; "after an instant" asks for
  the first fire after each of many random instants
  (reventless `next_fire_after`, APScheduler 3.11 `get_next_fire_time(None, t)`, croniter's one
  iterator moved with `set_current`, cronsim one `CronSim` per instant; APScheduler 4 cannot
  answer this). "Consecutive fires" walks fires forward from a start (reventless `fire_times`, the
  peers' iterators; APScheduler 3.11 `get_next_fire_time(prev, prev)`, 4.0 `next()`).
  `Minutes(5)` is an interval: APScheduler's peer is its `IntervalTrigger`, cron's is `*/5`.

The durability settings can be checked on any store; journal mode is kept in the file:

```pycon
>>> import os, sqlite3, tempfile
>>> import anyio
>>> import reventless.local
>>> async def journal_mode(path):
...     async with reventless.local.provider(path):
...         pass
...     with sqlite3.connect(path) as raw:
...         return raw.execute("PRAGMA journal_mode").fetchone()[0]
>>> anyio.run(journal_mode, os.path.join(tempfile.mkdtemp(), "state.db"))
'wal'

```
"""


def page(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    versions = results.get("versions", {})
    parts = [PAGE_INTRO]
    parts.append(
        f"Measured {results.get('when', '?')} on {machine.get('cpu', '?')}, "
        f"{machine.get('cores', '?')} cores, {machine.get('system', '?')}, Python "
        f"{machine.get('python', '?')}. The machine is shared: other work ran on it at the "
        "same time, which is why only ratios from one run are compared."
        + (" This was a --quick run (small sizes)." if results.get("quick") else "")
        + "\n"
    )
    parts.append("## The figures\n")
    parts.append(_markdown_table(table_cells(results, before=False)) + "\n")
    sizes = results.get("sizes", {})
    aps4_burst = sizes.get("aps4_burst", sizes.get("burst", 0))
    parts.append(
        "Ratio: reventless divided by the peer its target names, round by round (each round "
        "runs the sides one after the other), the median over the rounds; for rows without a "
        "target, the medians divided, by the first peer shown. A target met or not is judged on "
        "that ratio, or on the figure itself where the target is absolute."
        + (
            f" APScheduler 4's burst is {aps4_burst:,} fires, not "
            f"{sizes.get('burst', 0):,}: its figures are per fire all the same."
            if aps4_burst < sizes.get("burst", 0)
            else ""
        )
        + "\n"
    )
    gaps = _gaps(results)
    parts.append("## Gaps\n")
    parts.append(
        ("Targets not met in this run:\n\n" + "\n".join(gaps) + "\n")
        if gaps
        else "Every target was met in this run.\n"
    )
    parts.append("## Settings\n")
    parts.append("\n".join(_settings(results)) + "\n")
    if versions:
        parts.append(
            "Versions: "
            + ", ".join(f"{key} {value}" for key, value in sorted(versions.items()))
            + ".\n"
        )
    dst = _dst(results)
    if dst:
        parts.append("## Where the peers disagree across DST changes\n")
        parts.append(
            "Answers that differ from reventless's on random instants within two days of a DST "
            "change (2000-2035). reventless follows its contract (a wall time in a gap is skipped "
            "that day, a repeated one fires once, at its first occurrence), which the test suite "
            "checks against a brute-force oracle; the peers follow other rules.\n"
        )
        parts.append("\n".join(dst) + "\n")
    parts.append(METHOD)
    parts.append(
        "## Reproduce\n\n"
        "```text\n"
        "nox -s bench                                 # or: python3 dev.py bench\n"
        "python benchmarks/run.py --quick             # small sizes, a few minutes\n"
        "python benchmarks/run.py --only burst        # one benchmark, merged into the results\n"
        "python benchmarks/run.py --full --write-docs # everything, then this page\n"
        "python benchmarks/run.py --write-docs        # this page from benchmarks/results.json\n"
        "python benchmarks/cpu_split.py burst         # CPU per fire by thread (see Gaps)\n"
        "python benchmarks/cpu_split.py end_to_end    # CPU per command by thread\n"
        "python benchmarks/pages_per_create.py        # B-tree pages a single create writes\n"
        "```\n\n"
        f"This page: `{results.get('command', 'python benchmarks/run.py')}`. APScheduler 4 runs "
        "from its own virtual environment (`benchmarks/.venv-aps4`), which the runner makes "
        "when it is missing.\n"
    )
    return "\n".join(parts)


def write_page(results: dict[str, Any], path: Path) -> None:
    path.write_text(page(results))


def installed_versions() -> dict[str, str]:
    """Versions of what a side imports (called in each side's interpreter)."""
    import sqlite3
    from importlib import metadata

    found = {"SQLite": sqlite3.sqlite_version}
    for name in ("APScheduler", "croniter", "cronsim", "SQLAlchemy", "anyio", "msgspec"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
