"""The errors reventless raises: one tree, one root.

::

    ReventlessError
    ├── ValidationError           (also ValueError)      bad input; nothing was written
    │   └── ArgumentError         (also TypeError)       a constructor called with wrong arguments
    ├── ScheduleNotFoundError     (also LookupError)     no schedule by that name
    ├── ScheduleExistsError                              create with if_exists="error" found one
    ├── ConflictError                                    a concurrent change won the race
    ├── BackendUnavailableError                          retriable: the store or service is down
    ├── PermissionDeniedError     (also PermissionError) the backend refused the caller
    ├── CorruptDataError                                 stored data cannot be read back
    ├── DeliveryRefusedError                             a target refuses a fire for good
    ├── ForeignScheduleError                             a stored schedule reventless did not write
    └── UsageError                (also RuntimeError)    the API was used in the wrong order

Backend exceptions (sqlite3, botocore) are translated into this tree at the adapter boundary and
chained with ``raise ... from``; none of them escapes the public API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = (
    "ArgumentError",
    "BackendUnavailableError",
    "ConflictError",
    "CorruptDataError",
    "DeliveryRefusedError",
    "ForeignScheduleError",
    "PermissionDeniedError",
    "ReactionNotFoundError",
    "ReventlessError",
    "ScheduleExistsError",
    "ScheduleNotFoundError",
    "UsageError",
    "ValidationError",
)


class ReventlessError(Exception):
    """The root of every error this package raises on purpose."""


class ValidationError(ReventlessError, ValueError):
    """Input was refused. The message names the field, the value and what is allowed.

    ``field`` is the dotted path of the offending field (``"rate.hour"``), ``value`` the value that
    was given and ``allowed`` a short description of what would have been accepted.
    """

    def __init__(self, field: str, value: Any, allowed: str, *, message: str | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        if message is None:
            message = f"{field} {_show(value)} is not allowed; expected {allowed}"
        super().__init__(message)


class ArgumentError(ValidationError, TypeError):
    """A schedule or rate was constructed with missing, extra or unknown arguments.

    The message names the class and shows its call form: ``Daily: missing required argument
    'minute'; expected Daily(hour, minute), e.g. Daily(9, 0)``. It is a TypeError too, which is
    what such a call raised before it was named.
    """


class ScheduleNotFoundError(ReventlessError, LookupError):
    """No schedule with this name exists."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no schedule named {name!r}")


class ReactionNotFoundError(ReventlessError, LookupError):
    """No reaction with this name has run on the store (a reaction's row is made when it first
    runs)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"no reaction named {name!r} in this store (a reaction is recorded when a plugin "
            "that declares it first runs)"
        )


class ScheduleExistsError(ReventlessError):
    """A create with ``if_exists="error"`` found schedules with these names; nothing was written."""

    def __init__(self, names: list[str], *, message: str | None = None) -> None:
        self.names = names
        if message is not None:  # the command line says it in its own terms
            super().__init__(message)
            return
        shown = ", ".join(repr(name) for name in names[:5])
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        subject = (
            f"schedule {shown} already exists"
            if len(names) == 1
            else (f"schedules {shown}{more} already exist")
        )
        super().__init__(
            f"{subject} (if_exists='error'); nothing was written. "
            "Use if_exists='replace' to replace it, 'keep' to leave it, or delete it first"
        )


class ConflictError(ReventlessError):
    """A concurrent writer changed the same thing first; retrying may succeed."""


class BackendUnavailableError(ReventlessError):
    """The store or remote service could not be reached or is overloaded; retriable."""

    retriable = True


class PermissionDeniedError(ReventlessError, PermissionError):
    """The backend refused the operation for lack of permission (file mode, IAM policy)."""


class CorruptDataError(ReventlessError):
    """Stored data could not be decoded: a damaged file or a row written by something else."""


class DeliveryRefusedError(ReventlessError):
    """Raised by a target that can never accept this fire (its payload no longer decodes, say).

    The engine does not retry it: the fire goes straight to the dead letters with this message.
    """


class ForeignScheduleError(ReventlessError):
    """A schedule in the backend was not written by reventless, so it is not read as one."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        super().__init__(f"schedule {name!r} was not written by reventless: {reason}")


class UsageError(ReventlessError, RuntimeError):
    """The API was used in a way that cannot work; the message says how to fix it."""


def _show(value: Any) -> str:
    """Render a refused value briefly: long strings and containers are cut (a string's length is
    its own, not its repr's), instants are ISO 8601 text, other types are named."""
    if isinstance(value, datetime):
        return repr(value.isoformat())
    text = repr(value)
    if len(text) > 80:
        size = len(value) if isinstance(value, str) else len(text)
        text = text[:60] + f"... ({size} characters)"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return f"{text} (type {type(value).__name__})"
    return text
