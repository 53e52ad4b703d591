"""docs/performance.md is exactly what the benchmark's report makes of the committed results, so
the page cannot say anything the measurements did not."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_report() -> ModuleType:
    """benchmarks/report.py (the benchmarks folder is not a package)."""
    name = "reventless_benchmarks_report"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "report.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_the_performance_page_is_what_the_committed_results_make() -> None:
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    page = (ROOT / "docs" / "performance.md").read_text()
    assert page == load_report().page(results), (
        "docs/performance.md differs from benchmarks/results.json: "
        "run `python benchmarks/run.py --write-docs`"
    )


def test_the_page_states_every_gap_and_the_settings() -> None:
    report = load_report()
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    page = report.page(results)
    for row in report.rows(results):
        _, met = report.assess(results, row)
        if met is False:
            assert row.label.strip() in page.split("## Gaps", 1)[1].split("##", 1)[0]
    assert "journal_mode=WAL" in page and "synchronous=NORMAL" in page
    assert "shared" in page  # the machine is said to be shared
