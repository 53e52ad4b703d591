"""Logs, spans and metrics of fires, commands and reactions, checked with the OpenTelemetry
SDK's in-memory exporter and reader (set as the global providers, as an application would)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

import reventless.local
from reventless import Minutes, RetryPolicy, Schedule, Scheduler
from reventless._observe import look_for_sdk_now
from reventless.aggregate import Aggregate
from reventless.aws._sqs import SqsCommandConsumer
from reventless.cli._run import ReadableFormatter
from reventless.target import FireEnvelope
from reventless.testing import FailingTarget, RecordingTarget, VirtualClock
from tests.test_aggregate import counter_spec

otel_sdk = pytest.importorskip("opentelemetry.sdk")

from opentelemetry import metrics, trace  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

pytestmark = pytest.mark.anyio
START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)
TICK = '{"aggregateId": "c-1", "command": "Tick"}'


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def fires(self, outcome: str, engine: str = "local") -> int:
        return sum(
            int(point.value)
            for point in self.points("reventless.fires")
            if point.attributes.get("reventless.outcome") == outcome
            and point.attributes.get("reventless.engine") == engine
        )


_TELEMETRY: Telemetry | None = None


@pytest.fixture
def telemetry() -> Telemetry:
    """The global SDK providers (set once per process: the API allows no second set)."""
    global _TELEMETRY
    if _TELEMETRY is None:
        _TELEMETRY = Telemetry()
        tracing = TracerProvider()
        tracing.add_span_processor(SimpleSpanProcessor(_TELEMETRY.spans))
        trace.set_tracer_provider(tracing)
        metrics.set_meter_provider(MeterProvider(metric_readers=[_TELEMETRY.reader]))
        look_for_sdk_now()
    _TELEMETRY.spans.clear()
    _TELEMETRY.reader.get_metrics_data()  # counters are cumulative: tests compare differences
    return _TELEMETRY


async def _run(target: Any, minutes: int, **options: Any) -> VirtualClock:
    clock = VirtualClock(START)
    async with reventless.local.provider(":memory:", clock=clock, **options) as provider:
        ops = (await Scheduler.make(provider, target=target)).operations
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(1), payload="p"))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            for _ in range(minutes):
                await clock.advance(timedelta(minutes=1))
            group.cancel_scope.cancel()
    return clock


async def test_logs_carry_the_fire_in_structured_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="reventless")
    await _run(FailingTarget(failures=1), 3)
    by_level = {level: [r for r in caplog.records if r.levelno == level] for level in (10, 20, 30)}
    engine = [r.getMessage() for r in by_level[20] if r.name == "reventless.engine"]
    assert engine[0].startswith("engine started") and engine[1].startswith("leading")
    assert engine[-1].startswith("engine stopped")
    [warning] = by_level[30]
    assert warning.name == "reventless.fire" and "will retry" in warning.getMessage()
    fields = {key: getattr(warning, key) for key in ("scheduler", "schedule", "fire_id")}
    assert fields == {
        "scheduler": "default",
        "schedule": "tick",
        "fire_id": "tick@2026-03-20T06:02:00Z",
    }
    assert warning.attempt == 1 and warning.scheduled_time == "2026-03-20T06:02:00Z"  # type: ignore[attr-defined]
    delivered = [r for r in by_level[10] if r.name == "reventless.fire"]
    assert [r.fire_id for r in delivered][:1] == ["tick@2026-03-20T06:02:00Z"]  # type: ignore[attr-defined]
    assert delivered[0].attempt == 2 and delivered[0].lateness >= 0  # type: ignore[attr-defined]
    line = ReadableFormatter().format(warning)
    assert "WARNING reventless.fire:" in line and "fire_id=tick@2026-03-20T06:02:00Z" in line


async def test_a_dead_letter_is_an_error_and_a_catch_up_is_summarised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="reventless")
    await _run(FailingTarget(failures=None), 2, retry_policy=RetryPolicy(max_attempts=0))
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "dead-lettered tick@2026-03-20T06:02:00Z" in error.getMessage()
    caplog.clear()
    clock = VirtualClock(START)
    async with reventless.local.provider(":memory:", clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(1), payload="p"))
        await clock.advance(timedelta(minutes=30))  # no engine running: 29 fires fall due
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(0))
            group.cancel_scope.cancel()
    [summary] = [r for r in caplog.records if r.getMessage().startswith("catch-up of tick")]
    assert "28 fires" in summary.getMessage() and summary.outcome == "skipped"  # type: ignore[attr-defined]


async def test_fire_spans_and_metrics(telemetry: Telemetry) -> None:
    before = {o: telemetry.fires(o) for o in ("delivered", "retried", "dead_lettered")}
    await _run(FailingTarget(failures=1), 3)
    spans = [s for s in telemetry.spans.get_finished_spans() if s.name == "reventless.fire"]
    assert len(spans) == 3  # 06:02 failed, 06:02 again, 06:03 (no span name holds an id)
    first = spans[0]
    assert first.kind is SpanKind.PRODUCER
    assert first.status.status_code is StatusCode.ERROR
    assert dict(first.attributes or {}) | {"reventless.lateness": 0} == {
        "reventless.scheduler": "default",
        "reventless.schedule": "tick",
        "reventless.fire_id": "tick@2026-03-20T06:02:00Z",
        "reventless.attempt": 1,
        "reventless.scheduled_time": "2026-03-20T06:02:00Z",
        "reventless.lateness": 0,
        "reventless.engine": "local",
    }
    assert [s.attributes["reventless.attempt"] for s in spans] == [1, 2, 1]  # type: ignore[index]
    assert telemetry.fires("delivered") - before["delivered"] == 2
    assert telemetry.fires("retried") - before["retried"] == 1
    lateness = telemetry.points("reventless.fire.lateness")
    duration = telemetry.points("reventless.fire.duration")
    assert lateness and duration and sum(p.count for p in duration) >= 3


async def test_gauges_report_the_leading_engine(telemetry: Telemetry) -> None:
    clock = VirtualClock(START)
    async with reventless.local.provider(":memory:", clock=clock) as provider:
        ops = (await Scheduler.make(provider, target=RecordingTarget())).operations
        await ops.create_schedules(
            [Schedule(name=f"s{n}", rate=Minutes(5), payload="p") for n in range(3)]
        )
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(0))
            schedules = [p.value for p in telemetry.points("reventless.schedules")]
            assert 3 in schedules
            backlog = [p.value for p in telemetry.points("reventless.fires.backlog_age")]
            assert backlog and max(backlog) == 0
            group.cancel_scope.cancel()


async def test_commands_and_aws_records_get_spans_with_the_same_figures(
    telemetry: Telemetry,
) -> None:
    clock = VirtualClock(START)
    async with reventless.local.provider(":memory:", clock=clock) as provider:
        counters = await Aggregate.make(provider, counter_spec())
        ops = (await Scheduler.make(provider, target=counters.command_topic)).operations
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(1), payload=TICK))
        async with anyio.create_task_group() as group:
            await group.start(provider.run)
            await clock.advance(timedelta(minutes=2))
            group.cancel_scope.cancel()
        spans = telemetry.spans.get_finished_spans()
        [fire] = [s for s in spans if s.name == "reventless.fire"]
        [command] = [s for s in spans if s.name == "reventless.command"]
        assert command.parent is not None and command.parent.span_id == fire.context.span_id
        assert command.attributes["reventless.command"] == "Tick"  # type: ignore[index]
        # The same fire arriving from SQS (EventBridge Scheduler delivered it), 90 s late.
        telemetry.spans.clear()
        envelope = FireEnvelope(
            schedule="tick",
            scheduled_time=clock.now() - timedelta(seconds=90),
            payload=TICK,
        )
        record = {"messageId": "m-1", "body": envelope.to_json().decode(), "attributes": {}}
        before = telemetry.fires("delivered", "aws")
        result = await SqsCommandConsumer(counters).handle_batch({"Records": [record]})
        assert result == {"batchItemFailures": []}
    [aws_fire] = [s for s in telemetry.spans.get_finished_spans() if s.name == "reventless.fire"]
    assert aws_fire.kind is SpanKind.CONSUMER
    assert aws_fire.attributes["reventless.lateness"] == 90.0  # type: ignore[index]
    assert aws_fire.attributes["reventless.fire_id"] == envelope.fire_id  # type: ignore[index]
    assert telemetry.fires("delivered", "aws") - before == 1
    aws_lateness = [
        p
        for p in telemetry.points("reventless.fire.lateness")
        if p.attributes.get("reventless.engine") == "aws"
    ]
    assert aws_lateness and aws_lateness[0].max >= 90.0
