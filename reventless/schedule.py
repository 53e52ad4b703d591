"""Schedules and their rate variants: frozen value objects that validate themselves.

Every variant takes the original framework's positional arguments (``Daily(9, 0)``,
``Single(2024, 12, 25, 14, 30)``) and checks its ranges on construction and on decoding, so an
invalid schedule never exists. A call with missing, extra or unknown arguments raises
``ArgumentError`` (a ValidationError and a TypeError) naming the class and its call form. JSON
carries a stable ``"kind"`` tag per variant; the tags are part of the storage format and never
change. Beside the seven rates of the original framework there are three calendar rates:
``Monthly`` (a day of the month, or the last), ``NthWeekday`` (the first to fifth, or last, given
weekday of the month) and ``Cron`` (EventBridge's six-field cron, or Unix's five fields).

A one-off reminder at an aware datetime is one line: ``Schedule.once("remind-42", at=when,
payload=...)``; ``Single.at(when)`` gives just the rate.

``DstPolicy`` chooses what a wall-clock rate or Single does when the clocks change; a schedule
with the default policy encodes to the same JSON as before the field existed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

import msgspec
import msgspec.structs

from reventless._rate_kinds import (
    _NAME,
    _RATE_BY_NAME,
    LAST,
    MAX_FIRES,
    MAX_INTERVAL_MINUTES,
    MAX_JITTER_MINUTES,
    MAX_PAYLOAD_BYTES,
    RATE_TYPES,
    CalendarRate,
    Cron,
    Daily,
    Days,
    Hours,
    IntervalRate,
    Minutes,
    Monthly,
    NthWeekday,
    Rate,
    Single,
    WallClockRate,
    Weekdays,
    WeekdaysAndSaturday,
    _aware_minute,
    _check_int,
    _NamedArguments,
    _single_at,
)
from reventless._zones import fixed_offset_key, load_zone, resolve_wall_time, zone_key
from reventless.errors import ValidationError
from reventless.errors import _show as _show_refused

__all__ = (
    "LAST",
    "MAX_INTERVAL_MINUTES",
    "MAX_PAYLOAD_BYTES",
    "CalendarRate",
    "Cron",
    "Daily",
    "Days",
    "DstGap",
    "DstOverlap",
    "DstPolicy",
    "Hours",
    "IntervalRate",
    "Minutes",
    "Monthly",
    "NthWeekday",
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

MisfireChoice: TypeAlias = Literal["latest", "all", "skip"]
_MISFIRE_CHOICES = ("latest", "all", "skip")
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

    # Called with keywords only: a wrong call shows that form (see _argument_error).
    _KEYWORD_ONLY: ClassVar[bool] = True

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
    - ``rate``: one of the rate variants (the seven of the original framework, Monthly,
      NthWeekday, Cron).
    - ``payload``: 1 byte to 256 KiB of UTF-8, opaque to the scheduler.
    - ``timezone``: an IANA zone name; wall-clock variants and Single are read in it. A
      ``zoneinfo.ZoneInfo`` is accepted and stored as its key; a fixed offset of whole hours
      (``datetime.timezone.utc``, ``timezone(timedelta(hours=2))``) as ``'UTC'`` or
      ``'Etc/GMT-2'``. A misspelt name is refused with the zone it most likely meant.
    - ``dst``: a ``DstPolicy``, what a wall-clock rate or Single does in a DST gap or overlap;
      default skip/first (EventBridge Scheduler's rule). Left out of the JSON when default.
      Refused for intervals, whose fires the clocks never move.
    - ``misfire``: ``"latest"``, ``"all"`` or ``"skip"``, what the embedded engine does with
      this schedule's fires that it missed (down or stalled), overriding the engine's
      ``misfire_policy``; None (default, left out of the JSON): the engine's. The AWS provider
      refuses it: EventBridge Scheduler keeps no such policy.
    - ``not_before`` / ``not_after``: aware datetimes (kept in UTC) bounding the fires,
      inclusively: a fire exactly at a bound happens. An interval keeps its grid from its
      creation; the window only leaves out the fires outside it. After its last fire a schedule
      with ``not_after`` completes and is removed, like a Single. None (default, left out of the
      JSON): no bound. A Single takes none (it fires once, at its own instant).
    - ``jitter_minutes``: 1 to 1440, a window after each fire's instant in which it is
      delivered, to spread many schedules of one instant (EventBridge's flexible time window).
      On the embedded engine the delay of a fire is derived from its fire id
      (``fire_times.jitter_of``), so a restart or another engine delivers it at the same moment;
      the fire id and ``scheduledTime`` stay the nominal instant. None (default, left out of the
      JSON): on time.
    - ``max_fires``: 1 to 100,000, the number of fire instants after which the schedule
      completes and is removed: its first ``max_fires`` fire instants from its creation (inside
      its window), each counted whether delivered or recorded missed, so the count is the same
      on every engine and after any downtime. An update in place keeps counting from the
      creation; a replace starts again. The embedded engine only (the AWS provider refuses it).

    A Single whose wall time does not exist in the zone (a DST gap) is refused unless
    ``dst.gap`` is ``"shift"``.
    """

    # Called with keywords only: a wrong call shows that form (see _argument_error).
    _KEYWORD_ONLY: ClassVar[bool] = True

    name: str
    rate: Rate
    payload: str
    timezone: str = "UTC"
    dst: DstPolicy = DEFAULT_DST
    if TYPE_CHECKING:
        misfire: MisfireChoice | None = None
    else:
        # Checked in __post_init__, which names the field and the choices (also when decoding).
        misfire: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    jitter_minutes: int | None = None
    max_fires: int | None = None

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
            misfire: MisfireChoice | None = None,
            not_before: datetime | None = None,
            not_after: datetime | None = None,
            jitter_minutes: int | None = None,
            max_fires: int | None = None,
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
        if self.misfire is not None and (
            not isinstance(self.misfire, str) or self.misfire not in _MISFIRE_CHOICES
        ):
            raise ValidationError("misfire", self.misfire, "'latest', 'all' or 'skip', or None")
        if self.not_before is not None or self.not_after is not None:
            self._check_window()
        if self.jitter_minutes is not None:
            _check_int("jitter_minutes", self.jitter_minutes, 1, MAX_JITTER_MINUTES)
        if self.max_fires is not None:
            _check_int("max_fires", self.max_fires, 1, MAX_FIRES)
            if isinstance(self.rate, Single):
                raise ValidationError(
                    "max_fires",
                    self.max_fires,
                    "None for a Single",
                    message=(
                        f"max_fires does not apply to {rate_text(self.rate)}: a Single fires "
                        "once; leave max_fires out"
                    ),
                )
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
                    "applies to wall-clock rates (Daily, Weekdays, WeekdaysAndSaturday), calendar "
                    "rates (Monthly, NthWeekday, Cron) and Single"
                ),
            )

    def _check_window(self) -> None:
        for field in ("not_before", "not_after"):
            value = getattr(self, field)
            if value is None:
                continue
            if not isinstance(value, datetime) or value.utcoffset() is None:
                raise ValidationError(
                    field,
                    value,
                    "an aware datetime (e.g. datetime(2027, 1, 1, tzinfo=timezone.utc)) or None",
                )
            if value.tzinfo is not UTC:
                try:
                    msgspec.structs.force_setattr(self, field, value.astimezone(UTC))
                except OverflowError as exc:
                    raise ValidationError(
                        field, value, "an instant within years 1-9999 UTC"
                    ) from exc
        lo, hi = self.not_before, self.not_after
        if isinstance(self.rate, Single):
            field = "not_before" if lo is not None else "not_after"
            raise ValidationError(
                field,
                getattr(self, field),
                "None for a Single",
                message=(
                    f"{field} does not apply to {rate_text(self.rate)}: a Single fires once, at "
                    "its own instant; leave the window out"
                ),
            )
        if lo is not None and hi is not None and hi < lo:
            raise ValidationError(
                "not_after",
                hi,
                f"an instant not before not_before ({lo.isoformat()})",
                message=(
                    f"not_after {hi.isoformat()} is before not_before {lo.isoformat()}; "
                    "the window would hold no fire"
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
        defaults = [
            encoded
            for encoded, is_default in (
                (_DEFAULT_DST_JSON, self.dst == DEFAULT_DST),
                (b',"misfire":null', self.misfire is None),
                (b',"not_before":null', self.not_before is None),
                (b',"not_after":null', self.not_after is None),
                (b',"jitter_minutes":null', self.jitter_minutes is None),
                (b',"max_fires":null', self.max_fires is None),
            )
            if is_default
        ]
        if not defaults:
            return raw
        # These fields end the document, so their encodings lie in its last bytes; and none can
        # occur inside a string, where every quote is escaped.
        tail = raw[-_TAIL:]
        for encoded in defaults:
            tail = tail.replace(encoded, b"", 1)
        return raw[:-_TAIL] + tail if len(raw) > _TAIL else tail

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
    "a rate such as 'Daily(9, 0)', 'Minutes(5)', 'Monthly(-1, 18, 0)' or 'Cron(0 9 ? * MON-FRI *)':"
    " a kind ("
    + ", ".join(_RATE_BY_NAME)
    + ") and its whole numbers (ASCII digits, at most 12 each) separated by commas, or for Cron "
    "the expression"
)


def parse_rate(text: str) -> Rate:
    """Parse a rate written as its constructor call: ``'Daily(9, 0)'``, ``'Minutes(5)'``,
    ``'Cron(0 9 ? * MON-FRI *)'`` (the expression may be quoted).

    The grammar is strict and parsed in linear time; anything else raises ValidationError.
    """
    match = _RATE_CALL.fullmatch(text) if isinstance(text, str) else None
    if match is None or match.group(1) not in _RATE_BY_NAME:
        raise ValidationError("rate", text, _RATE_ALLOWED)
    cls = _RATE_BY_NAME[match.group(1)]
    if cls is Cron:
        inner = match.group(2).strip()
        if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
            inner = inner[1:-1]
        return Cron(inner)
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
    build: Any = cls  # the numeric rates: Cron returned above
    rate: Rate = build(*(int(arg.group(1)) for arg in args if arg is not None))
    return rate


_ENCODER = msgspec.json.Encoder()
_DEFAULT_DST_JSON = b',"dst":' + _ENCODER.encode(DEFAULT_DST)
# Enough for the optional fields at the end of a schedule's JSON, whatever their values.
_TAIL = 512
_DECODER = msgspec.json.Decoder(Schedule)
_KEY_DECODER = msgspec.json.Decoder(str)
