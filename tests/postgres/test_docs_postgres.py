"""docs/postgres.md: its program runs as a user would run it, the URL in ``REVENTLESS_DB``, on a
database of the session's server; run twice, it finds its schema and replaces its schedule."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

from tests.docs_pages import PAGES, environment, lay_out

pytestmark = pytest.mark.anyio

PAGE = next(page for page in PAGES if page.name == "postgres.md")


async def test_the_postgres_page_program_fires_through_the_database(
    tmp_path: Path, postgres_dsn: str
) -> None:
    program = lay_out(PAGE, tmp_path)
    assert program is not None
    for _ in range(2):
        done = await anyio.run_process(
            [sys.executable, program.name],
            cwd=tmp_path,
            env=environment(REVENTLESS_DB=postgres_dsn),
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode() == "delivered a fire of report\n"
