"""The console over HTTP on a PostgreSQL store: ``reventless web --db postgresql://...`` as a
process of its own, the store's engine running on the same database in this process.

The important tests of test_console_http.py run here again, unchanged, on the fixtures below
(the same store, made by the PostgreSQL provider); the URL carries a password, which no page,
no output of the command and no error may show."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from reventless.cli import main
from tests.web import test_console_http as http
from tests.web.console_store import ConsoleProcess, Engine

PASSWORD = "s3cret-pw"


def _with_password(dsn: str) -> str:
    """The test server trusts local connections, so the password is checked by nobody; it is
    in every string the command is given."""
    assert dsn.startswith("postgresql://postgres@")
    return dsn.replace("postgres@", f"postgres:{PASSWORD}@", 1)


@pytest.fixture
def engine(postgres_dsn: str) -> Iterator[Engine]:
    running = Engine(_with_password(postgres_dsn)).start()
    yield running
    running.stop()


@pytest.fixture
def console(engine: Engine) -> Iterator[ConsoleProcess]:
    server = ConsoleProcess(engine.db)
    yield server
    err = server.stop()
    assert "Traceback" not in err, err
    assert PASSWORD not in err + server.out
    # The banner names the store, without its password.
    assert f"({str(engine.db).replace(':' + PASSWORD, '')}; " in server.out, server.out


test_the_pages_list_what_the_store_holds = http.test_the_pages_list_what_the_store_holds
test_markup_is_shown_escaped = http.test_markup_is_shown_escaped
test_actions_are_refused_without_the_token = http.test_actions_are_refused_without_the_token
test_actions_are_refused_across_sites_and_without_csrf = (
    http.test_actions_are_refused_across_sites_and_without_csrf
)
test_a_console_without_a_token_is_read_only = http.test_a_console_without_a_token_is_read_only
test_actions_with_the_bearer_token_are_recorded = (
    http.test_actions_with_the_bearer_token_are_recorded
)
test_health_names_the_stopped_reaction_then_is_ok = (
    http.test_health_names_the_stopped_reaction_then_is_ok
)
test_health_counts_new_dead_letters = http.test_health_counts_new_dead_letters
test_metrics_in_prometheus_text = http.test_metrics_in_prometheus_text
test_trigger_backfill_and_redrive_record_their_reasons = (
    http.test_trigger_backfill_and_redrive_record_their_reasons
)


def test_bad_parameters_and_missing_pages_get_4xx_pages(console: ConsoleProcess) -> None:
    for path, status in [
        ("/schedules?state=bogus", 400),
        ("/schedules?scheduler=nope", 400),
        ("/schedules?after=no-slash", 400),
        ("/schedules/ops/report?page=99999999999999999999", 400),
        ("/healthz?max_lag=soon", 400),
        ("/schedules/ops/nope", 404),
        ("/schedules/nope/x", 404),
    ]:
        answer = httpx.get(console.url + path)
        assert answer.status_code == status, path
        assert "Traceback" not in answer.text


def test_no_page_shows_the_password(console: ConsoleProcess) -> None:
    with httpx.Client(base_url=console.url, headers=http.BEARER) as client:
        for path in ("/", "/schedules", "/schedules/ops/broken", "/reactions", "/timeline"):
            page = client.get(path, follow_redirects=True)
            assert page.status_code == 200, path
            assert PASSWORD not in page.text
        assert PASSWORD not in client.get("/healthz").text + client.get("/metrics").text


def _check(db: str, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(["check", "--db", db, *extra], out=out), out.getvalue()


def test_check_on_postgres_names_a_missing_engine_in_one_line(
    postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = Engine(_with_password(postgres_dsn)).start()
    status, said = _check(str(engine.db), "--max-late", "1h", "--json")
    document = json.loads(said)
    # The engine runs (its heartbeat is in the engines table): the one problem is the reaction.
    assert status == 1 and [p["kind"] for p in document["problems"]] == ["reaction_stopped"]
    assert document["not_available"] == []  # PostgreSQL can tell all that the check asks
    engine.stop()  # a graceful stop takes the engine's row away
    status, said = _check(str(engine.db), "--max-late", "1h")
    assert status == 1
    assert said.startswith("problem: no engine is running:") and said.count("\n") == 1
    assert _check(str(engine.db), "--max-late", "soon")[0] == 2
    assert PASSWORD not in said + capsys.readouterr().err


class _Proxy:
    """A TCP relay on loopback to ``port``: the console's way to the server, cut by
    ``cut()`` (its listener and every relayed connection closed: the server is gone)."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # cut
            server = socket.create_connection(("127.0.0.1", self._target))
            with self._lock:
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        # shutdown wakes the thread blocked in accept (close alone would not, on Linux).
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for relayed in self._sockets:
                with contextlib.suppress(OSError):
                    relayed.shutdown(socket.SHUT_RDWR)
                relayed.close()


def test_a_store_out_of_reach_gets_503_answers_never_a_traceback(engine: Engine) -> None:
    """The server lost while the console runs: pages and actions answer 503 with the typed
    error, /healthz says so in JSON (503), /metrics fails its scrape (503); nothing in the
    console's log but what it says, and never the password."""
    url = urlsplit(str(engine.db))
    assert url.port is not None
    proxy = _Proxy(url.port)
    console = ConsoleProcess(str(engine.db).replace(f":{url.port}/", f":{proxy.port}/"))
    try:
        assert httpx.get(console.url + "/schedules").status_code == 200
        proxy.cut()
        page = httpx.get(console.url + "/schedules")
        assert page.status_code == 503 and "connection to the server failed" in page.text
        health = httpx.get(console.url + "/healthz")
        assert health.status_code == 503
        assert [p["kind"] for p in health.json()["problems"]] == ["store_unreachable"]
        assert httpx.get(console.url + "/metrics").status_code == 503
        for answer in (page, health):
            assert PASSWORD not in answer.text
    finally:
        err = console.stop()
    assert "Traceback" not in err, err
    assert PASSWORD not in err + console.out
