"""``reventless run MODULE:PLUGIN --db FILE``: a plugin on the embedded engine, in real time.

The current directory goes on the import path first, as ``python -m`` does, so that the plugin
of the application in the working directory is found. A module that is not there, a module whose
own import fails, an attribute that is missing and an object that is not a Plugin are four
different errors, each saying what was found.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TextIO

from reventless.cli._common import (
    PluginError,
    did_you_mean,
    duration,
    exception_site,
    store_file,
    whole,
)
from reventless.cli._open import (
    add_schema_option,
    db_default,
    is_postgres,
    open_store,
    schema_of,
    shown_db,
)
from reventless.errors import ReventlessError, ValidationError

if TYPE_CHECKING:
    from reventless.cli._signals import StopSignals
    from reventless.local import CatchUp

__all__ = ("Interrupted", "add_run_command", "load_plugin", "run_command", "run_plugin")

_LOG_LEVELS = ("debug", "info", "warning", "error")
_MISFIRE = ("latest", "all", "skip")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
logger = logging.getLogger("reventless.run")
# A stop has the delivery timeout plus this long (the plugin's own stop, closing the store);
# after a second signal, this long.
GRACE_S = 15.0
FORCE_S = 5.0


class Interrupted(KeyboardInterrupt):
    """The stop was forced by a repeated signal: exit status 128 + that signal's number."""

    def __init__(self, exit_status: int) -> None:
        super().__init__("interrupted")
        self.exit_status = exit_status


def add_run_command(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run a plugin on the embedded provider until interrupted",
        description="Run MODULE:PLUGIN (a reventless.Plugin; PLUGIN defaults to 'plugin') in "
        "real time on a store file; Ctrl-C or SIGTERM stops it gracefully. The current "
        "directory is on the import path.",
    )
    run.add_argument("plugin", metavar="MODULE:PLUGIN", help="e.g. billing:plugin")
    run.add_argument("--db", **db_default())
    add_schema_option(run)
    run.add_argument(
        "--misfire",
        default="latest",
        metavar="POLICY",
        help="fires missed while down: latest (one, the most recent; default), all, or skip",
    )
    duration = {"metavar": "DURATION"}
    run.add_argument(
        "--misfire-grace",
        default="24h",
        help="missed fires older than this expire (0s-30d, default 24h)",
        **duration,
    )
    run.add_argument(
        "--workers", default="32", metavar="N", help="concurrent deliveries (1-1024, default 32)"
    )
    run.add_argument(
        "--max-attempts",
        default="185",
        metavar="N",
        help="retries of a failed delivery before it is dead-lettered (0-185, default 185)",
    )
    run.add_argument(
        "--max-event-age",
        default="24h",
        help="retry a failed fire at most this long after its time (60s-24h, default 24h)",
        **duration,
    )
    run.add_argument(
        "--delivery-timeout",
        default="30s",
        help="one delivery's time limit (10ms-900s, default 30s)",
        **duration,
    )
    run.add_argument(
        "--lease-ttl",
        default="20s",
        help="a standby takes over this soon after a crash (1s-1h, default 20s)",
        **duration,
    )
    run.add_argument(
        "--log-level",
        default="warning",
        metavar="LEVEL",
        help="debug, info, warning (default) or error",
    )
    run.add_argument(
        "--json", action="store_true", help="print JSON lines (and errors as JSON) instead of text"
    )


def _choice(flag: str, text: str, choices: tuple[str, ...]) -> str:
    value = text.strip().lower()
    if value not in choices:
        raise ValidationError(
            flag,
            text,
            ", ".join(choices[:-1]) + f" or {choices[-1]}",
            message=f"{flag} {text!r} is not allowed{did_you_mean(value, choices)}; expected "
            f"one of {', '.join(choices)}",
        )
    return value


def provider_options(args: argparse.Namespace) -> dict[str, Any]:
    """The provider's keyword arguments from the options, each checked under its flag."""
    from reventless.scheduler_adapter import RetryPolicy

    retry = RetryPolicy(
        max_attempts=whole("--max-attempts", args.max_attempts, 0, 185),
        max_event_age=duration("--max-event-age", args.max_event_age, 60, 86_400),
    )
    return {
        "misfire_policy": _choice("--misfire", args.misfire, _MISFIRE),
        "misfire_grace": duration("--misfire-grace", args.misfire_grace, 0, 30 * 86_400),
        "workers": whole("--workers", args.workers, 1, 1024),
        "retry_policy": retry,
        "delivery_timeout": duration(
            "--delivery-timeout", args.delivery_timeout, 0.01, 900
        ).total_seconds(),
        "lease_ttl": duration("--lease-ttl", args.lease_ttl, 1, 3600).total_seconds(),
    }


