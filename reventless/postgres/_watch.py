"""What a PostgreSQL engine says about fires that wait: at its start, the fires overdue by more
than a minute (``catch_up``: one query, planned by the misfire policy as the engine will, in the
embedded engine's ``CatchUp``), and while it runs, fires that stay undelivered more than a
minute past their due time (``LatenessWatch``).

Time is the database's clock, or the provider's own clock when it was given one (as the
engine's). Both look only at the schedulers this process serves (those with a target here);
several engines share the work, so what one reports at its start may be delivered by another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

import anyio
import asyncpg

from reventless._fire_rows import from_us
from reventless.errors import ReventlessError
from reventless.local import CatchUp
from reventless.local._rows import decode_stored
from reventless.misfire import count_due, plan_misfire
from reventless.postgres._event_log import translating
from reventless.postgres._schema import quote_schema
from reventless.postgres._tx import DB_NOW_US
from reventless.scheduler_adapter import MisfirePolicy

__all__ = ("LATE_AFTER", "LatenessWatch", "catch_up")

_log = logging.getLogger("reventless.postgres.engine")
# A fire this late was missed, not merely busy (the embedded engine's and the check's measure).
LATE_AFTER = timedelta(seconds=60)
_LATE_US = int(LATE_AFTER.total_seconds() * 1_000_000)


async def catch_up(
    pool: asyncpg.Pool,
    schema: str,
    where: str,
    schedulers: Sequence[str],
    now_us: int | None,
    policy: MisfirePolicy,
    grace: timedelta,
) -> CatchUp:
    """The fires of ``schedulers`` overdue by more than ``LATE_AFTER`` (``now_us``: the clock's
    now, None for the database's), and what the misfire policy will make of them."""
    s = quote_schema(schema)
    async with translating(where), pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT n.now, id, scheduler, name, spec, created_at, next_fire FROM"
            f" (SELECT coalesce($1::bigint, {DB_NOW_US}) AS now) n LEFT JOIN {s}.schedules"
            " ON due_at < n.now - $2 AND scheduler = ANY($3::text[])",
            now_us,
            _LATE_US,
            list(schedulers),
        )
    now = from_us(rows[0][0])
    found = CatchUp(rows[0][0] - _LATE_US, policy)
    for _, row_id, scheduler, name, spec, created_us, next_us in rows:
        if row_id is None or next_us is None:
            continue
        try:
            timing, _, misfire = decode_stored(bytes(spec), scheduler, name)
        except ReventlessError:
            continue  # the engine dead-letters it, saying why
        first, created = from_us(next_us), from_us(created_us)
        plan = plan_misfire(
            timing,
            first,
            created_at=created,
            now=now,
            grace=grace,
            policy=misfire or policy,
            late_after=LATE_AFTER + timedelta(minutes=timing.jitter_minutes or 0),
        )
        later = 0
        if plan.deliver and plan.next_fire is not None and plan.next_fire <= now:
            later = count_due(timing, plan.next_fire, now, created_at=created)
        found.add(len(plan.deliver) + later, plan.missed, plan.expired)
    return found


class LatenessWatch:
    """While the engine runs: every ``every`` seconds, the fires of this process's schedulers
    that are more than ``LATE_AFTER`` past their due time and not delivered (claimed ones
    under way included: a fire is delivered when its batch commits). Logged at WARNING once
    when they appear, and at INFO once none is left."""

    def __init__(self, pool: asyncpg.Pool, schema: str, where: str, every: float = 10.0) -> None:
        s = quote_schema(schema)
        self._pool = pool
        self._where = where
        self.every = every
        self._late = (
            f"SELECT count(*), min(due_at), coalesce($1::bigint, {DB_NOW_US}) FROM"
            f" {s}.schedules WHERE due_at < coalesce($1::bigint, {DB_NOW_US}) - $2"
            " AND scheduler = ANY($3::text[])"
        )
        self.behind = False

    async def look(self, schedulers: Sequence[str], now_us: int | None) -> int:
        """How many fires are late now; says so when that changes between none and some."""
        async with translating(self._where), self._pool.acquire() as conn:
            count, oldest, now = await conn.fetchrow(self._late, now_us, _LATE_US, list(schedulers))
        if count and not self.behind:
            _log.warning(
                "%d fire(s) are more than %d s past their due time and not delivered yet (the "
                "oldest due %.0f s ago) on %s, while this engine runs: the engines are behind "
                "(slow deliveries holding their batches, too few engines or claim loops, or "
                "the store slow to answer)",
                count,
                LATE_AFTER.total_seconds(),
                (now - oldest) / 1_000_000,
                self._where,
                extra={"late_fires": count},
            )
        elif not count and self.behind:
            _log.info("no fire is late any more on %s", self._where)
        self.behind = bool(count)
        return int(count)

    async def run(self, targets: Mapping[str, object], now_us: Callable[[], int | None]) -> None:
        """Look every ``every`` seconds (real time) until cancelled, at the schedulers of
        ``targets`` then; a failure to look is only logged (the engine says what the server
        does)."""
        while True:
            await anyio.sleep(self.every)
            if not targets:
                continue
            try:
                await self.look(list(targets), now_us())
            except ReventlessError as exc:
                _log.debug("looking for late fires on %s failed: %s", self._where, exc)
