"""Jitter: a fire delivered within its window at a delay derived from its fire id."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reventless import Daily, HistoryKind, Schedule, ValidationError, aws_schedule_fields
from reventless.fire_times import jitter_of
from reventless.target import FireEnvelope, fire_id
from reventless.testing import VirtualClock
from tests.local.test_calendar_engine import running

pytestmark = pytest.mark.anyio
START = datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC)


class TimedTarget:
    """Records each delivery with the engine clock's time."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.deliveries: list[tuple[str, datetime]] = []

    async def deliver(self, envelope: FireEnvelope) -> None:
        self.deliveries.append((envelope.fire_id, self.clock.now()))


def expected_delay(name: str, instant: datetime, minutes: int) -> timedelta:
    """The rule, written out from the fire id: SHA-256, first 8 bytes, modulo the seconds."""
    digest = hashlib.sha256(fire_id(name, instant).encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % (minutes * 60))


@given(
    st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=30),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.replace(second=0, microsecond=0, tzinfo=UTC)
    ),
    st.integers(1, 1440),
)
def test_the_delay_is_derived_from_the_fire_id_and_lies_in_the_window(
    name: str, instant: datetime, minutes: int
) -> None:
    schedule = Schedule(name=name, rate=Daily(9, 0), payload="p", jitter_minutes=minutes)
    delay = jitter_of(schedule, instant)
    assert delay == expected_delay(name, instant, minutes)
    assert timedelta(0) <= delay < timedelta(minutes=minutes)


def test_no_jitter_is_no_delay_and_the_field_is_checked() -> None:
    plain = Schedule(name="s", rate=Daily(9, 0), payload="p")
    assert jitter_of(plain, START) == timedelta(0)
    assert b"jitter" not in plain.to_json()
    jittered = Schedule(name="s", rate=Daily(9, 0), payload="p", jitter_minutes=15)
    assert jittered.to_json().endswith(b',"jitter_minutes":15}')
    assert Schedule.from_json(jittered.to_json()) == jittered
    for bad in (0, 1441, True, 2.5):
        with pytest.raises(ValidationError) as caught:
            Schedule(name="s", rate=Daily(9, 0), payload="p", jitter_minutes=bad)  # type: ignore[arg-type]
        assert caught.value.field == "jitter_minutes"


def test_aws_gets_a_flexible_time_window() -> None:
    jittered = Schedule(name="s", rate=Daily(9, 0), payload="p", jitter_minutes=15)
    fields = aws_schedule_fields(jittered, created_at=START)
    assert fields.flexible_time_window == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15}
    plain = aws_schedule_fields(Schedule(name="s", rate=Daily(9, 0), payload="p"), created_at=START)
    assert plain.flexible_time_window == {"Mode": "OFF"}


async def test_the_engine_delivers_at_the_derived_delay_with_the_nominal_fire_id(
    tmp_path: Path,
) -> None:
    clock = VirtualClock(START)
    target = TimedTarget(clock)
    names = [f"tenant-{n}" for n in range(5)]
    async with running(tmp_path / "j.db", clock, target) as ops:  # type: ignore[arg-type]
        for name in names:
            schedule = Schedule(name=name, rate=Daily(9, 0), payload="p", jitter_minutes=30)
            await ops.create_schedule(schedule)
        await clock.advance(timedelta(days=2))
        history = await ops.history("tenant-0")
    nine = [datetime(2026, 11, 27, 9, tzinfo=UTC), datetime(2026, 11, 28, 9, tzinfo=UTC)]
    expected = sorted(
        (fire_id(name, instant), instant + expected_delay(name, instant, 30))
        for name in names
        for instant in nine
    )
    got = sorted(target.deliveries)
    assert [fid for fid, _ in got] == [fid for fid, _ in expected]
    for (_, delivered), (_, due) in zip(got, expected, strict=True):
        # Delivered when due: the engine wakes on whole seconds.
        assert due <= delivered < due + timedelta(seconds=2)
    assert len({delivered for _, delivered in got}) > 1  # spread, not all at 09:00
    fired = [e for e in history if e.kind is HistoryKind.FIRED]
    assert [e.fire_id for e in fired] == [fire_id("tenant-0", instant) for instant in nine]


async def test_a_restart_delivers_at_the_same_moment(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    clock = VirtualClock(START)
    schedule = Schedule(name="tenant-x", rate=Daily(9, 0), payload="p", jitter_minutes=60)
    nominal = datetime(2026, 11, 27, 9, tzinfo=UTC)
    due = nominal + expected_delay("tenant-x", nominal, 60)
    async with running(path, clock, TimedTarget(clock)) as ops:  # type: ignore[arg-type]
        await ops.create_schedule(schedule)
        await clock.advance(nominal - START)  # 09:00: nominally due, jitter still ahead
    target = TimedTarget(clock)
    async with running(path, clock, target):  # type: ignore[arg-type]
        await clock.advance(timedelta(hours=2))
    [(fid, delivered)] = [d for d in target.deliveries if d[0].endswith("27T09:00:00Z")]
    assert fid == "tenant-x@2026-11-27T09:00:00Z"
    assert due <= delivered < due + timedelta(seconds=2)