# The structured fields of reventless's records, shown after the message as key=value.
_FIELDS = ("scheduler", "schedule", "fire_id", "attempt", "lateness")


class ReadableFormatter(logging.Formatter):
    """``2026-11-27T09:00:01+0000 WARNING reventless.fire: message [scheduler=default ...]``."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z"
        )

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [
            f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}"
            for key in _FIELDS
            if (value := getattr(record, key, None)) not in (None, "")
        ]
        return f"{text} [{' '.join(fields)}]" if fields else text


def configure_logging(text: str) -> None:
    level = _choice("--log-level", text, _LOG_LEVELS)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ReadableFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler])


def _on_import_path() -> str:
    """Put the current directory first on the import path (``python -m`` does the same)."""
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    return here


def _split(text: str) -> tuple[str, str]:
    module, _, attribute = text.partition(":")
    attribute = attribute or "plugin"
    if not _DOTTED.fullmatch(module) or not _DOTTED.fullmatch(attribute):
        raise ValidationError(
            "MODULE:PLUGIN",
            text,
            "a module path and a Plugin's name, e.g. billing:plugin or myapp.plugins:shop",
        )
    return module, attribute


def _import(module_name: str) -> Any:
    here = _on_import_path()
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ValidationError(
                "MODULE",
                module_name,
                "an importable module",
                message=(
                    f"no module named {missing!r} in the current directory ({here}) or on the "
                    "import path; run from the folder that holds it, or add that folder to "
                    "PYTHONPATH"
                ),
            ) from exc
        raise _import_failed(module_name, exc) from exc
    except (Exception, SystemExit) as exc:
        raise _import_failed(module_name, exc) from exc


def _import_failed(module_name: str, exc: BaseException) -> PluginError:
    where = exception_site(exc)
    at = f" at {where}" if where else ""
    return PluginError(
        f"importing {module_name!r} failed{at}: {type(exc).__name__}: {exc}",
        exception=type(exc).__name__,
        where=where,
    )


def load_plugin(text: str) -> Any:
    """The Plugin named by ``MODULE:PLUGIN``; ValidationError or PluginError saying what failed."""
    from reventless.plugin import Plugin

    module_name, attribute = _split(text)
    module = _import(module_name)
    plugins = sorted(name for name, value in vars(module).items() if isinstance(value, Plugin))
    found = ", ".join(plugins) if plugins else "none"
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ValidationError(
                "PLUGIN",
                attribute,
                f"a Plugin of {module_name}",
                message=f"module {module_name!r} has no {attribute!r}"
                f"{did_you_mean(attribute, plugins)}; its Plugin objects: {found}",
            )
        value = getattr(value, part)
    if not isinstance(value, Plugin):
        raise ValidationError(
            "PLUGIN",
            attribute,
            "a reventless.Plugin object",
            message=(
                f"{module_name}:{attribute} is not a reventless.Plugin object but one of type "
                f"{type(value).__name__}; the Plugin objects in {module_name}: {found}"
            ),
        )
    return value


def run_command(args: argparse.Namespace, out: TextIO) -> int:
    """``reventless run``: the event loop inside the stop signals' handlers (see
    ``reventless.cli._signals``); 0 after a graceful stop, 128 + the signal's number after a
    forced one."""
    import anyio

    from reventless.cli._signals import StopSignals

    schema_of(args.db, args.schema)
    store_file(args.db, existing=False)
    options = provider_options(args)
    grace = options["delivery_timeout"] + GRACE_S
    with StopSignals(grace=grace, force=FORCE_S, as_json=args.json) as stop:
        status: int = anyio.run(run_plugin, args, out, stop)
        if stop.forced:
            raise Interrupted(stop.exit_status)
    return status


async def run_plugin(args: argparse.Namespace, out: TextIO, stop: StopSignals) -> int:
    options = provider_options(args)
    schema = schema_of(args.db, args.schema)
    if schema is not None:
        options["schema"] = schema
    configure_logging(args.log_level)
    plugin = load_plugin(args.plugin)
    say = _json_lines(out) if args.json else _text_lines(out)
    try:
        return await _serve(plugin, args.db, options, say, stop)
    except ReventlessError:
        raise
    except Exception as exc:
        where = exception_site(exc)
        at = f" at {where}" if where else ""
        raise PluginError(
            f"plugin {plugin.name!r} failed{at}: {type(exc).__name__}: {exc}",
            exception=type(exc).__name__,
            where=where,
        ) from exc


Say = Callable[[dict[str, Any]], None]


def _text_lines(out: TextIO) -> Say:
    def say(event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "running":
            names = ", ".join(event["schedulers"])
            line = (
                f"running plugin {event['plugin']!r} on {event['db']} (schedulers: {names}); "
                "Ctrl-C to stop"
            )
        elif kind == "fire":
            outcome = "ok" if event["error"] is None else f"failed: {event['error']}"
            line = f"{event['scheduled_time']} {event['scheduler']} {event['fire_id']} {outcome}"
        elif kind == "standing_by":
            leader = f" ({event['leader']})" if event["leader"] else ""
            line = (
                f"standing by: another process{leader} is firing on this store; this one "
                "takes over if it stops"
            )
        elif kind == "missed_fires":
            line = event["message"]
        elif kind == "waiting":
            line = (
                f"cannot reach the store {event['db']} ({event['error']}); trying again in "
                f"{event['retry_in']:g} s"
            )
        elif kind == "stopping":
            line = f"stopping on {event['signal']}"
        else:
            line = "stopped"
        out.write(line + "\n")
        out.flush()

    return say


def _catch_up_event(catch_up: CatchUp) -> dict[str, Any]:
    from reventless._observe import describe_catch_up

    return {
        "event": "missed_fires",
        "found": catch_up.due,
        "policy": catch_up.policy.value,
        "delivered": catch_up.delivered,
        "missed": catch_up.missed,
        "expired": catch_up.expired,
        "message": describe_catch_up(catch_up),
    }


def _json_lines(out: TextIO) -> Say:
    def say(event: dict[str, Any]) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    return say


@contextlib.asynccontextmanager
async def _open_waiting(db: str, options: dict[str, Any], say: Say) -> AsyncIterator[Any]:
    """The store's provider; a PostgreSQL server that cannot be reached is waited for, trying
    again with backoff (1 s doubling to 30 s) and saying so, until it answers or a stop."""
    import anyio

    from reventless.errors import BackendUnavailableError

    wait = 1.0
    while True:
        try:
            async with open_store(db, **options) as provider:
                wait = -1.0  # opened: errors from here on are not the server's absence
                yield provider
                return
        except BackendUnavailableError as exc:
            if wait < 0 or not is_postgres(db):
                raise
            say({"event": "waiting", "db": shown_db(db), "error": str(exc), "retry_in": wait})
            await anyio.sleep(wait)
            wait = min(wait * 2, _MAX_WAIT_S)


_MAX_WAIT_S = 30.0


async def _serve(plugin: Any, db: str, options: dict[str, Any], say: Say, stop: StopSignals) -> int:
    import anyio

    from reventless._timefmt import strftime
    from reventless.plugin import ObservedTarget
    from reventless.target import FireEnvelope, Target

    async def log_fire(scheduler: str, envelope: FireEnvelope, error: BaseException | None) -> None:
        say(
            {
                "event": "fire",
                "scheduled_time": strftime(envelope.scheduled_time, "%Y-%m-%dT%H:%M:%SZ"),
                "scheduler": scheduler,
                "fire_id": envelope.fire_id,
                "error": None if error is None else str(error),
            }
        )

    def wrap(scheduler: str, target: Target) -> Target:
        return ObservedTarget(scheduler, target, log_fire)

    requested = anyio.Event()
    serving = False

    def on_stop() -> None:  # on the event loop's thread, at the first signal
        requested.set()
        # Said at once, not once the stop is under way: a start-up still running (shielded)
        # or a forced end after a repeated signal must not hide that the signal was taken.
        say({"event": "stopping", "signal": stop.signal_name()})
        if not serving:  # still starting: give up starting
            serve_scope.cancel()

    postgres = is_postgres(db)
    with anyio.CancelScope() as serve_scope:
        stop.attach(on_stop)
        async with _open_waiting(db, options, say) as local:
            # A command-line process ends when blocking code holds its loop (a library only
            # logs): see StopSignals.stalled.
            local.on_stall = stop.stalled
            local.on_catch_up = lambda catch_up: say(_catch_up_event(catch_up))
            async with plugin.start(local, wrap_target=wrap) as running:
                say(
                    {
                        "event": "running",
                        "plugin": plugin.name,
                        "db": shown_db(db),
                        "schedulers": list(running.schedulers),
                    }
                )
                async with anyio.create_task_group() as group:
                    await group.start(local.run, name="reventless-engine")
                    serving = True
                    if postgres:
                        logger.info("this process fires, beside any others, on %s", shown_db(db))
                    elif local.is_leading:
                        logger.info("this process leads: it fires the schedules of %s", db)
                    else:
                        leader = None
                        with contextlib.suppress(ReventlessError):  # only to name the leader
                            leader = (await local.scheduled_publisher().store_status()).engine
                        say({"event": "standing_by", "leader": leader})
                    await requested.wait()
                    group.cancel_scope.cancel()
    say({"event": "stopped"})
    return 0
