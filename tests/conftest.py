"""Test-wide settings: the hypothesis profile, the pytest-asyncio/anyio backends and the
session's PostgreSQL server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.postgres_server import PostgresServer, PostgresUnavailable

settings.register_profile(
    "default",
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)
# `python3 dev.py quick`, the edit-test loop; CI runs the default.
settings.register_profile("quick", parent=settings.get_profile("default"), max_examples=25)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Core engine tests run on both anyio backends."""
    return str(request.param)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (``tests/postgres_server.py``). A server that
    cannot start fails the tests that need it; only ``REVENTLESS_SKIP_POSTGRES=1`` (a machine
    without the server binaries, on purpose) skips them instead. CI never sets it."""
    if os.environ.get("REVENTLESS_SKIP_POSTGRES") == "1":
        pytest.skip("REVENTLESS_SKIP_POSTGRES=1: the PostgreSQL tests are skipped on purpose")
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        pytest.fail(
            f"the PostgreSQL server for the tests did not start: {exc} (set "
            "REVENTLESS_SKIP_POSTGRES=1 to skip these tests on a machine without it)",
            pytrace=False,
        )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """A new, empty database on the session's server: its postgresql:// URL."""
    return postgres_server.create_database()
