"""What reventless reports about its work: logs always, spans and metrics with OpenTelemetry.

Logs use the standard ``logging`` module under ``reventless.``: ``reventless.engine`` (start,
stop, leadership: INFO; a lost lease: WARNING), ``reventless.fire`` (each delivery: DEBUG; a
failure to be retried: WARNING; a dead letter: ERROR; fires skipped or missed in a catch-up:
INFO). Records about a fire carry ``extra`` fields a JSON formatter picks up: ``scheduler``,
``schedule``, ``fire_id``, ``attempt``, ``scheduled_time`` (ISO 8601) and ``lateness`` (seconds).

With ``opentelemetry-api`` installed (``pip install reventless[otel]``) the same points make
spans and metrics through the global tracer and meter providers; they cost nothing until the
application configures the SDK. The names are listed in ``docs/operations.md``.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

__all__ = (
    "FIRE_SPAN",
    "Observer",
    "aggregate_span",
    "reaction_span",
    "watch_engine",
)

FIRE_SPAN = "reventless.fire"
engine_log = logging.getLogger("reventless.engine")
fire_log = logging.getLogger("reventless.fire")
T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

try:  # the optional extra: reventless[otel]
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    _metrics = None  # type: ignore[assignment]
    _trace = None  # type: ignore[assignment]


class _Failure(Protocol):
    reason: str


class _Instruments:
    """The instruments, made once per process from the global meter (a proxy until set)."""

    def __init__(self) -> None:
        assert _metrics is not None
        meter = _metrics.get_meter("reventless")
        self.fires = meter.create_counter(
            "reventless.fires",
            unit="{fire}",
            description="Fires by outcome: delivered, retried, dead_lettered, skipped, missed",
        )
        self.lateness = meter.create_histogram(
            "reventless.fire.lateness",
            unit="s",
            description="Start of a delivery attempt minus the fire's scheduled time",
        )
        self.duration = meter.create_histogram(
            "reventless.fire.duration", unit="s", description="How long one delivery attempt took"
        )
        meter.create_observable_gauge(
            "reventless.schedules",
            callbacks=[_gauge("schedules")],
            unit="{schedule}",
            description="Active schedules (and pending retries) the leading engine watches",
        )
        meter.create_observable_gauge(
            "reventless.fires.in_flight",
            callbacks=[_gauge("in_flight")],
            unit="{fire}",
            description="Fires handed to delivery and not yet recorded",
        )
        meter.create_observable_gauge(
            "reventless.fires.backlog_age",
            callbacks=[_gauge("backlog_age")],
            unit="s",
            description="How far the earliest due fire is behind now (0 when caught up)",
        )


_instruments: _Instruments | None = None


def _sdk_configured() -> bool:
    """Whether the application set real tracer or meter providers (the API's defaults are
    proxies that record nothing): until then a fire skips the span and metric work. The
    answer is looked up at most once a second (the lookup reads the environment)."""
    global _sdk_seen, _next_look
    if _sdk_seen:
        return True  # providers are set once and stay
    now = time.monotonic()
    if now < _next_look or _trace is None or _metrics is None:
        return False
    _next_look = now + 1.0
    tracing = type(_trace.get_tracer_provider()).__name__
    metering = type(_metrics.get_meter_provider()).__name__
    _sdk_seen = tracing not in _DEFAULT_PROVIDERS or metering not in _DEFAULT_PROVIDERS
    return _sdk_seen


_sdk_seen = False
_next_look = 0.0


def look_for_sdk_now() -> None:
    """Look for configured providers at the next fire (tests set them just before)."""
    global _next_look
    _next_look = 0.0


_DEFAULT_PROVIDERS = frozenset(
    {"ProxyTracerProvider", "NoOpTracerProvider", "_ProxyMeterProvider", "NoOpMeterProvider"}
)


def _get_instruments() -> _Instruments | None:
    global _instruments
    if _metrics is None:
        return None
    if _instruments is None:
        _instruments = _Instruments()
    return _instruments


# Engines whose figures the gauges report; a weak set, so a closed provider drops out.
_engines: weakref.WeakSet[Any] = weakref.WeakSet()


def watch_engine(engine: Any) -> None:
    """Report ``engine``'s gauges (it has ``gauges() -> dict[str, float]`` and ``store``)."""
    _engines.add(engine)
    _get_instruments()


def _gauge(key: str) -> Callable[[Any], Iterator[Any]]:
    def observe(_options: Any) -> Iterator[Any]:
        assert _metrics is not None
        for engine in list(_engines):
            figures = engine.gauges()
            if figures is not None:
                yield _metrics.Observation(figures[key], {"reventless.store": engine.store_path})

    return observe


_tracers: list[_trace.Tracer] = []


