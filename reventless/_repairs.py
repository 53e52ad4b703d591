"""The rules of the repairs (``trigger``, ``backfill``, ``redrive``) that every provider queuing
them follows, written once so that the providers cannot drift apart: which instant an extra fire
takes, which instants a backfill covers and how many, what it says when the history it needs was
pruned, and which dead letters a redrive picks. Times as integer microseconds since the Unix
epoch (UTC), as the stores keep them."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from reventless._fire_rows import from_us, to_us
from reventless.errors import ValidationError
from reventless.fire_times import as_utc, fire_times
from reventless.schedule import Schedule
from reventless.scheduler import parse_fire_id

__all__ = (
    "MAX_BACKFILL",
    "backfill_instants",
    "extra_fire_time",
    "extra_fire_us",
    "pruned_history_error",
    "redrive_picks",
    "redrive_wanted",
)

MAX_BACKFILL = 10_000  # fires one backfill may queue

_Row = TypeVar("_Row", bound=Sequence[Any])


def extra_fire_us(at_us: int) -> int:
    """The scheduled time of an extra fire (``trigger``) at ``at_us``: cut to the second and
    never a whole minute, so its fire id is none of a schedule's (they all fire on whole
    minutes)."""
    scheduled_us = at_us - at_us % 1_000_000
    if scheduled_us % 60_000_000 == 0:
        scheduled_us += 1_000_000
    return scheduled_us


def extra_fire_time(at: datetime) -> datetime:
    """``extra_fire_us`` for an aware datetime."""
    return from_us(extra_fire_us(to_us(as_utc(at, "at"))))


def backfill_instants(
    schedule: Schedule, created_at: datetime, start: datetime, stop: datetime, most: int
) -> list[int]:
    """The schedule's fire instants in [start, stop] as microseconds; more than ``most``
    raise ValidationError."""
    found: list[int] = []
    # No fire is before the schedule's creation (1970 at the earliest): starting there also
    # keeps a start such as datetime.min inside the datetime range.
    start = max(start, created_at)
    if stop < start:
        return found
    for instant in fire_times(
        schedule, created_at=created_at, after=start - timedelta(microseconds=1)
    ):
        if instant > stop:
            break
        if len(found) == most:
            raise ValidationError(
                "end",
                stop,
                f"a range holding at most {most} fires of {schedule.name!r}",
                message=(
                    f"the range from {start.isoformat()} to {stop.isoformat()} holds more than "
                    f"{most} fires of {schedule.name!r}; backfill it in smaller ranges"
                ),
            )
        found.append(to_us(instant))
    return found


def pruned_history_error(start: datetime, pruned_us: int) -> ValidationError:
    """A backfill from ``start`` reaching into the history pruned up to ``pruned_us``: the
    fires delivered then cannot be told from the missed ones."""
    pruned = from_us(pruned_us).isoformat()
    return ValidationError(
        "start",
        start,
        f"an instant after {pruned}",
        message=(
            f"backfill start {start.isoformat()}: the history up to {pruned} was pruned "
            "(retention), so the fires delivered before then cannot be told; start after that "
            "instant"
        ),
    )


def redrive_wanted(fire_ids: Sequence[str] | None) -> set[tuple[str, int]] | None:
    """The (schedule name, scheduled second) of each of ``fire_ids``; None for every fire.

    :raises ValidationError: a malformed fire id."""
    if fire_ids is None:
        return None
    wanted = set()
    for value in fire_ids:
        _, name, instant = parse_fire_id(value)
        wanted.add((name, to_us(instant) // 1_000_000))
    return wanted


def redrive_picks(
    rows: Iterable[_Row], wanted: Collection[tuple[str, int]] | None
) -> tuple[list[_Row], list[tuple[str, int, str]]]:
    """Of dead-letter rows (id, name, scheduled_us, payload, in id order), those a redrive
    takes (all, or those of ``wanted``) and the fires to deliver again: (name, scheduled_us,
    payload), one per fire also when it was dead-lettered more than once."""
    taken = [row for row in rows if wanted is None or (row[1], row[2] // 1_000_000) in wanted]
    picked: dict[tuple[str, int], tuple[str, int, str]] = {}
    for _, name, scheduled_us, payload in taken:
        picked.setdefault((name, scheduled_us), (name, scheduled_us, payload))
    return taken, list(picked.values())
