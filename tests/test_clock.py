"""The clocks (``reventless.clock``) at the ends of the datetime range."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from reventless.clock import ScaledClock
from reventless.errors import ValidationError


def test_a_scaled_clock_run_past_the_last_datetime_says_so_by_name() -> None:
    clock = ScaledClock(1e7, start=datetime.max.replace(tzinfo=UTC) - timedelta(seconds=1))
    time.sleep(0.01)  # 100,000 simulated seconds
    with pytest.raises(ValidationError, match=r"has run past 9999-12-31.*start it earlier"):
        clock.now()


def test_a_scaled_clock_reads_its_start_and_runs_on() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = ScaledClock(3600, start=start)
    assert start <= clock.now() < start + timedelta(days=30)
