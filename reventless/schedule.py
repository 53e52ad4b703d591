"""Schedules and their seven rate variants: frozen value objects that validate themselves.

Every variant takes the original framework's positional arguments (``Daily(9, 0)``,
``Single(2024, 12, 25, 14, 30)``) and checks its ranges on construction and on decoding, so an
invalid schedule never exists. A call with missing, extra or unknown arguments raises
``ArgumentError`` (a ValidationError and a TypeError) naming the class and its call form. JSON
carries a stable ``"kind"`` tag per variant; the tags are part of the storage format and never
change.

A one-off reminder at an aware datetime is one line: ``Schedule.once("remind-42", at=when,
payload=...)``; ``Single.at(when)`` gives just the rate.

``DstPolicy`` chooses what a wall-clock rate or Single does when the clocks change; a schedule
with the default policy encodes to the same JSON as before the field existed.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

import msgspec
import msgspec.structs

from reventless._suggest import did_you_mean
from reventless._zones import fixed_offset_key, load_zone, resolve_wall_time, zone_key
from reventless.errors import ArgumentError, ReventlessError, ValidationError
from reventless.errors import _show as _show_refused

__all__ = (
    "MAX_INTERVAL_MINUTES",
    "MAX_PAYLOAD_BYTES",
    "Daily",
    "Days",
    "DstGap",
    "DstOverlap",
    "DstPolicy",
    "Hours",
    "IntervalRate",
    "Minutes",
    "Rate",
    "Schedule",
    "Single",
    "WallClockRate",
    "Weekdays",
    "WeekdaysAndSaturday",
    "parse_dst",
    "parse_rate",
    "rate_text",
)

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_INTERVAL_MINUTES = 3650 * 24 * 60
_NAME = re.compile(r"[0-9A-Za-z._-]{1,64}")


def _check_int(field: str, value: Any, low: int, high: int) -> None:
    # bool is an int subclass; True must not pass for an hour.
    if type(value) is not int or not low <= value <= high:
        raise ValidationError(field, value, f"a whole number from {low} to {high}")


# A call of each class, shown when it was called with the wrong arguments.
_EXAMPLES = {
    "Single": "Single(2026, 12, 25, 14, 30)",
    "Minutes": "Minutes(5)",
    "Hours": "Hours(1)",
    "Days": "Days(1)",
    "Daily": "Daily(9, 0)",
    "Weekdays": "Weekdays(17, 0)",
    "WeekdaysAndSaturday": "WeekdaysAndSaturday(8, 30)",
    "Schedule": "Schedule(name='daily-report', rate=Daily(9, 0), payload='...')",
    "DstPolicy": "DstPolicy(gap='shift', overlap='both')",
}
_UNEXPECTED = re.compile(r"Unexpected keyword argument '(.*)'", re.DOTALL)


# Called directly rather than through super(): this runs for every construction.
_STRUCT_CALL = msgspec.StructMeta.__call__


class _NamedArguments(msgspec.StructMeta):
    """The metaclass of rates and Schedule: a call with missing, extra or unknown arguments raises
    ArgumentError naming the class and its call form (msgspec's own TypeError names neither).
    Decoding does not go through here and costs nothing more."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return _STRUCT_CALL(cls, *args, **kwargs)
        except ReventlessError:
            raise
        except TypeError as exc:
            raise _argument_error(cls, args, kwargs, exc) from exc


def _argument_error(
    cls: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any], exc: TypeError
) -> ArgumentError:
    name = cls.__name__
    fields: tuple[str, ...] = cls.__struct_fields__
    keyword_only = cls is Schedule or cls is DstPolicy
    if keyword_only:
        form = f"{name}({', '.join(f + '=...' for f in fields)})"
    else:
        form = f"{name}({', '.join(fields)})"
    example = _EXAMPLES.get(name)
    allowed = form if example is None else f"{form}, e.g. {example}"
    text = str(exc)
    unexpected = _UNEXPECTED.fullmatch(text)
    if unexpected is not None:
        detail = f"unexpected keyword argument {unexpected.group(1)!r}" + did_you_mean(
            unexpected.group(1), fields
        )
    elif text == "Extra positional arguments provided":
        detail = (
            f"takes keyword arguments only, got {len(args)} positional"
            if keyword_only
            else f"takes at most {len(fields)} arguments, got {len(args) + len(kwargs)}"
        )
    else:
        detail = text[:1].lower() + text[1:]
    given = ", ".join([*map(repr, args), *(f"{key}={value!r}" for key, value in kwargs.items())])
    return ArgumentError(
        name, f"{name}({given})", allowed, message=f"{name}: {detail}; expected {allowed}"
    )


