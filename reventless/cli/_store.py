"""``reventless schedules ...`` and ``reventless schedulers``: a store file, as its users see it.

The command line never runs the engine and never attaches a target. It works through the
Scheduler's operations (so it refuses what the API refuses) and reads the record of attachments
that the processes running the application left in the store (``store_status``). From that record
it knows the scheduler namespaces, whether the running engine serves one, and the payload rules
of a typed target, which it applies before it stores a payload.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from reventless._timefmt import strftime
from reventless.cli._common import (
    Parser,
    add_store_action,
    did_you_mean,
    dump,
    duration,
    instant,
    need_store,
    say,
    table,
    utc,
    whole,
)
from reventless.cli._import import import_dry_run, import_plan
from reventless.cli._schedulers import engine_serving
from reventless.errors import ScheduleExistsError, ValidationError
from reventless.schedule import (
    DEFAULT_DST,
    MAX_PAYLOAD_BYTES,
    Schedule,
    check_name,
    dst_text,
    parse_dst,
    parse_rate,
    rate_text,
)
from reventless.scheduler_adapter import check_pause_note

if TYPE_CHECKING:
    from reventless._payload_types import PayloadCheck
    from reventless.local import SchedulerInfo, StoreStatus
    from reventless.scheduler import SchedulerOperations
    from reventless.scheduler_adapter import ScheduleState

__all__ = ("add_schedules_command", "schedules")

_READS = frozenset({"list", "show", "history", "dead-letters"})
# A next fire this far in the past is overdue: a running engine would have delivered it.
_OVERDUE = timedelta(seconds=60)


def add_schedules_command(commands: Any) -> None:
    group = commands.add_parser(
        "schedules",
        help="inspect and change the schedules of a store (a file or a postgresql:// URL)",
        description="Work on the schedules stored in a reventless store. Without "
        "--scheduler, the store's only scheduler is used.",
    )
    actions = group.add_subparsers(dest="action", required=True, parser_class=Parser)

    def action(name: str, help_text: str, *, needs_name: bool = True) -> argparse.ArgumentParser:
        sub = add_store_action(actions, name, help_text, subject="schedule" if needs_name else None)
        sub.add_argument(
            "--scheduler", help="the scheduler namespace (default: the store's only one)"
        )
        return sub

    listing = action("list", "list schedules in name order", needs_name=False)
    listing.add_argument("--prefix", default="", help="only names starting with this")
    listing.add_argument("--limit", default="100", help="at most this many (1-1000)")
    listing.add_argument("--after", help="start after this name (a previous next_token)")
    show = action("show", "show one schedule and its next fires")
    show.add_argument("--count", default="5", help="how many next fires (1-10,000; default 5)")
    for verb, help_text in (
        ("create", "create a schedule (see --if-exists for a taken name)"),
        (
            "update",
            "change a stored schedule in place, keeping its interval's anchor, pause and history",
        ),
    ):
        create = action(verb, help_text)
        create.add_argument(
            "rate",
            help="a rate such as 'Daily(9, 0)', 'Monthly(-1, 18, 0)' or 'Cron(0 9 ? * MON-FRI *)'",
        )
        payload = create.add_mutually_exclusive_group(required=True)
        payload.add_argument(
            "--payload", help="what each fire delivers (1 byte to 256 KiB of UTF-8)"
        )
        payload.add_argument(
            "--payload-file",
            metavar="PATH",
            help="read the payload from this file, as it is (a final newline included); "
            "'-' reads standard input",
        )
        create.add_argument("--timezone", default="UTC", help="IANA zone (default UTC)")
        create.add_argument(
            "--dst",
            help="what a wall time does when the clocks change, e.g. gap=shift,overlap=both "
            "(gap: skip|shift, overlap: first|last|both; default gap=skip,overlap=first)",
        )
        for flag, which in (("--not-before", "first"), ("--not-after", "last")):
            create.add_argument(
                flag, help=f"the {which} instant it may fire at, ISO 8601 with an offset (included)"
            )
        create.add_argument(
            "--jitter", help="deliver each fire within this many minutes after it (1-1440)"
        )
        create.add_argument(
            "--max-fires", help="complete after this many fires from creation (1-100,000)"
        )
        create.add_argument(
            "--misfire",
            help="this schedule's misfire policy on the embedded engine: latest, all or skip "
            "(default: the engine's, reventless run --misfire)",
        )
        if verb == "update":
            continue
        create.add_argument(
            "--if-exists",
            default="replace",
            help="when the name is taken: replace (default), keep it as it is, or error (exit 1)",
        )
        create.add_argument(
            "--new-scheduler",
            action="store_true",
            help="create the scheduler namespace (and the store file) when it does not exist yet",
        )
    importing = action(
        "import",
        "create the schedules of a crontab or of `schedules list --json` output, all or none",
        needs_name=False,
    )
    importing.add_argument("file", help="a crontab, or the JSON of `schedules list --json`")
    importing.add_argument("--timezone", default="UTC", help="the crontab's zone (default UTC)")
    importing.add_argument(
        "--dry-run", action="store_true", help="show what would be created and its next fires"
    )
    importing.add_argument(
        "--if-exists", default="replace", help="replace (default), keep or error, as for create"
    )
    importing.add_argument(
        "--new-scheduler",
        action="store_true",
        help="create the scheduler namespace (and the store file) when it does not exist yet",
    )
    action("delete", "delete a schedule (succeeds when there is none)")
    pause = action("pause", "stop a schedule firing; --reason says why, kept until resumed")
    _note_options(pause)
    _note_options(action("resume", "let a paused schedule fire again"))
    history = action("history", "the recorded facts of one schedule")
    history.add_argument("--limit", default="100", help="the most recent N (1-10,000)")
    letters = action("dead-letters", "fires that could not be delivered", needs_name=False)
    letters.add_argument("--limit", default="100", help="the most recent N (1-10,000)")
    _note_options(action("trigger", "fire a schedule now, once (the running engine delivers it)"))
    backfill = action("backfill", "deliver the fires of a range that were not delivered")
    _note_options(backfill)
    backfill.add_argument("--start", required=True, help="ISO 8601 instant with an offset")
    backfill.add_argument("--end", required=True, help="ISO 8601 instant with an offset")
    redrive = action(
        "redrive", "deliver dead letters again (all, --schedule or --fire-id)", needs_name=False
    )
    _note_options(redrive)
    redrive.add_argument("--schedule", help="only this schedule's dead letters")
    redrive.add_argument(
        "--fire-id", action="append", dest="fire_ids", help="only this fire (repeatable)"
    )
    pruning = action(
        "prune",
        "delete history, dead letters, handled-message and reaction operations records past "
        "retention (whole store)",
        needs_name=False,
    )
    for flag, default in (
        ("--history-age", "30d"),
        ("--dead-letter-age", "30d"),
        ("--handled-age", "31d"),
    ):
        pruning.add_argument(flag, default=default, help=f"keep this long (default {default})")


class _Call(NamedTuple):
    """What an action works with."""

    ops: SchedulerOperations
    args: argparse.Namespace
    out: TextIO
    status: StoreStatus
    scheduler: str
    now: datetime
    notes: list[str]  # what create could not check about the payload
    target: str  # the target whose payload rules create applies


async def schedules(args: argparse.Namespace, out: TextIO) -> int:
    from reventless.cli._open import open_store
    from reventless.scheduler import SchedulerOperations

    if args.action == "import" and args.dry_run:
        return await import_dry_run(args, out)  # reads no store and writes nothing
    need_store(args)
    if args.action in ("create", "update"):  # read and checked before the store is opened
        args.schedule = _schedule(args, _payload(args))
        if args.action == "create" and args.if_exists not in ("replace", "keep", "error"):
            raise ValidationError("--if-exists", args.if_exists, "replace, keep or error")
    if args.action == "prune":
        return await _prune(args, out)
    async with open_store(args.db, args.schema, read_only=args.action in _READS) as local:
        publisher = local.scheduled_publisher()
        status = await publisher.store_status()
        scheduler = _resolve(args, status)
        check: PayloadCheck | None = None
        notes: list[str] = []
        if args.action in ("create", "update", "import"):
            check, notes = _payload_check(status.scheduler(scheduler), scheduler)
        ops = SchedulerOperations(scheduler, publisher, local.clock, check)
        target = "target" if check is None else check.target
        call = _Call(ops, args, out, status, scheduler, local.clock.now(), notes, target)
        return await _ACTIONS[args.action](call)


def _payload(args: argparse.Namespace) -> str:
    """``--payload``, or what ``--payload-file`` holds: a file, or standard input for '-'. Read
    at most one byte over the limit, so that a huge file or an endless pipe is refused, not
    read."""
    path: str | None = args.payload_file
    if path is None:
        return str(args.payload)
    limit = MAX_PAYLOAD_BYTES
    allowed = f"a file of 1 byte to {limit:,} bytes (256 KiB) of UTF-8 text, or '-' for stdin"
    shown = "'-' (standard input)" if path == "-" else repr(path)

    def refuse(why: str) -> ValidationError:
        return ValidationError(
            "--payload-file", path, allowed, message=f"--payload-file {shown}: {why}"
        )

    data = _read_at_most(path, limit + 1, refuse, allowed)
    if not data:
        raise refuse(f"is empty; expected {allowed}")
    if len(data) > limit:
        raise refuse(
            f"holds more than {limit:,} bytes; a payload is 1 byte to {limit:,} bytes (256 KiB)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start:,}); "
            f"expected {allowed}"
        ) from None


def _read_at_most(
    path: str, size: int, refuse: Callable[[str], ValidationError], allowed: str
) -> bytes:
    if "\x00" in path:  # open() would raise a bare ValueError
        raise refuse(f"has a NUL character; expected {allowed}")
    if path != "-" and os.path.isdir(path):
        raise refuse(f"is a folder; expected {allowed}")
    try:
        if path == "-":
            if sys.stdin is None:  # started with standard input closed
                raise refuse("standard input is closed")
            return sys.stdin.buffer.read(size)
        with open(path, "rb") as file:
            return file.read(size)
    except FileNotFoundError:
        raise refuse(f"no such file; expected {allowed}") from None
    except PermissionError:
        raise refuse("cannot be read (permission denied)") from None
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror or exc})") from None


def _option_name(flag: str, text: str) -> str:
    """A schedule or scheduler name given as an option, refused under the option's name."""
    try:
        return check_name(text)
    except ValidationError as exc:
        raise ValidationError(flag, text, exc.allowed) from exc


