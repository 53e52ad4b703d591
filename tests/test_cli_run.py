"""``reventless run``: the plugin is found from the current directory, failures to load it say
what happened and where, and the deployment options reach the engine."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reventless import RetryPolicy
from reventless.cli import main
from reventless.cli._run import provider_options

WORKTREE = Path(__file__).resolve().parent.parent

ALERTS = """
import time
from datetime import datetime, timezone
from reventless import Schedule, Single
from reventless.plugin import Plugin

# real clock: a Single due this minute, declared within it whatever the time of day
now = datetime.now(timezone.utc)
if now.second >= 55:  # the Single below must still be in this minute when it is declared
    time.sleep(61 - now.second)
    now = datetime.now(timezone.utc)  # real clock: as above
plugin = Plugin("alerting")
plugin.event_topic("alerts")
plugin.scheduler("alerts", target="alerts", schedules=[
    Schedule(name="now", rate=Single(now.year, now.month, now.day, now.hour, now.minute),
             payload="disk full"),
])


@plugin.on_start
async def page_someone(running):
    async def pager_down(message):
        raise RuntimeError("pager down")

    running.event_topics["alerts"].subscribe(pager_down)
"""


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder the test runs in; modules imported from it are forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_the_plugin_is_imported_from_the_current_directory(
    app_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (app_dir / "billing_app.py").write_text("VALUE = 1\n")
    assert run("run", "billing_app:VALUE", "--db", "x.db")[0] == 2
    assert "billing_app:VALUE is not a reventless.Plugin object" in capsys.readouterr().err  # found
    assert sys.path[0] == str(app_dir)


@pytest.mark.parametrize(
    ("source", "spec", "says"),
    [
        (None, "billng:plugin", "no module named 'billng' in the current directory ({dir})"),
        (
            "import not_installed_package_zz\n",
            "app_a:plugin",
            "importing 'app_a' failed at {dir}/app_a.py:1: ModuleNotFoundError: No module named "
            "'not_installed_package_zz'",
        ),
        (
            "x = 1\nraise RuntimeError('BILLING_URL is not set')\n",
            "app_b:plugin",
            "importing 'app_b' failed at {dir}/app_b.py:2: RuntimeError: BILLING_URL is not set",
        ),
        (
            "def broken(:\n    pass\n",
            "app_c:plugin",
            "importing 'app_c' failed at {dir}/app_c.py:1: SyntaxError: invalid syntax",
        ),
        (
            "from reventless.plugin import Plugin\nshop = Plugin('shop')\nbilling = Plugin('b')\n",
            "app_d:shopp",
            "module 'app_d' has no 'shopp' (did you mean 'shop'?); its Plugin objects: billing, "
            "shop",
        ),
        (
            "from reventless.plugin import Plugin\nplugin = Plugin('shop')\nnumber = 3\n",
            "app_e:number",
            "app_e:number is not a reventless.Plugin object but one of type int; the Plugin "
            "objects in app_e: plugin",
        ),
        ("plugin = None\n", "app_f:a-b", "MODULE:PLUGIN 'app_f:a-b' is not allowed"),
    ],
)
def test_each_way_of_failing_to_load_a_plugin_says_what_and_where(
    app_dir: Path,
    source: str | None,
    spec: str,
    says: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if source is not None:
        (app_dir / f"{spec.split(':')[0]}.py").write_text(source)
    status, _ = run("run", spec, "--db", "x.db")
    err = capsys.readouterr().err
    assert err.startswith(f"reventless: error: {says.format(dir=app_dir)}"), err
    assert status == (1 if "failed at" in says else 2)
    assert not (app_dir / "x.db").exists()
    run("run", spec, "--db", "x.db", "--json")
    document = json.loads(capsys.readouterr().err)
    if "failed at" in says:
        assert document["error"] == "PluginError"
        assert document["where"].startswith(str(app_dir))
        assert document["exception"] in says


def test_a_plugin_failing_as_it_starts_is_reported_with_where(
    app_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (app_dir / "hooked.py").write_text(
        "from reventless.plugin import Plugin\n"
        "plugin = Plugin('hooked')\n"
        "@plugin.on_start\n"
        "async def load_users(running):\n"
        "    raise KeyError('users.csv')\n"
    )
    assert run("run", "hooked", "--db", "h.db") == (1, "")
    assert capsys.readouterr().err == (
        f"reventless: error: plugin 'hooked' failed at {app_dir}/hooked.py:5: KeyError: "
        "'users.csv'\n"
    )


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--misfire", "lates", "--misfire 'lates' is not allowed (did you mean 'latest'?)"),
        ("--misfire-grace", "31d", "--misfire-grace '31d' is not allowed; expected a duration"),
        ("--misfire-grace", "soon", "--misfire-grace 'soon'"),
        ("--workers", "0", "--workers 0 is not allowed; expected a whole number from 1 to 1,024"),
        ("--workers", "2.5", "--workers '2.5'"),
        ("--max-attempts", "186", "--max-attempts 186"),
        ("--max-event-age", "59s", "from 1m to 1d"),
        ("--delivery-timeout", "0", "--delivery-timeout '0'"),
        ("--lease-ttl", "2h", "--lease-ttl '2h'"),
        ("--log-level", "loud", "--log-level 'loud' is not allowed"),
    ],
)
def test_every_run_option_is_checked_under_its_own_name(
    app_dir: Path, option: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("run", "nothing_here_zz", "--db", "x.db", option, value) == (2, "")
    assert says in capsys.readouterr().err
    assert not (app_dir / "x.db").exists()


def test_run_options_become_the_providers() -> None:
    from argparse import Namespace
    from datetime import timedelta

    args = Namespace(
        misfire="ALL",
        misfire_grace="2h",
        workers="4",
        max_attempts="3",
        max_event_age="90s",
        delivery_timeout="500ms",
        lease_ttl="1m",
    )
    assert provider_options(args) == {
        "misfire_policy": "all",
        "misfire_grace": timedelta(hours=2),
        "workers": 4,
        "retry_policy": RetryPolicy(max_attempts=3, max_event_age=timedelta(seconds=90)),
        "delivery_timeout": 0.5,
        "lease_ttl": 60.0,
    }


@pytest.mark.timeout(120)
def test_run_from_a_script_outside_the_app_with_deployment_options(tmp_path: Path) -> None:
    """As the installed ``reventless`` script runs: the import path starts at the script's own
    folder, not the app's. ``--max-attempts 0`` reaches the engine: a failing fire is
    dead-lettered at once; ``--log-level info`` logs that this process leads."""
    app, bin_dir = tmp_path / "app", tmp_path / "bin"
    app.mkdir()
    bin_dir.mkdir()
    (app / "alerting.py").write_text(textwrap.dedent(ALERTS))
    launcher = bin_dir / "reventless"
    launcher.write_text("import sys\nfrom reventless.cli import main\nsys.exit(main())\n")
    env = {**os.environ, "PYTHONPATH": str(WORKTREE)}
    command = [sys.executable, str(launcher)]
    options = ["--max-attempts", "0", "--json", "--log-level", "info"]
    process = subprocess.Popen(
        [*command, "run", "alerting", "--db", "a.db", *options],
        cwd=app,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        started = json.loads(process.stdout.readline() or process.stderr.read())
        assert started == {
            "event": "running",
            "plugin": "alerting",
            "db": "a.db",
            "schedulers": ["alerts"],
        }
        fire = json.loads(process.stdout.readline())
        assert (fire["event"], fire["scheduler"]) == ("fire", "alerts")
        assert "pager down" in fire["error"]
        letters = _poll_dead_letters(command, app, env)
        assert [letter["attempts"] for letter in letters] == [1]
    finally:
        process.send_signal(signal.SIGTERM)
        rest, log = process.communicate(timeout=60)
    assert process.returncode == 0
    assert [json.loads(line)["event"] for line in rest.splitlines()] == ["stopping", "stopped"]
    assert "INFO reventless.run: this process leads" in log


def _poll_dead_letters(command: list[str], app: Path, env: dict[str, str]) -> list[dict[str, int]]:
    deadline = time.monotonic() + 20
    while True:
        done = subprocess.run(
            [*command, "schedules", "dead-letters", "--db", "a.db", "--json"],
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        letters: list[dict[str, int]] = json.loads(done.stdout)
        if letters or time.monotonic() > deadline:
            return letters
        time.sleep(0.2)