class _RateBase(
    msgspec.Struct,
    metaclass=_NamedArguments,
    frozen=True,
    tag_field="kind",
    forbid_unknown_fields=True,
    gc=False,
):
    """Common base of the rate variants (not itself a rate)."""


class Single(_RateBase, frozen=True, tag="single"):
    """Fire once at this wall-clock minute in the schedule's time zone, then complete.

    ``Single.at(when)`` builds one from an aware datetime; ``Schedule.once`` builds the whole
    schedule.
    """

    year: int
    month: int
    day: int
    hour: int
    minute: int

    @classmethod
    def at(cls, moment: datetime, timezone: str | tzinfo = "UTC") -> Single:
        """The Single that fires at the instant ``moment``, written as a wall time in ``timezone``.

        ``moment`` is an aware datetime on a whole minute (a Single has minute resolution:
        seconds are refused, not cut). Give the Schedule the same ``timezone``: with the
        default, ``'UTC'``, which is also the Schedule's default, ``Schedule(name=...,
        rate=Single.at(when), payload=...)`` fires at ``when`` whatever ``when``'s own zone.
        ``timezone`` takes what ``Schedule.timezone`` takes (a name, a ZoneInfo, a fixed offset of
        whole hours).
        :raises ValidationError: ``moment`` is naive, not on a whole minute, outside the years
            1970-2199, or the second occurrence of a wall time that ``timezone`` repeats (a
            Single there fires at the first; ``Schedule.once`` handles this case).
        """
        key = zone_key(timezone, "timezone")
        single = _single_at(moment, key, "moment")
        if single is None:
            raise ValidationError(
                "moment",
                moment,
                f"an instant whose wall time in {key} occurs once",
                message=(
                    f"moment {moment.isoformat()} is the second occurrence of the wall time "
                    f"{moment.astimezone(load_zone(key)):%Y-%m-%d %H:%M} in {key} (the clocks "
                    "went back), and a Single there fires at the first; use timezone='UTC' "
                    "or Schedule.once, which picks a zone that fires at this instant"
                ),
            )
        return single

    def __post_init__(self) -> None:
        _check_int("rate.year", self.year, 1970, 2199)
        _check_int("rate.month", self.month, 1, 12)
        last_day = calendar.monthrange(self.year, self.month)[1]
        if type(self.day) is not int or not 1 <= self.day <= last_day:
            month = f"{self.year:04d}-{self.month:02d}"
            raise ValidationError(
                "rate.day", self.day, f"a day from 1 to {last_day} ({month} has {last_day} days)"
            )
        _check_int("rate.hour", self.hour, 0, 23)
        _check_int("rate.minute", self.minute, 0, 59)


