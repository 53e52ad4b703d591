"""Health for alerting: what a monitor should page about, read through a provider's ports.

``await check(provider, max_late=..., max_lag=...)`` answers a ``Health``: ``ok``, or the
problems found, each one line naming what is wrong (a fire overdue past ``max_late``, dead
letters recorded in the last ``dead_letter_window``, a reaction stopped or lagging past
``max_lag``, no engine running while schedules wait). ``reventless check`` and the console's
``GET /healthz`` both answer from it. What a provider cannot tell (AWS: no engine to watch, a
reaction's lag is its queue's) is listed in ``not_available``, never counted as a problem.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from reventless.aggregate_adapter import EventLog
from reventless.errors import UsageError
from reventless.provider import Provider, ProvidesReactions
from reventless.reaction import ReactionStatus
from reventless.scheduler_adapter import ScheduledPublisher

__all__ = ("Health", "Problem", "check", "reaction_lag", "words")

# The most schedules one check reads per scheduler (ten pages of the port's largest).
_MAX_SCAN = 100_000
_PAGE = 1000


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """One thing wrong: ``kind`` (``late``, ``dead_letters``, ``reaction_stopped``,
    ``reaction_lag``, ``no_engine``; the console's ``/healthz`` also ``store_unreachable``),
    what it is about (``subject``) and a sentence."""

    kind: str
    subject: str
    message: str


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """The answer of ``check``: ``ok`` when ``problems`` is empty."""

    ok: bool
    checked_at: datetime
    problems: list[Problem]
    not_available: list[str] = []

    def summary(self) -> str:
        """One line: ``ok`` or the first problem (and how many more)."""
        if self.ok:
            return "ok"
        first = self.problems[0].message
        more = len(self.problems) - 1
        return first if more == 0 else f"{first} (and {more} more problem{'s' * (more > 1)})"


async def reaction_lag(log: EventLog, status: ReactionStatus, now: datetime) -> timedelta | None:
    """How long the oldest event the reaction has not handled has waited: zero when nothing is
    pending, None when the log cannot say (no global order)."""
    if status.pending <= 0:
        return timedelta(0)
    try:
        events = await log.read_all(after_position=status.position, limit=1000)
    except UsageError:
        return None
    if not events:
        return timedelta(0)
    follows = set(status.follows)
    oldest = next((e for e in events if e.aggregate in follows), events[0])
    return max(timedelta(0), now - oldest.recorded_at)


async def check(
    provider: Provider,
    *,
    max_late: timedelta = timedelta(seconds=60),
    max_lag: timedelta = timedelta(minutes=5),
    dead_letter_window: timedelta = timedelta(hours=1),
    schedulers: list[str] | None = None,
) -> Health:
    """The provider's health now (its clock): see the module's docstring. ``schedulers``: the
    ones to look at (default: every one the provider lists; required where it cannot list)."""
    now = provider.clock.now()
    problems: list[Problem] = []
    missing: list[str] = []
    publisher = provider.scheduled_publisher()
    engine_running: bool | None = None
    try:
        overview = await publisher.overview()
        names = overview.schedulers if schedulers is None else schedulers
        engine_running = overview.engine.holder is not None
    except UsageError as exc:
        names = schedulers or []
        missing.append(f"schedulers and engine: {exc}")
    waiting = 0
    for scheduler in names:
        overdue, active = await _overdue(publisher, scheduler, now - max_late)
        waiting += active
        for name, due in overdue[:20]:
            late = words(now - due)
            problems.append(
                Problem(
                    kind="late",
                    subject=f"{scheduler}/{name}",
                    message=f"schedule {scheduler}/{name} is {late} late (due "
                    f"{due.strftime('%Y-%m-%d %H:%M:%S')} UTC, threshold {words(max_late)})",
                )
            )
        if len(overdue) > 20:
            problems.append(
                Problem(
                    kind="late",
                    subject=scheduler,
                    message=f"{len(overdue) - 20} more schedules of {scheduler} are late",
                )
            )
        await _dead_letters(publisher, scheduler, now - dead_letter_window, problems, missing)
    if engine_running is False and waiting:
        problems.insert(
            0,
            Problem(
                kind="no_engine",
                subject="engine",
                message=f"no engine is running: {waiting} active schedules wait (no heartbeat)",
            ),
        )
    await _reactions(provider, now, max_lag, problems, missing)
    return Health(ok=not problems, checked_at=now, problems=problems, not_available=missing)


async def _overdue(
    publisher: ScheduledPublisher, scheduler: str, due_before: datetime
) -> tuple[list[tuple[str, datetime]], int]:
    overdue: list[tuple[str, datetime]] = []
    active = 0
    after: str | None = None
    for _ in range(_MAX_SCAN // _PAGE):
        page = await publisher.list_schedules(scheduler, limit=_PAGE, after=after)
        for state in page.schedules:
            if state.paused or state.next_fire is None:
                continue
            active += 1
            if state.next_fire < due_before:
                overdue.append((state.schedule.name, state.next_fire))
        after = page.next_token
        if after is None:
            break
    return overdue, active


async def _dead_letters(
    publisher: ScheduledPublisher,
    scheduler: str,
    since: datetime,
    problems: list[Problem],
    missing: list[str],
) -> None:
    try:
        letters = await publisher.dead_letters(scheduler, limit=1000)
    except UsageError as exc:
        missing.append(f"dead letters of {scheduler}: {exc}")
        return
    new = [letter for letter in letters if letter.at >= since]
    if new:
        last = new[-1]
        problems.append(
            Problem(
                kind="dead_letters",
                subject=scheduler,
                message=f"{len(new)} new dead letters in scheduler {scheduler} (latest: "
                f"{last.fire_id}: {_short(last.reason)})",
            )
        )


async def _reactions(
    provider: Provider,
    now: datetime,
    max_lag: timedelta,
    problems: list[Problem],
    missing: list[str],
) -> None:
    if not isinstance(provider, ProvidesReactions):
        return
    try:
        statuses = await provider.reactions().statuses()
    except UsageError as exc:
        missing.append(f"reactions: {exc}")
        return
    log = provider.event_log()
    for status in statuses:
        if status.state == "stopped":
            why = _short(status.last_error) or f"stopped after position {status.position}"
            problems.append(
                Problem(
                    kind="reaction_stopped",
                    subject=status.name,
                    message=f"reaction {status.name} stopped: {why}",
                )
            )
            continue
        lag = await reaction_lag(log, status, now)
        if lag is not None and lag > max_lag:
            problems.append(
                Problem(
                    kind="reaction_lag",
                    subject=status.name,
                    message=f"reaction {status.name} lags {words(lag)} ({status.pending} events "
                    f"pending; threshold {words(max_lag)})",
                )
            )


def _short(text: str | None, limit: int = 120) -> str:
    one_line = " ".join((text or "").split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def words(delta: timedelta) -> str:
    """A duration for people: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
