"""The PostgreSQL provider's tests: asyncio only (asyncpg), on the session's real server
(``postgres_server`` and ``postgres_dsn`` in ``tests/conftest.py``)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """The PostgreSQL adapter runs on asyncio only (asyncpg)."""
    return "asyncio"
