"""``reventless reactions ...``: the reactions recorded in a store (a file or a PostgreSQL
database), and their operations, through the provider's ``Reactions`` port.

``list`` shows each reaction's position, the log's head and its lag (pending events);
``dead-letters NAME`` the events it gave up on; ``reset NAME --position N`` replays from a
position; ``resume NAME [--skip]`` lets a stopped reaction go on. A running process notices a
reset or resume within its poll interval.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TextIO

from reventless.cli._common import Parser, add_store_action, dump, say, table, utc, whole
from reventless.cli._open import open_store
from reventless.reaction import check_reaction_name

if TYPE_CHECKING:
    from reventless.reaction_adapter import Reactions

__all__ = ("add_reactions_command", "reactions")

_READS = frozenset({"list", "dead-letters"})


def add_reactions_command(commands: Any) -> None:
    group = commands.add_parser(
        "reactions",
        help="inspect and operate the reactions of a store (a file or a postgresql:// URL)",
        description="List the reactions recorded in a reventless store with their "
        "position and lag, show their dead letters, replay from a position, resume a stop.",
    )
    actions = group.add_subparsers(dest="action", required=True, parser_class=Parser)

    def action(name: str, help_text: str, *, needs_name: bool = True) -> argparse.ArgumentParser:
        return add_store_action(
            actions, name, help_text, subject="reaction" if needs_name else None
        )

    action("list", "every reaction with its position, the log's head and its lag", needs_name=False)
    letters = action("dead-letters", "the events a reaction gave up on, newest first")
    letters.add_argument("--limit", default="100", help="the most recent N (1-10,000)")
    reset = action("reset", "set the position: the events after it are handled (again)")
    reset.add_argument(
        "--position", required=True, help="a log position (0: replay from the beginning)"
    )
    resume = action("resume", "let a stopped reaction go on, retrying the event it stopped at")
    resume.add_argument(
        "--skip", action="store_true", help="go on after that event instead (it stays dead)"
    )


async def reactions(args: argparse.Namespace, out: TextIO) -> int:
    from reventless.cli._common import need_store

    need_store(args)
    name = None if args.action == "list" else _name(args.name)
    async with open_store(args.db, read_only=args.action in _READS) as provider:
        ops: Reactions = provider.reactions()
        if args.action == "list":
            return await _list(ops, args, out)
        assert name is not None
        if args.action == "dead-letters":
            limit = whole("--limit", args.limit, 1, 10_000)
            letters = await ops.dead_letters(name, limit=limit)
            if args.json:
                return dump(out, letters)
            if not letters:
                return say(out, f"no dead letters for reaction {name!r}")
            rows: list[tuple[str, ...]] = [
                (
                    str(letter.position),
                    f"{letter.aggregate}/{letter.aggregate_id}@{letter.version}",
                    letter.type,
                    str(letter.attempts),
                    letter.action,
                    utc(letter.at),
                    letter.reason,
                )
                for letter in letters
            ]
            header = ("position", "stream", "type", "attempts", "then", "at (UTC)", "reason")
            table(out, header, rows)
            return 0
        if args.action == "reset":
            position = whole("--position", args.position, 0, 999_999_999_999)
            await ops.reset(name, position)
            if args.json:
                return dump(out, {"reaction": name, "position": position, "state": "running"})
            return say(out, f"reaction {name!r} reset to position {position}")
        position = await ops.resume(name, skip=args.skip)
        if args.json:
            return dump(out, {"reaction": name, "position": position, "state": "running"})
        return say(out, f"reaction {name!r} resumes after position {position}")


def _name(text: str) -> str:
    """NAME, refused in the words `schedules` uses for a schedule's name."""
    from reventless.errors import ValidationError, _show

    try:
        return check_reaction_name(text)
    except ValidationError:
        allowed = "1 to 64 characters of letters, digits, '.', '_' or '-'"
        shown = _show(text)
        if len(text) > 64 and "characters)" not in shown:
            shown += f" ({len(text)} characters)"
        raise ValidationError(
            "name",
            text,
            allowed,
            message=f"reaction name {shown} is not allowed; expected {allowed}",
        ) from None


async def _list(ops: Reactions, args: argparse.Namespace, out: TextIO) -> int:
    statuses = await ops.statuses()
    if args.json:
        return dump(out, statuses)
    if not statuses:
        return say(out, "no reactions in this store (one is recorded when it first runs)")
    rows: list[tuple[str, ...]] = [
        (
            status.name,
            ",".join(status.follows),
            status.state,
            str(status.position),
            str(status.head),
            str(status.pending),
            "yes" if status.holder else "no",
            status.last_error or "",
        )
        for status in statuses
    ]
    header = ("name", "follows", "state", "position", "head", "pending", "running", "last error")
    table(out, header, rows)
    return 0
