"""What a fire delivers (the envelope) and where it goes (the Target port).

Every fire, from either engine, delivers one envelope whose JSON body is
``{"schedule": ..., "scheduledTime": "2026-11-27T09:00:00Z", "payload": ...}``. ``scheduledTime`` is
the nominal fire instant, not the moment of delivery. The fire id ``"{schedule}@{scheduledTime}"``
names one logical fire across retries, restarts and engines; receivers deduplicate on it.
"""

from __future__ import annotations

import functools
import inspect
from datetime import UTC, datetime
from typing import Protocol, cast, runtime_checkable

import msgspec

from reventless.errors import ValidationError

__all__ = (
    "ChecksPayload",
    "FireEnvelope",
    "Target",
    "check_target",
    "fire_id",
    "is_async_callable",
)


def fire_id(schedule: str, scheduled_time: datetime) -> str:
    """The id of one logical fire: ``"daily-report@2026-11-27T09:00:00Z"``."""
    return f"{schedule}@{scheduled_time.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


class FireEnvelope(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """One fire of one schedule, as delivered to a target."""

    schedule: str
    scheduled_time: datetime = msgspec.field(name="scheduledTime")
    payload: str

    @property
    def fire_id(self) -> str:
        """``"{schedule}@{scheduledTime}"``: the same for every delivery of this fire."""
        return fire_id(self.schedule, self.scheduled_time)

    def to_json(self) -> bytes:
        """The JSON body: ``schedule``, ``scheduledTime`` (UTC, ending in ``Z``), ``payload``."""
        return _ENCODER.encode(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> FireEnvelope:
        """Decode an envelope body; malformed input raises ValidationError."""
        try:
            envelope = _DECODER.decode(data)
        except (msgspec.MsgspecError, TypeError, ValueError) as exc:
            raise ValidationError(
                "envelope", data, "a fire envelope", message=f"fire envelope refused: {exc}"
            ) from exc
        if envelope.scheduled_time.tzinfo is None:
            raise ValidationError("scheduledTime", envelope.scheduled_time, "an instant with Z")
        return envelope


@runtime_checkable
class Target(Protocol):
    """Where a scheduler delivers its fires.

    ``await deliver(envelope)`` hands one fire over. Returning means the target has taken
    responsibility for it; raising any exception means it has not, and the engine retries the
    same envelope (same fire id) under the retry policy, then dead-letters it. A target can be
    called again with an envelope it has already seen (at-least-once delivery) and must treat
    the fire id as the key that makes a repeat harmless. Deliveries to one target may run
    concurrently; a slow or hanging delivery is cut off by the engine's delivery timeout.
    """

    async def deliver(self, envelope: FireEnvelope) -> None: ...


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(FireEnvelope)


def is_async_callable(func: object) -> bool:
    """Whether ``func`` is declared to return an awaitable, so that ``await func(...)`` works.

    True for an ``async def`` function or method, a ``functools.partial`` of one, an object
    whose ``__call__`` is ``async def``, and (Python 3.12+) a function marked with
    ``inspect.markcoroutinefunction``. False for a plain ``def``, also one that happens to
    return an awaitable: that cannot be told without calling it, and calling it is what runs
    the side effect. Such a callable is accepted once it is marked or wrapped in an
    ``async def``.
    """
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.iscoroutinefunction(func):
        return True
    if not callable(func) or inspect.isroutine(func) or isinstance(func, type):
        return False
    return inspect.iscoroutinefunction(type(func).__call__)


_TARGET_FORM = "an object with 'async def deliver(self, envelope)' (a Target)"


def check_target(target: object, field: str = "target") -> Target:
    """Return ``target`` if its ``deliver`` is a coroutine function, else refuse it.

    A plain ``def deliver`` would run its side effect and then fail at the ``await`` on every
    fire, so the effect would repeat with each retry before the fire is dead-lettered; it is
    refused here, before any fire. What counts as async: see ``is_async_callable``.
    :raises ValidationError: naming ``field`` and the target's type.
    """
    kind = type(target).__qualname__
    if isinstance(target, type):
        raise ValidationError(
            field,
            target,
            _TARGET_FORM,
            message=(
                f"{field} is the class {target.__qualname__}, not an instance of it; pass an "
                f"instance, e.g. {field}={target.__qualname__}(...)"
            ),
        )
    deliver = getattr(target, "deliver", None)
    if deliver is None or not callable(deliver):
        raise ValidationError(
            field,
            target,
            _TARGET_FORM,
            message=f"{field} {kind} has no 'deliver' method; expected {_TARGET_FORM}",
        )
    if not is_async_callable(deliver):
        raise ValidationError(
            field,
            target,
            _TARGET_FORM,
            message=(
                f"{field} {kind} has a 'deliver' that is not a coroutine function; write "
                "'async def deliver(self, envelope)'. A plain 'def deliver' would run on every "
                "fire and then fail at the await, so its effect would repeat with every retry. "
                "A 'deliver' that returns an awaitable without being 'async def' is refused too: "
                "wrap it in an 'async def' (or, on Python 3.12+, mark it with "
                "inspect.markcoroutinefunction)"
            ),
        )
    return cast(Target, target)


@runtime_checkable
class ChecksPayload(Protocol):
    """An optional capability of a target: it can tell at create time whether a payload will
    be accepted at fire time (a command topic checks that it decodes into a command)."""

    def check_payload(self, payload: str) -> None:
        """Return when ``payload`` would be accepted; raise ValidationError saying why not."""
        ...
