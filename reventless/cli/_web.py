"""``reventless web``: the console on a store; ``reventless check``: its health in one line.

``check`` exits 0 printing ``ok``, or 1 with the first problem (late fires, new dead letters,
a reaction stopped or lagging, no engine while schedules wait) and how many more; for cron,
systemd or a Kubernetes probe. It needs no web extra.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
from typing import Any, TextIO

from reventless.cli._common import EXIT_FAILED, duration, need_store, whole
from reventless.cli._open import add_schema_option, db_default, open_store, shown_db
from reventless.errors import UsageError, ValidationError

__all__ = ("add_check_command", "add_web_command", "check_command", "web_command")

TOKEN_VARIABLE = "REVENTLESS_WEB_TOKEN"


def add_web_command(commands: Any) -> None:
    web = commands.add_parser(
        "web",
        help="serve the web console of a store (extra reventless[web])",
        description="Serve the console: schedules, the week ahead, a schedule's history and dead "
        "letters, reactions; actions need the operator token. Reads are open only on a "
        "loopback address.",
    )
    web.add_argument("--db", **db_default())
    add_schema_option(web)
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    web.add_argument("--port", default="8000", help="port (default 8000)")
    web.add_argument(
        "--token",
        help=f"the operator token actions need (default: ${TOKEN_VARIABLE}; none: read-only)",
    )
    web.add_argument("--max-late", default="60s", help="a fire this late counts as late (60s)")
    web.add_argument("--max-lag", default="5m", help="a reaction lagging this long is a problem")


def add_check_command(commands: Any) -> None:
    probe = commands.add_parser(
        "check",
        help="exit non-zero, in one line, when fires are late, letters dead or reactions behind",
        description="Check a store's health: fires later than --max-late, dead letters of the "
        "last --dead-letters window, reactions stopped or lagging past --max-lag, no engine "
        "while schedules wait. Prints 'ok' (exit 0) or the first problem (exit 1).",
    )
    probe.add_argument("--db", **db_default())
    add_schema_option(probe)
    probe.add_argument("--max-late", default="60s", help="e.g. 60s, 5m (default 60s)")
    probe.add_argument("--max-lag", default="5m", help="e.g. 30s, 5m (default 5m)")
    probe.add_argument(
        "--dead-letters", default="1h", help="dead letters this recent are a problem (1h)"
    )
    probe.add_argument("--json", action="store_true", help="print the whole answer as JSON")


async def check_command(args: argparse.Namespace, out: TextIO) -> int:
    from reventless.cli._common import dump
    from reventless.health import check

    need_store(args)
    max_late = duration("--max-late", args.max_late, 0, 30 * 86400)
    max_lag = duration("--max-lag", args.max_lag, 0, 30 * 86400)
    window = duration("--dead-letters", args.dead_letters, 0, 30 * 86400)
    async with open_store(args.db, args.schema, read_only=True) as provider:
        health = await check(
            provider, max_late=max_late, max_lag=max_lag, dead_letter_window=window
        )
    if args.json:
        dump(out, health)
    else:
        out.write(("ok" if health.ok else f"problem: {health.summary()}") + "\n")
    return 0 if health.ok else EXIT_FAILED


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def web_command(args: argparse.Namespace, out: TextIO) -> int:
    try:
        import uvicorn

        from reventless.web import create_app
    except ImportError as exc:
        raise UsageError(
            f"the console needs the web extra: pip install 'reventless[web]' ({exc})"
        ) from None
    need_store(args)
    port = whole("--port", args.port, 1, 65535)
    max_late = duration("--max-late", args.max_late, 0, 30 * 86400)
    max_lag = duration("--max-lag", args.max_lag, 0, 30 * 86400)
    token = args.token if args.token is not None else os.environ.get(TOKEN_VARIABLE) or None
    if token is not None and not 16 <= len(token) <= 256:
        raise ValidationError(
            "--token", "(hidden)", "16 to 256 characters (a long random one, e.g. openssl rand)"
        )
    loopback = _loopback(args.host)
    if not loopback and token is None:
        raise ValidationError(
            "--host",
            args.host,
            "a loopback address, or a --token",
            message=f"--host {args.host} is reachable from other machines: give --token (or "
            f"${TOKEN_VARIABLE}); reads then need it too",
        )
    _check_free(args.host, port)
    async with open_store(args.db, args.schema, read_only=token is None) as provider:
        app = create_app(
            provider,
            token=token,
            open_reads=loopback,
            loopback=loopback,
            late_after=max_late,
            max_lag=max_lag,
        )
        mode = "actions need the operator token" if token else "read-only (no --token)"
        where = shown_db(args.db)
        out.write(f"reventless console on http://{args.host}:{port}/ ({where}; {mode})\n")
        out.flush()
        config = uvicorn.Config(app, host=args.host, port=port, log_level="warning", lifespan="off")
        await uvicorn.Server(config).serve()
    return 0


def _check_free(host: str, port: int) -> None:
    """Refuse a taken port in one line (uvicorn would log a traceback-like error and exit)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
