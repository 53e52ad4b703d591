"""What a fire delivers (the envelope) and where it goes (the Target port).

Every fire, from either engine, delivers one envelope whose JSON body is
``{"schedule": ..., "scheduledTime": "2026-11-27T09:00:00Z", "payload": ...}``. ``scheduledTime`` is
the nominal fire instant, not the moment of delivery. The fire id ``"{schedule}@{scheduledTime}"``
names one logical fire across retries, restarts and engines; receivers deduplicate on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import msgspec

from reventless.errors import ValidationError

__all__ = ("ChecksPayload", "FireEnvelope", "Target", "fire_id")


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


@runtime_checkable
class ChecksPayload(Protocol):
    """An optional capability of a target: it can tell at create time whether a payload will
    be accepted at fire time (a command topic checks that it decodes into a command)."""

    def check_payload(self, payload: str) -> None:
        """Return when ``payload`` would be accepted; raise ValidationError saying why not."""
        ...
