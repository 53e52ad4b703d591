"""The ``reventless`` command.

``reventless preview RATE_OR_JSON [--timezone Z] [--count N] [--after ISO] [--json]`` prints the
next fires of a schedule as a table in UTC and in its zone, with DST notes, and the EventBridge
Scheduler expression and parameters. Bad input prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, NoReturn, TextIO

from reventless.errors import (
    BackendUnavailableError,
    CorruptDataError,
    PermissionDeniedError,
    ReventlessError,
    ScheduleNotFoundError,
    ValidationError,
)
from reventless.fire_times import as_utc, preview
from reventless.rate_translation import aws_schedule_fields
from reventless.schedule import Schedule, parse_rate, rate_text

__all__ = ("main",)

EXIT_FAILED = 1
EXIT_USAGE = 2


class _OutOfRangeError(ReventlessError):
    """A well-formed instant or date beyond what the command can compute with (exit status 1)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reventless", description="Schedules with one exact contract.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    show = commands.add_parser(
        "preview",
        help="show the next fires of a schedule and its EventBridge expression",
        description=(
            "Show the next fires of a schedule. SCHEDULE is a rate such as 'Weekdays(17, 0)' or a "
            "whole schedule as JSON, e.g. "
            '\'{"name": "r", "rate": {"kind": "daily", "hour": 9, "minute": 0}, "payload": "x"}\'.'
        ),
    )
    show.add_argument("schedule", metavar="SCHEDULE", help="a rate like 'Daily(9, 0)' or JSON")
    show.add_argument("--timezone", help="IANA zone for a rate (default UTC)")
    show.add_argument("--count", type=int, default=10, help="how many fires (default 10)")
    show.add_argument(
        "--after",
        help="show fires after this aware ISO 8601 instant (also the creation); default now",
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_schedules_commands(commands)
    demo = commands.add_parser(
        "demo",
        help="run the example plugin over a simulated week and print what happened",
        description="Run the shop-operations example: the original documentation's schedules "
        "driving aggregates on the embedded engine.",
    )
    demo.add_argument("--days", type=int, default=7, help="simulated days (1-366, default 7)")
    demo.add_argument("--timezone", default="Europe/Berlin", help="zone of wall-clock schedules")
    demo.add_argument("--start", default="2026-03-23", help="first local day (default 2026-03-23)")
    demo.add_argument(
        "--speed", type=float, help="simulated seconds per real second (default: a virtual clock)"
    )
    demo.add_argument("--db", help="keep the store in this file (default: in memory)")
    demo.add_argument("--all", action="store_true", help="print every fire of process-orders")
    run = commands.add_parser(
        "run",
        help="run a plugin on the embedded provider until interrupted",
        description="Run MODULE:PLUGIN (a reventless.Plugin) in real time on a store file; "
        "Ctrl-C or SIGTERM stops it gracefully.",
    )
    run.add_argument("plugin", metavar="MODULE:PLUGIN", help="e.g. myapp.plugins:shop")
    run.add_argument("--db", required=True, help="the store file")
    return parser


def _add_schedules_commands(commands: Any) -> None:
    group = commands.add_parser(
        "schedules",
        help="inspect and change the schedules in a local store file",
        description="Work on the schedules stored in a reventless SQLite file.",
    )
    actions = group.add_subparsers(dest="action", required=True, parser_class=_Parser)

    def action(name: str, help_text: str, *, needs_name: bool = True) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(
            name, help=help_text, description=help_text
        )
        if needs_name:
            sub.add_argument("name", help="the schedule's name")
        sub.add_argument("--db", required=True, help="the store file")
        sub.add_argument("--scheduler", default="default", help="scheduler name (default)")
        sub.add_argument("--json", action="store_true", help="print JSON")
        return sub

    listing = action("list", "list schedules in name order", needs_name=False)
    listing.add_argument("--prefix", default="", help="only names starting with this")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    listing.add_argument("--after", help="start after this name (a previous next_token)")
    show = action("show", "show one schedule and its next fires")
    show.add_argument("--count", type=int, default=5, help="how many next fires (default 5)")
    create = action("create", "create or replace a schedule")
    create.add_argument("rate", help="a rate such as 'Daily(9, 0)'")
    create.add_argument("--payload", required=True, help="what each fire delivers")
    create.add_argument("--timezone", default="UTC", help="IANA zone (default UTC)")
    action("delete", "delete a schedule (succeeds when there is none)")
    action("pause", "stop a schedule firing")
    action("resume", "let a paused schedule fire again")
    history = action("history", "the recorded facts of one schedule")
    history.add_argument("--limit", type=int, default=100, help="the most recent N (default 100)")
    letters = action("dead-letters", "fires that could not be delivered", needs_name=False)
    letters.add_argument("--limit", type=int, default=100, help="the most recent N (default 100)")


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "preview":
            return _preview(args, out)
        if args.command == "demo":
            return _run_async(_demo, args, out)
        if args.command == "run":
            return _run_async(_run_plugin, args, out)
        if args.command == "schedules":
            if args.action != "create" and not os.path.exists(args.db):
                # Reading must not create an empty store as a side effect.
                raise ValidationError(
                    "--db",
                    args.db,
                    "an existing store file",
                    message=f"--db {args.db!r}: no such file; a store is made by creating a "
                    "schedule in it",
                )
            return _run_async(_schedules, args, out)
    except (
        ScheduleNotFoundError,
        BackendUnavailableError,
        CorruptDataError,
        PermissionDeniedError,
        _OutOfRangeError,
    ) as exc:
        print(f"reventless: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ReventlessError as exc:
        print(f"reventless: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader (`| head`) left; stop quietly and keep the interpreter from complaining.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse guarantees a command


def _parse_schedule(text: str, zone: str | None) -> Schedule:
    if text.lstrip().startswith("{"):
        schedule = Schedule.from_json(text)
        if zone is not None and zone != schedule.timezone:
            raise ValidationError(
                "--timezone",
                zone,
                f"nothing, or the JSON schedule's own timezone {schedule.timezone!r}",
            )
        return schedule
    timezone = "UTC" if zone is None else zone  # an empty --timezone is refused, not UTC
    return Schedule(name="preview", rate=parse_rate(text), payload="-", timezone=timezone)


def _parse_instant(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(
            "--after", text, "an ISO 8601 instant with offset, e.g. 2026-11-27T09:00:00+00:00"
        ) from exc
    try:
        return as_utc(value, "--after")
    except ValidationError as exc:
        if value.utcoffset() is None:
            raise  # a naive instant: bad input
        raise _OutOfRangeError(str(exc)) from exc


def _preview(args: argparse.Namespace, out: TextIO) -> int:
    schedule = _parse_schedule(args.schedule, args.timezone)
    after = _parse_instant(args.after)
    rows = preview(schedule, created_at=after, after=after, count=args.count)
    fields = aws_schedule_fields(schedule, created_at=after)
    aws: dict[str, Any] = {
        "ScheduleExpression": fields.expression,
        "ScheduleExpressionTimezone": fields.timezone,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "ActionAfterCompletion": fields.action_after_completion,
    }
    if fields.start_date is not None:
        aws["StartDate"] = fields.start_date.isoformat().replace("+00:00", "Z")
    if args.json:
        document = {
            "schedule": json.loads(schedule.to_json()),
            "after": after.isoformat().replace("+00:00", "Z"),
            "fires": [
                {
                    "utc": row.at.isoformat().replace("+00:00", "Z"),
                    "local": row.local.isoformat(),
                    "repeatedWallTime": row.repeated_wall_time,
                    "skippedDays": [day.isoformat() for day in row.skipped_days],
                }
                for row in rows
            ],
            "eventBridgeScheduler": aws,
        }
        out.write(json.dumps(document, indent=2) + "\n")
        return 0

    write = out.write
    write(f"{rate_text(schedule.rate)} in {schedule.timezone}, ")
    write(f"after {after.strftime('%Y-%m-%d %H:%M:%S')} UTC\n\n")
    header = ("#", "UTC", f"local ({schedule.timezone})", "note")
    table = [header]
    for number, row in enumerate(rows, 1):
        notes = []
        if row.skipped_days:
            days = ", ".join(day.isoformat() for day in row.skipped_days)
            notes.append(f"skipped {days}: wall time in a DST gap")
        if row.repeated_wall_time:
            notes.append("wall time occurs twice; fires at the first")
        table.append(
            (
                str(number),
                row.at.strftime("%Y-%m-%d %H:%M"),
                row.local.strftime("%a %Y-%m-%d %H:%M %Z"),
                "; ".join(notes),
            )
        )
    widths = [max(len(line[col]) for line in table) for col in range(len(header))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        write("  ".join(cells).rstrip() + "\n")
    if not rows:
        write("(no fires after this instant)\n")
    write("\nEventBridge Scheduler:\n")
    for key, value in aws.items():
        write(f"  {key}: {json.dumps(value) if isinstance(value, dict) else value}\n")
    return 0


def _run_async(func: Any, args: argparse.Namespace, out: TextIO) -> int:
    import anyio

    result: int = anyio.run(func, args, out)
    return result


def _utc(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _table(out: TextIO, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    table = [header, *rows]
    widths = [max(len(line[col]) for line in table) for col in range(len(header))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        out.write("  ".join(cells).rstrip() + "\n")


def _dump(out: TextIO, value: Any) -> int:
    import msgspec

    out.write(msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n")
    return 0


async def _schedules(args: argparse.Namespace, out: TextIO) -> int:
    import reventless.local
    from reventless.scheduler import Scheduler
    from reventless.testing import RecordingTarget

    # Reading needs no write access: list, show and history work on a read-only store too.
    read_only = args.action in {"list", "show", "history", "dead-letters"}
    async with reventless.local.provider(args.db, read_only=read_only) as local:
        # The CLI never runs the engine; the target is only there to make the scheduler.
        ops = (
            await Scheduler.make(local, target=RecordingTarget(), name=args.scheduler)
        ).operations
        return await _ACTIONS[args.action](ops, args, out)


async def _list(ops: Any, args: argparse.Namespace, out: TextIO) -> int:
    page = await ops.list_schedules(prefix=args.prefix, limit=args.limit, after=args.after)
    if args.json:
        return _dump(out, page)
    rows: list[tuple[str, ...]] = [
        (
            s.schedule.name,
            rate_text(s.schedule.rate),
            s.schedule.timezone,
            "paused" if s.paused else "active",
            _utc(s.next_fire),
        )
        for s in page.schedules
    ]
    rows += [(d.name, "-", "-", "damaged", "-") for d in page.damaged]
    _table(out, ("name", "rate", "timezone", "state", "next fire (UTC)"), rows)
    for damaged in page.damaged:
        out.write(f"damaged: {damaged.name}: {damaged.reason}\n")
    if page.next_token:
        out.write(f"(more: --after {page.next_token})\n")
    return 0


async def _show(ops: Any, args: argparse.Namespace, out: TextIO) -> int:
    state = await ops.get_schedule(args.name)
    fires = await ops.preview(args.name, count=args.count)
    if args.json:
        return _dump(out, {"state": state, "next": [row.at for row in fires]})
    schedule = state.schedule
    out.write(f"name:       {schedule.name}\n")
    out.write(f"rate:       {rate_text(schedule.rate)}\n")
    out.write(f"timezone:   {schedule.timezone}\n")
    out.write(f"state:      {'paused' if state.paused else 'active'}\n")
    out.write(f"created:    {_utc(state.created_at)} UTC\n")
    out.write(f"payload:    {schedule.payload}\n")
    for row in fires:
        out.write(f"next fire:  {_utc(row.at)} UTC  ({row.local:%a %Y-%m-%d %H:%M %Z})\n")
    return 0


async def _create(ops: Any, args: argparse.Namespace, out: TextIO) -> int:
    schedule = Schedule(
        name=args.name, rate=parse_rate(args.rate), payload=args.payload, timezone=args.timezone
    )
    outcome = await ops.create_schedule(schedule)
    return _dump(out, {"outcome": outcome}) if args.json else _say(out, f"{outcome}")


async def _delete(ops: Any, args: argparse.Namespace, out: TextIO) -> int:
    deleted = await ops.delete_schedule(args.name)
    if args.json:
        return _dump(out, {"deleted": deleted})
    return _say(out, "deleted" if deleted else "nothing to delete")


async def _pause_or_resume(ops: Any, args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "pause":
        state = await ops.pause_schedule(args.name)
    else:
        state = await ops.resume_schedule(args.name)
        if state is None:
            return _say(out, "completed: its one fire passed while paused")
    if args.json:
        return _dump(out, state)
    return _say(out, f"{'paused' if state.paused else 'active'}; next fire {_utc(state.next_fire)}")


async def _history(ops: Any, args: argparse.Namespace, out: TextIO) -> int:
    entries = await ops.history(args.name, limit=args.limit)
    if args.json:
        return _dump(out, entries)
    _table(
        out,
        ("at (UTC)", "what", "fire id", "detail"),
        [(_utc(e.at), str(e.kind), e.fire_id or "", e.detail or "") for e in entries],
    )
    return 0


async def _dead_letters(ops: Any, args: argparse.Namespace, out: TextIO) -> int:
    letters = await ops.dead_letters(limit=args.limit)
    if args.json:
        return _dump(out, letters)
    _table(
        out,
        ("at (UTC)", "fire id", "attempts", "reason"),
        [(_utc(d.at), d.fire_id, str(d.attempts), d.reason) for d in letters],
    )
    return 0


_ACTIONS: dict[str, Callable[[Any, argparse.Namespace, TextIO], Awaitable[int]]] = {
    "list": _list,
    "show": _show,
    "create": _create,
    "delete": _delete,
    "pause": _pause_or_resume,
    "resume": _pause_or_resume,
    "history": _history,
    "dead-letters": _dead_letters,
}


async def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from reventless.demo import DemoOptions, run_demo
    from reventless.schedule import _check_int

    _check_int("--days", args.days, 1, 366)
    try:
        start = date.fromisoformat(args.start)
    except ValueError as exc:
        raise ValidationError("--start", args.start, "a date such as 2026-03-23") from exc
    if args.speed is not None and not 0 < args.speed <= 1e7:
        raise ValidationError("--speed", args.speed, "a number above 0, at most 10,000,000")
    from reventless._zones import load_zone

    _check_demo_span(start, args.days, load_zone(args.timezone))
    options = DemoOptions(
        days=args.days,
        timezone=args.timezone,
        start=start,
        speed=args.speed,
        db=None if args.db is None else Path(args.db),
        all_fires=args.all,
    )
    return await run_demo(options, out)


def _check_demo_span(start: date, days: int, zone: tzinfo) -> None:
    """The simulated days, from local midnight of ``start``, must be datetimes in UTC."""
    try:
        datetime.combine(start, time(), zone).astimezone(UTC) + timedelta(days=days + 1)
    except OverflowError as exc:
        raise _OutOfRangeError(
            f"--start {start} with --days {days} runs outside the dates this program can compute "
            "with (0001-01-01 to 9999-12-31 UTC); choose an earlier or later start"
        ) from exc


async def _run_plugin(args: argparse.Namespace, out: TextIO) -> int:
    import importlib
    import signal

    import anyio

    import reventless.local
    from reventless.plugin import ObservedTarget, Plugin
    from reventless.target import FireEnvelope, Target

    module_name, _, attribute = args.plugin.partition(":")
    try:
        plugin = getattr(importlib.import_module(module_name), attribute or "plugin")
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValidationError(
            "MODULE:PLUGIN", args.plugin, "an importable module and a Plugin in it"
        ) from exc
    if not isinstance(plugin, Plugin):
        raise ValidationError("MODULE:PLUGIN", args.plugin, "a reventless.Plugin object")

    async def log_fire(scheduler: str, envelope: FireEnvelope, error: BaseException | None) -> None:
        outcome = "ok" if error is None else f"failed: {error}"
        out.write(
            f"{envelope.scheduled_time:%Y-%m-%dT%H:%M:%SZ} {scheduler} "
            f"{envelope.fire_id} {outcome}\n"
        )
        out.flush()

    def wrap(scheduler: str, target: Target) -> Target:
        return ObservedTarget(scheduler, target, log_fire)

    async with (
        reventless.local.provider(args.db) as local,
        plugin.start(local, wrap_target=wrap) as running,
    ):
        names = ", ".join(running.schedulers)
        out.write(
            f"running plugin {plugin.name!r} on {args.db} (schedulers: {names}); Ctrl-C to stop\n"
        )
        out.flush()
        async with anyio.create_task_group() as group:
            group.start_soon(local.run, name="reventless-engine")
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for received in signals:
                    out.write(f"stopping on {signal.Signals(received).name}\n")
                    out.flush()
                    group.cancel_scope.cancel()
                    break
    out.write("stopped\n")
    return 0


def _say(out: TextIO, text: str) -> int:
    out.write(text + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
