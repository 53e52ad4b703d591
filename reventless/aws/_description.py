"""What a schedule on EventBridge Scheduler carries beyond its expression, in its Description:
when it was created, the rate as written when the expression reads back as another, its pause
(when, by whom, why); and the StartDate and flexible window its rate and jitter need."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from reventless._wall_time import ceil_minute
from reventless.errors import (
    ForeignScheduleError,
    ValidationError,
)
from reventless.fire_times import (
    as_utc,
    first_fire,
    next_fire_after,
)
from reventless.rate_translation import (
    from_expression,
    rate_from_description,
)
from reventless.schedule import IntervalRate, Rate, Schedule
from reventless.scheduler_adapter import (
    ScheduleState,
)

logger = logging.getLogger("reventless.aws")

__all__ = (
    "CREATED_MARK",
    "MAX_DESCRIPTION",
    "PAUSE_MARK",
    "PAUSE_WIDTH",
    "RATE_MARK",
    "TIME_WIDTH",
    "PauseNote",
    "iso_second",
    "jitter_of_window",
    "on_grid",
    "pause_of",
    "rate_and_stamp",
    "schedule_description",
    "start_date_of",
)

TIME_WIDTH = len("2026-11-27T09:00:00Z")


CREATED_MARK = "reventless:created_at="


RATE_MARK = " rate="


# The pause, last in the Description: " paused_at=TIME[ by=LENGTH:BY][ reason=REASON]". Nothing
# before it can hold this mark; the reason runs to the end, so neither it nor BY is escaped.
PAUSE_MARK = " paused_at="


MAX_DESCRIPTION = 512  # characters in a schedule's Description


def iso_second(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def jitter_of_window(window: object) -> int | None:
    """``jitter_minutes`` from a FlexibleTimeWindow read back: None when it is off."""
    if not isinstance(window, dict) or window.get("Mode") != "FLEXIBLE":
        return None
    minutes = window.get("MaximumWindowInMinutes")
    if type(minutes) is not int:
        raise ValueError(f"its FlexibleTimeWindow {window!r} has no MaximumWindowInMinutes")
    return minutes


def schedule_description(
    schedule: Schedule, created_at: datetime, rate_text: str | None, pause: PauseNote | None = None
) -> str:
    """The mark, the creation instant, the window and the rate as written where needed: what
    AWS does not keep otherwise (EndDate is half a minute off, StartDate gone once passed);
    then, while paused, when, by whom and why (AWS has no field for them).

    :raises ValidationError: the pause's ``reason`` (or ``by``) does not fit in the 512
        characters of a Description with the rest.
    """
    parts = [f"{CREATED_MARK}{iso_second(created_at)}"]
    if schedule.not_before is not None:
        parts.append(f"not_before={iso_second(schedule.not_before)}")
    if schedule.not_after is not None:
        parts.append(f"not_after={iso_second(schedule.not_after)}")
    text = " ".join(parts)
    text = text if rate_text is None else f"{text}{RATE_MARK}{rate_text}"
    if pause is None:
        return text
    full = text + pause.mark()
    if len(full) > MAX_DESCRIPTION:
        field, value = ("reason", pause.reason) if pause.reason is not None else ("by", pause.by)
        room = MAX_DESCRIPTION - (len(full) - len(value or ""))
        raise ValidationError(
            field,
            value,
            f"at most {max(room, 0)} characters for schedule {schedule.name!r} on AWS, where "
            f"the {field} is kept in the schedule's Description ({MAX_DESCRIPTION} characters"
            ", shared with what reventless keeps there)",
        )
    return full


class PauseNote(NamedTuple):
    """When a schedule was paused, by whom and why, as kept in its Description."""

    at: datetime
    by: str | None
    reason: str | None

    @classmethod
    def of(cls, state: ScheduleState) -> PauseNote | None:
        """The pause of a state read back (None: active, or paused with nothing kept)."""
        if not state.paused or state.paused_at is None:
            return None
        return cls(at=state.paused_at, by=state.paused_by, reason=state.pause_reason)

    def mark(self) -> str:
        at = self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        by = "" if self.by is None else f" by={len(self.by)}:{self.by}"
        reason = "" if self.reason is None else f" reason={self.reason}"
        return f"{PAUSE_MARK}{at}{by}{reason}"


def pause_of(name: str, description: str) -> PauseNote | None:
    """The pause a Description carries; None where it carries none (paused before reventless
    kept one, or outside reventless) or one that does not read back (edited outside
    reventless): the schedule itself is still read, and can be resumed."""
    _, found, text = description.partition(PAUSE_MARK)
    if not found:
        return None
    try:
        stamp, rest = text[:PAUSE_WIDTH], text[PAUSE_WIDTH:]
        at = as_utc(datetime.fromisoformat(stamp), "paused_at")
        by = None
        if rest.startswith(" by="):
            size, colon, rest = rest[len(" by=") :].partition(":")
            if not colon or not size.isdigit():
                raise ValueError("its pause's by= has no length")
            by, rest = rest[: int(size)], rest[int(size) :]
        reason = None
        if rest.startswith(" reason="):
            reason, rest = rest[len(" reason=") :], ""
        if rest:
            raise ValueError(f"its pause mark ends in {rest[:40]!r}")
    except ValueError as exc:
        logger.warning("schedule %r: its Description's pause is not read: %s", name, exc)
        return None
    return PauseNote(at=at, by=by, reason=reason)


PAUSE_WIDTH = len("2026-11-27T09:00:00.000000Z")


def start_date_of(schedule: Schedule, created_at: datetime, now: datetime) -> datetime | None:
    """An interval's StartDate: its first fire while that is ahead, else its next fire after
    ``now`` on the same grid (AWS refuses a StartDate more than five minutes ago). For the
    other rates, ``not_before`` while it is ahead; else None."""
    if not isinstance(schedule.rate, IntervalRate):
        low = schedule.not_before
        return low if low is not None and low > now else None
    first = first_fire(schedule, created_at)
    if first is None or first > now:
        return first
    return next_fire_after(schedule, now, created_at=created_at)


def rate_and_stamp(name: str, raw: dict[str, Any]) -> tuple[Rate, str]:
    """The rate of a schedule read with GetSchedule and the creation instant its Description
    carries (still to be parsed). :raises ForeignScheduleError: not written by reventless."""
    expression = str(raw.get("ScheduleExpression"))
    try:
        rate = from_expression(expression)
    except ValidationError as exc:
        raise ForeignScheduleError(name, str(exc)) from None
    description = str(raw.get("Description") or "").partition(PAUSE_MARK)[0]
    if not description.startswith(CREATED_MARK):
        raise ForeignScheduleError(name, "its Description carries no reventless mark")
    stamp, _, written = description[len(CREATED_MARK) :].partition(RATE_MARK)
    if written:
        # The rate as written, where the expression reads back as another with its fires.
        rate = rate_from_description(expression, written) or rate
    return rate, stamp


def on_grid(rate: IntervalRate, start_date: datetime, created_at: datetime) -> bool:
    """Whether ``start_date`` is one of the fires of an interval created at ``created_at``."""
    since = as_utc(start_date, "start_date") - ceil_minute(created_at)
    step = timedelta(minutes=rate.minutes)
    return since >= step and since % step == timedelta(0)
