"""The Aggregate component: commands in, events out, state folded from events.

An aggregate is declared by an ``AggregateSpec``: its command and event types (msgspec Structs
with stable tags), an initial state, ``decide(state, command, context) -> events`` and
``evolve(state, event) -> state``. ``Aggregate.make(provider, spec)`` binds it to the provider's
event log. Handling a command appends the decided events with optimistic concurrency, records the
command's message id in the same step (so a repeat changes nothing), and then publishes the
events on the aggregate's event topic.

Scheduled payloads name a command in one of two shapes, both JSON objects:

- ``{"aggregateId": "order-processor", "command": "ProcessPendingOrders"}``: the command by name,
  its fields (if any) beside it, the aggregate instance by id;
- ``{"type": "GenerateReport", "reportType": "daily"}``: the command's own tagged JSON; the
  aggregate id comes from ``aggregateId`` when present, else from the spec's ``route``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import anyio
import msgspec
import msgspec.structs

from reventless._observe import aggregate_span
from reventless._suggest import closest, did_you_mean
from reventless.aggregate_adapter import AppendResult, EventLog, NewEvent, StoredEvent
from reventless.clock import Clock
from reventless.errors import ConflictError, DeliveryRefusedError, ValidationError
from reventless.event_topic import EventTopic, topic_for
from reventless.target import FireEnvelope

__all__ = (
    "Aggregate",
    "AggregateProvider",
    "AggregateSpec",
    "CommandContext",
    "HandleResult",
    "command_payload",
)

State = TypeVar("State")
_ID = re.compile(r"[0-9A-Za-z._:@/+=-]{1,200}")
_MAX_CONFLICT_RETRIES = 20


class CommandContext(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What a command handler knows besides the state and the command.

    ``scheduled_time`` is the nominal time of the fire that sent the command (None when it was not
    sent by a schedule): use it instead of freezing a timestamp into the payload. ``version`` is
    the stream version the decision is made on.
    """

    aggregate_id: str
    message_id: str | None
    scheduled_time: datetime | None
    version: int


class HandleResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one command: the events it appended (none for a repeat) and the version."""

    aggregate_id: str
    events: tuple[Any, ...]
    version: int
    duplicate: bool = False


def _tag(cls: type[Any], role: str, spec_name: str) -> str:
    config = getattr(cls, "__struct_config__", None)
    if config is None or not isinstance(config.tag, str):
        raise ValidationError(
            f"{spec_name}.{role}",
            cls,
            "msgspec Structs declared with a tag, e.g. class Ship(msgspec.Struct, tag=True)",
        )
    return config.tag


class AggregateSpec(Generic[State]):
    """The declaration of an aggregate.

    - ``name``: the aggregate's name, 1-64 characters of letters, digits, ``.``, ``_``, ``-``;
      stored with every event, so it must not change.
    - ``commands`` / ``events``: msgspec Struct classes declared with a tag (``tag=True`` uses the
      class name). Tags are stored and routed on; they must not change.
    - ``initial``: the state of a new aggregate instance.
    - ``decide(state, command, context)``: returns the events a command causes (may be empty);
      raise to refuse the command.
    - ``evolve(state, event)``: returns the state after an event. Both must be pure and fast:
      they run on the event loop's thread, where no timeout can cut off a blocking call (the
      engine reports a loop held past the delivery timeout; see docs/aggregates.md).
    - ``route``: where a ``{"type": ...}`` payload without ``aggregateId`` goes: a mapping from
      command tag to aggregate id, or a function of the command.
    - ``accepts_id``: optionally, which aggregate ids exist (a set or a predicate); others are
      refused when a schedule is created and when a command arrives.
    """

    def __init__(
        self,
        name: str,
        *,
        commands: Sequence[type[Any]],
        events: Sequence[type[Any]],
        initial: State,
        decide: Callable[[State, Any, CommandContext], Sequence[Any]],
        evolve: Callable[[State, Any], State],
        route: Mapping[str, str] | Callable[[Any], str] | None = None,
        accepts_id: Callable[[str], bool] | frozenset[str] | set[str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not re.fullmatch(r"[0-9A-Za-z._-]{1,64}", name):
            raise ValidationError("aggregate name", name, "1-64 letters, digits, '.', '_', '-'")
        if not commands or not events:
            raise ValidationError(f"{name}.commands", commands, "at least one command and event")
        self.name = name
        self.commands: dict[str, type[Any]] = {_tag(c, "commands", name): c for c in commands}
        self.events: dict[str, type[Any]] = {_tag(e, "events", name): e for e in events}
        self.initial = initial
        self.decide = decide
        self.evolve = evolve
        self.route = route
        if isinstance(accepts_id, (set, frozenset)):
            known = frozenset(accepts_id)
            self.accepts_id: Callable[[str], bool] | None = known.__contains__
            self.known_ids: frozenset[str] | None = known
        else:
            self.accepts_id = accepts_id
            self.known_ids = None
        self._field_names = {
            tag: {f.encode_name for f in msgspec.structs.fields(cls)}
            for tag, cls in self.commands.items()
        }
        self._event_types = tuple(self.events.values())
        self._event_decoders = {tag: msgspec.json.Decoder(cls) for tag, cls in self.events.items()}
        self._encoder = msgspec.json.Encoder()

    # -- payloads ------------------------------------------------------------------------------

    def decode_payload(self, payload: str | bytes) -> tuple[str, Any]:
        """The (aggregate id, command) a scheduled payload names, or ValidationError saying what
        was expected. A near miss (a misspelt command, ``aggregate_id`` for ``aggregateId``)
        is refused with the name it most likely meant."""
        expected = (
            f"a JSON object naming one of {self.name}'s commands "
            f'({", ".join(sorted(self.commands))}) as {{"command": ...}} with "aggregateId", '
            'or as its tagged form {"type": ...}'
        )
        try:
            document = msgspec.json.decode(payload)
        except msgspec.DecodeError as exc:
            raise ValidationError("payload", payload, expected) from exc
        if not isinstance(document, dict):
            raise ValidationError("payload", payload, expected)
        if "command" in document:
            name = document["command"]
            fields = {k: v for k, v in document.items() if k not in ("command", "aggregateId")}
        elif "type" in document:
            name = document["type"]
            fields = {k: v for k, v in document.items() if k not in ("type", "aggregateId")}
        else:
            raise _no_command_key(document, payload, expected)
        command_type = self.commands.get(name) if isinstance(name, str) else None
        if command_type is None:
            allowed = f"one of {self.name}'s commands: {', '.join(sorted(self.commands))}"
            hint = did_you_mean(name, self.commands)
            raise ValidationError(
                "payload command",
                name,
                allowed,
                message=f"payload command {name!r} is not allowed{hint}; expected {allowed}"
                if hint
                else None,
            )
        self._refuse_unknown_fields(name, fields)
        try:
            command = msgspec.convert(fields, command_type, strict=True)
        except (msgspec.ValidationError, TypeError, ValueError) as exc:
            raise ValidationError(
                f"payload {name}",
                fields,
                f"the fields of {name}",
                message=f"payload for {self.name}.{name} is not valid: {exc}",
            ) from exc
        aggregate_id = document.get("aggregateId")
        if aggregate_id is None:
            aggregate_id = self._route(name, command)
        self.check_id(aggregate_id)
        return aggregate_id, command

    def _refuse_unknown_fields(self, name: str, fields: dict[str, Any]) -> None:
        # Refused even when the Struct would ignore them: a misspelt field must not pass.
        known = self._field_names[name]
        unknown = sorted(set(fields) - known)
        if not unknown:
            return
        described = ", ".join(
            field + did_you_mean(field, [*known, "aggregateId"]) for field in unknown
        )
        raise ValidationError(
            f"payload {name}",
            fields,
            f"the fields of {name}",
            message=(
                f"payload for {self.name}.{name} has unknown field(s) {described}; "
                f"{name} has: {', '.join(sorted(known)) or 'no fields'}"
            ),
        )

    def _route(self, name: str, command: Any) -> str:
        if isinstance(self.route, Mapping) and name in self.route:
            return self.route[name]
        if callable(self.route):
            routed = self.route(command)
            if isinstance(routed, str):
                return routed
        raise ValidationError(
            "payload aggregateId",
            None,
            f'an "aggregateId" in the payload, or a route for {name} in {self.name}\'s spec',
        )

    def check_id(self, aggregate_id: object) -> str:
        """Validate an aggregate id: 1-200 safe characters, and accepted by ``accepts_id``."""
        if not isinstance(aggregate_id, str) or not _ID.fullmatch(aggregate_id):
            raise ValidationError("aggregateId", aggregate_id, "1-200 letters, digits or ._:@/+=-")
        if self.accepts_id is not None and not self.accepts_id(aggregate_id):
            known = f": {', '.join(sorted(self.known_ids))}" if self.known_ids else ""
            raise ValidationError(
                "aggregateId", aggregate_id, f"an id of an existing {self.name}{known}"
            )
        return aggregate_id

    def encode_event(self, event: Any) -> NewEvent:
        if not isinstance(event, self._event_types):
            raise ValidationError(
                f"{self.name} event",
                event,
                f"one of {self.name}'s events: {', '.join(sorted(self.events))}",
            )
        tag = _tag(type(event), "events", self.name)
        data = self._encoder.encode(event)
        try:
            # msgspec does not check field types when a Struct is built, so an event holding a
            # value its type does not declare (None in a datetime field) would be appended and
            # then never read back; it is refused before anything is written.
            self._event_decoders[tag].decode(data)
        except msgspec.DecodeError as exc:
            raise ValidationError(
                f"{self.name} event",
                event,
                f"an event whose fields match their declared types ({exc})",
                message=(
                    f"{self.name} event {event!r} does not match its declared field types, so it "
                    f"could not be read back: {exc}; nothing was appended (fix decide, or declare "
                    "the field's type to allow the value, e.g. 'datetime | None')"
                ),
            ) from exc
        return NewEvent(type=tag, data=data)

    def decode_event(self, stored: StoredEvent) -> Any:
        decoder = self._event_decoders.get(stored.type)
        if decoder is None:
            raise ValidationError(
                "stored event type", stored.type, f"one of {', '.join(sorted(self.events))}"
            )
        return decoder.decode(stored.data)


def _no_command_key(
    document: dict[str, Any], payload: str | bytes, expected: str
) -> ValidationError:
    """The refusal of a payload with neither "command" nor "type", naming a key that is a near
    miss of one of them."""
    for key in document:
        near = closest(key, ("command", "type"))
        if near is not None:
            return ValidationError(
                "payload",
                payload,
                expected,
                message=f"payload has no {near!r} key (did you mean {near!r} for {key!r}?); "
                f"expected {expected}",
            )
    return ValidationError("payload", payload, expected)


def command_payload(aggregate_id: str, command: Any) -> str:
    """The payload that sends ``command`` to ``aggregate_id``: aggregateId, command, fields."""
    body = msgspec.to_builtins(command)
    if not isinstance(body, dict):
        raise ValidationError("command", command, "a msgspec Struct command")
    name = body.pop(type(command).__struct_config__.tag_field, type(command).__name__)
    return msgspec.json.encode({"aggregateId": aggregate_id, "command": name, **body}).decode()


class AggregateProvider(Protocol):
    """What a provider offers the Aggregate builder."""

    @property
    def clock(self) -> Clock: ...

    def event_log(self) -> EventLog: ...


class Aggregate(Generic[State]):
    """An aggregate bound to an event log. Make one with ``await Aggregate.make(provider, spec)``.

    ``command_topic`` is a schedule target that turns fires into commands; ``event_topic``
    publishes every appended event.
    """

    def __init__(
        self, spec: AggregateSpec[State], log: EventLog, clock: Clock, events: EventTopic
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self._log = log
        self._clock = clock
        self._cache: dict[str, tuple[State, int]] = {}
        self.event_topic = events
        self.command_topic: CommandTopic = CommandTopic(self)

    @classmethod
    async def make(
        cls, provider: AggregateProvider, spec: AggregateSpec[State]
    ) -> Aggregate[State]:
        """Bind ``spec`` to the provider's event log, with its command topic and event topic
        (the provider's own topic named after the aggregate when it offers topics)."""
        if not isinstance(spec, AggregateSpec):
            raise ValidationError("spec", spec, "an AggregateSpec")
        log = provider.event_log()
        return cls(spec, log, provider.clock, topic_for(provider, spec.name))

    @property
    def clock(self) -> Clock:
        """The provider's clock (command contexts and event times come from it)."""
        return self._clock

    async def load(self, aggregate_id: str) -> tuple[State, int]:
        """The current state and version of one aggregate instance."""
        self.spec.check_id(aggregate_id)
        cached = self._cache.get(aggregate_id)
        state, version = cached if cached is not None else (self.spec.initial, 0)
        for stored in await self._log.load(self.name, aggregate_id, after_version=version):
            state = self.spec.evolve(state, self.spec.decode_event(stored))
            version = stored.version
        self._cache[aggregate_id] = (state, version)
        return state, version

    def forget(self, aggregate_id: str) -> None:
        """Drop the cached state of one instance, so that its next use reads the log again (a
        provider calls it when a transaction its appends were part of rolled back)."""
        self._cache.pop(aggregate_id, None)

    async def history(self, aggregate_id: str) -> list[Any]:
        """Every event of one aggregate instance, decoded, oldest first."""
        self.spec.check_id(aggregate_id)
        stored = await self._log.load(self.name, aggregate_id)
        return [self.spec.decode_event(event) for event in stored]

    async def handle(
        self,
        aggregate_id: str,
        command: Any,
        *,
        message_id: str | None = None,
        scheduled_time: datetime | None = None,
    ) -> HandleResult:
        """Decide, append and publish; a ``message_id`` already handled by this aggregate
        instance changes nothing. Ids are per instance: the same id sent to two instances is
        handled by each. When the event topic ``republishes_duplicates`` (SNS), such a repeat
        publishes the events that message appended again, with the same event ids: a crash
        after the append and before the publish is mended by the repeat of the command.

        A concurrent writer on the same stream makes the append conflict; the command is then
        decided again on the fresh state (up to 20 times).
        :raises ValidationError: the command or an event it produced is not of this aggregate.
        :raises ConflictError: the stream kept moving on through every retry.
        Whatever ``decide`` raises propagates.
        """
        with aggregate_span(self.name, str(aggregate_id), command):
            return await self._handle(
                aggregate_id, command, message_id=message_id, scheduled_time=scheduled_time
            )

    async def _handle(
        self,
        aggregate_id: str,
        command: Any,
        *,
        message_id: str | None,
        scheduled_time: datetime | None,
    ) -> HandleResult:
        self.spec.check_id(aggregate_id)
        if not isinstance(command, tuple(self.spec.commands.values())):
            raise ValidationError(
                f"{self.name} command", command, f"one of {', '.join(sorted(self.spec.commands))}"
            )
        for _ in range(_MAX_CONFLICT_RETRIES):
            state, version = self._cache.get(aggregate_id) or await self.load(aggregate_id)
            context = CommandContext(
                aggregate_id=aggregate_id,
                message_id=message_id,
                scheduled_time=scheduled_time,
                version=version,
            )
            try:
                events = list(self.spec.decide(state, command, context))
                encoded = [self.spec.encode_event(event) for event in events]
                self.event_topic.check_publishable(
                    self.name, aggregate_id, encoded, version=version, message_id=message_id
                )
            except Exception:
                # A repeat of a handled command may be refused by the newer state, or give
                # events a release before this one let through and this one refuses; it is a
                # repeat all the same (its stored events are published again), and must not
                # be retried or dead-lettered.
                if message_id is not None and await self._repeated(aggregate_id, message_id):
                    return HandleResult(
                        aggregate_id=aggregate_id, events=(), version=version, duplicate=True
                    )
                raise
            try:
                result = await self._log.append(
                    self.name,
                    aggregate_id,
                    expected_version=version,
                    events=encoded,
                    message_id=message_id,
                    recorded_at=self._clock.now(),
                )
            except ConflictError:
                self._cache.pop(aggregate_id, None)
                await self.load(aggregate_id)
                continue
            if result.duplicate:
                if message_id is not None and self.event_topic.republishes_duplicates:
                    await self._repeated(aggregate_id, message_id)
                return HandleResult(
                    aggregate_id=aggregate_id, events=(), version=result.version, duplicate=True
                )
            for event in events:
                state = self.spec.evolve(state, event)
            self._cache[aggregate_id] = (state, result.version)
            await self.event_topic.publish_events(
                self.name, aggregate_id, events, result, message_id
            )
            return HandleResult(
                aggregate_id=aggregate_id, events=tuple(events), version=result.version
            )
        raise ConflictError(
            f"{self.name}/{aggregate_id}: the stream kept changing through "
            f"{_MAX_CONFLICT_RETRIES} attempts"
        )

    async def _repeated(self, aggregate_id: str, message_id: str) -> bool:
        """Whether ``message_id`` was handled by this instance; if so, and the topic wants it,
        publish again the events it appended."""
        if not self.event_topic.republishes_duplicates:
            return await self._log.was_handled(self.name, aggregate_id, message_id)
        stored = await self._log.handled_events(self.name, aggregate_id, message_id)
        if stored is None:
            return False
        if stored:
            result = AppendResult(
                duplicate=False,
                version=stored[-1].version,
                positions=tuple(event.position for event in stored),
            )
            events = [self.spec.decode_event(event) for event in stored]
            await self.event_topic.publish_events(
                self.name, aggregate_id, events, result, message_id
            )
        return True


# -- the command topic ----------------------------------------------------------------------


class _IdLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        # fast_acquire: a free lock (the usual case) is taken without a turn of the event loop.
        self.lock = anyio.Lock(fast_acquire=True)
        self.users = 0


class CommandTopic:
    """Delivers commands to ``aggregate``, in order per aggregate id."""

    def __init__(self, aggregate: Aggregate[Any]) -> None:
        self.aggregate = aggregate
        self.name = aggregate.name
        self._locks: dict[str, _IdLock] = {}

    def check_payload(self, payload: str) -> None:
        """Refuse a schedule payload that does not name one of the aggregate's commands."""
        self.aggregate.spec.decode_payload(payload)

    async def send(
        self,
        aggregate_id: str,
        command: Any,
        *,
        message_id: str | None = None,
        scheduled_time: datetime | None = None,
    ) -> HandleResult:
        """Handle ``command`` on ``aggregate_id`` after the commands sent to it before."""
        entry = self._locks.get(aggregate_id)
        if entry is None:
            entry = self._locks[aggregate_id] = _IdLock()
        entry.users += 1
        try:
            async with entry.lock:  # anyio locks are fair: first come, first handled
                return await self.aggregate.handle(
                    aggregate_id, command, message_id=message_id, scheduled_time=scheduled_time
                )
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[aggregate_id]

    async def deliver(self, envelope: FireEnvelope) -> None:
        """Schedule target: decode the payload into a command and send it under the fire id."""
        try:
            aggregate_id, command = self.aggregate.spec.decode_payload(envelope.payload)
        except ValidationError as exc:
            # The aggregate changed after the schedule was made: no retry can fix this.
            raise DeliveryRefusedError(
                f"payload of {envelope.fire_id} no longer decodes for {self.name}: {exc}"
            ) from exc
        await self.send(
            aggregate_id,
            command,
            message_id=envelope.fire_id,
            scheduled_time=envelope.scheduled_time,
        )