def _tracer() -> _trace.Tracer:
    """The one tracer (a proxy until the SDK is set; getting one per span is costly)."""
    assert _trace is not None
    if not _tracers:
        _tracers.append(_trace.get_tracer("reventless"))
    return _tracers[0]


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Observer:
    """The engine's reporting points. ``engine`` is ``"local"`` or ``"aws"``."""

    def __init__(self, engine: str) -> None:
        self.engine = engine

    # -- lifecycle -----------------------------------------------------------------------------

    def engine_started(self, store: str) -> None:
        engine_log.info("engine started on %s", store, extra={"store": store})

    def engine_stopped(self, store: str) -> None:
        engine_log.info("engine stopped on %s", store, extra={"store": store})

    def leading(self, store: str, entries: int) -> None:
        engine_log.info(
            "leading on %s: %d schedules and retries loaded",
            store,
            entries,
            extra={"store": store, "entries": entries},
        )

    def standing_by(self, store: str) -> None:
        engine_log.info("standing by on %s: another process leads", store, extra={"store": store})

    def caught_up(self, store: str, catch_up: Any) -> None:
        """A new lead found fires that fell due while no engine ran (an ``_engine.CatchUp``)."""
        engine_log.info(
            "%s",
            describe_catch_up(catch_up),
            extra={"store": store, "missed_fires": catch_up.due},
        )

    def lease_lost(self, store: str) -> None:
        engine_log.warning(
            "lost the lease on %s: another process fires now; standing by",
            store,
            extra={"store": store},
        )

    # -- fires ---------------------------------------------------------------------------------

    def _fields(
        self, scheduler: str, schedule: str, scheduled_us: int, attempt: int, now_us: int
    ) -> dict[str, Any]:
        scheduled = datetime.fromtimestamp(scheduled_us / 1_000_000, UTC)
        return {
            "scheduler": scheduler,
            "schedule": schedule,
            "fire_id": f"{schedule}@{_iso(scheduled)}",
            "attempt": attempt,
            "scheduled_time": _iso(scheduled),
            "lateness": max(0.0, (now_us - scheduled_us) / 1_000_000),
        }

    def observing(self) -> bool:
        """Whether deliveries are observed now (fire logs at DEBUG, or an OpenTelemetry SDK);
        when not, the engine skips ``attempt`` altogether."""
        return fire_log.isEnabledFor(logging.DEBUG) or _sdk_configured()

    async def attempt(
        self,
        delivery: Awaitable[T],
        *,
        scheduler: str,
        schedule: str,
        scheduled_us: int,
        attempt: int,
        now_us: int,
    ) -> T:
        """Await ``delivery`` (returning None or a failure) inside a ``reventless.fire`` span;
        record its lateness and duration, and count and log a success."""
        debug = fire_log.isEnabledFor(logging.DEBUG)
        if not debug and not _sdk_configured():
            return await delivery  # nothing records: the bare delivery (the hot path)
        instruments = _get_instruments()
        fields = self._fields(scheduler, schedule, scheduled_us, attempt, now_us)
        attributes = {"reventless.scheduler": scheduler, "reventless.engine": self.engine}
        started = time.perf_counter()
        with _fire_span(fields, self.engine, producer=self.engine == "local") as span:
            result = await delivery
            failure = None if result is None else getattr(result, "reason", "failed")
            if span is not None and failure is not None:
                span.set_status(_trace.Status(_trace.StatusCode.ERROR, str(failure)))
        elapsed = time.perf_counter() - started
        if instruments is not None:
            instruments.lateness.record(fields["lateness"], attributes)
            instruments.duration.record(elapsed, attributes)
        if failure is None:
            self.count("delivered", scheduler)
            if debug:
                fire_log.debug(
                    "delivered %s (attempt %d, %.3f s late)",
                    fields["fire_id"],
                    attempt,
                    fields["lateness"],
                    extra=fields,
                )
        return result

    async def received(
        self, handling: Awaitable[T], *, schedule: str, scheduled_time: datetime, now: datetime
    ) -> T:
        """Await ``handling`` of a fire that arrived from a queue (AWS: EventBridge Scheduler
        delivered it) inside a ``reventless.fire`` span (kind consumer); record its lateness
        (arrival minus scheduled time) and duration like the local engine, count the outcome:
        delivered, or retried (the queue redelivers the record) when it raises."""
        instruments = _get_instruments()
        fields = self._fields("", schedule, to_us(scheduled_time), 1, to_us(now))
        attributes = {"reventless.scheduler": "", "reventless.engine": self.engine}
        started = time.perf_counter()
        try:
            with _fire_span(fields, self.engine, producer=False):
                result = await handling
        except Exception as exc:
            self.count("retried", "")
            fire_log.warning(
                "handling %s failed; the queue delivers it again: %s: %s",
                fields["fire_id"],
                type(exc).__name__,
                exc,
                extra=fields,
            )
            raise
        finally:
            if instruments is not None:
                instruments.lateness.record(fields["lateness"], attributes)
                instruments.duration.record(time.perf_counter() - started, attributes)
        self.count("delivered", "")
        fire_log.debug("delivered %s", fields["fire_id"], extra=fields)
        return result

    def failed(
        self,
        *,
        scheduler: str,
        schedule: str,
        scheduled_us: int,
        attempt: int,
        now_us: int,
        reason: str,
        dead_lettered: bool,
    ) -> None:
        """A delivery failed: it will be retried (WARNING) or was dead-lettered (ERROR)."""
        fields = self._fields(scheduler, schedule, scheduled_us, attempt, now_us)
        if dead_lettered:
            self.count("dead_lettered", scheduler)
            fire_log.error(
                "dead-lettered %s after attempt %d: %s",
                fields["fire_id"],
                attempt,
                reason,
                extra=fields,
            )
        else:
            self.count("retried", scheduler)
            fire_log.warning(
                "delivery of %s failed (attempt %d), will retry: %s",
                fields["fire_id"],
                attempt,
                reason,
                extra=fields,
            )

    def not_delivered(
        self, *, scheduler: str, schedule: str, outcome: str, count: int, detail: str
    ) -> None:
        """Fires a catch-up left out: ``skipped`` under the misfire policy, or ``missed``
        (older than the grace window)."""
        self.count(outcome, scheduler, count)
        fire_log.info(
            "catch-up of %s: %s",
            schedule,
            detail,
            extra={"scheduler": scheduler, "schedule": schedule, "outcome": outcome},
        )

    def count(self, outcome: str, scheduler: str, amount: int = 1) -> None:
        instruments = _get_instruments()
        if instruments is not None:
            instruments.fires.add(
                amount,
                {
                    "reventless.outcome": outcome,
                    "reventless.scheduler": scheduler,
                    "reventless.engine": self.engine,
                },
            )


