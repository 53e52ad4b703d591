"""The ``reventless`` command.

::

    reventless preview SCHEDULE [--timezone Z] [--dst POLICY] [--count N] [--after INSTANT] [--json]
    reventless schedules {list,show,create,delete,pause,resume,history,dead-letters} ... --db FILE
    reventless schedulers [list] --db FILE [--json]
    reventless reactions {list,dead-letters,reset,resume} ... --db FILE [--json]
    reventless run MODULE:PLUGIN --db FILE [--misfire P] [--workers N] [--log-level L] ...
    reventless web --db FILE [--host 127.0.0.1] [--port 8000] [--token T]
    reventless check --db FILE [--max-late 60s] [--max-lag 5m] [--dead-letters 1h] [--json]
    reventless demo [...]
    reventless --version

Exit status: 0 done; 1 failed (no such schedule, the store is unavailable, damaged or read-only,
an instant out of range, the plugin's own code failed, an internal error); 2 bad input (an
option, an argument, a value the API refuses); 130 interrupted. An error is one line on stderr,
``reventless: error: MESSAGE``; with ``--json`` it is one JSON object on stderr instead, e.g.
``{"error": "ValidationError", "message": ..., "field": "--after", "value": "...", "allowed":
..., "exit_status": 2}``. No input makes the command print a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, TextIO

from reventless._timefmt import strftime
from reventless.cli._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    ArgumentError,
    Parser,
    PluginError,
    exception_site,
    instant,
    store_file,
    whole,
)
from reventless.cli._open import add_schema_option, is_postgres, schema_of
from reventless.cli._reactions import add_reactions_command, reactions
from reventless.cli._run import add_run_command, run_command
from reventless.cli._schedulers import add_schedulers_command, schedulers
from reventless.cli._store import add_schedules_command, schedules
from reventless.cli._web import add_check_command, add_web_command, check_command, web_command
from reventless.errors import (
    ReactionNotFoundError,
    ReventlessError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    UsageError,
    ValidationError,
)
from reventless.fire_times import preview
from reventless.rate_translation import aws_schedule_fields
from reventless.schedule import DEFAULT_DST, Schedule, dst_text, parse_dst, parse_rate, rate_text

__all__ = ("main",)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reventless")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="reventless", description="Schedules with one exact contract.")
    parser.add_argument("--version", action="version", version=f"reventless {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    show = commands.add_parser(
        "preview",
        help="show the next fires of a schedule and its EventBridge expression",
        description=(
            "Show the next fires of a schedule. SCHEDULE is a rate such as 'Weekdays(17, 0)' or a "
            "whole schedule as JSON, e.g. "
            '\'{"name": "r", "rate": {"kind": "daily", "hour": 9, "minute": 0}, "payload": "x"}\'.'
        ),
    )
    show.add_argument(
        "schedule",
        metavar="SCHEDULE",
        help="a rate like 'Daily(9, 0)', 'NthWeekday(2, 1, 9, 0)', 'Cron(0 9 L * ? *)', or JSON",
    )
    show.add_argument("--timezone", help="IANA zone for a rate (default UTC)")
    show.add_argument(
        "--dst",
        help="what a wall time does when the clocks change, e.g. gap=shift,overlap=both "
        "(gap: skip|shift, overlap: first|last|both; default gap=skip,overlap=first)",
    )
    show.add_argument("--count", default="10", help="how many fires (1-10,000; default 10)")
    show.add_argument(
        "--after",
        help="show fires after this instant, ISO 8601 with an offset, e.g. "
        "2026-12-01T09:00:00+01:00 (also the creation); default now",
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_schedules_command(commands)
    add_schedulers_command(commands)
    add_reactions_command(commands)
    demo = commands.add_parser(
        "demo",
        help="run the example plugin over a simulated week and print what happened",
        description="Run the shop-operations example: the original documentation's schedules "
        "driving aggregates on the embedded engine.",
    )
    demo.add_argument("--days", default="7", help="simulated days (1-366, default 7)")
    demo.add_argument("--timezone", default="Europe/Berlin", help="zone of wall-clock schedules")
    demo.add_argument("--start", default="2026-03-23", help="first local day (default 2026-03-23)")
    demo.add_argument(
        "--speed", help="simulated seconds per real second (default: a virtual clock)"
    )
    demo.add_argument(
        "--db",
        help="keep the store in this file, or in this postgresql:// database (an empty one; "
        "default: in memory)",
    )
    add_schema_option(demo)
    demo.add_argument("--all", action="store_true", help="print every fire of process-orders")
    add_run_command(commands)
    add_web_command(commands)
    add_check_command(commands)
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status. Never raises, never prints a traceback
    (set REVENTLESS_TRACEBACK=1 to see one for an internal error)."""
    out = out or sys.stdout
    arguments = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in arguments
    try:
        parser = _build_parser()
        group = _group_alone(parser, arguments)
        if group is not None:  # `reventless`, `reventless schedules`: what is there to do
            out.write(group.format_help())
            return 0
        _check_options_follow_their_command(parser, arguments)
        args = parser.parse_args(_values_given_to_options(parser, arguments))
        return _COMMANDS[args.command](args, out)
    except SystemExit as exc:  # --help and --version print and exit
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except BaseException as exc:  # the one place where every error becomes an exit status
        return _report(exc, as_json)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            choices: dict[str, argparse.ArgumentParser] = action.choices
            return choices
    return {}


