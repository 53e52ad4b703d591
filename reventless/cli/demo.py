"""``reventless demo``: the schedules of the original documentation driving real aggregates.

A "shop operations" plugin with four aggregates (orders, reports, maintenance, users) and a
health topic runs on the embedded provider (or, given a ``postgresql://`` URL, on the
PostgreSQL one), by default under a virtual clock over a simulated
week. A reaction (``user-reminders``) creates each new user's welcome reminder at 10:00 in the
user's own zone and deletes it when the account is closed. The demo prints what happened: each
fire, the command it became and the events that followed, then every aggregate's final state
and, per schedule, the fires delivered beside the number the core's ``fire_times`` says were due
(until its deletion, for a deleted one).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import anyio
import msgspec

from reventless.aggregate import AggregateSpec, CommandContext
from reventless.cli._open import is_postgres, open_store, shown_db
from reventless.clock import Clock, ScaledClock, VirtualClock
from reventless.errors import ValidationError
from reventless.event_topic import EventMessage, TopicMessage
from reventless.fire_times import fire_times
from reventless.plugin import ObservedTarget, Plugin, RunningPlugin
from reventless.provider import ProvidesReactions
from reventless.reaction import ReactionContext, ReactionEvent
from reventless.schedule import Daily, Hours, Minutes, Schedule, Single, Weekdays, rate_text
from reventless.target import FireEnvelope, Target

__all__ = ("DemoOptions", "build_plugin", "run_demo")


# -- the domain: commands, events, state, decisions ------------------------------------------


class ProcessPendingOrders(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Process the orders that came in since the last run (no fields: named by a string)."""


