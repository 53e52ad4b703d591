"""What the console shows, read through the provider's ports only (no store internals), so
that every provider that implements them gets the console: the rows of the schedules page,
the week-ahead timeline, a schedule's page and the reactions."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import anyio

from reventless.errors import ReventlessError, UsageError
from reventless.fire_times import FirePreview, fire_times, last_fire, preview
from reventless.health import reaction_lag
from reventless.provider import Provider, ProvidesReactions
from reventless.reaction import ReactionDeadLetter, ReactionOperation, ReactionStatus
from reventless.schedule import IntervalRate, rate_text
from reventless.scheduler_adapter import (
    DeadLetter,
    EngineStatus,
    HistoryEntry,
    HistoryKind,
    ScheduledPublisher,
    ScheduleState,
)
from reventless.web._words import rate_words

__all__ = (
    "STATES",
    "ConsoleModel",
    "ReactionView",
    "ScheduleRow",
    "SchedulesPage",
    "Timeline",
)

STATES = ("any", "active", "paused", "late", "done")
_SCAN_PAGE = 1000
_MAX_SCAN = 100_000  # schedules one filtered page may look through
_OUTCOMES = frozenset(
    {
        HistoryKind.FIRED,
        HistoryKind.FAILED,
        HistoryKind.MISSED,
        HistoryKind.DEAD_LETTERED,
        HistoryKind.EXPIRED,
    }
)
_WEEK_HOURS = 7 * 24
_OPERATIONS = 10  # a reaction's latest operations shown
_MAX_FIRES_COUNTED = _WEEK_HOURS * 60  # a minutely schedule's week
_HOUR_US = 3_600_000_000


@dataclass
class ScheduleRow:
    """One schedule as the list shows it."""

    scheduler: str
    state: ScheduleState
    status: str  # active, paused, late, done
    rate: str  # in words
    expression: str  # as written: Daily(9, 0)
    next_fires: list[FirePreview] = field(default_factory=list)
    last: HistoryEntry | None = None
    lateness: timedelta | None = None


@dataclass
class SchedulesPage:
    rows: list[ScheduleRow]
    next_token: str | None
    damaged: list[tuple[str, str]]
    scanned: int


@dataclass
class Timeline:
    """Fires per hour per scheduler for the week from ``start`` (a whole UTC hour)."""

    start: datetime
    counts: dict[str, list[int]]
    capped: list[str]  # schedules whose fires were counted only up to the cap
    computed_at: float


@dataclass
class ReactionView:
    status: ReactionStatus
    lag: timedelta | None
    dead_letters: list[ReactionDeadLetter]
    operations: list[ReactionOperation]  # the operators' latest, newest first


def status_of(state: ScheduleState, now: datetime, late_after: timedelta) -> str:
    if state.paused:
        return "paused"
    if state.next_fire is None:
        return "done"
    return "late" if state.next_fire < now - late_after else "active"


class ConsoleModel:
    """The console's reads and actions on one provider."""

    def __init__(
        self,
        provider: Provider,
        *,
        late_after: timedelta = timedelta(seconds=60),
        schedulers: list[str] | None = None,
    ):
        self.provider = provider
        self.late_after = late_after
        self.named = schedulers  # for a provider that cannot list its schedulers (AWS)
        self._timeline: Timeline | None = None

    @property
    def publisher(self) -> ScheduledPublisher:
        return self.provider.scheduled_publisher()

    def now(self) -> datetime:
        return self.provider.clock.now()

    async def schedulers(self) -> tuple[list[str], EngineStatus | None, str | None]:
        """The schedulers, the engine, and why they are not available (AWS)."""
        try:
            overview = await self.publisher.overview()
        except UsageError as exc:
            return list(self.named or []), None, str(exc)
        return self.named or overview.schedulers, overview.engine, None

    async def schedules(
        self,
        schedulers: list[str],
        *,
        state: str = "any",
        text: str = "",
        after: str | None = None,
        limit: int = 50,
    ) -> SchedulesPage:
        """A page of rows in (scheduler, name) order from the cursor ``after``
        (``"scheduler/name"``), filtered by state and by text in the name or the rate."""
        now = self.now()
        rows: list[ScheduleRow] = []  # up to limit + 1: one more says there is a next page
        damaged: list[tuple[str, str]] = []
        scanned = 0
        start_scheduler, _, start_name = (after or "").partition("/")
        needle = text.casefold()
        last_seen: str | None = None
        for scheduler in schedulers:
            if scheduler < start_scheduler or len(rows) > limit or scanned >= _MAX_SCAN:
                continue
            cursor = (start_name or None) if scheduler == start_scheduler else None
            while cursor != "" and len(rows) <= limit and scanned < _MAX_SCAN:
                page = await self.publisher.list_schedules(
                    scheduler, limit=_SCAN_PAGE, after=cursor
                )
                damaged += [(scheduler, d.name) for d in page.damaged]
                for item in page.schedules:
                    scanned += 1
                    last_seen = f"{scheduler}/{item.schedule.name}"
                    row = self._row(scheduler, item, now)
                    if self._matches(row, state, needle):
                        rows.append(row)
                        if len(rows) > limit:
                            break
                cursor = page.next_token or ""
        token = None
        if len(rows) > limit:
            rows = rows[:limit]
            token = f"{rows[-1].scheduler}/{rows[-1].state.schedule.name}"
        elif scanned >= _MAX_SCAN:
            token = last_seen  # looked far enough for one request: the next page goes on
        await self._enrich(rows, now)
        return SchedulesPage(rows, token, damaged, scanned)

    @staticmethod
    def _matches(row: ScheduleRow, state: str, needle: str) -> bool:
        if state != "any" and row.status != state:
            return False
        haystack = f"{row.state.schedule.name} {row.rate} {row.expression}"
        return not needle or needle in haystack.casefold()

    def _row(self, scheduler: str, item: ScheduleState, now: datetime) -> ScheduleRow:
        return ScheduleRow(
            scheduler=scheduler,
            state=item,
            status=status_of(item, now, self.late_after),
            rate=rate_words(item.schedule.rate),
            expression=rate_text(item.schedule.rate),
        )

    async def _enrich(self, rows: list[ScheduleRow], now: datetime) -> None:
        """The next fires (with DST notes) and the last outcome of the rows shown only."""
        for row in rows:
            state = row.state
            if not state.paused and state.next_fire is not None:
                row.next_fires = preview(
                    state.schedule,
                    created_at=state.created_at,
                    after=min(now, state.next_fire - timedelta(seconds=1)),
                    count=3,
                )
            row.last, row.lateness = await self.last_outcome(row.scheduler, state.schedule.name)

    async def last_outcome(
        self, scheduler: str, name: str
    ) -> tuple[HistoryEntry | None, timedelta | None]:
        try:
            entries = await self.publisher.history(scheduler, name, limit=20)
        except UsageError:
            return None, None
        for entry in reversed(entries):
            if entry.kind in _OUTCOMES or entry.kind is HistoryKind.COMPLETED:
                late = None
                if entry.kind is HistoryKind.FIRED and entry.scheduled_time is not None:
                    late = max(timedelta(0), entry.at - entry.scheduled_time)
                return entry, late
        return None, None

    async def history(
        self, scheduler: str, name: str, page: int, size: int
    ) -> tuple[list[HistoryEntry], bool]:
        """Page ``page`` (1 = newest) of the history, newest first, and whether there is more."""
        want = min(page * size + 1, 10_000)
        entries = await self.publisher.history(scheduler, name, limit=want)
        newest_first = list(reversed(entries))
        chunk = newest_first[(page - 1) * size : page * size]
        return chunk, len(newest_first) > page * size

    async def dead_letters(self, scheduler: str, name: str | None = None) -> list[DeadLetter]:
        letters = await self.publisher.dead_letters(scheduler, limit=1000)
        mine = [letter for letter in letters if name is None or letter.schedule == name]
        return list(reversed(mine))

    async def timeline(self, schedulers: list[str]) -> Timeline:
        """Fires per hour per scheduler for a week from this hour; computed at most once a
        minute (in a worker thread: a store of many schedules takes a while)."""
        cached = self._timeline
        if cached is not None and time.monotonic() - cached.computed_at < 60:
            return cached
        now = self.now()
        start = now.replace(minute=0, second=0, microsecond=0)
        states: dict[str, list[ScheduleState]] = {}
        for scheduler in schedulers:
            found: list[ScheduleState] = []
            after: str | None = None
            while len(found) < _MAX_SCAN:
                page = await self.publisher.list_schedules(scheduler, limit=_SCAN_PAGE, after=after)
                found += [s for s in page.schedules if not s.paused and s.next_fire is not None]
                after = page.next_token
                if after is None:
                    break
            states[scheduler] = found
        counted = await anyio.to_thread.run_sync(_count_week, states, start)
        self._timeline = Timeline(start, counted[0], counted[1], time.monotonic())
        return self._timeline

    async def reactions(self) -> tuple[list[ReactionView], str | None]:
        if not isinstance(self.provider, ProvidesReactions):
            return [], "this provider runs no reactions"
        ops = self.provider.reactions()
        try:
            statuses = await ops.statuses()
        except UsageError as exc:
            return [], str(exc)
        now = self.now()
        views = []
        for status in statuses:
            lag = await reaction_lag(self.provider.event_log(), status, now)
            try:
                letters = await ops.dead_letters(status.name, limit=20)
            except ReventlessError:
                letters = []
            try:
                operations = await ops.operations(status.name, limit=_OPERATIONS)
            except ReventlessError:
                operations = []
            views.append(ReactionView(status, lag, letters, operations))
        return views, None


