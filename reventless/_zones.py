"""Time-zone loading and wall-time resolution shared by the pure core.

Kept apart from ``fire_times`` so that ``schedule`` can refuse a Single in a DST gap without an
import cycle.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from reventless._suggest import closest
from reventless.errors import ValidationError

__all__ = (
    "UTC",
    "fixed_offset_key",
    "is_utc_key",
    "load_zone",
    "resolve_wall_time",
    "suggest_zone",
    "zone_key",
)

# IANA keys are slash-separated words; this refuses paths, "..", NULs and other hostile keys before
# zoneinfo touches the file system.
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
        raise _unknown_zone(key, "an IANA time-zone name such as 'Europe/Berlin'")
    _refuse_machine_key(key)
    if key in _UTC_KEYS:
        # The fixed-offset UTC lets the fire-time code skip gap and overlap checks.
        return UTC
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise _unknown_zone(
            key, "an IANA time-zone name known to zoneinfo, such as 'Europe/Berlin'"
        ) from exc


def _unknown_zone(key: object, allowed: str) -> ValidationError:
    hint = suggest_zone(key)
    if hint is None:
        return ValidationError("timezone", key, allowed)
    return ValidationError(
        "timezone",
        key,
        allowed,
        message=f"timezone {key!r} is not a known time zone; did you mean {hint!r}? "
        f"Expected {allowed}",
    )


@lru_cache(maxsize=1)
def _known_zones() -> tuple[frozenset[str], dict[str, str]]:
    """Every key of the zone database that means the same on every machine, and the zone each
    last component (a city) names when only one zone ends in it. Read only when a name was
    refused: listing the database takes tens of milliseconds."""
    zones = frozenset(
        key
        for key in available_timezones()
        if key.lower() not in _MACHINE_KEYS and key.partition("/")[0].lower() not in _MACHINE_TREES
    )
    cities: dict[str, list[str]] = {}
    for key in zones:
        cities.setdefault(key.rsplit("/", 1)[-1], []).append(key)
    return zones, {city: keys[0] for city, keys in cities.items() if len(keys) == 1}


def suggest_zone(key: object) -> str | None:
    """The zone a refused name most likely meant: ``'Europe/Berln'`` and ``'europe/berlin'``
    give ``'Europe/Berlin'``, and so does a city alone, ``'Berlin'``; None when none is near."""
    zones, by_city = _known_zones()
    match = closest(key, zones)
    if match is None:
        city = closest(key, by_city)
        match = None if city is None else by_city[city]
    return match


def fixed_offset_key(offset: timedelta | None) -> str | None:
    """The zone name of a fixed UTC offset: ``'UTC'`` for 0, ``'Etc/GMT-2'`` for +02:00 (the
    ``Etc`` names count west as positive, the POSIX way, so the sign is inverted). None for an
    offset that is not a whole number of hours from -12 to +14: no zone name exists for it."""
    if offset is None or offset % timedelta(hours=1):
        return None
    hours = offset // timedelta(hours=1)
    if hours == 0:
        return "UTC"
    if not -12 <= hours <= 14:
        return None
    return f"Etc/GMT{-hours:+d}"


_ZONE_ALLOWED = (
    "an IANA time-zone name such as 'Europe/Berlin', a zoneinfo.ZoneInfo, or a fixed offset of "
    "whole hours from -12 to +14 (datetime.timezone.utc, timezone(timedelta(hours=2)))"
)


def zone_key(value: object, field: str = "timezone") -> str:
    """The IANA name for a time zone given as a name, a ``ZoneInfo`` or a fixed offset.

    - a name is checked (``load_zone``) and returned as given;
    - a ``ZoneInfo`` gives its key; one without a key (``ZoneInfo.from_file``) is refused, since
      no other machine, nor AWS, could read the zone back from a schedule;
    - a ``datetime.timezone`` of whole hours gives ``'UTC'`` or ``'Etc/GMT-N'`` (see
      ``fixed_offset_key``); other offsets, and other tzinfo classes, are refused.
    :raises ValidationError: naming ``field``.
    """
    if isinstance(value, str):
        load_zone(value)
        return value
    if isinstance(value, ZoneInfo):
        if value.key is None:
            raise ValidationError(
                field,
                value,
                _ZONE_ALLOWED,
                message=(
                    f"{field} {value!r} is a ZoneInfo without a key (read from a file), so no "
                    "name can be stored for it; use ZoneInfo('Area/City') or the zone's name"
                ),
            )
        load_zone(value.key)
        return value.key
    if isinstance(value, timezone):
        key = fixed_offset_key(value.utcoffset(None))
        if key is None:
            raise ValidationError(
                field,
                value,
                _ZONE_ALLOWED,
                message=(
                    f"{field} {value!r} is a fixed offset with no zone name (only whole hours "
                    "from -12 to +14 have one, e.g. Etc/GMT-2 for +02:00); use a ZoneInfo such "
                    "as ZoneInfo('Asia/Kolkata'), or convert the datetime to UTC"
                ),
            )
        return key
    raise ValidationError(field, value, _ZONE_ALLOWED)


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
