"""A real PostgreSQL server for the tests and the benchmarks, started from the machine's server
binaries (Debian: ``/usr/lib/postgresql/<version>/bin``) in a temporary folder.

The server listens on a free loopback port and on a unix socket in its folder, runs with fsync
off (a test's data need not survive a power loss) and trusts local connections. ``initdb``
refuses to run as root: as root, the folder is handed to the ``postgres`` user and every server
command runs as that user (``runuser``).

Each folder records the process that started it (``owner``): a folder left by a process that
died without stopping its server (a killed pytest) is cleaned up, server and all, by the next
start, and never one of another process that is still running.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ("PostgresServer", "PostgresUnavailable", "find_bin_dir", "remove_leftovers")

PREFIX = "reventless-pg-"
SUPERUSER = "postgres"
START_TIMEOUT = 60.0


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing or the server did not start; the message says why."""


def find_bin_dir() -> Path:
    """The newest server binaries on this machine (``REVENTLESS_PG_BIN`` overrides)."""
    override = os.environ.get("REVENTLESS_PG_BIN")
    if override:
        candidates = [override]
    else:
        candidates = sorted(
            (str(Path(p).parent) for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
            key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0,
        )
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (looked for /usr/lib/postgresql/*/bin/initdb; set "
        "REVENTLESS_PG_BIN, or install them: apt-get install -y postgresql)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SUPERUSER, "--", *command]


def _run(command: list[str], what: str, *, as_server_user: bool = True) -> None:
    if as_server_user:
        command = _as_server_user(command)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=START_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise PostgresUnavailable(
            f"{what} failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        )


def remove_leftovers(root: Path | None = None) -> list[Path]:
    """Stop and remove the folders of servers whose starting process is gone; the removed ones."""
    removed: list[Path] = []
    base = Path(root or tempfile.gettempdir())
    for folder in base.glob(f"{PREFIX}*"):
        try:
            owner = int((folder / "owner").read_text())
        except (OSError, ValueError):
            # No owner yet: a folder being made right now, or one of a start that failed before
            # it wrote one; only an old one is removed.
            if time.time() - folder.stat().st_mtime < 3600:
                continue
            owner = -1
        if owner > 0 and _alive(owner):
            continue
        pid_file = folder / "data" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError):
            postmaster = int(pid_file.read_text().split()[0])
            if _alive(postmaster):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(postmaster, signal.SIGQUIT)  # immediate shutdown
                for _ in range(100):
                    if not _alive(postmaster):
                        break
                    time.sleep(0.05)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


@dataclass
class PostgresServer:
    """One server: ``start()`` it, ``dsn(database)`` to connect, ``create_database()`` per
    test, ``stop()`` (also removes its folder)."""

    root: Path | None = None
    bin_dir: Path = field(default_factory=find_bin_dir)
    # Tests run without flushing to disk (fast); a benchmark of durable writes sets this.
    durable: bool = False
    folder: Path = field(init=False, default=Path())
    port: int = field(init=False, default=0)
    _databases: int = field(init=False, default=0)

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    @property
    def log_file(self) -> Path:
        return self.folder / "server.log"

    def start(self) -> PostgresServer:
        remove_leftovers(self.root)
        self.folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.root))
        (self.folder / "owner").write_text(str(os.getpid()))
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            account = pwd.getpwnam(SUPERUSER)
            for path in (self.folder, self.socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        data = self.folder / "data"
        _run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            "initdb",
        )
        last: PostgresUnavailable | None = None
        for _ in range(3):  # the free port may be taken between the probe and the start
            self.port = _free_port()
            try:
                self.resume()
                return self
            except PostgresUnavailable as exc:
                last = exc
        log = self.log_file.read_text() if self.log_file.exists() else ""
        self.stop()
        raise PostgresUnavailable(f"{last}; server log:\n{log[-2000:]}")

    def halt(self, mode: str = "immediate") -> None:
        """Stop the server and keep its data: ``immediate`` (as a crash: no checkpoint,
        clients cut off) or ``fast`` (clients' transactions rolled back, then a clean stop);
        ``resume()`` starts it again on the same port."""
        _run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-m",
                mode,
                "-w",
                "stop",
            ],
            "pg_ctl stop",
        )

    def resume(self) -> None:
        """Start the server of this folder on its port (after ``halt()``, or at ``start()``)."""
        flush = "on" if self.durable else "off"
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
            f" -c fsync={flush} -c synchronous_commit={flush} -c full_page_writes={flush}"
            " -c max_connections=200"
        )
        _run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                str(int(START_TIMEOUT)),
                "start",
            ],
            "pg_ctl start",
        )

    def stop(self) -> None:
        data = self.folder / "data"
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(PostgresUnavailable, subprocess.TimeoutExpired):
                _run(
                    [
                        str(self.bin_dir / "pg_ctl"),
                        "-D",
                        str(data),
                        "-m",
                        "immediate",
                        "-w",
                        "stop",
                    ],
                    "pg_ctl stop",
                )
        shutil.rmtree(self.folder, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; its DSN."""
        self._databases += 1
        name = f"test_{os.getpid()}_{self._databases}"
        _run(
            [
                str(self.bin_dir / "createdb"),
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                name,
            ],
            "createdb",
            as_server_user=False,  # a client: it connects as the server's superuser (trust)
        )
        return self.dsn(name)