def _group_alone(
    parser: argparse.ArgumentParser, arguments: list[str]
) -> argparse.ArgumentParser | None:
    """The parser of a command line that names a group of commands and nothing else."""
    for word in arguments:
        parser = _subcommands(parser).get(word)  # type: ignore[assignment]
        if parser is None:
            return None
    return parser if _subcommands(parser) else None


def _check_options_follow_their_command(
    parser: argparse.ArgumentParser, arguments: list[str]
) -> None:
    """``reventless schedules --db app.db list`` is refused saying where ``--db`` goes; argparse
    took ``app.db`` for the action ("invalid choice: 'app.db'")."""
    for word in arguments:
        commands = _subcommands(parser)
        if not commands:
            return
        if word in commands:
            parser = commands[word]
            continue
        own = {flag for action in parser._actions for flag in action.option_strings}
        if word.startswith("-") and word.split("=", 1)[0] not in own:
            what = "command" if parser.prog == "reventless" else "action"
            raise ArgumentError(
                f"{word.split('=', 1)[0]} is given before the {what}; it goes after it: "
                f"{parser.prog} {what.upper()} ... {word.split('=', 1)[0]} ... ({what}s: "
                f"{', '.join(commands)}; see {parser.prog} --help)"
            )
        return


def _values_given_to_options(parser: argparse.ArgumentParser, arguments: list[str]) -> list[str]:
    """``--misfire-grace -5s`` as ``--misfire-grace=-5s``: argparse takes a value that starts
    with '-' for an option and answers "expected one argument"; given to the option, it is
    checked and refused with what is allowed. A word that is an option itself stays one."""
    takes_value: set[str] = set()
    every: set[str] = set()
    parsers = [parser]
    while parsers:
        current = parsers.pop()
        parsers.extend(_subcommands(current).values())
        for action in current._actions:
            every.update(action.option_strings)
            if action.nargs != 0:
                takes_value.update(action.option_strings)
    joined: list[str] = []
    words = iter(arguments)
    for word in words:
        if word == "--":
            joined += [word, *words]
            break
        if word in takes_value:
            value = next(words, None)
            if value is None:
                joined.append(word)
            elif value.startswith("-") and value != "-" and value not in every:
                joined.append(f"{word}={value}")
            else:
                joined += [word, value]
            continue
        joined.append(word)
    return joined


def _in_event_loop(
    func: Callable[[argparse.Namespace, TextIO], Awaitable[int]],
) -> Callable[[argparse.Namespace, TextIO], int]:
    def run(args: argparse.Namespace, out: TextIO) -> int:
        import anyio

        result: int = anyio.run(func, args, out)
        return result

    return run