def _resolve(args: argparse.Namespace, status: StoreStatus) -> str:
    """The scheduler the action works on: the one named, else the store's only one."""
    known = [info.name for info in status.schedulers]
    creating = args.action in ("create", "import")
    if args.scheduler is not None:
        _option_name("--scheduler", args.scheduler)
        if args.scheduler in known or (creating and args.new_scheduler):
            return str(args.scheduler)
        raise _unknown(args.scheduler, known, creating=creating)
    if len(known) == 1:
        return known[0]
    if known:
        raise ValidationError(
            "--scheduler",
            None,
            f"one of {', '.join(known)}",
            message=f"the store has {len(known)} schedulers ({', '.join(known)}); "
            "choose one with --scheduler NAME",
        )
    if creating and not args.new_scheduler:
        raise ValidationError(
            "--scheduler",
            None,
            "an existing scheduler, or --new-scheduler",
            message="the store has no scheduler yet; its schedules would fire only once a "
            "process makes one (Scheduler.make or a plugin). Pass --new-scheduler (with "
            "--scheduler NAME; the default name is 'default') to create it anyway",
        )
    return "default"  # an empty store: nothing to read, and --new-scheduler makes 'default'


def _unknown(name: str, known: list[str], *, creating: bool) -> ValidationError:
    has = f"it has: {', '.join(known)}" if known else "it has none yet"
    message = f"--scheduler {name!r} is not a scheduler of this store{did_you_mean(name, known)}"
    message += f"; {has}"
    if creating:
        message += (
            "; a new scheduler's schedules fire only once a process makes a scheduler of that "
            "name (Scheduler.make or a plugin): pass --new-scheduler to create it anyway"
        )
    return ValidationError("--scheduler", name, "a scheduler of this store", message=message)


