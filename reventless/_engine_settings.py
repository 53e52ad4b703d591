"""The engine's settings that the providers' ``provider(...)`` functions share (the embedded and
PostgreSQL ones all of them, the AWS one ``retry_policy``), checked in one place so that the
providers cannot drift apart in what they accept or what they say."""

from __future__ import annotations

import math
from datetime import timedelta

from reventless.errors import ValidationError
from reventless.scheduler_adapter import MisfirePolicy, RetryPolicy

__all__ = ("check_misfire", "check_retry_policy", "check_seconds")


def check_misfire(policy: object, grace: object) -> tuple[MisfirePolicy, timedelta]:
    """``misfire_policy`` (a policy's value) and ``misfire_grace`` (0 to 30 days), checked in
    that order."""
    if not (isinstance(policy, str) and policy in {each.value for each in MisfirePolicy}):
        raise ValidationError("misfire_policy", policy, "'latest', 'all' or 'skip'")
    if not isinstance(grace, timedelta) or not timedelta(0) <= grace <= timedelta(days=30):
        raise ValidationError("misfire_grace", grace, "a timedelta from 0 to 30 days")
    return MisfirePolicy(policy), grace


def check_retry_policy(value: object) -> RetryPolicy | None:
    """``retry_policy``: None (the default policy) or a RetryPolicy."""
    if value is not None and not isinstance(value, RetryPolicy):
        raise ValidationError("retry_policy", value, "a RetryPolicy")
    return value


def check_seconds(field: str, value: object, low: float, high: float) -> None:
    """A finite number (not a bool) of seconds from ``low`` to ``high``."""
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ValidationError(field, value, f"a number of seconds from {low:g} to {high:g}")
