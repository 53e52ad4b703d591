"""The test server itself (``tests/postgres_server.py``): it starts again and again, cleans up
what a killed run left behind, and says why when it cannot start."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres_server import (
    PREFIX,
    PostgresServer,
    PostgresUnavailable,
    find_bin_dir,
    remove_leftovers,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder the server's user can reach (pytest's own are private to this user)."""
    folder = Path(tempfile.mkdtemp(prefix="reventless-servers-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _psql(dsn: str, sql: str) -> str:
    psql = find_bin_dir() / "psql"
    done = subprocess.run(
        [str(psql), "-XAtq", dsn, "-c", sql], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_two_servers_in_a_row_start_serve_and_leave_nothing(tmp_path: Path) -> None:
    folders = []
    for _ in range(2):
        server = PostgresServer(root=tmp_path).start()
        try:
            dsn = server.create_database()
            assert _psql(dsn, "SHOW fsync") == "off"
            assert _psql(dsn, "SELECT current_database()") == dsn.rsplit("/", 1)[1]
            assert (server.socket_dir / f".s.PGSQL.{server.port}").exists()
        finally:
            server.stop()
        folders.append(server.folder)
    assert folders[0] != folders[1]
    assert list(tmp_path.iterdir()) == []


def test_a_server_left_running_by_a_killed_run_is_stopped_and_removed(tmp_path: Path) -> None:
    # A child process starts a server and dies without stopping it (as a killed pytest would).
    script = (
        "import os, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from pathlib import Path\n"
        "from tests.postgres_server import PostgresServer\n"
        f"server = PostgresServer(root=Path({str(tmp_path)!r})).start()\n"
        "print(server.folder, server.port, flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    folder, port = out.stdout.split()
    left = Path(folder)
    postmaster = int((left / "data" / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, 0)  # still running
    # A folder of a live process (this one) is left alone; one half-made long ago is removed.
    mine = tmp_path / f"{PREFIX}mine"
    mine.mkdir()
    (mine / "owner").write_text(str(os.getpid()))
    stale = tmp_path / f"{PREFIX}stale"
    stale.mkdir()
    os.utime(stale, (0, 0))
    removed = remove_leftovers(tmp_path)
    assert sorted(removed) == sorted([left, stale])
    assert not left.exists() and mine.exists() and not stale.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(postmaster, 0)
    # The next start works where the old one was.
    server = PostgresServer(root=tmp_path).start()
    try:
        assert _psql(server.dsn(), "SELECT 1") == "1"
    finally:
        server.stop()
    assert port  # printed by the child


def test_missing_binaries_say_where_they_were_looked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REVENTLESS_PG_BIN", str(tmp_path / "nowhere"))
    with pytest.raises(PostgresUnavailable, match="apt-get install -y postgresql"):
        find_bin_dir()


def test_a_server_that_cannot_start_raises_with_its_log_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    fake.chmod(0o755)
    real = find_bin_dir()
    (fake / "initdb").symlink_to(real / "initdb")
    (fake / "pg_ctl").write_text("#!/bin/sh\necho 'could not bind' >&2\nexit 1\n")
    (fake / "pg_ctl").chmod(0o755)
    root = tmp_path / "servers"
    root.mkdir()
    with pytest.raises(PostgresUnavailable, match="could not bind"):
        PostgresServer(root=root, bin_dir=fake).start()
    assert list(root.iterdir()) == []


@pytest.mark.parametrize(
    ("skip", "outcome"),
    [("", "1 error"), ("1", "1 skipped")],
    ids=["fails-without-a-server", "skips-only-when-asked"],
)
def test_the_fixture_fails_without_a_server_unless_told_to_skip(
    tmp_path: Path, skip: str, outcome: str
) -> None:
    env = {**os.environ, "REVENTLESS_PG_BIN": str(tmp_path / "nowhere")}
    env.pop("REVENTLESS_SKIP_POSTGRES", None)
    if skip:
        env["REVENTLESS_SKIP_POSTGRES"] = skip
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "tests/postgres/test_schema_and_errors.py",
            "-k",
            "two_schemas",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert outcome in done.stdout, done.stdout[-2000:]
    if not skip:
        assert done.returncode != 0 and "did not start" in done.stdout
        assert "REVENTLESS_SKIP_POSTGRES=1" in done.stdout