def _payload_check(
    info: SchedulerInfo | None, scheduler: str
) -> tuple[PayloadCheck | None, list[str]]:
    """The payload rules to apply on create (the engine's target's, else the newest), and notes
    saying what was not checked."""
    from reventless._payload_types import PayloadCheck

    attachments = [] if info is None else info.attachments
    running = [a for a in attachments if a.engine_running]
    if not attachments:
        return None, [
            f"payload not checked: no process has attached a target to scheduler "
            f"{scheduler!r} yet, so what it accepts is not known here"
        ]
    chosen = (running or attachments)[0]
    if chosen.payload_types is None:
        return None, [
            f"payload not checked: the target of scheduler {scheduler!r} ({chosen.target}) "
            "states no payload rules; it is stored as given"
        ]
    check = PayloadCheck(chosen.payload_types, chosen.target)
    if not check.checks:
        return None, [f"payload not checked against the {chosen.target}: {'; '.join(check.notes)}"]
    return check, [f"payload checked against the {chosen.target}; {note}" for note in check.notes]


def _state(state: ScheduleState, served: bool, now: datetime) -> str:
    if state.paused:
        return "paused"
    if state.next_fire is None:
        return "no next fire"
    overdue = state.next_fire < now - _OVERDUE
    if not served:
        return "waiting, overdue" if overdue else "waiting"
    return "overdue" if overdue else "active"


