"""The EventLog conformance suite on the SQLite event log: in memory and on a file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

import reventless.local
from reventless.aggregate_adapter import EventLog
from reventless.testing.event_log_conformance import EventLogConformance, EventLogFactory


@asynccontextmanager
async def sqlite_log(path: Path | str) -> AsyncIterator[EventLog]:
    async with reventless.local.provider(path) as provider:
        yield provider.event_log()


class TestSqliteInMemory(EventLogConformance):
    @pytest.fixture
    def event_log_factory(self) -> EventLogFactory:
        return lambda: sqlite_log(":memory:")


class TestSqliteFile(EventLogConformance):
    @pytest.fixture
    def event_log_factory(self, tmp_path: Path) -> EventLogFactory:
        return lambda: sqlite_log(tmp_path / "events.db")
