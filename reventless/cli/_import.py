"""``reventless schedules import FILE``: schedules from a crontab or ``schedules list --json``.

Reading is pure (``read_import``): the text becomes schedules and a list of the lines that could
not be expressed, each with its reason; the command then creates all of them in one batch, or
none when any line was refused.

A crontab line is five time fields (Unix cron, see ``Cron``) or one of ``@hourly``, ``@daily``,
``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``, ``@annually``, then the command, which
becomes the payload. The schedule is named from the comment line just above it (its characters
outside ``[0-9A-Za-z._-]`` become ``-``), else ``line-N``. ``CRON_TZ=Zone`` (or ``TZ=``) sets the
zone of the lines below it; other variable lines (``SHELL=``, ``MAILTO=``) are not schedules
and are reported as skipped. ``@reboot`` has no time to fire at and is refused.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any, NamedTuple, TextIO

import msgspec

from reventless.cli._common import say, table, utc
from reventless.errors import ValidationError
from reventless.schedule import Cron, Schedule, rate_text

__all__ = ("ImportPlan", "Refused", "import_dry_run", "import_plan", "read_import")

MAX_IMPORT = 10_000  # one batch: all or none
_SHORTHANDS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s*=")
_NOT_NAME = re.compile(r"[^0-9A-Za-z._-]+")


class Refused(NamedTuple):
    """A line (or JSON entry, numbered from 1) that was not imported, and why."""

    line: int
    text: str
    reason: str


class ImportPlan(NamedTuple):
    """The schedules read, the entries refused, and notes (lines skipped on purpose)."""

    schedules: list[Schedule]
    refused: list[Refused]
    notes: list[str]


def read_import(
    text: str, *, timezone: str = "UTC", progress: Callable[[int, int], None] | None = None
) -> ImportPlan:
    """Read a crontab, or the JSON ``schedules list --json`` writes (a text starting with
    ``{``). ``timezone`` is the crontab's zone until a ``CRON_TZ=`` line; ``progress`` is
    called with (lines read, lines in all) every thousand lines."""
    if text.lstrip().startswith("{"):
        plan = _read_json(text)
    else:
        plan = _read_crontab(text, timezone, progress)
    if len(plan.schedules) > MAX_IMPORT:
        plan.refused.append(
            Refused(
                0,
                f"{len(plan.schedules)} schedules",
                f"at most {MAX_IMPORT} are imported at once (all or none); split the file",
            )
        )
    return plan


def _read_crontab(
    text: str, timezone: str, progress: Callable[[int, int], None] | None
) -> ImportPlan:
    lines = text.splitlines()
    plan = ImportPlan([], [], [])
    names: dict[str, int] = {}
    comment: str | None = None
    for number, raw in enumerate(lines, 1):
        if progress is not None and number % 1000 == 0:
            progress(number, len(lines))
        line = raw.strip()
        if not line:
            comment = None
            continue
        if line.startswith("#"):
            comment = line.lstrip("#").strip() or None
            continue
        if _VARIABLE.match(line):
            timezone = _variable(line, number, timezone, plan)
            comment = None
            continue
        schedule = _job(line, number, comment, timezone, names, plan.refused)
        comment = None
        if schedule is not None:
            names[schedule.name] = number
            plan.schedules.append(schedule)
    return plan


def _variable(line: str, number: int, timezone: str, plan: ImportPlan) -> str:
    key, _, value = (part.strip() for part in line.partition("="))
    value = value.strip("'\"")
    if key not in ("CRON_TZ", "TZ"):
        plan.notes.append(f"line {number}: {key}= is a setting, not a schedule: skipped")
        return timezone
    try:
        Schedule(name="zone-check", rate=Cron("0 0 * * *"), payload="-", timezone=value)
    except ValidationError as exc:
        # Listed, so nothing is imported; the lines below are checked in the zone before it.
        plan.refused.append(Refused(number, line, str(exc)))
        return timezone
    return value


def _job(
    line: str,
    number: int,
    comment: str | None,
    timezone: str,
    names: dict[str, int],
    refused: list[Refused],
) -> Schedule | None:
    if line.startswith("@"):
        word, _, command = line.partition(" ")
        if word == "@reboot":
            refused.append(Refused(number, line, "@reboot runs at boot, not at a time"))
            return None
        expression = _SHORTHANDS.get(word)
        if expression is None:
            allowed = ", ".join(["@reboot", *_SHORTHANDS])
            refused.append(Refused(number, line, f"{word!r} is not one of {allowed}"))
            return None
    else:
        fields = line.split(None, 5)
        if len(fields) < 6:
            reason = "expected five time fields and a command"
            refused.append(Refused(number, line, reason))
            return None
        expression, command = " ".join(fields[:5]), fields[5]
    name = _name(comment, number)
    if name in names:
        refused.append(Refused(number, line, f"name {name!r} is taken by line {names[name]}"))
        return None
    try:
        return Schedule(
            name=name, rate=Cron(expression), payload=command.strip(), timezone=timezone
        )
    except ValidationError as exc:
        refused.append(Refused(number, line, str(exc)))
        return None


def _name(comment: str | None, number: int) -> str:
    if comment is not None:
        name = _NOT_NAME.sub("-", comment).strip("-")[:64].strip("-")
        if name:
            return name
    return f"line-{number}"


def _read_json(text: str) -> ImportPlan:
    plan = ImportPlan([], [], [])
    try:
        document = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        plan.refused.append(Refused(1, text[:80], f"not JSON: {exc}"))
        return plan
    entries = document.get("schedules") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        reason = 'expected the JSON of `schedules list --json`: {"schedules": [...]}'
        plan.refused.append(Refused(1, text[:80], reason))
        return plan
    seen: dict[str, int] = {}
    for number, entry in enumerate(entries, 1):
        schedule = _entry(entry, number, plan)
        if schedule is None:
            continue
        if schedule.name in seen:
            reason = f"name {schedule.name!r} is taken by entry {seen[schedule.name]}"
            plan.refused.append(Refused(number, schedule.name, reason))
            continue
        seen[schedule.name] = number
        plan.schedules.append(schedule)
    return plan


def _entry(entry: Any, number: int, plan: ImportPlan) -> Schedule | None:
    body = entry.get("schedule") if isinstance(entry, dict) else None
    shown = str(body)[:80]
    if not isinstance(body, dict):
        plan.refused.append(Refused(number, shown, "an entry without a schedule object"))
        return None
    try:
        schedule = Schedule.from_json(msgspec.json.encode(body))
    except ValidationError as exc:
        plan.refused.append(Refused(number, shown, str(exc)))
        return None
    if entry.get("paused"):
        reason = entry.get("pause_reason")
        why = f" ({reason})" if isinstance(reason, str) else ""
        plan.notes.append(f"entry {number}: {schedule.name} was paused{why}; it is imported active")
    return schedule


async def import_plan(args: argparse.Namespace, out: TextIO) -> list[Schedule] | None:
    """The schedules of the file, or None after listing what was refused."""
    import sys

    import anyio

    from reventless.cli._import import read_import

    try:
        text = await anyio.Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ValidationError("FILE", args.file, "a readable UTF-8 file") from exc
    progress = progress_bar if sys.stderr.isatty() else None
    plan = read_import(text, timezone=args.timezone, progress=progress)
    if progress is not None:
        sys.stderr.write("\r\033[K")
    for note in plan.notes:
        out.write(f"note: {note}\n")
    if not plan.refused:
        return plan.schedules
    for refused in plan.refused:
        out.write(f"line {refused.line}: {refused.text}\n  refused: {refused.reason}\n")
    out.write(f"{len(plan.refused)} refused; nothing was imported\n")
    return None


async def import_dry_run(args: argparse.Namespace, out: TextIO) -> int:
    from reventless.clock import SystemClock
    from reventless.fire_times import fire_times

    schedules = await import_plan(args, out)
    if schedules is None:
        return 1
    now = SystemClock().now()
    rows: list[tuple[str, ...]] = []
    for schedule in schedules:
        fires = fire_times(schedule, created_at=now)
        upcoming = ", ".join(utc(fire) for _, fire in zip(range(3), fires, strict=False))
        rows.append((schedule.name, rate_text(schedule.rate), schedule.timezone, upcoming))
    table(out, ("name", "rate", "timezone", "next fires (UTC)"), rows)
    return say(out, f"{len(schedules)} schedules would be imported (dry run; nothing was written)")


def progress_bar(done: int, total: int) -> None:
    import sys

    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\rreading [{'#' * filled}{'.' * (width - filled)}] {done}/{total} lines")
    sys.stderr.flush()
