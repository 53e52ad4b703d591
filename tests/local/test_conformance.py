"""The ScheduledPublisher conformance suite on the local adapter: in memory and on a file."""

from __future__ import annotations

from pathlib import Path

import pytest

import reventless.local
from reventless.testing.conformance import ProviderFactory, ScheduledPublisherConformance


class TestLocalInMemory(ScheduledPublisherConformance):
    @pytest.fixture
    def provider_factory(self) -> ProviderFactory:
        return lambda clock: reventless.local.provider(":memory:", clock=clock)


class TestLocalFile(ScheduledPublisherConformance):
    @pytest.fixture
    def provider_factory(self, tmp_path: Path) -> ProviderFactory:
        return lambda clock: reventless.local.provider(tmp_path / "state.db", clock=clock)
