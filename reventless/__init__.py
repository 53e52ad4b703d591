"""reventless: event-sourcing components for Python, led by an exact, durable scheduler.

The public names are re-exported here; everything else is an implementation detail.
"""

from reventless.aggregate import (
    Aggregate,
    AggregateSpec,
    CommandContext,
    HandleResult,
    command_payload,
)
from reventless.clock import Clock, ScaledClock, SystemClock
from reventless.command_topic import CommandTopic
from reventless.errors import (
    ArgumentError,
    BackendUnavailableError,
    ConflictError,
    CorruptDataError,
    DeliveryRefusedError,
    ForeignScheduleError,
    PermissionDeniedError,
    ReventlessError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    UsageError,
    ValidationError,
)
from reventless.event_topic import EventTopic, TopicMessage
from reventless.fire_times import FirePreview, fire_times, next_fire_after, preview
from reventless.plugin import Plugin
from reventless.rate_translation import (
    AwsScheduleFields,
    aws_schedule_fields,
    created_at_from_start_date,
    from_expression,
    to_expression,
)
from reventless.schedule import (
    Daily,
    Days,
    Hours,
    Minutes,
    Rate,
    Schedule,
    Single,
    Weekdays,
    WeekdaysAndSaturday,
    parse_rate,
    rate_text,
)
from reventless.scheduler import Scheduler, SchedulerOperations
from reventless.scheduler_adapter import (
    DamagedSchedule,
    DeadLetter,
    HistoryEntry,
    HistoryKind,
    IfExists,
    MisfirePolicy,
    PutOutcome,
    RetryPolicy,
    ScheduledPublisher,
    SchedulePage,
    ScheduleState,
)
from reventless.target import FireEnvelope, Target

__all__ = (
    "Aggregate",
    "AggregateSpec",
    "ArgumentError",
    "AwsScheduleFields",
    "BackendUnavailableError",
    "Clock",
    "CommandContext",
    "CommandTopic",
    "ConflictError",
    "CorruptDataError",
    "Daily",
    "DamagedSchedule",
    "Days",
    "DeadLetter",
    "DeliveryRefusedError",
    "EventTopic",
    "FireEnvelope",
    "FirePreview",
    "ForeignScheduleError",
    "HandleResult",
    "HistoryEntry",
    "HistoryKind",
    "Hours",
    "IfExists",
    "Minutes",
    "MisfirePolicy",
    "PermissionDeniedError",
    "Plugin",
    "PutOutcome",
    "Rate",
    "RetryPolicy",
    "ReventlessError",
    "ScaledClock",
    "Schedule",
    "ScheduleExistsError",
    "ScheduleNotFoundError",
    "SchedulePage",
    "ScheduleState",
    "ScheduledPublisher",
    "Scheduler",
    "SchedulerOperations",
    "Single",
    "SystemClock",
    "Target",
    "TopicMessage",
    "UsageError",
    "ValidationError",
    "Weekdays",
    "WeekdaysAndSaturday",
    "aws_schedule_fields",
    "command_payload",
    "created_at_from_start_date",
    "fire_times",
    "from_expression",
    "next_fire_after",
    "parse_rate",
    "preview",
    "rate_text",
    "to_expression",
)
