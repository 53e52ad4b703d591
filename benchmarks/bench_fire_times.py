"""next_fire_after and fire_times: reventless's side, and the DST disagreement counts.

``single``: the next fire after each of many random instants (one call each): ours
``next_fire_after``; the peers' sides are in ``peers_aps3`` (APScheduler 3.11's
``get_next_fire_time(None, start)``, croniter with one reused iterator moved by ``set_current``,
cronsim's ``CronSim(expr, start)``). ``batch``: walking consecutive fires from a start (ours
``fire_times``; theirs: the same iterators stepped, APScheduler 4's stateful ``next()``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from _common import (
    CALENDAR_CASES,
    CASES,
    CREATED,
    calls_per_second,
    case_key,
    fires_per_second,
    random_starts,
)

from reventless import Schedule, fire_times, next_fire_after, parse_rate


def _schedule(rate: str, zone: str) -> Schedule:
    return Schedule(name="bench", rate=parse_rate(rate), payload="p", timezone=zone)


def single(count: int, repeats: int, calendar: bool = False) -> dict[str, float]:
    starts = random_starts(count)
    rates = {}
    for label, rate, zone, _, _ in CALENDAR_CASES if calendar else CASES:
        schedule = _schedule(rate, zone)

        def call(start: datetime, schedule: Schedule = schedule) -> object:
            return next_fire_after(schedule, start, created_at=CREATED)

        rates[case_key(label, zone)] = calls_per_second(call, starts, repeats)
    return rates


def calendar(count: int, repeats: int) -> dict[str, float]:
    """``single`` for the calendar rates: Monthly, NthWeekday, Cron."""
    return single(count, repeats, calendar=True)


def batch(count: int, length: int, repeats: int) -> dict[str, float]:
    starts = random_starts(count)
    rates = {}
    for label, rate, zone, _, _ in CASES:
        schedule = _schedule(rate, zone)

        def walk(start: datetime, length: int, schedule: Schedule = schedule) -> object:
            return list(islice(fire_times(schedule, created_at=CREATED, after=start), length))

        rates[case_key(label, zone)] = fires_per_second(walk, starts, length, repeats)
    return rates


def dst(count: int) -> dict[str, dict[str, int]]:
    """Starts within two days of each DST change 2000-2035; per case, how many answers of each
    peer differ from ours (ours follow the contract, proven against a brute-force oracle)."""
    rng = random.Random(7)
    cases = [
        ("Daily(9, 0)", "Europe/Berlin", "0 9 * * *", {"hour": "9", "minute": "0"}),
        ("Daily(2, 30)", "Europe/Berlin", "30 2 * * *", {"hour": "2", "minute": "30"}),
        ("Daily(1, 30)", "America/New_York", "30 1 * * *", {"hour": "1", "minute": "30"}),
    ]
    counts: dict[str, dict[str, int]] = {}
    for rate, zone_name, cron, fields in cases:
        zone = ZoneInfo(zone_name)
        transitions = _transitions(zone)
        starts = [
            rng.choice(transitions)
            + timedelta(
                seconds=rng.randint(-2 * 86400, 2 * 86400), microseconds=rng.randint(1, 999_999)
            )
            for _ in range(count)
        ]
        schedule = _schedule(rate, zone_name)
        peers = _dst_peers(zone, cron, fields)
        ours = [next_fire_after(schedule, start) for start in starts]
        row = {}
        for name, peer in peers.items():
            row[name] = sum(
                1
                for start, mine in zip(starts, ours, strict=True)
                if (theirs := peer(start)) is None or theirs.astimezone(UTC) != mine
            )
        counts[f"{rate} {zone_name}"] = row
    return counts


def _dst_peers(
    zone: ZoneInfo, cron: str, fields: dict[str, str]
) -> dict[str, Callable[[datetime], datetime | None]]:
    """Each peer's answer to 'the next fire after this instant' for one case."""
    from apscheduler.triggers.cron import CronTrigger
    from croniter import croniter
    from cronsim import CronSim

    trigger = CronTrigger(timezone=zone, **fields)
    reused = croniter(cron, datetime(2000, 1, 1, tzinfo=zone))

    def by_croniter(start: datetime) -> datetime | None:
        reused.set_current(start.astimezone(zone), force=True)
        return reused.get_next(datetime)  # type: ignore[no-any-return]

    return {
        "aps3": lambda start: trigger.get_next_fire_time(None, start.astimezone(zone)),
        "croniter": by_croniter,
        "cronsim": lambda start: next(CronSim(cron, start.astimezone(zone))),
    }


def _transitions(zone: ZoneInfo) -> list[datetime]:
    found = []
    instant = datetime(2000, 1, 1, tzinfo=UTC)
    offset = instant.astimezone(zone).utcoffset()
    while instant.year < 2035:
        instant += timedelta(hours=1)
        current = instant.astimezone(zone).utcoffset()
        if current != offset:
            found.append(instant)
            offset = current
    return found