class IntervalRate(_RateBase, frozen=True):
    """The base of the fixed-duration rates (Minutes, Hours, Days): every ``n`` units."""

    n: int
    unit_minutes: ClassVar[int]

    def __post_init__(self) -> None:
        _check_int("rate.n", self.n, 1, MAX_INTERVAL_MINUTES // self.unit_minutes)

    @property
    def minutes(self) -> int:
        """The interval's length in minutes."""
        return self.n * self.unit_minutes


class Minutes(IntervalRate, frozen=True, tag="minutes"):
    """Fire every ``n`` minutes (1 to 5,256,000, that is at most 3650 days)."""

    unit_minutes: ClassVar[int] = 1


class Hours(IntervalRate, frozen=True, tag="hours"):
    """Fire every ``n`` hours (1 to 87,600)."""

    unit_minutes: ClassVar[int] = 60


class Days(IntervalRate, frozen=True, tag="days"):
    """Fire every ``n`` x 24 hours (1 to 3650), also across DST changes."""

    unit_minutes: ClassVar[int] = 1440


class WallClockRate(_RateBase, frozen=True):
    """The base of the wall-clock rates (Daily, Weekdays, WeekdaysAndSaturday)."""

    hour: int
    minute: int
    # Weekday numbers (Monday = 0) on which the variant fires.
    weekdays: ClassVar[frozenset[int]]

    def __post_init__(self) -> None:
        _check_int("rate.hour", self.hour, 0, 23)
        _check_int("rate.minute", self.minute, 0, 59)


class Daily(WallClockRate, frozen=True, tag="daily"):
    """Fire every day at this wall time in the schedule's time zone."""

    weekdays: ClassVar[frozenset[int]] = frozenset(range(7))


class Weekdays(WallClockRate, frozen=True, tag="weekdays"):
    """Fire Monday to Friday at this wall time in the schedule's time zone."""

    weekdays: ClassVar[frozenset[int]] = frozenset(range(5))


class WeekdaysAndSaturday(WallClockRate, frozen=True, tag="weekdays_and_saturday"):
    """Fire Monday to Saturday at this wall time in the schedule's time zone."""

    weekdays: ClassVar[frozenset[int]] = frozenset(range(6))


def _aware_minute(moment: object, field: str) -> datetime:
    """``moment`` in UTC, refused unless it is an aware datetime on a whole UTC minute."""
    if not isinstance(moment, datetime):
        raise ValidationError(field, moment, "an aware datetime on a whole minute")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValidationError(
            field,
            moment,
            "an aware datetime",
            message=(
                f"{field} {moment.isoformat()} is naive (it has no time zone); pass an aware "
                "datetime, e.g. datetime(2026, 12, 24, 18, 0, tzinfo=ZoneInfo('Europe/Berlin'))"
            ),
        )
    if moment.second or moment.microsecond:
        raise ValidationError(
            field,
            moment,
            "a whole minute",
            message=(
                f"{field} {moment.isoformat()} has seconds; a Single fires on a whole minute: "
                f"pass {field}.replace(second=0, microsecond=0), or the next minute"
            ),
        )
    try:
        instant = moment.astimezone(UTC)
    except OverflowError as exc:  # the first or last hours of the datetime range
        raise ValidationError(
            field, moment, "an instant whose date is in the years 1970 to 2199"
        ) from exc
    if instant.second or instant.microsecond:
        # A zone whose offset had seconds (local mean time, before about 1900).
        raise ValidationError(
            field,
            moment,
            "an instant on a whole UTC minute",
            message=(
                f"{field} {moment.isoformat()} is not on a whole UTC minute (its zone's offset "
                f"then was {moment.utcoffset()}); a Single fires on whole UTC minutes"
            ),
        )
    return instant


def _single_at(moment: object, key: str, field: str) -> Single | None:
    """The Single whose wall minute in zone ``key`` is the instant ``moment``; None when that
    wall time occurs twice there and ``moment`` is the second occurrence."""
    instant = _aware_minute(moment, field)
    zone = load_zone(key)
    try:
        wall = instant.astimezone(zone)
    except OverflowError:
        wall = instant  # at the very ends of the datetime range: refused just below
    if not 1970 <= wall.year <= 2199:
        raise ValidationError(
            field, moment, f"an instant whose date in {key} is in the years 1970 to 2199"
        )
    single = Single(wall.year, wall.month, wall.day, wall.hour, wall.minute)
    resolved, _ = resolve_wall_time(zone, wall.year, wall.month, wall.day, wall.hour, wall.minute)
    return single if resolved == instant else None


Rate: TypeAlias = Single | Minutes | Hours | Days | Daily | Weekdays | WeekdaysAndSaturday
RATE_TYPES: tuple[type[Rate], ...] = (
    Single,
    Minutes,
    Hours,
    Days,
    Daily,
    Weekdays,
    WeekdaysAndSaturday,
)
_RATE_BY_NAME: dict[str, type[Rate]] = {cls.__name__: cls for cls in RATE_TYPES}

DstGap: TypeAlias = Literal["skip", "shift"]
DstOverlap: TypeAlias = Literal["first", "last", "both"]
_GAPS: tuple[DstGap, ...] = ("skip", "shift")
_OVERLAPS: tuple[DstOverlap, ...] = ("first", "last", "both")


class DstPolicy(
    msgspec.Struct,
    metaclass=_NamedArguments,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    gc=False,
):
    """What a wall-clock rate or Single does when the clocks of its zone change.

    - ``gap``, for a wall time that does not exist that day (the clocks jump over it, as when
      summer time starts): ``"skip"`` (default) fires nothing that day; ``"shift"`` fires at the
      first instant after the gap that lies as far after the gap's end as the wall time lies
      after the gap's start (02:30 in a 02:00-03:00 gap fires at 03:30), which is how RFC 5545
      reads such a time: with the UTC offset in force before the gap.
    - ``overlap``, for a wall time that occurs twice that day (the clocks go back):
      ``"first"`` (default) fires at the first occurrence only; ``"last"`` at the second only;
      ``"both"`` at each, two fires whose fire ids differ (the id carries the UTC instant).

    The default, ``DstPolicy()``, is EventBridge Scheduler's fixed rule and the only policy the
    AWS provider can express. Intervals (Minutes, Hours, Days) are fixed durations that the
    clocks never move, so a Schedule refuses any other policy for them.
    """

    if TYPE_CHECKING:
        gap: DstGap = "skip"
        overlap: DstOverlap = "first"
    else:
        # Checked in __post_init__, which names the field and the choices (also when decoding).
        gap: str = "skip"
        overlap: str = "first"

    def __post_init__(self) -> None:
        if not isinstance(self.gap, str) or self.gap not in _GAPS:
            raise ValidationError("dst.gap", self.gap, "'skip' or 'shift'")
        if not isinstance(self.overlap, str) or self.overlap not in _OVERLAPS:
            raise ValidationError("dst.overlap", self.overlap, "'first', 'last' or 'both'")

    @property
    def is_default(self) -> bool:
        """True for skip/first, EventBridge Scheduler's rule."""
        return self.gap == "skip" and self.overlap == "first"


DEFAULT_DST = DstPolicy()
_DST_ALLOWED = (
    "gap=skip|shift and/or overlap=first|last|both, separated by a comma, "
    "e.g. 'gap=shift,overlap=both'"
)


def dst_text(policy: DstPolicy) -> str:
    """The policy as the command line writes it, ``'gap=shift,overlap=both'``."""
    return f"gap={policy.gap},overlap={policy.overlap}"


def parse_dst(text: str, field: str = "dst") -> DstPolicy:
    """Parse ``'gap=shift,overlap=both'`` (either part may be left out, then it is the default)."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(field, text, _DST_ALLOWED)
    values: dict[str, Any] = {}
    for part in text.split(","):
        key, equals, value = (piece.strip() for piece in part.partition("="))
        if not equals or key not in ("gap", "overlap") or key in values:
            raise ValidationError(field, text, _DST_ALLOWED)
        values[key] = value
    try:
        return DstPolicy(**values)
    except ValidationError as exc:
        raise ValidationError(
            field, text, _DST_ALLOWED, message=f"{field} {text!r} is not allowed: {exc}"
        ) from exc


class Schedule(
    msgspec.Struct,
    metaclass=_NamedArguments,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    gc=False,
):
    """A named schedule: when to fire (``rate``), what to deliver (``payload``), in which zone.

    - ``name``: 1-64 characters of ``[0-9A-Za-z._-]``, unique within one scheduler.
    - ``rate``: one of the seven rate variants.
    - ``payload``: 1 byte to 256 KiB of UTF-8, opaque to the scheduler.
    - ``timezone``: an IANA zone name; wall-clock variants and Single are read in it. A
      ``zoneinfo.ZoneInfo`` is accepted and stored as its key; a fixed offset of whole hours
      (``datetime.timezone.utc``, ``timezone(timedelta(hours=2))``) as ``'UTC'`` or
      ``'Etc/GMT-2'``. A misspelt name is refused with the zone it most likely meant.
    - ``dst``: a ``DstPolicy``, what a wall-clock rate or Single does in a DST gap or overlap;
      default skip/first (EventBridge Scheduler's rule). Left out of the JSON when default.
      Refused for intervals, whose fires the clocks never move.

    A Single whose wall time does not exist in the zone (a DST gap) is refused unless
    ``dst.gap`` is ``"shift"``.
    """

    name: str
    rate: Rate
    payload: str
    timezone: str = "UTC"
    dst: DstPolicy = DEFAULT_DST

    if TYPE_CHECKING:
        # What the constructor accepts; ``timezone`` is a str once constructed.
        def __init__(
            self,
            *,
            name: str,
            rate: Rate,
            payload: str,
            timezone: str | tzinfo = "UTC",
            dst: DstPolicy = DEFAULT_DST,
        ) -> None: ...

    def __post_init__(self) -> None:
        check_name(self.name)
        if not isinstance(self.rate, RATE_TYPES):
            raise ValidationError(
                "rate", self.rate, "one of " + ", ".join(cls.__name__ for cls in RATE_TYPES)
            )
        _check_payload(self.payload)
        if not isinstance(self.timezone, str):
            msgspec.structs.force_setattr(self, "timezone", zone_key(self.timezone))
        zone = load_zone(self.timezone)
        self._check_dst()
        rate = self.rate
        if isinstance(rate, Single) and self.dst.gap == "skip":
            instant, _ = resolve_wall_time(
                zone, rate.year, rate.month, rate.day, rate.hour, rate.minute
            )
            if instant is None:
                raise ValidationError(
                    "rate",
                    rate_text(rate),
                    f"a wall time that exists in {self.timezone}",
                    message=(
                        f"rate {rate_text(rate)} does not exist in {self.timezone}: the clocks "
                        "skip that minute (a DST gap); choose a time outside the gap, or pass "
                        "dst=DstPolicy(gap='shift') to fire as far after the gap"
                    ),
                )

    def _check_dst(self) -> None:
        dst = self.dst
        if type(dst) is not DstPolicy:
            raise ValidationError("dst", dst, "a DstPolicy, e.g. DstPolicy(gap='shift')")
        if isinstance(self.rate, IntervalRate) and not dst.is_default:
            raise ValidationError(
                "dst",
                dst,
                "DstPolicy() (the default) for an interval",
                message=(
                    f"dst {dst_text(dst)} does not apply to {rate_text(self.rate)}: an interval "
                    "fires at fixed durations, which DST never moves; leave dst out. A policy "
                    "applies to wall-clock rates (Daily, Weekdays, WeekdaysAndSaturday) and Single"
                ),
            )

    @classmethod
    def once(cls, name: str, *, at: datetime, payload: str) -> Schedule:
        """A schedule that fires once, at ``at``: a reminder in one line.

        ``at`` is an aware datetime on a whole minute (seconds are refused, not cut); the fire
        instant is ``at`` exactly. The schedule's timezone is ``at``'s own: a ZoneInfo's key, or
        ``'UTC'``/``'Etc/GMT-N'`` for a fixed offset of whole hours. When ``at`` is the second
        occurrence of a wall time its zone repeats (the hour the clocks go back), a Single in that
        zone would fire an hour early, at the first occurrence; the timezone is then the fixed
        offset in force at ``at`` (``'Etc/GMT-1'``), or ``'UTC'`` where that offset is not whole
        hours.
        :raises ValidationError: ``at`` is naive, not on a whole minute, outside the years
            1970-2199, or in a zone with no name (a ZoneInfo read from a file, an offset such as
            +05:30: convert it with ``at.astimezone(timezone.utc)``); or ``name`` or ``payload``
            is refused as by the constructor.
        """
        _aware_minute(at, "at")
        key = zone_key(at.tzinfo, "at.tzinfo")
        single = _single_at(at, key, "at")
        if single is None:
            # In a fixed-offset zone every wall time occurs once, so this one is exact.
            key = fixed_offset_key(at.utcoffset()) or "UTC"
            single = _single_at(at, key, "at")
        if single is None:  # pragma: no cover - see above
            raise AssertionError(f"{at.isoformat()} has no wall time in {key}")
        return cls(name=name, rate=single, payload=payload, timezone=key)

    def to_json(self) -> bytes:
        """Encode as JSON; ``Schedule.from_json`` reads it back equal. The default ``dst`` is
        left out, so such a schedule has the JSON it had before the field existed."""
        raw = _ENCODER.encode(self)
        if self.dst == DEFAULT_DST:
            # dst is the last field, so its encoding is the end of the document.
            return raw[: -len(_DEFAULT_DST_JSON)] + b"}"
        return raw

    @classmethod
    def from_json(cls, data: bytes | str) -> Schedule:
        """Decode and validate a schedule; any malformed input raises ValidationError."""
        if not isinstance(data, (bytes, str)):
            raise ValidationError("schedule JSON", data, "bytes or str holding a JSON object")
        try:
            schedule = _DECODER.decode(data)
            _refuse_repeated_keys(data, schedule)
        except ValidationError:
            raise
        except (msgspec.MsgspecError, ValueError, TypeError, RecursionError, OverflowError) as exc:
            raise ValidationError(
                "schedule JSON",
                data,
                "a JSON schedule",
                message=f"schedule JSON refused: {exc}",
            ) from exc
        return schedule


def _refuse_repeated_keys(data: bytes | str, schedule: Schedule) -> None:
    """Refuse a decoded document that repeats a key (msgspec keeps the last value silently).

    The normal path costs one encode and one comparison: a document equal to the schedule's own
    encoding (what ``to_json`` writes, so everything this library stores) has no repeated key.
    Any other document gets one linear scan of its keys.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw == schedule.to_json():
        return
    repeated = _first_repeat(_object_keys(raw))
    if repeated is None:
        return
    key = repeated.decode("utf-8", "surrogatepass")
    # msgspec refused unknown keys already, and the keys of the schedule, its rate and its dst
    # policy all differ, so the key alone tells in which object it repeats.
    if key in Schedule.__struct_fields__:
        path = key
    elif key in DstPolicy.__struct_fields__:
        path = f"dst.{key}"
    else:
        path = f"rate.{key}"
    raise ValidationError(
        path,
        key,
        "each key at most once per JSON object",
        message=(
            f"{path} given twice in the schedule JSON is not allowed; expected each key at most "
            "once per JSON object"
        ),
    )


def _object_keys(raw: bytes) -> list[bytes]:
    """The keys of every object in a valid JSON document, in order, escapes resolved.

    Dropping the escaped backslashes and then the escaped quotes leaves only the quotes that
    delimit strings, so splitting on them alternates between text outside and inside strings;
    a string followed by a colon is a key. Each step is one linear pass in C.
    """
    escaped = b"\\" in raw
    if escaped:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    pieces = raw.split(b'"')
    keys = [
        key
        for key, rest in zip(pieces[1::2], pieces[2::2], strict=True)
        if rest.lstrip().startswith(b":")
    ]
    if escaped:
        # A known key is plain letters; one written with escapes such as \u0061 is decoded.
        keys = [_unescape(key) if b"\\" in key else key for key in keys]
    return keys


def _unescape(content: bytes) -> bytes:
    return _KEY_DECODER.decode(b'"' + content + b'"').encode("utf-8", "surrogatepass")


def _first_repeat(keys: list[bytes]) -> bytes | None:
    seen: set[bytes] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    return None


def check_name(name: Any) -> str:
    """Validate a schedule name (the EventBridge Scheduler rule) and return it."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        allowed = "1 to 64 characters of letters, digits, '.', '_' or '-'"
        shown = _show_refused(name)
        if isinstance(name, str) and len(name) > 64 and "characters)" not in shown:
            shown += f" ({len(name)} characters)"
        raise ValidationError(
            "name",
            name,
            allowed,
            # One wording at every length (a long name is cut, its own length counted).
            message=f"schedule name {shown} is not allowed; expected {allowed}",
        )
    return name


def _check_payload(payload: Any) -> None:
    if not isinstance(payload, str):
        raise ValidationError("payload", payload, "a str of 1 byte to 256 KiB of UTF-8")
    try:
        size = len(payload.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValidationError(
            "payload", payload, "valid UTF-8 text (lone surrogates cannot be encoded)"
        ) from exc
    if not 1 <= size <= MAX_PAYLOAD_BYTES:
        raise ValidationError(
            "payload",
            payload,
            f"1 to {MAX_PAYLOAD_BYTES} bytes of UTF-8",
            message=(
                f"payload is {size} bytes of UTF-8; allowed are 1 to {MAX_PAYLOAD_BYTES} (256 KiB)"
            ),
        )


def rate_text(rate: Rate) -> str:
    """The rate as its constructor call, ``'Weekdays(17, 0)'``; ``parse_rate`` reads it back."""
    values = ", ".join(str(getattr(rate, field)) for field in rate.__struct_fields__)
    return f"{type(rate).__name__}({values})"


# The grammar of a rate call, checked in two linear steps (no nested quantifiers, so no
# backtracking blow-up): NAME "(" ARGS ")" with optional ASCII whitespace around each token, then
# ARGS split on commas into signed ASCII integers of at most 12 digits.
_RATE_CALL = re.compile(r"\s*+([A-Za-z]++)\s*+\(([^()]*+)\)\s*+", re.ASCII)
_RATE_ARG = re.compile(r"\s*+([+-]?[0-9]{1,12})\s*+", re.ASCII)
_RATE_ALLOWED = (
    "a rate such as 'Daily(9, 0)', 'Minutes(5)' or 'Single(2030, 12, 25, 14, 30)': a kind ("
    + ", ".join(_RATE_BY_NAME)
    + ") and its whole numbers (ASCII digits, at most 12 each) separated by commas"
)


def parse_rate(text: str) -> Rate:
    """Parse a rate written as its constructor call: ``'Daily(9, 0)'``, ``'Minutes(5)'``.

    The grammar is strict and parsed in linear time; anything else raises ValidationError.
    """
    match = _RATE_CALL.fullmatch(text) if isinstance(text, str) else None
    if match is None or match.group(1) not in _RATE_BY_NAME:
        raise ValidationError("rate", text, _RATE_ALLOWED)
    cls = _RATE_BY_NAME[match.group(1)]
    expected = len(cls.__struct_fields__)
    if match.group(2).count(",") != expected - 1:
        raise ValidationError(
            "rate",
            text,
            f"{cls.__name__} with {expected} arguments ({', '.join(cls.__struct_fields__)})",
        )
    args = [_RATE_ARG.fullmatch(part) for part in match.group(2).split(",")]
    if None in args:
        raise ValidationError("rate", text, _RATE_ALLOWED)
    return cls(*(int(arg.group(1)) for arg in args if arg is not None))


_ENCODER = msgspec.json.Encoder()
_DEFAULT_DST_JSON = b',"dst":' + _ENCODER.encode(DEFAULT_DST) + b"}"
_DECODER = msgspec.json.Decoder(Schedule)
_KEY_DECODER = msgspec.json.Decoder(str)
