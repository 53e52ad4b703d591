"""``reventless reactions ...``: the reactions recorded in a store (a file or a PostgreSQL
database), and their operations, through the provider's ``Reactions`` port.

``list`` shows each reaction's position, the log's head and its lag (pending events);
``show NAME`` one reaction's status and the operators' latest resets and resumes;
``dead-letters NAME`` the events it gave up on; ``reset NAME --position N`` replays from a
position; ``resume NAME [--skip]`` lets a stopped reaction go on. Reset and resume take
``--reason`` and ``--by`` (the login name by default), recorded with the operation, as
``schedules pause`` does. A running process notices a reset or resume within its poll interval.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TextIO

from reventless.cli._common import Parser, add_store_action, dump, say, table, utc, whole
from reventless.cli._open import open_store
from reventless.cli._store import _note, _note_options
from reventless.errors import ReactionNotFoundError
from reventless.reaction import check_reaction_name

if TYPE_CHECKING:
    from reventless.reaction import ReactionOperation
    from reventless.reaction_adapter import Reactions

__all__ = ("add_reactions_command", "reactions")

_READS = frozenset({"list", "show", "dead-letters"})


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
    show = action("show", "a reaction's status and its latest resets and resumes, newest first")
    show.add_argument("--limit", default="20", help="the most recent N operations (1-10,000)")
    letters = action("dead-letters", "the events a reaction gave up on, newest first")
    letters.add_argument("--limit", default="100", help="the most recent N (1-10,000)")
    reset = action("reset", "set the position: the events after it are handled (again)")
    reset.add_argument(
        "--position", required=True, help="a log position (0: replay from the beginning)"
    )
    _note_options(reset)
    resume = action("resume", "let a stopped reaction go on, retrying the event it stopped at")
    resume.add_argument(
        "--skip", action="store_true", help="go on after that event instead (it stays dead)"
    )
    _note_options(resume)


async def reactions(args: argparse.Namespace, out: TextIO) -> int:
    from reventless.cli._common import need_store

    need_store(args)
    name = None if args.action == "list" else _name(args.name)
    async with open_store(args.db, args.schema, read_only=args.action in _READS) as provider:
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
        if args.action == "show":
            return await _show(ops, name, whole("--limit", args.limit, 1, 10_000), args, out)
        reason, by = _note(args)
        if args.action == "reset":
            position = whole("--position", args.position, 0, 999_999_999_999)
            await ops.reset(name, position, reason=reason, by=by)
            said = f"reaction {name!r} reset to position {position}"
        else:
            position = await ops.resume(name, skip=args.skip, reason=reason, by=by)
            said = f"reaction {name!r} resumes after position {position}"
        if args.json:
            return dump(
                out,
                {
                    "reaction": name,
                    "position": position,
                    "state": "running",
                    "reason": reason,
                    "by": by,
                },
            )
        return say(out, said)


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


async def _show(
    ops: Reactions, name: str, limit: int, args: argparse.Namespace, out: TextIO
) -> int:
    operations = await ops.operations(name, limit=limit)  # also: no such reaction
    status = next((s for s in await ops.statuses() if s.name == name), None)
    if status is None:
        raise ReactionNotFoundError(name)
    if args.json:
        return dump(out, {"status": status, "operations": operations})
    holder = f"{status.holder} until {utc(status.lease_until)}" if status.holder else "none"
    out.write(
        f"reaction {name}: {status.state} at position {status.position} of {status.head},"
        f" {status.pending} pending; follows {', '.join(status.follows)}; lease holder {holder}\n"
    )
    if status.last_error:
        out.write(f"last error: {status.last_error}\n")
    if not operations:
        return say(out, "no operations recorded (resets and resumes are, with who and why)")
    out.write("operations, newest first:\n")
    header = ("at (UTC)", "action", "from", "to", "was", "by", "reason")
    table(out, header, [_operation_row(op) for op in operations])
    return 0


def _operation_row(op: ReactionOperation) -> tuple[str, ...]:
    return (
        utc(op.at),
        op.action,
        str(op.from_position),
        str(op.to_position),
        op.from_state,
        op.by or "",
        op.reason or "",
    )