def _late(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours else []
    return " ".join([*parts, f"{minutes}m"])


async def _list(call: _Call) -> int:
    args = call.args
    if args.after is not None:
        _option_name("--after", args.after)
    limit = whole("--limit", args.limit, 1, 1000)
    try:
        page = await call.ops.list_schedules(prefix=args.prefix, limit=limit, after=args.after)
    except ValidationError as exc:
        if exc.field != "prefix":
            raise
        raise ValidationError("--prefix", exc.value, exc.allowed) from None
    served, serving = engine_serving(call.status, call.scheduler)
    if args.json:
        import msgspec

        document = msgspec.to_builtins(page)
        for entry, state in zip(document["schedules"], page.schedules, strict=True):
            entry["state"] = _state(state, served, call.now)
        document.update(scheduler=call.scheduler, served=served, engine=call.status.engine)
        return dump(call.out, document)
    rows: list[tuple[str, ...]] = [
        (
            s.schedule.name,
            rate_text(s.schedule.rate),
            s.schedule.timezone,
            _state(s, served, call.now),
            utc(s.next_fire),
        )
        for s in page.schedules
    ]
    rows += [(d.name, "-", "-", "damaged", "-") for d in page.damaged]
    table(call.out, ("name", "rate", "timezone", "state", "next fire (UTC)"), rows)
    for damaged in page.damaged:
        call.out.write(f"damaged: {damaged.name}: {damaged.reason}\n")
    if page.next_token:
        call.out.write(f"(more: --after {page.next_token})\n")
    call.out.write(f"scheduler {call.scheduler!r}: {serving}\n")
    return 0


async def _show(call: _Call) -> int:
    state = await call.ops.get_schedule(call.args.name)
    fires = await call.ops.preview(
        call.args.name, count=whole("--count", call.args.count, 1, 10_000)
    )
    served, serving = engine_serving(call.status, call.scheduler)
    text = _state(state, served, call.now)
    if call.args.json:
        return dump(
            call.out,
            {
                "state": state,
                "next": [row.at for row in fires],
                "scheduler": call.scheduler,
                "status": text,
                "served": served,
                "engine": call.status.engine,
            },
        )
    schedule, write = state.schedule, call.out.write
    write(f"scheduler:  {call.scheduler}\n")
    write(f"name:       {schedule.name}\n")
    write(f"rate:       {rate_text(schedule.rate)}\n")
    write(f"timezone:   {schedule.timezone}\n")
    if not schedule.dst.is_default:
        write(f"dst:        {dst_text(schedule.dst)}\n")
    if schedule.misfire is not None:
        write(f"misfire:    {schedule.misfire}\n")
    if schedule.not_before is not None or schedule.not_after is not None:
        low = "-" if schedule.not_before is None else utc(schedule.not_before)
        high = "-" if schedule.not_after is None else utc(schedule.not_after)
        write(f"window:     {low} to {high} (UTC, both included)\n")
    if schedule.max_fires is not None:
        write(f"max fires:  {schedule.max_fires} (from its creation)\n")
    if schedule.jitter_minutes is not None:
        write(f"jitter:     up to {schedule.jitter_minutes} minutes after each fire\n")
    write(f"state:      {text}\n")
    if state.paused:
        write(f"paused:     {_pause_text(state)}\n")
    write(f"engine:     {serving}\n")
    write(f"created:    {utc(state.created_at)} UTC\n")
    write(f"payload:    {schedule.payload}\n")
    if state.next_fire is not None and state.next_fire < call.now - _OVERDUE:
        write(f"overdue:    the next fire was due {_late(call.now - state.next_fire)} ago\n")
    for row in fires:
        local = strftime(row.local, "%a %Y-%m-%d %H:%M %Z")
        write(f"next fire:  {utc(row.at)} UTC  ({local})\n")
    return 0


def _schedule(args: argparse.Namespace, payload: str) -> Schedule:
    """The schedule ``create`` stores, its fields refused under their options' names."""
    flag = "--payload" if args.payload_file is None else "--payload-file"
    try:
        return Schedule(
            name=args.name,
            rate=parse_rate(args.rate),
            payload=payload,
            timezone=args.timezone,
            dst=DEFAULT_DST if args.dst is None else parse_dst(args.dst, "--dst"),
            misfire=args.misfire,
            not_before=None
            if args.not_before is None
            else instant("--not-before", args.not_before),
            not_after=None if args.not_after is None else instant("--not-after", args.not_after),
            jitter_minutes=None if args.jitter is None else whole("--jitter", args.jitter, 1, 1440),
            max_fires=None
            if args.max_fires is None
            else whole("--max-fires", args.max_fires, 1, 100_000),
        )
    except ValidationError as exc:
        # The API calls these fields payload and timezone.
        if exc.field == "payload":
            message = str(exc).replace("payload", flag, 1)
            raise ValidationError(flag, exc.value, exc.allowed, message=message) from None
        if exc.field == "timezone":
            raise ValidationError("--timezone", exc.value, exc.allowed) from None
        raise


async def _create(call: _Call) -> int:
    args = call.args
    schedule: Schedule = args.schedule
    payload_flag = "--payload" if args.payload_file is None else "--payload-file"
    try:
        if args.action == "update":
            outcome = await call.ops.update_schedule(schedule)
        else:
            outcome = await call.ops.create_schedule(schedule, if_exists=args.if_exists)
    except ScheduleExistsError as exc:
        raise ScheduleExistsError(
            exc.names,
            message=f"schedule {args.name!r} already exists (--if-exists error); nothing was "
            "written. Use --if-exists replace to replace it, --if-exists keep to leave it, or "
            "`reventless schedules delete` it first",
        ) from None
    except ValidationError as exc:
        if exc.field == "if_exists":
            raise ValidationError("--if-exists", exc.value, "replace, keep or error") from None
        if exc.field == "schedule.rate":  # a Single in the past: RATE, as `preview` says it
            message = str(exc).replace("schedule.rate", "rate", 1)
            raise ValidationError("rate", exc.value, exc.allowed, message=message) from None
        if exc.field != "schedule.payload" or exc.__cause__ is None:
            raise
        # Said in the command's terms: the option, and the target that refused it.
        raise ValidationError(
            payload_flag,
            exc.value,
            exc.allowed,
            message=f"{payload_flag} is refused by the {call.target}: {exc.__cause__}",
        ) from exc
    if args.json:
        return dump(
            call.out,
            {
                "outcome": outcome,
                "scheduler": call.scheduler,
                "payload_checked": not any(n.startswith("payload not") for n in call.notes),
                "notes": call.notes,
            },
        )
    for note in call.notes:
        print(f"reventless: note: {note}", file=sys.stderr)
    return say(call.out, f"{outcome}")


async def _delete(call: _Call) -> int:
    deleted = await call.ops.delete_schedule(call.args.name)
    if call.args.json:
        return dump(call.out, {"deleted": deleted})
    return say(call.out, "deleted" if deleted else "nothing to delete")


def _note_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reason", help="why (up to 256 printable characters), recorded in the history"
    )
    parser.add_argument(
        "--by", help="who (up to 100 characters; default: the login name of this user)"
    )


