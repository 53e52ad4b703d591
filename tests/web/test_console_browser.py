"""The console in a real browser: headless Chromium (Debian's ``chromium`` package) driven by
Playwright, against a ``reventless web`` process on a store whose engine runs.

It clicks through as an operator would: list, filter (by keyboard), open a schedule, sign in,
pause with a reason, trigger and watch the fire arrive in the history without a reload, resume,
redrive a dead letter, resume a stopped reaction, look at the week ahead. No console errors.

With ``REVENTLESS_DOCS_SCREENSHOTS=1`` the screenshots go to ``docs/images/`` (the console's
docs page shows them); otherwise to the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.console_store import TOKEN, ConsoleProcess

sync_api = pytest.importorskip("playwright.sync_api")
Page = sync_api.Page
expect = sync_api.expect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"

pytestmark = pytest.mark.slow


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    if os.environ.get("REVENTLESS_DOCS_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(exist_ok=True)
        return DOCS_IMAGES
    return tmp_path


@pytest.fixture
def page(console: ConsoleProcess) -> Iterator[tuple[Page, list[str]]]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is missing: apt-get install chromium (.ci/run does)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        context = browser.new_context(base_url=console.url, viewport={"width": 1400, "height": 900})
        opened = context.new_page()
        errors: list[str] = []
        opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        opened.on("pageerror", lambda exc: errors.append(str(exc)))
        yield opened, errors
        context.close()
        browser.close()


def _shot(page: Page, folder: Path, name: str) -> None:
    path = folder / f"console-{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000


def test_an_operator_clicks_through_the_console(page: tuple[Page, list[str]], shots: Path) -> None:
    tab, errors = page
    # The list, and the keyboard: the first Tab reaches the skip link.
    tab.goto("/schedules")
    expect(tab).to_have_title(re.compile("Schedules"))
    expect(tab.locator("#schedules tbody tr")).to_have_count(50)
    _shot(tab, shots, "schedules")
    tab.keyboard.press("Tab")
    assert tab.evaluate("document.activeElement.textContent") == "Skip to content"

    # Filter through the labelled fields; Enter submits.
    tab.get_by_label("Scheduler").select_option("ops")
    tab.get_by_label("Text").fill("report")
    tab.get_by_label("Text").press("Enter")
    expect(tab.locator("#schedules tbody tr")).to_have_count(1)
    expect(tab.get_by_label("Text")).to_have_value("report")

    # Open the schedule and sign in with the operator token.
    tab.get_by_role("link", name="report", exact=True).click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("report")
    tab.get_by_role("link", name="Sign in", exact=True).click()
    tab.get_by_label("Operator token").fill(TOKEN)
    tab.get_by_label("Operator token").press("Enter")
    expect(tab.locator("#flash")).to_contain_text("signed in")

    # Pause with a reason that is markup: shown as text, recorded in the history.
    reason = 'vendor API <b>down</b> "again"'
    tab.get_by_label("Reason for pausing (required)").fill(reason)
    tab.get_by_role("button", name="Pause").click()
    expect(tab.locator("#state")).to_have_text("paused")
    expect(tab.locator("#pause-note")).to_contain_text(reason)
    expect(tab.locator("#history tr.kind-paused")).to_contain_text(f"by console: {reason}")

    # Trigger: the fire takes seconds to deliver and arrives in the history without a reload.
    tab.get_by_label("Reason for the extra fire").fill("month-end rerun")
    tab.get_by_role("button", name="Trigger now").click()
    expect(tab.locator("#flash")).to_contain_text("triggered report")
    expect(tab.locator("#history tr.kind-triggered")).to_contain_text("by console: month-end")
    assert tab.locator("#history tr.kind-fired").count() == 0
    tab.evaluate("window.__samePage = 'yes'")
    expect(tab.locator("#history tr.kind-fired")).to_have_count(1, timeout=20_000)
    assert tab.evaluate("window.__samePage") == "yes"
    _shot(tab, shots, "schedule")

    tab.get_by_label("Reason for resuming").fill("vendor back")
    tab.get_by_role("button", name="Resume").click()
    expect(tab.locator("#state")).to_have_text("active")
    expect(tab.locator("#history tr.kind-resumed")).to_contain_text("vendor back")

    # A fire that fails becomes a dead letter (live), and is redriven.
    tab.goto("/schedules/ops/broken")
    tab.get_by_role("button", name="Trigger now").click()
    letter = tab.locator("#dead-letters tbody tr", has_text="refused")
    expect(letter).to_have_count(1, timeout=20_000)
    expect(letter).to_contain_text("<script>window.__xss = 1</script>")
    tab.get_by_label(re.compile(r"^Reason for redriving broken@")).fill("target fixed")
    tab.get_by_role("button", name=re.compile(r"^Redrive broken@")).click()
    expect(tab.locator("#flash")).to_contain_text("redriven: 1 dead letters sent again")
    expect(tab.locator("#history tr.kind-redriven")).to_contain_text("by console: target fixed")

    # The markup schedule runs none of its markup.
    tab.goto("/schedules/ops/markup")
    expect(tab.locator("#payload")).to_contain_text("<script>window.__xss = 1</script>")
    assert tab.evaluate("window.__xss === undefined")

    # The stopped reaction, resumed past its poison event.
    tab.goto("/reactions")
    expect(tab.locator("#reactions")).to_contain_text("stopped")
    _shot(tab, shots, "reactions")
    tab.get_by_label("Reason for resuming mirror (required)").fill("poison event, <b>skipped</b>")
    tab.get_by_role("button", name="Skip the event and resume mirror").click()
    expect(tab.locator("#flash")).to_contain_text("reaction mirror resumes")
    expect(tab.locator("#reactions")).not_to_contain_text("stopped", timeout=20_000)
    expect(tab.locator("tr.op-skip")).to_contain_text("console")
    expect(tab.locator("tr.op-skip")).to_contain_text("poison event, <b>skipped</b>")

    tab.goto("/timeline")
    expect(tab.locator("figure.timeline svg rect").first).to_be_visible()
    _shot(tab, shots, "timeline")
    assert errors == []


def test_a_reader_without_the_token_sees_no_action(page: tuple[Page, list[str]]) -> None:
    tab, errors = page
    tab.goto("/schedules/ops/report")
    expect(tab.get_by_role("button", name="Pause")).to_have_count(0)
    expect(tab.get_by_role("link", name="Sign in", exact=True)).to_be_visible()
    tab.goto("/login")
    tab.get_by_label("Operator token").fill("a wrong token")
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.locator("#error-message")).to_have_text("wrong operator token")
    tab.goto("/schedules?state=bogus")
    expect(tab.locator("#error-message")).to_contain_text("state")
    # The error pages above answered 401 and 400: the browser logs those as console errors
    # (failed loads), and nothing else may be there.
    assert all("status of 40" in error for error in errors), errors
