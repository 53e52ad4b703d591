"""An application with a reaction, for the reaction tests (in process and with `reventless run`).

Accounts open and cancel (and may reopen). The ``renewals`` reaction keeps one schedule per open
account (``renew-<id>``, created on Opened, deleted on Cancelled) and records every account event
it handled on the ``audit`` aggregate with a command: two kinds of effect whose doubling a test
can count independently (schedule history entries; audit events, one per source).
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from reventless import Daily, Plugin, ReactionContext, ReactionEvent, Schedule
from reventless.aggregate import AggregateSpec, CommandContext, command_payload


class Open(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    timezone: str = "UTC"


class Cancel(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    pass


class Renew(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    pass


class Opened(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    timezone: str


class Cancelled(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    pass


def decide_account(state: bool, command: Any, context: CommandContext) -> list[Any]:
    if isinstance(command, Open):
        return [] if state else [Opened(timezone=command.timezone)]
    if isinstance(command, Cancel):
        return [Cancelled()] if state else []
    return []


def evolve_account(state: bool, event: Any) -> bool:
    return isinstance(event, Opened)


ACCOUNTS: AggregateSpec[bool] = AggregateSpec(
    "accounts",
    commands=[Open, Cancel, Renew],
    events=[Opened, Cancelled],
    initial=False,
    decide=decide_account,
    evolve=evolve_account,
)


class Record(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    source: str


class Recorded(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    source: str


AUDIT: AggregateSpec[int] = AggregateSpec(
    "audit",
    commands=[Record],
    events=[Recorded],
    initial=0,
    decide=lambda state, command, context: [Recorded(source=command.source)],
    evolve=lambda state, event: state + 1,
)


def renewal(account: str, timezone: str) -> Schedule:
    return Schedule(
        name=f"renew-{account}",
        rate=Daily(9, 0),
        timezone=timezone,
        payload=command_payload(account, Renew()),
    )


# The failover test's record of when each handler call began: "pid time position" lines.
STARTS = os.environ.get("REACTION_STARTS")


async def keep_renewals(event: ReactionEvent, context: ReactionContext) -> None:
    if STARTS:
        fd = os.open(STARTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {time.time():.6f} {event.position}\n".encode())
        finally:
            os.close(fd)
    if isinstance(event.event, Opened):
        await context.ensure_schedule("renewals", renewal(event.aggregate_id, event.event.timezone))
    elif isinstance(event.event, Cancelled):
        await context.delete_schedule("renewals", f"renew-{event.aggregate_id}")
    source = f"{event.aggregate}/{event.aggregate_id}@{event.version}"
    await context.send(AUDIT, "log", Record(source=source))


def make_plugin(**options: Any) -> Plugin:
    plugin = Plugin("accounts-app")
    accounts = plugin.aggregate(ACCOUNTS)
    plugin.aggregate(AUDIT)
    plugin.scheduler("renewals", target=accounts)
    plugin.reaction("renewals", follows=[accounts], handler=keep_renewals, **options)
    return plugin


# ``reventless run tests.reaction_app:plugin``; the kill test shortens the handler timeout so a
# standby takes over quickly.
plugin = make_plugin(timeout=float(os.environ.get("REACTION_TIMEOUT", "30")))
