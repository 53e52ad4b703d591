"""``reventless schedulers``: the schedulers of a store, and whether an engine serves them (a
running one, one that ended without letting go of its lease, one on another host)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from reventless.cli._common import (
    dump,
    need_store,
    table,
    utc,
)
from reventless.cli._open import add_schema_option, db_default

if TYPE_CHECKING:
    from reventless.local import StoreStatus

__all__ = ("add_schedulers_command", "engine_serving", "schedulers")


def add_schedulers_command(commands: Any) -> None:
    command = commands.add_parser(
        "schedulers",
        help="list the scheduler namespaces of a store (a file or a postgresql:// URL)",
        description="List every scheduler of a store (from its schedules, history and the "
        "processes that attached targets), its schedules, its target and whether the running "
        "engine serves it.",
    )
    command.add_argument("action", nargs="?", default="list", choices=["list"], help="list")
    command.add_argument("--db", **db_default())
    add_schema_option(command)
    command.add_argument("--json", action="store_true", help="print JSON")


def engine_serving(status: StoreStatus, scheduler: str) -> tuple[bool, str]:
    """Whether the running engine serves ``scheduler``, and a sentence saying so."""
    info = status.scheduler(scheduler)
    if status.engine is None:
        gone = f"{_ended(status)}; " if status.ended else ""
        return False, (
            f"no engine is running on this store: {gone}fires wait until one runs (`reventless "
            "run`, or an application calling provider.run()); its misfire policy then decides "
            "about missed ones"
        )
    if info is not None and info.served:
        return True, f"served by {_engine(status)}"
    return False, (
        f"the running engine ({status.engine}) has no target attached to scheduler "
        f"{scheduler!r}: its fires wait until a process that makes this scheduler runs the engine"
    )


def _engine(status: StoreStatus) -> str:
    """The engine as far as this process can tell: alive (a process on this host), or as fresh
    as its last lease renewal (another host's, which cannot be checked from here)."""
    if status.engine_checked:
        return f"the running engine ({status.engine})"
    return f"the engine of {status.engine} ({_last_seen(status)})"


def _ended(status: StoreStatus) -> str:
    """An engine killed on this host, whose lease has not lapsed yet."""
    return (
        f"the engine of {status.ended} has ended without releasing its lease ("
        f"{_last_seen(status)}); another can take over from {utc(status.lease_until)} UTC"
    )


def _last_seen(status: StoreStatus) -> str:
    if status.last_seen is None:
        return "not known when it was last seen"
    ago = max(0.0, (datetime.now(UTC) - status.last_seen).total_seconds())
    return f"last seen {ago:.0f} s ago"


async def schedulers(args: argparse.Namespace, out: TextIO) -> int:
    from reventless.cli._open import open_store

    need_store(args)
    async with open_store(args.db, args.schema, read_only=True) as local:
        status = await local.scheduled_publisher().store_status()
    if args.json:
        return dump(out, _schedulers_document(status))
    rows: list[tuple[str, ...]] = [
        (
            info.name,
            str(info.schedules),
            str(info.paused),
            info.attachments[0].target if info.attachments else "-",
            "yes" if info.served else "no",
        )
        for info in status.schedulers
    ]
    table(out, ("scheduler", "schedules", "paused", "target", "served by the engine"), rows)
    if not status.schedulers:
        out.write("(the store has no scheduler yet)\n")
    if status.engine is None:
        gone = f" ({_ended(status)})" if status.ended else ""
        out.write(f"engine: none is running on this store{gone}; fires wait until one runs\n")
    else:
        seen = "" if status.engine_checked else f" ({_last_seen(status)})"
        out.write(f"engine: {status.engine}{seen}, lease until {utc(status.lease_until)} UTC\n")
    return 0


def _schedulers_document(status: StoreStatus) -> dict[str, Any]:
    return {
        "engine": status.engine,
        "lease_until": status.lease_until,
        "engine_checked": status.engine_checked,
        "engine_ended": status.ended,
        "last_seen": status.last_seen,
        "schedulers": [
            {
                "name": info.name,
                "schedules": info.schedules,
                "paused": info.paused,
                "served": info.served,
                "target": info.attachments[0].target if info.attachments else None,
                "attachments": [
                    {
                        "target": a.target,
                        "process": a.process,
                        "attached_at": a.attached_at,
                        "engine_running": a.engine_running,
                        "payload_rules": a.payload_types is not None,
                    }
                    for a in info.attachments
                ],
            }
            for info in status.schedulers
        ],
    }
