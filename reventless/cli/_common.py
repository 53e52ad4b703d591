"""What the ``reventless`` command's parts share: its errors, option parsing in shell terms, output.

Every option is parsed here from its text, so that a bad value is refused with the option's own
name (``--workers``), the value and what is allowed, in words a shell user acts on: ISO 8601
instants with an offset, durations such as ``90s`` or ``2h``, whole numbers.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TextIO

from reventless._timefmt import strftime
from reventless.cli._open import (
    add_schema_option,
    check_url,
    db_default,
    is_postgres,
    schema_of,
)
from reventless.errors import ReventlessError, ValidationError

__all__ = (
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "ArgumentError",
    "OutOfRangeError",
    "Parser",
    "PluginError",
    "add_store_action",
    "did_you_mean",
    "dump",
    "duration",
    "exception_site",
    "instant",
    "say",
    "store_file",
    "table",
    "utc",
    "whole",
)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_INSTANT_EXAMPLE = "2026-12-01T09:00:00+01:00 or 2026-12-01T08:00:00Z"


class ArgumentError(ReventlessError):
    """The command line does not parse: an unknown option, a missing argument (status 2)."""


class Parser(argparse.ArgumentParser):
    """argparse that raises ArgumentError, reported like every other bad input."""

    def error(self, message: str) -> NoReturn:
        raise ArgumentError(f"{message} (see {self.prog} --help)")


class OutOfRangeError(ReventlessError):
    """A well-formed instant or date beyond what the command can compute with (status 1)."""


class PluginError(ReventlessError):
    """The plugin's own code failed: on import, or while starting (status 1).

    ``exception`` is the type of what it raised and ``where`` the file and line it came from.
    """

    def __init__(self, message: str, *, exception: str, where: str | None) -> None:
        super().__init__(message)
        self.exception = exception
        self.where = where


def exception_site(exc: BaseException) -> str | None:
    """``file:line`` where ``exc`` was raised in code a user can open (not importlib's)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<frozen ")
    ]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None


def add_store_action(
    actions: Any, name: str, help_text: str, *, subject: str | None
) -> argparse.ArgumentParser:
    """An action of a store command (``schedules``, ``reactions``): ``NAME`` (the ``subject``'s
    name; none when ``subject`` is None), ``--db`` and ``--json``."""
    sub: argparse.ArgumentParser = actions.add_parser(name, help=help_text, description=help_text)
    if subject is not None:
        sub.add_argument("name", help=f"the {subject}'s name")
    sub.add_argument("--db", **db_default())
    add_schema_option(sub)
    sub.add_argument("--json", action="store_true", help="print JSON")
    return sub


def store_file(text: str, *, existing: bool) -> str:
    """``--db``, checked before anything opens it, the same way by every command: an empty path,
    a folder, a path whose folder is missing and a file that is not a regular one (a device such
    as /dev/null, a pipe) are each refused in one line, status 2. ``existing``: the command needs
    a store that is already there (only ``run``, ``demo`` and ``create --new-scheduler`` make
    one)."""
    if is_postgres(text):
        return check_url(text)
    if not text.strip():
        raise ValidationError(
            "--db",
            text,
            "the path of a store file",
            message=f"--db {text!r} is empty; expected the path of a store file, e.g. --db app.db",
        )
    if os.path.isdir(text):
        raise ValidationError(
            "--db", text, "a store file", message=f"--db {text!r} is a folder, not a store file"
        )
    if os.path.exists(text):
        if not os.path.isfile(text):
            raise ValidationError(
                "--db",
                text,
                "a store file",
                message=f"--db {text!r} is not a regular file (a device, a pipe or a socket); "
                "expected a store file",
            )
        return text
    folder = os.path.dirname(text) or "."
    if not os.path.isdir(folder):
        raise ValidationError(
            "--db",
            text,
            "a store file in an existing folder",
            message=f"--db {text!r}: there is no folder {folder!r} to hold it",
        )
    if existing:
        raise ValidationError(
            "--db",
            text,
            "an existing store file",
            message=f"--db {text!r}: no such file; a store is made by `reventless run`, by an "
            "application, or by `reventless schedules create ... --new-scheduler`",
        )
    return text


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a near choice, else nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def whole(flag: str, text: str, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` written in decimal digits."""
    allowed = f"a whole number from {low:,} to {high:,}"
    if not re.fullmatch(r"[+-]?[0-9]{1,12}", text.strip()):
        raise ValidationError(flag, text, allowed)
    value = int(text)
    if not low <= value <= high:
        raise ValidationError(flag, value, allowed)
    return value


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _show_seconds(seconds: float) -> str:
    if 0 < seconds < 1:  # 10ms, not 0.01s: the way the option is written
        return f"{seconds * 1000:g}ms"
    for unit in ("d", "h", "m", "s"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{seconds / _UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


def duration(flag: str, text: str, low: float, high: float) -> timedelta:
    """A duration such as ``90``/``90s``, ``500ms``, ``15m``, ``2h`` or ``7d``, within bounds in
    seconds."""
    allowed = (
        f"a duration from {_show_seconds(low)} to {_show_seconds(high)}: a number and a unit "
        "(ms, s, m, h, d), e.g. 90s, 15m or 2h; a bare number is seconds"
    )
    match = re.fullmatch(r"([0-9]{1,9}(?:\.[0-9]{1,6})?)(ms|s|m|h|d)?", text.strip())
    if match is None:
        raise ValidationError(flag, text, allowed)
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not low <= seconds <= high:
        raise ValidationError(flag, text, allowed)
    return timedelta(seconds=seconds)


def instant(flag: str, text: str) -> datetime:
    """An ISO 8601 instant with a UTC offset (or Z), as an aware UTC datetime."""
    allowed = f"an ISO 8601 instant with a UTC offset, e.g. {_INSTANT_EXAMPLE}"
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(flag, text, allowed) from exc
    if value.utcoffset() is None:
        raise ValidationError(
            flag,
            text,
            allowed,
            message=(
                f"{flag} {text!r} has no UTC offset (a naive local time); add one, e.g. "
                f"{_INSTANT_EXAMPLE}"
            ),
        )
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise OutOfRangeError(
            f"{flag} {text} is outside the instants this program can compute with "
            "(0001-01-01 to 9999-12-31 UTC)"
        ) from exc


def utc(value: datetime | None) -> str:
    return "-" if value is None else strftime(value, "%Y-%m-%d %H:%M:%S")


def table(out: TextIO, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    lines = [header, *rows]
    widths = [max(len(line[col]) for line in lines) for col in range(len(header))]
    for line in lines:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        out.write("  ".join(cells).rstrip() + "\n")


def dump(out: TextIO, value: Any) -> int:
    import msgspec

    out.write(msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n")
    return 0


def say(out: TextIO, text: str) -> int:
    out.write(text + "\n")
    return 0


def need_store(args: argparse.Namespace) -> None:
    """Only ``create --new-scheduler`` (and ``import --new-scheduler``) may make a store file;
    every other command needs one. ``args.schema`` becomes the schema to open (``schema_of``)."""
    args.schema = schema_of(args.db, args.schema)
    store_file(args.db, existing=not getattr(args, "new_scheduler", False))