class PendingOrdersProcessed(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    batch: int
    for_time: datetime | None


class OrdersState(msgspec.Struct, frozen=True, kw_only=True):
    batches: int = 0
    last_run: datetime | None = None


def decide_orders(
    state: OrdersState, command: Any, context: CommandContext
) -> list[PendingOrdersProcessed]:
    return [PendingOrdersProcessed(batch=state.batches + 1, for_time=context.scheduled_time)]


def evolve_orders(state: OrdersState, event: PendingOrdersProcessed) -> OrdersState:
    return OrdersState(batches=event.batch, last_run=event.for_time)


class GenerateReport(msgspec.Struct, tag=True, frozen=True, kw_only=True, rename="camel"):
    """``{"type": "GenerateReport", "reportType": "daily"}``, routed by the spec."""

    report_type: str


class ReportGenerated(msgspec.Struct, tag=True, frozen=True, kw_only=True, rename="camel"):
    report_type: str
    period_end: datetime | None


class ReportsState(msgspec.Struct, frozen=True, kw_only=True):
    generated: dict[str, int] = {}


def decide_reports(
    state: ReportsState, command: GenerateReport, context: CommandContext
) -> list[ReportGenerated]:
    # The period ends at the fire's nominal time, not at a time frozen into the payload.
    return [ReportGenerated(report_type=command.report_type, period_end=context.scheduled_time)]


def evolve_reports(state: ReportsState, event: ReportGenerated) -> ReportsState:
    counts = dict(state.generated)
    counts[event.report_type] = counts.get(event.report_type, 0) + 1
    return ReportsState(generated=counts)


class CleanupTempFiles(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    pass


class PurgeExpiredSessions(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    pass


class TempFilesCleaned(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    run: int


class SessionsPurged(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    run: int


class MaintenanceState(msgspec.Struct, frozen=True, kw_only=True):
    cleanups: int = 0
    purges: int = 0


def decide_maintenance(state: MaintenanceState, command: Any, context: CommandContext) -> list[Any]:
    if isinstance(command, CleanupTempFiles):
        return [TempFilesCleaned(run=state.cleanups + 1)]
    return [SessionsPurged(run=state.purges + 1)]


def evolve_maintenance(state: MaintenanceState, event: Any) -> MaintenanceState:
    if isinstance(event, TempFilesCleaned):
        return MaintenanceState(cleanups=event.run, purges=state.purges)
    return MaintenanceState(cleanups=state.cleanups, purges=event.run)


class SignUp(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    timezone: str


class CloseAccount(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    pass


class SendReminder(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    text: str


class UserSignedUp(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    at: datetime
    timezone: str


class AccountClosed(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    pass


class ReminderSent(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    text: str


class UserState(msgspec.Struct, frozen=True, kw_only=True):
    signed_up: bool = False
    reminders: int = 0
    closed: bool = False


def decide_users(state: UserState, command: Any, context: CommandContext) -> list[Any]:
    if isinstance(command, SignUp):
        at = context.scheduled_time or _EPOCH
        return [] if state.signed_up else [UserSignedUp(at=at, timezone=command.timezone)]
    if isinstance(command, CloseAccount):
        return [AccountClosed()] if state.signed_up and not state.closed else []
    return [ReminderSent(text=command.text)]


def evolve_users(state: UserState, event: Any) -> UserState:
    if isinstance(event, UserSignedUp):
        return msgspec.structs.replace(state, signed_up=True)
    if isinstance(event, AccountClosed):
        return msgspec.structs.replace(state, closed=True)
    return msgspec.structs.replace(state, reminders=state.reminders + 1)


_EPOCH = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))

ORDERS = AggregateSpec(
    "orders",
    commands=[ProcessPendingOrders],
    events=[PendingOrdersProcessed],
    initial=OrdersState(),
    decide=decide_orders,
    evolve=evolve_orders,
    accepts_id={"order-processor"},
)
REPORTS = AggregateSpec(
    "reports",
    commands=[GenerateReport],
    events=[ReportGenerated],
    initial=ReportsState(),
    decide=decide_reports,
    evolve=evolve_reports,
    route={"GenerateReport": "reports"},
)
MAINTENANCE = AggregateSpec(
    "maintenance",
    commands=[CleanupTempFiles, PurgeExpiredSessions],
    events=[TempFilesCleaned, SessionsPurged],
    initial=MaintenanceState(),
    decide=decide_maintenance,
    evolve=evolve_maintenance,
    accepts_id={"maintenance"},
)
USERS = AggregateSpec(
    "users",
    commands=[SignUp, CloseAccount, SendReminder],
    events=[UserSignedUp, AccountClosed, ReminderSent],
    initial=UserState(),
    decide=decide_users,
    evolve=evolve_users,
)

# user, day, hh, mm (in the demo's zone), the user's own zone
SIGNUPS = (
    ("ada", 0, 10, 15, "Europe/London"),
    ("grace", 1, 14, 40, "America/New_York"),
    ("linus", 3, 9, 5, "Europe/Helsinki"),
)
CLOSINGS = (("grace", 1, 20, 30),)  # user, day, hh, mm: before her reminder fires


def reminder(user: str, signed_up: UserSignedUp) -> Schedule:
    """The welcome reminder: 10:00 in the user's own zone, on the day after the sign-up there."""
    local = signed_up.at.astimezone(ZoneInfo(signed_up.timezone)) + timedelta(days=1)
    return Schedule(
        name=f"reminder-{user}",
        timezone=signed_up.timezone,
        rate=Single(local.year, local.month, local.day, 10, 0),
        payload=msgspec.json.encode(
            {
                "aggregateId": user,
                "command": "SendReminder",
                "text": "Welcome! Finish setting up your profile.",
            }
        ).decode(),
    )


async def remind_new_users(event: ReactionEvent, context: ReactionContext) -> None:
    """The ``user-reminders`` reaction: a sign-up creates the user's reminder, a closed account
    deletes it. Both are idempotent by name, so a repeat after a crash changes nothing."""
    if isinstance(event.event, UserSignedUp):
        await context.ensure_schedule("users", reminder(event.aggregate_id, event.event))
    elif isinstance(event.event, AccountClosed):
        await context.delete_schedule("users", f"reminder-{event.aggregate_id}")


def build_plugin(start_local: datetime, zone: str) -> Plugin:
    """The example plugin with every schedule of the original documentation."""
    plugin = Plugin("shop-operations")
    orders = plugin.aggregate(ORDERS)
    reports = plugin.aggregate(REPORTS)
    maintenance = plugin.aggregate(MAINTENANCE)
    users = plugin.aggregate(USERS)
    health = plugin.event_topic("health")
    meeting = start_local + timedelta(days=2)
    plugin.scheduler(
        "orders",
        target=orders,
        schedules=[
            Schedule(
                name="process-orders",
                rate=Hours(1),
                payload='{"aggregateId": "order-processor", "command": "ProcessPendingOrders"}',
            ),
        ],
    )
    plugin.scheduler(
        "reports",
        target=reports,
        schedules=[
            Schedule(
                name="daily-report",
                rate=Daily(9, 0),
                timezone=zone,
                payload='{"type": "GenerateReport", "reportType": "daily"}',
            ),
            Schedule(
                name="business-report",
                rate=Weekdays(17, 0),
                timezone=zone,
                payload='{"type": "GenerateReport", "reportType": "business"}',
            ),
        ],
    )
    plugin.scheduler(
        "maintenance",
        target=maintenance,
        schedules=[
            Schedule(
                name="cleanup-task",
                rate=Hours(6),
                payload='{"aggregateId": "maintenance", "command": "CleanupTempFiles"}',
            ),
            Schedule(
                name="daily-cleanup",
                rate=Daily(0, 0),
                timezone=zone,
                payload='{"aggregateId": "maintenance", "command": "PurgeExpiredSessions"}',
            ),
        ],
    )
    plugin.scheduler(
        "users",
        target=users,
        schedules=[
            Schedule(
                name="meeting-reminder",
                timezone=zone,
                rate=Single(meeting.year, meeting.month, meeting.day, 10, 0),
                payload='{"aggregateId": "team", "command": "SendReminder", '
                '"text": "Sprint review at 10:00"}',
            ),
        ],
    )
    plugin.scheduler(
        "health",
        target=health,
        schedules=[
            Schedule(name="health-check", rate=Minutes(5), payload='{"check": "ping"}'),
        ],
    )

    plugin.reaction("user-reminders", follows=[users], handler=remind_new_users)
    return plugin


# -- running and reporting ------------------------------------------------------------------


# The demo's schedules include Singles (a meeting two days in, reminders a day after each
# sign-up), which fire from 1970 to 2199; its store keeps instants from 1970 on. The first
# start leaves a day for zones ahead of UTC, whose local midnight of 1970-01-01 is in 1969.
FIRST_START = date(1970, 1, 2)
_LAST_SINGLE_DAY = date(2199, 12, 31)


def start_range(days: int) -> tuple[date, date]:
    """The first and the last start date of a demo of ``days`` simulated days: the last leaves
    room for the Singles the demo creates up to two days past its end."""
    return FIRST_START, _LAST_SINGLE_DAY - timedelta(days=max(days, 2) + 2)


def check_start(start: date, days: int, field: str = "start") -> None:
    """Refuse a start date whose simulated days the demo cannot cover."""
    first, last = start_range(days)
    if not first <= start <= last:
        raise ValidationError(
            field,
            start.isoformat(),
            f"a date from {first} to {last} for {days} simulated day(s) (the demo's one-time "
            "schedules fire from 1970 to 2199)",
        )


@dataclass
class DemoOptions:
    days: int = 7
    timezone: str = "Europe/Berlin"
    start: date = date(2026, 3, 23)  # a Monday; Europe's clocks change that Sunday
    speed: float | None = None  # simulated seconds per real second; None: virtual clock
    db: Path | str | None = None  # a store file, or a postgresql:// URL
    all_fires: bool = False
    schema: str | None = None  # on PostgreSQL; None: the provider's default


@dataclass
class _Line:
    at: datetime
    schedule: str
    text: str


@dataclass
class _Record:
    lines: list[_Line] = field(default_factory=list)
    delivered: dict[str, dict[str, datetime]] = field(default_factory=lambda: defaultdict(dict))
    created: dict[str, tuple[Schedule, datetime]] = field(default_factory=dict)
    deleted: dict[str, datetime] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    heartbeats: Counter[date] = field(default_factory=Counter)
    events: int = 0


def _describe(event: Any) -> str:
    fields = [
        f"{name}={value}"
        for name, value in msgspec.structs.asdict(event).items()
        if not isinstance(value, datetime) and value is not None
    ]
    return f"{type(event).__name__}({', '.join(fields)})"


async def run_demo(options: DemoOptions, out: TextIO) -> int:
    check_start(options.start, options.days)
    """Run the demo and print its report; returns 0 when every count equals the oracle."""
    zone = ZoneInfo(options.timezone)
    start_local = datetime(options.start.year, options.start.month, options.start.day, tzinfo=zone)
    start = start_local.astimezone(ZoneInfo("UTC"))
    end = start + timedelta(days=options.days)
    clock: Clock = (
        VirtualClock(start) if options.speed is None else ScaledClock(options.speed, start=start)
    )
    record = _Record()

    async def on_fire(scheduler: str, envelope: FireEnvelope, error: BaseException | None) -> None:
        if error is None:
            record.delivered[envelope.schedule][envelope.fire_id] = envelope.scheduled_time
            if envelope.schedule == "health-check":
                record.heartbeats[envelope.scheduled_time.astimezone(zone).date()] += 1
        else:
            record.failures.append(f"{envelope.fire_id}: {error}")

    def wrap(scheduler: str, target: Target) -> Target:
        return ObservedTarget(scheduler, target, on_fire)

    plugin = build_plugin(start_local, options.timezone)
    async with _store(options.db, clock, options.schema) as provider:
        await _check_empty(provider, options.db)
        async with plugin.start(provider, wrap_target=wrap) as running:
            states = await _run(running, provider, clock, options, start_local, end, record)
    return _report(options, record, states, start_local, end, out)


def _store(
    db: Path | str | None, clock: Clock, schema: str | None
) -> AbstractAsyncContextManager[Any]:
    """The demo's provider: in memory, a store file, or a PostgreSQL database."""
    where = ":memory:" if db is None else str(db)
    return open_store(where, schema, clock=clock, misfire_policy="all")


async def _check_empty(provider: Any, db: Path | str | None) -> None:
    """On PostgreSQL, the demo's schedules would join an application's: it wants a database
    (its schema: ``reventless``, or ``--schema``) that holds none yet."""
    if db is None or not is_postgres(str(db)):
        return
    status = await provider.scheduled_publisher().store_status()
    if status.schedulers:
        names = ", ".join(info.name for info in status.schedulers[:5])
        raise ValidationError(
            "--db",
            shown_db(str(db)),
            "a database whose reventless schema holds no schedulers yet",
            message=f"--db {shown_db(str(db))}: the store already holds schedulers ({names}); "
            "the demo wants a database of its own, e.g. createdb reventless_demo",
        )


async def _run(
    running: RunningPlugin,
    provider: Any,
    clock: Clock,
    options: DemoOptions,
    start_local: datetime,
    end: datetime,
    record: _Record,
) -> list[tuple[str, int, Any]]:
    await _observe(running, record, clock)
    async with anyio.create_task_group() as group:
        await group.start(provider.run)
        await _drive(running, clock, options, start_local, end, record)
        group.cancel_scope.cancel()
    return await _final_states(running)


async def _observe(running: RunningPlugin, record: _Record, clock: Clock) -> None:
    """Subscribe the report's timeline and the oracle's list of schedules."""

    async def on_event(message: TopicMessage) -> None:
        if not isinstance(message, EventMessage):
            return  # an aggregate's topic publishes its events only
        record.events += 1
        fire = message.message_id or ""
        schedule, _, when = fire.partition("@")
        at = clock.now()
        if when:
            at = datetime.fromisoformat(when.replace("Z", "+00:00"))
        else:
            schedule = "(app command)"
        record.lines.append(_Line(at, schedule, f"{message.source}: {_describe(message.event)}"))

    for aggregate in running.aggregates.values():
        aggregate.event_topic.subscribe(on_event, name="demo-timeline")
    for scheduler in running.schedulers.values():
        page = await scheduler.operations.list_schedules(limit=1000)
        for state in page.schedules:
            record.created[state.schedule.name] = (state.schedule, state.created_at)


async def _drive(
    running: RunningPlugin,
    clock: Clock,
    options: DemoOptions,
    start_local: datetime,
    end: datetime,
    record: _Record,
) -> None:
    """Move time to the end, signing users up and closing accounts on the way; the oracle notes
    the schedules the reaction made and deleted."""
    steps = sorted(
        [
            (start_local + timedelta(days=day, hours=hour, minutes=minute), user, zone)
            for user, day, hour, minute, zone in SIGNUPS
            if day < options.days
        ]
        + [
            (start_local + timedelta(days=day, hours=hour, minutes=minute), user, None)
            for user, day, hour, minute in CLOSINGS
            if day < options.days
        ]
    )
    users = running.schedulers["users"].operations
    for moment, user, zone in steps:
        await _advance_to(clock, moment.astimezone(ZoneInfo("UTC")))
        command: Any = CloseAccount() if zone is None else SignUp(timezone=zone)
        await running.aggregates["users"].command_topic.send(
            user, command, message_id=f"{type(command).__name__}-{user}", scheduled_time=clock.now()
        )
        await _settle(running)
        name = f"reminder-{user}"
        if zone is not None:
            state = await users.get_schedule(name)
            record.created[name] = (state.schedule, state.created_at)
            done = f"created {name}: {rate_text(state.schedule.rate)} in {zone}"
        else:
            record.deleted[name] = (await users.history(name))[-1].at
            done = f"deleted {name}"
        record.lines.append(_Line(clock.now(), "user-reminders", f"(reaction) {done}"))
    await _advance_to(clock, end)
    if options.speed is not None:
        # Real time runs on: give the engine a moment to finish what fell due by the end.
        with anyio.move_on_after(10):
            while _shortfall(record, end):  # noqa: ASYNC110 - a bounded wait
                await anyio.sleep(0.01)


async def _settle(running: RunningPlugin) -> None:
    """Wait (real time) until the reactions have handled every event appended so far."""
    assert isinstance(running.provider, ProvidesReactions)  # both of the demo's providers do
    reactions = running.provider.reactions()
    with anyio.fail_after(30):
        while any(status.pending for status in await reactions.statuses()):  # noqa: ASYNC110
            await anyio.sleep(0.001)


async def _final_states(running: RunningPlugin) -> list[tuple[str, int, Any]]:
    states = []
    for name, aggregate in running.aggregates.items():
        for aggregate_id in sorted(aggregate._cache):
            state, version = await aggregate.load(aggregate_id)
            states.append((f"{name}/{aggregate_id}", version, state))
    return states


def _counts(record: _Record, end: datetime) -> dict[str, tuple[int, int]]:
    """Per schedule: (fires delivered with a time up to ``end``, fires due by then)."""
    counts = {}
    for name, (schedule, created_at) in record.created.items():
        instants = fire_times(schedule, created_at=created_at)
        until = min(end, record.deleted.get(name, end))
        due = sum(1 for _ in itertools.takewhile(until.__ge__, instants))
        got = sum(1 for at in record.delivered.get(name, {}).values() if at <= end)
        counts[name] = (got, due)
    return counts


def _shortfall(record: _Record, end: datetime) -> bool:
    return any(got < due for got, due in _counts(record, end).values())


async def _advance_to(clock: Clock, instant: datetime) -> None:
    if isinstance(clock, VirtualClock):
        await clock.advance_to(max(instant, clock.now()))
        return
    await clock.sleep_until(instant)


def _report(
    options: DemoOptions,
    record: _Record,
    states: Sequence[tuple[str, int, Any]],
    start_local: datetime,
    end: datetime,
    out: TextIO,
) -> int:
    zone = ZoneInfo(options.timezone)
    mode = "a virtual clock" if options.speed is None else f"{options.speed:g}x real time"
    out.write(
        f"reventless demo: the shop-operations plugin, {options.days} simulated day(s) from "
        f"{start_local:%a %Y-%m-%d %H:%M %Z} ({options.timezone}), on {mode}\n"
    )
    lines = sorted(record.lines, key=lambda line: (line.at, line.schedule, line.text))
    day_of = lambda line: line.at.astimezone(zone).date()  # noqa: E731
    for day, group in itertools.groupby(lines, key=day_of):
        out.write(f"\n{day:%A %d %B %Y}\n")
        for line in group:
            if line.schedule == "process-orders" and not options.all_fires:
                local = line.at.astimezone(zone)
                if local.hour not in (1, 13):
                    continue  # hourly: two a day are enough to read; counts below are complete
            local = line.at.astimezone(zone)
            out.write(
                f"  {local:%H:%M} {local:%Z}".ljust(14) + f"{line.schedule:<17} {line.text}\n"
            )
        if record.heartbeats.get(day):
            out.write(f"  (health-check: {record.heartbeats[day]} heartbeats published)\n")
    if not options.all_fires:
        out.write(
            "\n(process-orders runs hourly; it is shown in the 01:00 and 13:00 hours only, "
            "--all shows every fire)\n"
        )

    out.write("\nFires per schedule: delivered / due by the core's fire_times\n")
    exact = True
    counts = _counts(record, end)
    for name in sorted(counts):
        got, due = counts[name]
        exact &= got == due
        out.write(f"  {name:<18} {got:>5} / {due:<5} {'' if got == due else '  <- differs'}\n")
    out.write("\nFinal state of every aggregate\n")
    for label, version, state in states:
        body = msgspec.json.encode(state).decode()
        out.write(f"  {label:<26} version {version:<4} {type(state).__name__} {body}\n")
    out.write(
        f"\n{record.events} events appended and published; "
        f"{sum(len(v) for v in record.delivered.values())} fires delivered; "
        f"{len(record.failures)} delivery failures\n"
    )
    for failure in record.failures:
        out.write(f"  failed: {failure}\n")
    return 0 if exact and not record.failures else 1