def describe_catch_up(catch_up: Any) -> str:
    """One line: the fires a new lead found from while no engine ran, and what it does with
    them (``reventless run`` prints it too)."""
    policy = catch_up.policy.value
    found = f"found {catch_up.due} missed fire(s) from while no engine ran"
    parts = []
    if catch_up.delivered:
        parts.append(f"delivers {catch_up.delivered}")
    if catch_up.missed:
        parts.append(f"records {catch_up.missed} as missed")
    how = {
        "latest": "the most recent of each schedule",
        "all": "each",
        "skip": "none that is more than a minute late",
    }[policy]
    said = ", ".join(parts) if parts else "delivers none"
    line = f"{found}: the misfire policy {policy!r} ({how}) {said}"
    if catch_up.expired:
        line += f"; {catch_up.expired} older than the misfire grace expired"
    return line


def _fire_span(
    fields: dict[str, Any], engine: str, *, producer: bool
) -> AbstractContextManager[Any]:
    if _trace is None:
        return nullcontext(None)
    tracer = _tracer()
    attributes = {
        "reventless.scheduler": fields["scheduler"],
        "reventless.schedule": fields["schedule"],
        "reventless.fire_id": fields["fire_id"],
        "reventless.attempt": fields["attempt"],
        "reventless.scheduled_time": fields["scheduled_time"],
        "reventless.lateness": fields["lateness"],
        "reventless.engine": engine,
    }
    kind = _trace.SpanKind.PRODUCER if producer else _trace.SpanKind.CONSUMER
    span: AbstractContextManager[Any] = tracer.start_as_current_span(
        FIRE_SPAN, kind=kind, attributes=attributes
    )
    return span


def aggregate_span(
    aggregate: str, aggregate_id: str, command: object
) -> AbstractContextManager[Any]:
    """A ``reventless.command`` span around one command handled by an aggregate (nothing until
    the application sets a tracer provider: the API's proxies would record nothing)."""
    if _trace is None or not _sdk_configured():
        return _NO_SPAN
    return _tracer().start_as_current_span(
        "reventless.command",
        kind=_trace.SpanKind.INTERNAL,
        attributes={
            "reventless.aggregate": aggregate,
            "reventless.aggregate_id": aggregate_id,
            "reventless.command": type(command).__name__,
        },
    )


def reaction_span(
    reaction: str, event_type: str, position: int, attempt: int
) -> AbstractContextManager[Any]:
    """A ``reventless.reaction`` span around one event handled by a reaction (as
    ``aggregate_span``, nothing until a tracer provider is set)."""
    if _trace is None or not _sdk_configured():
        return _NO_SPAN
    return _tracer().start_as_current_span(
        "reventless.reaction",
        kind=_trace.SpanKind.CONSUMER,
        attributes={
            "reventless.reaction": reaction,
            "reventless.event_type": event_type,
            "reventless.position": position,
            "reventless.attempt": attempt,
        },
    )


_NO_SPAN = nullcontext()  # reusable: it holds no state


def to_us(instant: datetime) -> int:
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