def _count_week(
    states: dict[str, list[ScheduleState]], start: datetime
) -> tuple[dict[str, list[int]], list[str]]:
    end = start + timedelta(hours=_WEEK_HOURS)
    counts: dict[str, list[int]] = {}
    capped: list[str] = []
    for scheduler, found in states.items():
        hours = [0] * _WEEK_HOURS
        grids: Counter[tuple[int, int, int | None]] = Counter()
        for state in found:
            after = max(start - timedelta(microseconds=1), state.created_at)
            fires = fire_times(state.schedule, created_at=state.created_at, after=after)
            rate = state.schedule.rate
            if isinstance(rate, IntervalRate):
                first = next(fires, None)
                if first is not None:
                    grids[_grid(state, rate, first, start)] += 1
                continue
            for seen, instant in enumerate(fires, 1):
                if instant >= end:
                    break
                hours[int((instant - start).total_seconds() // 3600)] += 1
                if seen >= _MAX_FIRES_COUNTED:
                    capped.append(f"{scheduler}/{state.schedule.name}")
                    break
        for grid, times in grids.items():
            for hour, count in enumerate(_grid_hours(*grid)):
                hours[hour] += count * times
        counts[scheduler] = hours
    return counts, capped


def _grid(
    state: ScheduleState, rate: IntervalRate, first: datetime, start: datetime
) -> tuple[int, int, int | None]:
    """An interval's fires from ``first`` as a grid: its first fire in whole microseconds from
    the week's start, its step, and how many it has at most (None: unbounded in the week).
    Schedules made together share one, and each grid is counted once."""
    step = rate.minutes * 60_000_000
    high = last_fire(state.schedule, state.created_at)
    most = None if high is None else (high - first) // timedelta(microseconds=step) + 1
    return (first - start) // timedelta(microseconds=1), step, most


def _grid_hours(origin: int, step: int, most: int | None) -> list[int]:
    """A grid's fires per hour of the week, by arithmetic (a minutely one costs what a daily
    one does)."""
    hours = []
    previous = 0
    for hour in range(_WEEK_HOURS):
        offset = (hour + 1) * _HOUR_US - origin
        count = -(-offset // step) if offset > 0 else 0  # fires before the hour's end
        if most is not None and count > most:
            count = most
        hours.append(count - previous)
        previous = count
    return hours
