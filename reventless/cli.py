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
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn, TextIO

from reventless.errors import ReventlessError, ValidationError
from reventless.fire_times import as_utc, preview
from reventless.rate_translation import aws_schedule_fields
from reventless.schedule import Schedule, parse_rate, rate_text

__all__ = ("main",)

EXIT_USAGE = 2


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
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "preview":
            return _preview(args, out)
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
    return Schedule(name="preview", rate=parse_rate(text), payload="-", timezone=zone or "UTC")


def _parse_instant(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(
            "--after", text, "an ISO 8601 instant with offset, e.g. 2026-11-27T09:00:00+00:00"
        ) from exc
    return as_utc(value, "--after")


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


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
