"""The console over HTTP: a real ``reventless web`` process on a real store with its engine
running. What it shows, what it refuses (no token, another site, a rebinding host, bad
parameters), that markup is shown escaped, and the health answers."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from urllib.parse import unquote

import anyio
import httpx
import pytest

from reventless.cli import main
from reventless.cli._open import open_store
from reventless.reaction import ReactionOperation
from tests.web.console_store import TOKEN, ConsoleProcess, Engine

BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _state(db: Path | str, name: str) -> tuple[bool, str | None, str | None]:
    async def read() -> tuple[bool, str | None, str | None]:
        async with open_store(str(db), read_only=True) as local:
            state = await local.scheduled_publisher().get("ops", name)
            return state.paused, state.pause_reason, state.paused_by

    return anyio.run(read)


def _session(client: httpx.Client) -> str:
    """Sign in with the token; the CSRF token of the session, read from a form."""
    signed = client.post("/login", data={"token": TOKEN, "back": "/schedules/ops/report"})
    assert signed.status_code == 303
    page = client.get("/schedules/ops/report").text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, "a signed-in page carries the session's CSRF token"
    return found.group(1)


def test_the_pages_list_what_the_store_holds(console: ConsoleProcess) -> None:
    with httpx.Client(base_url=console.url) as client:
        listing = client.get("/schedules", params={"scheduler": "ops", "q": "report"})
        assert listing.status_code == 200
        assert "/schedules/ops/report" in listing.text
        assert "every day at 09:00" in listing.text
        assert "/schedules/ops/broken" not in listing.text  # filtered out by the text
        first = client.get("/schedules", params={"scheduler": "ops"}).text
        assert first.count('href="/schedules/ops/') == 50  # a page
        link = re.search(r'href="(/schedules\?[^"]*after=[^"]+)"', first)
        assert link is not None
        second = client.get(link.group(1).replace("&amp;", "&")).text
        shown_first = set(re.findall(r'href="/schedules/ops/([^"]+)"', first))
        shown_second = set(re.findall(r'href="/schedules/ops/([^"]+)"', second))
        assert shown_second and not shown_first & shown_second
        paused = client.get("/schedules", params={"state": "paused"}).text
        assert "No schedule matches." in paused
        assert "billing" in client.get("/timeline").text
        svg = client.get("/timeline.svg")
        assert svg.headers["content-type"].startswith("image/svg+xml")
        assert svg.text.count("<rect") > 10
        reactions = client.get("/reactions").text
        assert "mirror" in reactions and "stopped" in reactions


def test_markup_is_shown_escaped(console: ConsoleProcess) -> None:
    page = httpx.get(f"{console.url}/schedules/ops/markup")
    assert page.status_code == 200
    assert "<script>window.__xss" not in page.text
    assert 'onmouseover="window' not in page.text
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in page.text
    assert "x" * 5000 in page.text  # the long text is there, wrapped by the page's style
    reactions = httpx.get(f"{console.url}/reactions").text
    assert "<script>window.__xss" not in reactions and "&lt;img src=x&gt;" in reactions
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


@pytest.mark.parametrize(
    "path",
    [
        "/schedules?state=bogus",
        "/schedules?scheduler=nope",
        "/schedules?q=%00",
        "/schedules?q=" + "a" * 65,
        "/schedules?after=no-slash",
        "/schedules?state=any&state=paused",
        "/schedules/ops/report?page=abc",
        "/schedules/ops/report?page=0",
        "/schedules/ops/report?page=99999999999999999999",
        "/healthz?max_late=-1",
        "/healthz?max_lag=soon",
    ],
)
def test_bad_query_parameters_get_a_400_page(console: ConsoleProcess, path: str) -> None:
    answer = httpx.get(console.url + path)
    assert answer.status_code == 400
    assert "Traceback" not in answer.text
    if not path.startswith("/healthz"):
        assert answer.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    "path", ["/schedules/ops/nope", "/schedules/ops/bad%20name", "/schedules/nope/x", "/nothing"]
)
def test_what_does_not_exist_is_a_404_page(console: ConsoleProcess, path: str) -> None:
    answer = httpx.get(console.url + path)
    assert answer.status_code == 404
    assert "Traceback" not in answer.text


def test_actions_are_refused_without_the_token(console: ConsoleProcess) -> None:
    with httpx.Client(base_url=console.url) as client:
        refused = client.post("/schedules/ops/report/pause", data={"reason": "no token"})
        assert refused.status_code == 401
        wrong = client.post("/schedules/ops/report/pause", headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401
        bad_login = client.post("/login", data={"token": "guess"})
        assert bad_login.status_code == 401
        for action in ("resume", "trigger", "backfill"):
            assert client.post(f"/schedules/ops/report/{action}").status_code == 401
        assert client.post("/redrive/ops").status_code == 401
        assert client.post("/reactions/mirror/resume").status_code == 401
    assert _state(console_db(console), "report") == (False, None, None)


def console_db(console: ConsoleProcess) -> Path | str:
    return console.db


def test_actions_are_refused_across_sites_and_without_csrf(console: ConsoleProcess) -> None:
    with httpx.Client(base_url=console.url) as client:
        csrf = _session(client)
        form = {"reason": "cross-site", "csrf": csrf}
        pause = "/schedules/ops/report/pause"
        for headers in (
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
        ):
            answer = client.post(pause, data=form, headers=headers)
            assert answer.status_code == 403, headers
        assert client.post(pause, data={"reason": "no csrf"}).status_code == 403
        assert client.post(pause, data={"reason": "bad", "csrf": "x" + csrf}).status_code == 403
        # A bearer token from another site is refused too: the origin check comes first.
        other = client.post(pause, data=form, headers={**BEARER, "Origin": "http://evil.example"})
        assert other.status_code == 403
        assert _state(console_db(console), "report") == (False, None, None)
        done = client.post(
            pause,
            data={**form, "reason": 'vendor <b>down</b> "again"', "by": "ana"},
            headers={"Sec-Fetch-Site": "same-origin", "Origin": console.url},
        )
        assert done.status_code == 303
    assert _state(console_db(console), "report") == (True, 'vendor <b>down</b> "again"', "ana")


def test_a_rebinding_host_reads_nothing(console: ConsoleProcess) -> None:
    answer = httpx.get(f"{console.url}/schedules", headers={"Host": "evil.example"})
    assert answer.status_code == 421
    assert "/schedules/ops/report" not in answer.text


def test_a_console_without_a_token_is_read_only(engine: Engine) -> None:
    server = ConsoleProcess(engine.db, token=None)
    try:
        assert httpx.get(f"{server.url}/schedules").status_code == 200
        answer = httpx.post(f"{server.url}/schedules/ops/report/pause", headers=BEARER)
        assert answer.status_code == 403
        assert "read-only" in answer.text
    finally:
        assert "Traceback" not in server.stop()


def test_actions_with_the_bearer_token_are_recorded(console: ConsoleProcess) -> None:
    with httpx.Client(base_url=console.url, headers=BEARER) as client:
        paused = client.post("/schedules/ops/broken/pause", data={"reason": "deploy", "by": "bo"})
        assert paused.status_code == 303
        refused = client.post("/schedules/ops/broken/pause", data={"reason": "x\u0007y"})
        assert refused.status_code == 400 and "reason" in refused.text
        no_reason = client.post("/schedules/ops/report/pause", data={"reason": " "})
        assert no_reason.status_code == 400 and "a reason is required" in no_reason.text
        resumed = client.post("/schedules/ops/broken/resume", data={"reason": "deployed"})
        assert resumed.status_code == 303
        history = client.get("/schedules/ops/broken").text
        assert "by bo: deploy" in history and "by console: deployed" in history
        bad_range = client.post(
            "/schedules/ops/broken/backfill", data={"start": "yesterday", "end": "now"}
        )
        assert bad_range.status_code == 400 and "start" in bad_range.text
        missing = client.post("/schedules/ops/nope/trigger")
        assert missing.status_code == 404


def _reaction(db: Path | str) -> tuple[str, list[ReactionOperation]]:
    async def read() -> tuple[str, list[ReactionOperation]]:
        async with open_store(str(db), read_only=True) as local:
            [status] = await local.reactions().statuses()
            return status.state, await local.reactions().operations("mirror")

    return anyio.run(read)


def test_resuming_a_reaction_needs_a_reason_and_is_recorded_shown_escaped(
    console: ConsoleProcess,
) -> None:
    db = console_db(console)
    with httpx.Client(base_url=console.url) as client:
        _session(client)
        form = client.get("/reactions").text
        assert re.search(
            r'<input id="resume-reason-1" name="reason" maxlength="256" required>', form
        )
        assert 'name="by" maxlength="100" value="console"' in form
        assert "No resets or resumes recorded." in form
    with httpx.Client(base_url=console.url, headers=BEARER) as client:
        for reason in ("", "   "):
            refused = client.post("/reactions/mirror/resume", data={"skip": "1", "reason": reason})
            assert refused.status_code == 400 and "a reason is required" in refused.text
        bad = client.post("/reactions/mirror/resume", data={"reason": "x\u0007y"})
        assert bad.status_code == 400 and "reason" in bad.text
        long_by = client.post("/reactions/mirror/resume", data={"reason": "ok", "by": "b" * 101})
        assert long_by.status_code == 400 and "by" in long_by.text
        assert _reaction(db) == ("stopped", [])  # nothing done, nothing recorded
        reason = '<script>window.__xss = 3</script>" poison'
        done = client.post(
            "/reactions/mirror/resume",
            data={"skip": "1", "reason": reason, "by": "<b>ana</b>"},
        )
        assert done.status_code == 303
        _wait(lambda: _reaction(db)[0] == "running")
        [operation] = _reaction(db)[1]
        assert (operation.action, operation.reason, operation.by) == ("skip", reason, "<b>ana</b>")
        assert operation.from_state == "stopped"
        assert operation.to_position > operation.from_position
        page = client.get("/reactions").text
        assert "<script>window.__xss = 3" not in page and "<b>ana" not in page
        row = re.search(r'<tr class="op-skip">.*?</tr>', page)
        assert row is not None
        assert "&lt;script&gt;window.__xss = 3&lt;/script&gt;&#34; poison" in row.group(0)
        assert "&lt;b&gt;ana&lt;/b&gt;" in row.group(0)
        assert f"{operation.from_position} &rarr; {operation.to_position}" in row.group(0)


def _health(console: ConsoleProcess) -> httpx.Response:
    return httpx.get(f"{console.url}/healthz")


def _wait(predicate: object, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("not within the time allowed")


def _check(db: Path | str, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(["check", "--db", str(db), *extra], out=out)
    return status, out.getvalue()


def test_health_names_the_stopped_reaction_then_is_ok(console: ConsoleProcess) -> None:
    db = console_db(console)
    sick = _health(console)
    assert sick.status_code == 503
    body = sick.json()
    assert body["ok"] is False
    assert [p["kind"] for p in body["problems"]] == ["reaction_stopped"]
    status, said = _check(db)
    assert status == 1
    assert said.startswith("problem: reaction mirror stopped:") and said.count("\n") == 1
    resumed = httpx.post(
        f"{console.url}/reactions/mirror/resume",
        data={"skip": "1", "reason": "poison event"},
        headers=BEARER,
    )
    assert resumed.status_code == 303
    _wait(lambda: _health(console).status_code == 200)
    assert _health(console).json()["problems"] == []
    assert _check(db) == (0, "ok\n")


def test_health_counts_new_dead_letters(console: ConsoleProcess) -> None:
    db = console_db(console)
    httpx.post(
        f"{console.url}/reactions/mirror/resume",
        data={"skip": "1", "reason": "poison event"},
        headers=BEARER,
    )
    triggered = httpx.post(f"{console.url}/schedules/ops/broken/trigger", headers=BEARER)
    assert triggered.status_code == 303
    _wait(lambda: any(p["kind"] == "dead_letters" for p in _health(console).json()["problems"]))
    status, said = _check(db, "--dead-letters", "1h")
    assert status == 1 and "new dead letters in scheduler ops" in said
    page = httpx.get(f"{console.url}/schedules/ops/broken").text
    assert "refused &lt;script&gt;" in page  # the dead letter's reason, escaped


def test_check_without_an_engine_says_so(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "app.db").start()
    engine.stop()
    status, said = _check(engine.db, "--max-late", "1h")
    assert status == 1
    assert said.startswith("problem: no engine is running:")
    status, said = _check(engine.db, "--max-late", "soon")
    assert status == 2


def test_check_refuses_a_missing_store(tmp_path: Path) -> None:
    status, _ = _check(tmp_path / "none.db")
    assert status == 2


def test_metrics_in_prometheus_text(console: ConsoleProcess) -> None:
    answer = httpx.get(f"{console.url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    lines = set(answer.text.splitlines())
    assert "reventless_health_ok 0" in lines
    assert 'reventless_health_problems{kind="reaction_stopped"} 1' in lines
    assert 'reventless_reaction_stopped{reaction="mirror"} 1' in lines
    assert 'reventless_reaction_pending_events{reaction="mirror"} 2' in lines
    lag = next(line for line in lines if line.startswith("reventless_reaction_lag_seconds{"))
    assert float(lag.rsplit(" ", 1)[1]) > 0


def test_trigger_backfill_and_redrive_record_their_reasons(console: ConsoleProcess) -> None:
    with httpx.Client(base_url=console.url, headers=BEARER) as client:
        triggered = client.post(
            "/schedules/ops/broken/trigger", data={"reason": "check the <target>", "by": "ana"}
        )
        assert triggered.status_code == 303
        _wait(lambda: "refused &lt;script&gt;" in client.get("/schedules/ops/broken").text)
        redriven = client.post(
            "/redrive/ops", data={"schedule": "broken", "reason": "target fixed", "by": "bo"}
        )
        assert redriven.status_code == 303
        page = client.get("/schedules/ops/broken").text
        assert "by ana: check the &lt;target&gt;" in page
        assert "by bo: target fixed" in page
        backfilled = client.post(
            "/schedules/ops/bulk-0000/backfill",
            data={"start": "2000-01-01T00:00Z", "end": "2000-01-01T01:00Z", "reason": "old"},
        )
        assert backfilled.status_code == 303  # nothing before its creation: 0 queued
        assert "0 fires queued" in unquote(backfilled.cookies["reventless_flash"])


def test_redrive_all_of_a_schedules_dead_letters(console: ConsoleProcess) -> None:
    with httpx.Client(base_url=console.url) as client:
        csrf = _session(client)
        for _ in range(2):
            client.post("/schedules/ops/broken/trigger", data={"csrf": csrf})
            time.sleep(1.1)  # the extra fires are a second apart: two fire ids
        _wait(
            lambda: (
                "Redrive all 2 dead letters of broken" in client.get("/schedules/ops/broken").text
            )
        )
        done = client.post(
            "/redrive/ops?back=/schedules/ops/broken",
            data={"csrf": csrf, "schedule": "broken", "reason": "all at once"},
        )
        assert done.status_code == 303 and done.headers["location"] == "/schedules/ops/broken"
        assert "2 dead letters sent again" in unquote(done.cookies["reventless_flash"])
        page = client.get("/schedules/ops/broken").text
        assert page.count("by console: all at once") == 2
        for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            away = client.post(f"/redrive/ops?back={elsewhere}", data={"csrf": csrf})
            assert away.headers["location"] == "/schedules"  # never to another site