def _note(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """``--reason`` and ``--by`` (default: the login name), checked under their options."""
    by = args.by if args.by is not None else _login_name()
    try:
        return check_pause_note(args.reason, by)
    except ValidationError as exc:
        raise ValidationError(f"--{exc.field}", exc.value, exc.allowed) from None


async def _pause_or_resume(call: _Call) -> int:
    state: ScheduleState | None
    args = call.args
    reason, by = _note(args)
    flip = call.ops.pause_schedule if args.action == "pause" else call.ops.resume_schedule
    state = await flip(args.name, reason=reason, by=by)
    if state is None:
        return say(call.out, "completed: its one fire passed while paused")
    if call.args.json:
        return dump(call.out, state)
    if state.paused:
        return say(call.out, f"paused {_pause_text(state)}")
    return say(call.out, f"active; next fire {utc(state.next_fire)}")


def _login_name() -> str | None:
    """Who runs this command, as the OS says (None where it cannot: no user of that id)."""
    import getpass

    try:
        return getpass.getuser()[:100] or None
    except (OSError, KeyError, ImportError):
        return None


def _pause_text(state: ScheduleState) -> str:
    """When, by whom and why a paused schedule was paused, as far as it was said."""
    if state.paused_at is None:
        return "(when, by whom and why not recorded)"
    text = f"since {utc(state.paused_at)} UTC"
    if state.paused_by is not None:
        text += f" by {state.paused_by}"
    if state.pause_reason is not None:
        text += f": {state.pause_reason}"
    return text


async def _history(call: _Call) -> int:
    entries = await call.ops.history(
        call.args.name, limit=whole("--limit", call.args.limit, 1, 10_000)
    )
    if call.args.json:
        return dump(call.out, entries)
    table(
        call.out,
        ("at (UTC)", "what", "fire id", "detail"),
        [(utc(e.at), str(e.kind), e.fire_id or "", e.detail or "") for e in entries],
    )
    return 0


async def _dead_letters(call: _Call) -> int:
    letters = await call.ops.dead_letters(limit=whole("--limit", call.args.limit, 1, 10_000))
    if call.args.json:
        return dump(call.out, letters)
    table(
        call.out,
        ("at (UTC)", "fire id", "attempts", "reason"),
        [(utc(d.at), d.fire_id, str(d.attempts), d.reason) for d in letters],
    )
    return 0


async def _trigger(call: _Call) -> int:
    reason, by = _note(call.args)
    fire = await call.ops.trigger_schedule(call.args.name, reason=reason, by=by)
    if call.args.json:
        return dump(call.out, {"fire_id": fire})
    return say(call.out, f"queued {fire}{_delivery_note(call)}")


async def _backfill(call: _Call) -> int:
    start = instant("--start", call.args.start)
    end = instant("--end", call.args.end)
    if end < start:
        raise ValidationError(
            "--end",
            call.args.end,
            f"an instant at or after --start ({call.args.start})",
            message=f"--end {call.args.end} is before --start {call.args.start}; expected an "
            "instant at or after it",
        )
    reason, by = _note(call.args)
    try:
        fires = await call.ops.backfill(call.args.name, start, end, reason=reason, by=by)
    except ValidationError as exc:
        if exc.field not in ("start", "end"):
            raise
        # The option, and the text given for it, in the JSON error too.
        flag = f"--{exc.field}"
        text = call.args.start if exc.field == "start" else call.args.end
        raise ValidationError(flag, text, exc.allowed, message=str(exc)) from None
    if call.args.json:
        return dump(call.out, {"fire_ids": fires})
    say(call.out, f"queued {len(fires)} fire(s){_delivery_note(call)}")
    for fire in fires:
        say(call.out, f"  {fire}")
    return 0


async def _redrive(call: _Call) -> int:
    args = call.args
    if args.schedule is not None and args.fire_ids is not None:
        raise ValidationError(
            "--schedule",
            args.schedule,
            "--schedule or --fire-id, not both",
            message="--schedule and --fire-id cannot be given together; give one or the other",
        )
    if args.schedule is not None:
        _option_name("--schedule", args.schedule)
    reason, by = _note(args)
    try:
        fires = await call.ops.redrive(
            schedule=args.schedule, fire_ids=args.fire_ids, reason=reason, by=by
        )
    except ValidationError as exc:
        if not exc.field.startswith("fire_ids"):
            raise
        # Said in the command's terms: the option, not the API's list and index.
        value = exc.value if isinstance(exc.value, str) else f"{len(args.fire_ids)} times"
        raise ValidationError("--fire-id", value, exc.allowed) from None
    if call.args.json:
        return dump(call.out, {"fire_ids": fires})
    say(call.out, f"queued {len(fires)} dead letter(s) again{_delivery_note(call)}")
    for fire in fires:
        say(call.out, f"  {fire}")
    return 0


async def _prune(args: argparse.Namespace, out: TextIO) -> int:
    import reventless.local
    from reventless.cli._open import open_store

    longest = 3650 * 86400.0
    retention = reventless.local.Retention(
        history_age=duration("--history-age", args.history_age, 3600, longest),
        dead_letter_age=duration("--dead-letter-age", args.dead_letter_age, 3600, longest),
        handled_age=duration("--handled-age", args.handled_age, 3600, longest),
    )
    async with open_store(args.db, args.schema, retention=None) as local:
        report = await local.prune(retention)
    if args.json:
        return dump(out, report)
    return say(
        out,
        f"deleted {report.history} history entries, {report.dead_letters} dead letters, "
        f"{report.handled_messages} handled-message records, {report.reaction_operations} "
        "reaction operations records",
    )


def _delivery_note(call: _Call) -> str:
    served, _ = engine_serving(call.status, call.scheduler)
    return "" if served else "; no running engine serves this scheduler: it waits for one"


async def _import(call: _Call) -> int:
    args = call.args
    schedules = await import_plan(args, call.out)
    if schedules is None:
        return 1
    if not schedules:
        return say(call.out, "no schedules in the file; nothing was imported")
    outcomes = await call.ops.create_schedules(schedules, if_exists=args.if_exists)
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[str(outcome)] = counts.get(str(outcome), 0) + 1
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
    return say(call.out, f"imported {len(outcomes)} schedules: {summary}")


_ACTIONS: dict[str, Callable[[_Call], Awaitable[int]]] = {
    "list": _list,
    "import": _import,
    "update": _create,
    "show": _show,
    "create": _create,
    "delete": _delete,
    "pause": _pause_or_resume,
    "resume": _pause_or_resume,
    "history": _history,
    "dead-letters": _dead_letters,
    "trigger": _trigger,
    "backfill": _backfill,
    "redrive": _redrive,
}