def _leaves(exc: BaseException) -> list[BaseException]:
    """The errors inside (nested) exception groups, such as a task group raises."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _status(exc: BaseException) -> int:
    if isinstance(exc, KeyboardInterrupt):
        status: int = getattr(exc, "exit_status", EXIT_INTERRUPTED)  # 143: by SIGTERM
        return status
    if isinstance(exc, (ValidationError, UsageError, ArgumentError)):
        return EXIT_USAGE
    return EXIT_FAILED


def _describe(exc: BaseException) -> dict[str, Any]:
    """The JSON error object of one error; ``message`` is the text line's message."""
    if isinstance(exc, KeyboardInterrupt):
        return {"error": "Interrupted", "message": "interrupted"}
    if not isinstance(exc, ReventlessError):
        where = exception_site(exc)
        at = f" at {where}" if where else ""
        return {
            "error": "InternalError",
            "message": f"internal error{at}: {type(exc).__name__}: {exc} (a bug in reventless; "
            "please report it, with REVENTLESS_TRACEBACK=1 set to see the traceback)",
            "exception": type(exc).__name__,
            "where": where,
        }
    document: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, ValidationError):
        document.update(field=exc.field, value=_plain(exc.value), allowed=exc.allowed)
    elif isinstance(exc, ScheduleNotFoundError):
        document["schedule"] = exc.name
    elif isinstance(exc, ReactionNotFoundError):
        document["reaction"] = exc.name
    elif isinstance(exc, ScheduleExistsError):
        document["schedules"] = exc.names
    elif isinstance(exc, PluginError):
        document.update(exception=exc.exception, where=exc.where)
    return document


