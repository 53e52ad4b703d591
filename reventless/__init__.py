"""reventless: event-sourcing components for Python, led by an exact, durable scheduler.

The public names are re-exported here; everything else is an implementation detail.
"""

from reventless.errors import (
    BackendUnavailableError,
    ConflictError,
    PermissionDeniedError,
    ReventlessError,
    ScheduleNotFoundError,
    ValidationError,
)
from reventless.fire_times import FirePreview, fire_times, next_fire_after, preview
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

__all__ = (
    "AwsScheduleFields",
    "BackendUnavailableError",
    "ConflictError",
    "Daily",
    "Days",
    "FirePreview",
    "Hours",
    "Minutes",
    "PermissionDeniedError",
    "Rate",
    "ReventlessError",
    "Schedule",
    "ScheduleNotFoundError",
    "Single",
    "ValidationError",
    "Weekdays",
    "WeekdaysAndSaturday",
    "aws_schedule_fields",
    "created_at_from_start_date",
    "fire_times",
    "from_expression",
    "next_fire_after",
    "parse_rate",
    "preview",
    "rate_text",
    "to_expression",
)
