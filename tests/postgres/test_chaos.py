"""Chaos, short: three ``reventless run`` processes on one database, SIGKILLed at random moments
and started again while bursts of fires fall due (``tests/pg_chaos.py``; the long run, with
minute-boundary Singles and jittered minute rates, is ``benchmarks/bench_pg_chaos.py``). Every
due fire is delivered, none is lost, none is committed twice (counted before the history's
unique index could hide a repeat); the fires a killed process had claimed are taken by another
within the bound of docs/postgres.md ("Several engines")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pg_chaos import ChaosPlan, run_chaos

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

# The docs' bound on taking a killed process's fires once the server has ended its session:
# poll_interval, plus the batches of the fires due before them (in due order) and the one in
# flight; a batch of up to 500 fires to a command topic of the same database takes a few
# seconds on a loaded two-core machine (the append lock has them one at a time).
BATCH = 500
BATCH_S = 5.0


@pytest.mark.timeout(150)
async def test_random_kills_lose_nothing_and_double_nothing(
    postgres_dsn: str, tmp_path: Path
) -> None:
    plan = ChaosPlan(
        bursts=(400, 400, 400, 400), burst_window=14.0, kill_gap=(2.0, 5.0), deadline=90, seed=23
    )
    report = await run_chaos(postgres_dsn, tmp_path, plan)
    assert report.lost == []
    assert report.doubled == []
    assert report.unexpected == []
    assert report.tracebacks == []
    assert report.delivered == report.expected == sum(plan.bursts)
    assert report.not_fired_kinds == {}  # nothing missed, retried or dead-lettered
    assert report.exits == [0, 0, 0]
    assert report.kills >= len(plan.bursts)
    # Each burst's kill lands on the process delivering it: its claimed fires went to another.
    assert report.kills_with_claims >= 1, report.summary()
    assert max(report.release_s) <= 5.0, report.summary()  # the server saw the close at once
    for retake, due in zip(report.retake_s, report.due_at_release, strict=True):
        ahead = 1 + due // BATCH  # the batch in flight and those due before
        assert retake <= report.poll_interval + ahead * BATCH_S, report.summary()
