"""The local ScheduledPublisher beyond the conformance suite (``tests/conformance``): racing
providers on one file."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import reventless.local
from reventless import HistoryKind, Hours, PutOutcome, Schedule, ScheduleExistsError, Scheduler
from reventless.testing import RecordingTarget


@pytest.mark.anyio
async def test_two_providers_creating_one_name_with_error_make_exactly_one(tmp_path: Path) -> None:
    """The existence check and the write are one transaction: racing creators cannot both win."""
    path = tmp_path / "state.db"
    outcomes: list[object] = []

    async def create(payload: str) -> None:
        async with reventless.local.provider(path) as provider:
            scheduler = await Scheduler.make(provider, target=RecordingTarget())
            for index in range(20):
                schedule = Schedule(name=f"job-{index}", rate=Hours(1), payload=payload)
                try:
                    outcomes.append(
                        await scheduler.operations.create_schedule(schedule, if_exists="error")
                    )
                except ScheduleExistsError as exc:
                    outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(create, "first")
        tg.start_soon(create, "second")
    created = [o for o in outcomes if o is PutOutcome.CREATED]
    refused = [o for o in outcomes if isinstance(o, ScheduleExistsError)]
    assert len(created) == 20 and len(refused) == 20
    async with reventless.local.provider(path) as provider:
        scheduler = await Scheduler.make(provider, target=RecordingTarget())
        for index in range(20):
            history = await scheduler.operations.history(f"job-{index}")
            assert [entry.kind for entry in history] == [HistoryKind.CREATED]
