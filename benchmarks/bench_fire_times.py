"""next_fire_after against APScheduler 3.11's CronTrigger, croniter and cronsim.

All four compute the next fire from the same random start instants (seconds and microseconds
non-zero, so inclusive and exclusive peers agree away from DST). Each measurement is repeated and
the median reported; targets are checked as ratios measured in this same run, plus the absolute
floors of the issue. A second part counts, on starts near DST changes, where each peer disagrees
with reventless, whose answers the test suite proves against a brute-force oracle.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from croniter import croniter
from cronsim import CronSim

from reventless import Daily, Minutes, Rate, Schedule, Weekdays, next_fire_after

Case = tuple[str, Rate, str, dict[str, str]]
CASES: list[Case] = [
    ("Daily(9, 0)", Daily(9, 0), "0 9 * * *", {"hour": "9", "minute": "0"}),
    (
        "Weekdays(17, 0)",
        Weekdays(17, 0),
        "0 17 * * 1-5",
        {"day_of_week": "mon-fri", "hour": "17", "minute": "0"},
    ),
    ("Minutes(5)", Minutes(5), "*/5 * * * *", {"minute": "*/5"}),
]
ZONES = ("UTC", "Europe/Berlin")
TARGET_WALL_BERLIN = 100_000
TARGET_INTERVAL = 300_000
TARGET_VS_APSCHEDULER = 2.5
TARGET_VS_CRONITER = 8.0


def random_starts(count: int, seed: int = 20261127) -> list[datetime]:
    rng = random.Random(seed)
    low = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
    high = datetime(2035, 1, 1, tzinfo=UTC).timestamp()
    starts = []
    for _ in range(count):
        instant = datetime.fromtimestamp(rng.uniform(low, high), UTC)
        starts.append(
            instant.replace(second=rng.randint(1, 59), microsecond=rng.randint(1, 999_999))
        )
    return starts


def timed(func: Callable[[datetime], object], starts: list[datetime], repeats: int) -> float:
    """Median calls per second over ``repeats`` passes through ``starts``."""
    rates = []
    for _ in range(repeats):
        began = time.perf_counter()
        for start in starts:
            func(start)
        rates.append(len(starts) / (time.perf_counter() - began))
    return statistics.median(rates)


def evaluators(case: Case, zone_name: str) -> dict[str, Callable[[datetime], datetime | None]]:
    _, rate, cron, fields = case
    zone = ZoneInfo(zone_name)
    schedule = Schedule(name="bench", rate=rate, payload="p", timezone=zone_name)
    created = datetime(1999, 1, 1, tzinfo=UTC)
    trigger = CronTrigger(timezone=zone, **fields)

    def ours(start: datetime) -> datetime | None:
        return next_fire_after(schedule, start, created_at=created)

    def apscheduler(start: datetime) -> datetime | None:
        return trigger.get_next_fire_time(None, start.astimezone(zone))

    def croniter_next(start: datetime) -> datetime | None:
        return croniter(cron, start.astimezone(zone)).get_next(datetime)

    def cronsim_next(start: datetime) -> datetime | None:
        return next(CronSim(cron, start.astimezone(zone)))

    return {
        "reventless": ours,
        "APScheduler 3.11": apscheduler,
        "croniter": croniter_next,
        "cronsim": cronsim_next,
    }


def speed(starts: list[datetime], repeats: int) -> bool:
    print(
        f"next_fire_after from {len(starts):,} random starts, median of {repeats} passes (calls/s)"
    )
    header = f"{'case':<16} {'zone':<14} {'reventless':>11} {'APSched':>9} {'croniter':>9} "
    header += f"{'cronsim':>9} {'x APSched':>9} {'x croniter':>10} {'x cronsim':>9}"
    print(header)
    ok = True
    for case in CASES:
        for zone_name in ZONES:
            funcs = evaluators(case, zone_name)
            rates = {name: timed(func, starts, repeats) for name, func in funcs.items()}
            ours = rates["reventless"]
            vs_aps = ours / rates["APScheduler 3.11"]
            vs_croniter = ours / rates["croniter"]
            vs_cronsim = ours / rates["cronsim"]
            floor = (
                TARGET_INTERVAL
                if isinstance(case[1], Minutes)
                else (TARGET_WALL_BERLIN if zone_name == "Europe/Berlin" else 0)
            )
            met = (
                ours >= floor
                and vs_aps >= TARGET_VS_APSCHEDULER
                and (vs_croniter >= TARGET_VS_CRONITER)
            )
            ok &= met
            print(
                f"{case[0]:<16} {zone_name:<14} {ours:>11,.0f} {rates['APScheduler 3.11']:>9,.0f} "
                f"{rates['croniter']:>9,.0f} {rates['cronsim']:>9,.0f} {vs_aps:>9.1f} "
                f"{vs_croniter:>10.1f} {vs_cronsim:>9.1f}{'' if met else '  <- below target'}"
            )
    print(
        f"targets: >= {TARGET_WALL_BERLIN:,}/s wall-clock in Berlin, >= {TARGET_INTERVAL:,}/s "
        f"intervals, >= {TARGET_VS_APSCHEDULER}x APScheduler, >= {TARGET_VS_CRONITER}x croniter"
    )
    return ok


def dst_disagreements(count: int) -> None:
    """Starts within two days of each DST change 2000-2035; count answers unlike ours."""
    print(f"\nDST disagreements with reventless on {count:,} starts near transitions per case")
    print("(reventless follows the contract: a wall time in a gap is skipped that day, a repeated")
    print(" wall time fires once at its first occurrence; proven against a brute-force oracle)")
    rng = random.Random(7)
    cases = [
        ("Daily(9, 0)", Daily(9, 0), "Europe/Berlin", CASES[0]),
        ("Weekdays(17, 0)", Weekdays(17, 0), "Europe/Berlin", CASES[1]),
        (
            "Daily(2, 30)",
            Daily(2, 30),
            "Europe/Berlin",
            ("Daily(2, 30)", Daily(2, 30), "30 2 * * *", {"hour": "2", "minute": "30"}),
        ),
        (
            "Daily(1, 30)",
            Daily(1, 30),
            "America/New_York",
            ("Daily(1, 30)", Daily(1, 30), "30 1 * * *", {"hour": "1", "minute": "30"}),
        ),
    ]
    for label, _, zone_name, case in cases:
        transitions = find_transitions(zone_name)
        starts = []
        for _ in range(count):
            centre = rng.choice(transitions)
            starts.append(
                centre
                + timedelta(
                    seconds=rng.randint(-2 * 86400, 2 * 86400), microseconds=rng.randint(1, 999_999)
                )
            )
        funcs = evaluators(case, zone_name)
        ours = [funcs["reventless"](start) for start in starts]
        cells = []
        example = ""
        for name, func in funcs.items():
            if name == "reventless":
                continue
            differ = 0
            for start, mine in zip(starts, ours, strict=True):
                theirs = func(start)
                if theirs is None or theirs.astimezone(UTC) != mine:
                    differ += 1
                    if not example and theirs is not None and mine is not None:
                        example = (
                            f"  e.g. after {start:%Y-%m-%d %H:%M} UTC: reventless "
                            f"{mine:%Y-%m-%d %H:%M} UTC, {name} "
                            f"{theirs.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
                        )
            cells.append(f"{name} {differ}")
        print(f"{label:<16} {zone_name:<17} " + ", ".join(cells))
        if example:
            print(example)


def find_transitions(zone_name: str) -> list[datetime]:
    zone = ZoneInfo(zone_name)
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


def main(*, quick: bool = False) -> bool:
    starts = random_starts(10_000 if quick else 100_000)
    ok = speed(starts, repeats=3 if quick else 5)
    dst_disagreements(2_000 if quick else 20_000)
    return ok


if __name__ == "__main__":
    import sys

    raise SystemExit(0 if main(quick="--quick" in sys.argv) else 1)
