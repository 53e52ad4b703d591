"""A schedule's own misfire policy overrides the engine's (real SQLite file, virtual clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reventless import HistoryKind, Hours, Schedule, ValidationError
from reventless.testing import RecordingTarget, VirtualClock
from tests.local.test_calendar_engine import running

pytestmark = pytest.mark.anyio
START = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)


async def test_each_schedule_follows_its_own_policy_after_downtime(tmp_path: Path) -> None:
    path = tmp_path / "own.db"
    clock = VirtualClock(START)
    schedules = [
        Schedule(name="default", rate=Hours(1), payload="p"),
        Schedule(name="every", rate=Hours(1), payload="p", misfire="all"),
        Schedule(name="none", rate=Hours(1), payload="p", misfire="skip"),
    ]
    async with running(path, clock, RecordingTarget()) as ops:
        await ops.create_schedules(schedules)
        await clock.advance(timedelta(minutes=30))
    await clock.advance(timedelta(hours=5))  # down: the 09:01 ... 13:01 fires are missed
    target = RecordingTarget()
    async with running(
        path, clock, target, misfire_policy="latest", misfire_grace=timedelta(hours=24)
    ) as ops:
        await clock.advance(timedelta(0))
        history = {s.name: await ops.history(s.name, limit=100) for s in schedules}
        stored = await ops.get_schedule("every")
    delivered = {
        name: [d.fire_id for d in target.deliveries if d.schedule == name]
        for name in ("default", "every", "none")
    }
    assert delivered["default"] == ["default@2026-11-27T13:01:00Z"]  # the engine's: latest
    assert delivered["every"] == [f"every@2026-11-27T{h:02d}:01:00Z" for h in range(9, 14)]
    assert delivered["none"] == []
    [missed] = [e for e in history["none"] if e.kind is HistoryKind.MISSED]
    assert missed.detail is not None
    assert missed.detail.endswith("not delivered under misfire policy skip")
    [missed] = [e for e in history["default"] if e.kind is HistoryKind.MISSED]
    assert missed.detail is not None
    assert missed.detail.endswith("not delivered under misfire policy latest")
    assert stored.schedule.misfire == "all"


@pytest.mark.parametrize("value", ["every", "", "ALL", 1, True])
def test_a_misfire_policy_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Schedule(name="s", rate=Hours(1), payload="p", misfire=value)  # type: ignore[arg-type]
    assert caught.value.field == "misfire"


def test_json_leaves_the_policy_out_unless_set_and_reads_it_back() -> None:
    plain = Schedule(name="s", rate=Hours(1), payload="p")
    assert b"misfire" not in plain.to_json()
    for policy in ("latest", "all", "skip"):
        own = Schedule(name="s", rate=Hours(1), payload="p", misfire=policy)  # type: ignore[arg-type]
        assert Schedule.from_json(own.to_json()) == own
    with pytest.raises(ValidationError, match="misfire"):
        Schedule.from_json(
            b'{"name":"s","rate":{"kind":"hours","n":1},"payload":"p","misfire":"never"}'
        )
