"""reventless: event-sourcing components for Python, led by an exact, durable scheduler.

The public names are re-exported here; everything else is an implementation detail.
"""

import logging

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
    CronSyntaxError,
    DeliveryRefusedError,
    ForeignScheduleError,
    PermissionDeniedError,
    ReactionNotFoundError,
    ReventlessError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    UsageError,
    ValidationError,
)
from reventless.event_topic import EventMessage, EventTopic, FireMessage, TopicMessage
from reventless.fire_times import FirePreview, fire_times, next_fire_after, preview
from reventless.plugin import Plugin
from reventless.rate_translation import (
    AwsScheduleFields,
    aws_schedule_fields,
    created_at_from_start_date,
    from_expression,
    to_expression,
)
from reventless.reaction import (
    OnFailure,
    Reaction,
    ReactionContext,
    ReactionDeadLetter,
    ReactionEvent,
    ReactionOperation,
    ReactionStatus,
)
from reventless.schedule import (
    LAST,
    CalendarRate,
    Cron,
    Daily,
    Days,
    DstPolicy,
    Hours,
    Minutes,
    Monthly,
    NthWeekday,
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
    EngineStatus,
    HistoryEntry,
    HistoryKind,
    IfExists,
    MisfirePolicy,
    PublisherOverview,
    PutOutcome,
    RetryPolicy,
    ScheduledPublisher,
    SchedulePage,
    ScheduleState,
)
from reventless.target import FireEnvelope, Target

# Every logger of the package is under "reventless". Its records go where the application's
# logging config sends them; with none, they are not printed (Python's last-resort handler
# would write every warning of a library to stderr). Set here, on the root of the tree, so no
# module's logger can be missed.
logging.getLogger("reventless").addHandler(logging.NullHandler())

__all__ = (
    "LAST",
    "Aggregate",
    "AggregateSpec",
    "ArgumentError",
    "AwsScheduleFields",
    "BackendUnavailableError",
    "CalendarRate",
    "Clock",
    "CommandContext",
    "CommandTopic",
    "ConflictError",
    "CorruptDataError",
    "Cron",
    "CronSyntaxError",
    "Daily",
    "DamagedSchedule",
    "Days",
    "DeadLetter",
    "DeliveryRefusedError",
    "DstPolicy",
    "EngineStatus",
    "EventMessage",
    "EventTopic",
    "FireEnvelope",
    "FireMessage",
    "FirePreview",
    "ForeignScheduleError",
    "HandleResult",
    "HistoryEntry",
    "HistoryKind",
    "Hours",
    "IfExists",
    "Minutes",
    "MisfirePolicy",
    "Monthly",
    "NthWeekday",
    "OnFailure",
    "PermissionDeniedError",
    "Plugin",
    "PublisherOverview",
    "PutOutcome",
    "Rate",
    "Reaction",
    "ReactionContext",
    "ReactionDeadLetter",
    "ReactionEvent",
    "ReactionNotFoundError",
    "ReactionOperation",
    "ReactionStatus",
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