def _plain(value: object) -> Any:
    """A refused value as JSON: itself when JSON has it, else its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _report(exc: BaseException, as_json: bool) -> int:
    leaves = _leaves(exc)
    if any(isinstance(leaf, BrokenPipeError) for leaf in leaves):
        # The reader (`| head`) left; stop quietly and keep the interpreter from complaining.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    if os.environ.get("REVENTLESS_TRACEBACK") and not all(
        isinstance(leaf, (ReventlessError, KeyboardInterrupt)) for leaf in leaves
    ):
        raise exc
    first = next((leaf for leaf in leaves if isinstance(leaf, ReventlessError)), leaves[0])
    status = _status(first)
    documents = [_describe(leaf) for leaf in leaves]
    document = {**documents[0], "exit_status": status}
    if len(documents) > 1:
        document["message"] = "; ".join(d["message"] for d in documents)
        document["errors"] = documents
    if as_json:
        print(json.dumps(document), file=sys.stderr)
    else:
        print(f"reventless: error: {document['message']}", file=sys.stderr)
    return status


def _parse_schedule(text: str, zone: str | None, dst_option: str | None) -> Schedule:
    dst = DEFAULT_DST if dst_option is None else parse_dst(dst_option, "--dst")
    if text.lstrip().startswith("{"):
        schedule = Schedule.from_json(text)
        if zone is not None and zone != schedule.timezone:
            raise ValidationError(
                "--timezone",
                zone,
                f"nothing, or the JSON schedule's own timezone {schedule.timezone!r}",
            )
        if dst_option is not None and dst != schedule.dst:
            raise ValidationError(
                "--dst",
                dst_option,
                f"nothing, or the JSON schedule's own dst {dst_text(schedule.dst)!r}",
            )
        return schedule
    timezone = "UTC" if zone is None else zone  # an empty --timezone is refused, not UTC
    return Schedule(name="preview", rate=parse_rate(text), payload="-", timezone=timezone, dst=dst)


def _aws_fields(schedule: Schedule, after: datetime) -> dict[str, Any]:
    """What EventBridge Scheduler would be sent, or why it cannot take the schedule."""
    try:
        fields = aws_schedule_fields(schedule, created_at=after)
    except ValidationError as exc:
        if exc.field not in ("dst", "rate.expression", "misfire"):
            raise
        return {"refused": str(exc), "refusedField": exc.field}
    aws: dict[str, Any] = {
        "ScheduleExpression": fields.expression,
        "ScheduleExpressionTimezone": fields.timezone,
        "FlexibleTimeWindow": fields.flexible_time_window,
        "ActionAfterCompletion": fields.action_after_completion,
    }
    if fields.start_date is not None:
        aws["StartDate"] = fields.start_date.isoformat().replace("+00:00", "Z")
    return aws


# preview's JSON keys were camelCase up to 0.1.0; snake_case like every other command now. The
# old keys are written too, as deprecated aliases, until the next release (see CHANGELOG.md).
_OLD_KEYS = {
    "repeated_wall_time": "repeatedWallTime",
    "skipped_days": "skippedDays",
    "second_occurrence": "secondOccurrence",
    "eventbridge_scheduler": "eventBridgeScheduler",
}


def _with_old_keys(document: dict[str, Any]) -> dict[str, Any]:
    old = {_OLD_KEYS[key]: value for key, value in document.items() if key in _OLD_KEYS}
    return {**document, **old}


def _preview(args: argparse.Namespace, out: TextIO) -> int:
    schedule = _parse_schedule(args.schedule, args.timezone, args.dst)
    after = datetime.now(UTC) if args.after is None else instant("--after", args.after)
    count = whole("--count", args.count, 1, 10_000)
    rows = preview(schedule, created_at=after, after=after, count=count)
    aws = _aws_fields(schedule, after)
    if args.json:
        fires = [
            _with_old_keys(
                {
                    "utc": row.at.isoformat().replace("+00:00", "Z"),
                    "local": row.local.isoformat(),
                    "repeated_wall_time": row.repeated_wall_time,
                    "skipped_days": [day.isoformat() for day in row.skipped_days],
                    "second_occurrence": row.second_occurrence,
                    "shifted": row.shifted,
                    "notes": list(row.notes),
                }
            )
            for row in rows
        ]
        document = {
            "schedule": json.loads(schedule.to_json()),
            "after": after.isoformat().replace("+00:00", "Z"),
            "fires": fires,
            "eventbridge_scheduler": aws,
        }
        out.write(json.dumps(_with_old_keys(document), indent=2) + "\n")
        return 0

    write = out.write
    write(f"{rate_text(schedule.rate)} in {schedule.timezone}, ")
    if not schedule.dst.is_default:
        write(f"dst {dst_text(schedule.dst)}, ")
    write(f"after {strftime(after, '%Y-%m-%d %H:%M:%S')} UTC\n\n")
    header = ("#", "UTC", f"local ({schedule.timezone})", "note")
    table = [header]
    for number, row in enumerate(rows, 1):
        table.append(
            (
                str(number),
                strftime(row.at, "%Y-%m-%d %H:%M"),
                strftime(row.local, "%a %Y-%m-%d %H:%M %Z"),
                "; ".join(row.notes),
            )
        )
    widths = [max(len(line[col]) for line in table) for col in range(len(header))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        write("  ".join(cells).rstrip() + "\n")
    if not rows:
        write("(no fires after this instant)\n")
    if aws.get("refusedField") == "dst":
        write(
            f"\nEventBridge Scheduler: not available with dst {dst_text(schedule.dst)} (it has "
            "only gap=skip,overlap=first); the embedded engine keeps this policy\n"
        )
        return 0
    if "refused" in aws:
        write(f"\nEventBridge Scheduler: not available: {aws['refused']}\n")
        return 0
    write("\nEventBridge Scheduler:\n")
    for key, value in aws.items():
        write(f"  {key}: {json.dumps(value) if isinstance(value, dict) else value}\n")
    return 0


async def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from reventless.cli.demo import DemoOptions, check_start, run_demo

    days = whole("--days", args.days, 1, 366)
    try:
        start = date.fromisoformat(args.start)
    except ValueError as exc:
        raise ValidationError("--start", args.start, "a date such as 2026-03-23") from exc
    check_start(start, days, "--start")
    if args.db is not None:
        schema = schema_of(args.db, args.schema)
        store_file(args.db, existing=False)
    elif args.schema is not None:
        raise ValidationError(
            "--schema",
            args.schema,
            "nothing without a postgresql:// --db",
            message=f"--schema {args.schema!r} is for a postgresql:// --db; without --db the "
            "demo keeps its store in memory: leave --schema out",
        )
    else:
        schema = None
    speed = None if args.speed is None else _speed(args.speed)
    from reventless._zones import load_zone

    load_zone(args.timezone)  # refused here, before the demo starts, like the other options
    options = DemoOptions(
        days=days,
        timezone=args.timezone,
        start=start,
        speed=speed,
        db=None if args.db is None else args.db if is_postgres(args.db) else Path(args.db),
        all_fires=args.all,
        schema=schema,
    )
    return await run_demo(options, out)


def _speed(text: str) -> float:
    allowed = "a number above 0, at most 10,000,000"
    try:
        speed = float(text)
    except ValueError as exc:
        raise ValidationError("--speed", text, allowed) from exc
    if not 0 < speed <= 1e7:  # also refuses nan
        raise ValidationError("--speed", text, allowed)
    return speed


_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "preview": _preview,
    "schedules": _in_event_loop(schedules),
    "schedulers": _in_event_loop(schedulers),
    "reactions": _in_event_loop(reactions),
    "demo": _in_event_loop(_demo),
    "run": run_command,
    "web": _in_event_loop(web_command),
    "check": _in_event_loop(check_command),
}


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
