"""Time-zone loading and wall-time resolution shared by the pure core.

Kept apart from ``fire_times`` so that ``schedule`` can refuse a Single in a DST gap without an
import cycle.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reventless.errors import ValidationError

# IANA keys are slash-separated words; this refuses paths, "..", NULs and other hostile keys before
# zoneinfo touches the file system.
__all__ = ("UTC", "is_utc_key", "load_zone", "resolve_wall_time")

_ZONE_KEY = re.compile(r"[A-Za-z0-9_+\-]{1,64}(?:/[A-Za-z0-9_+\-]{1,64}){0,3}")
_UTC_KEYS = frozenset({"UTC", "Etc/UTC"})
# Keys in the zone database whose meaning depends on the machine, so a schedule naming one would
# fire at different instants on different hosts. Compared in lower case: some file systems are
# case-insensitive.
_MACHINE_KEYS = {
    "localtime": "the zone this machine is set to",
    "posixrules": "the machine's default rules for POSIX TZ strings",
    "factory": "a placeholder for a machine whose zone was never set",
}
_MACHINE_TREES = {
    "posix": "from posix/, a copy of the database that only some machines install",
    "right": "from right/, a copy with leap seconds that only some machines install",
}


@lru_cache(maxsize=512)
def load_zone(key: str) -> tzinfo:
    """Return the tzinfo for an IANA key, or raise ValidationError naming the field ``timezone``."""
    if not isinstance(key, str) or not _ZONE_KEY.fullmatch(key) or ".." in key:
        raise ValidationError("timezone", key, "an IANA time-zone name such as 'Europe/Berlin'")
    _refuse_machine_key(key)
    if key in _UTC_KEYS:
        # The fixed-offset UTC lets the fire-time code skip gap and overlap checks.
        return UTC
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValidationError(
            "timezone", key, "an IANA time-zone name known to zoneinfo, such as 'Europe/Berlin'"
        ) from exc


def _refuse_machine_key(key: str) -> None:
    folded = key.lower()
    tree, slash, _ = folded.partition("/")
    reason = _MACHINE_TREES.get(tree) if slash else _MACHINE_KEYS.get(folded)
    if reason is not None:
        raise ValidationError(
            "timezone",
            key,
            f"an IANA time-zone name such as 'Europe/Berlin' that means the same on every machine "
            f"({key!r} is {reason})",
        )


def is_utc_key(key: str) -> bool:
    """True for the names that mean plain UTC."""
    return key in _UTC_KEYS


def resolve_wall_time(
    zone: tzinfo, year: int, month: int, day: int, hour: int, minute: int
) -> tuple[datetime | None, bool]:
    """Map a wall-clock minute in ``zone`` to its UTC instant.

    Returns ``(None, False)`` when the wall time does not exist (a spring-forward gap) or when
    its instant lies outside the datetime range (local dates at the ends of years 1 and 9999),
    and ``(instant, True)`` when it occurs twice (fall-back): the instant is then the first
    occurrence.
    """
    wall = datetime(year, month, day, hour, minute, tzinfo=zone)  # fold=0: the first occurrence
    try:
        instant = wall.astimezone(UTC)
        back = instant.astimezone(zone)
    except OverflowError:
        return None, False
    if zone is UTC:
        return instant, False
    if (back.day, back.hour, back.minute) != (day, hour, minute):
        return None, False
    repeated = wall.replace(fold=1).utcoffset() != wall.utcoffset()
    return instant, repeated
