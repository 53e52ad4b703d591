"""botocore errors to the ReventlessError tree, through one table; retries of what is temporary."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from reventless.errors import (
    BackendUnavailableError,
    ConflictError,
    PermissionDeniedError,
    ReventlessError,
    ScheduleNotFoundError,
    ValidationError,
)

__all__ = (
    "ERROR_TABLE",
    "EVENT_LOG_ERRORS",
    "RETRIABLE_CODES",
    "SNS_ERRORS",
    "ErrorTable",
    "call_aws",
    "translate_aws_error",
)

T = TypeVar("T")

ErrorTable = dict[str, tuple[type[ReventlessError], bool]]

# AWS error code -> (error type, retriable), for EventBridge Scheduler and SQS. Tests walk every
# table of this module.
ERROR_TABLE: ErrorTable = {
    "ValidationException": (ValidationError, False),
    "InvalidParameterValue": (ValidationError, False),
    "ResourceNotFoundException": (ScheduleNotFoundError, False),
    "AWS.SimpleQueueService.NonExistentQueue": (ScheduleNotFoundError, False),
    "ConflictException": (ConflictError, False),
    "ServiceQuotaExceededException": (BackendUnavailableError, False),
    "ThrottlingException": (BackendUnavailableError, True),
    "TooManyRequestsException": (BackendUnavailableError, True),
    "RequestLimitExceeded": (BackendUnavailableError, True),
    "InternalServerException": (BackendUnavailableError, True),
    "InternalFailure": (BackendUnavailableError, True),
    "ServiceUnavailable": (BackendUnavailableError, True),
    "ServiceUnavailableException": (BackendUnavailableError, True),
    "AccessDeniedException": (PermissionDeniedError, False),
    "AccessDenied": (PermissionDeniedError, False),
    "UnauthorizedOperation": (PermissionDeniedError, False),
    "UnrecognizedClientException": (PermissionDeniedError, False),
    "ExpiredTokenException": (PermissionDeniedError, False),
}
RETRIABLE_CODES = frozenset(code for code, (_, retriable) in ERROR_TABLE.items() if retriable)

_DENIED: ErrorTable = {
    "AccessDeniedException": (PermissionDeniedError, False),
    "UnrecognizedClientException": (PermissionDeniedError, False),
    "ExpiredTokenException": (PermissionDeniedError, False),
    "InvalidSignatureException": (PermissionDeniedError, False),
}

# DynamoDB, for the event log. A missing table is not a missing schedule: it is the deployment's
# fault and no retry mends it. TransactionCanceledException reaches this table only when one of
# its reasons is temporary (the event log reads the others itself): it is retried.
EVENT_LOG_ERRORS: ErrorTable = {
    **_DENIED,
    "ValidationException": (ValidationError, False),
    "ResourceNotFoundException": (BackendUnavailableError, False),
    "ConditionalCheckFailedException": (ConflictError, False),
    "IdempotentParameterMismatchException": (BackendUnavailableError, False),
    "ItemCollectionSizeLimitExceededException": (BackendUnavailableError, False),
    "TransactionCanceledException": (BackendUnavailableError, True),
    "TransactionConflictException": (BackendUnavailableError, True),
    "TransactionInProgressException": (BackendUnavailableError, True),
    "ProvisionedThroughputExceededException": (BackendUnavailableError, True),
    "ThrottlingException": (BackendUnavailableError, True),
    "RequestLimitExceeded": (BackendUnavailableError, True),
    "InternalServerError": (BackendUnavailableError, True),
    "ServiceUnavailable": (BackendUnavailableError, True),
}

# SNS, for event topics.
SNS_ERRORS: ErrorTable = {
    **_DENIED,
    "AuthorizationError": (PermissionDeniedError, False),
    "InvalidParameter": (ValidationError, False),
    "InvalidParameterValue": (ValidationError, False),
    "ValidationException": (ValidationError, False),
    "NotFound": (BackendUnavailableError, False),
    "KMSDisabled": (BackendUnavailableError, False),
    "KMSAccessDenied": (PermissionDeniedError, False),
    "Throttled": (BackendUnavailableError, True),
    "ThrottlingException": (BackendUnavailableError, True),
    "KMSThrottling": (BackendUnavailableError, True),
    "InternalError": (BackendUnavailableError, True),
    "InternalFailure": (BackendUnavailableError, True),
    "ServiceUnavailable": (BackendUnavailableError, True),
}


def _code_and_status(exc: BaseException) -> tuple[str | None, int | None]:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None, None
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return (str(code) if code else None), (int(status) if status else None)


def _is_connection_error(exc: BaseException) -> bool:
    # botocore's connection and timeout errors, aiohttp's client errors and plain timeouts: the
    # request may not have reached AWS at all. Recognised by name to avoid importing botocore.
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(
        names
        & {
            "EndpointConnectionError",
            "ConnectionClosedError",
            "ConnectTimeoutError",
            "ReadTimeoutError",
            "ClientConnectorError",
            "ServerDisconnectedError",
            "ClientOSError",
            "TimeoutError",
        }
    )


def translate_aws_error(
    exc: BaseException, what: str, table: ErrorTable = ERROR_TABLE
) -> tuple[ReventlessError, bool]:
    """The ReventlessError for a botocore/aiohttp exception, and whether it is worth retrying:
    by ``table`` (one per service); an unknown code is retried when its status is 5xx."""
    code, status = _code_and_status(exc)
    if code is not None:
        error_type, retriable = table.get(
            code, (BackendUnavailableError, status is not None and status >= 500)
        )
        message = getattr(exc, "response", {}).get("Error", {}).get("Message", str(exc))
        text = f"{what}: AWS said {code}: {message}"
        if error_type is ScheduleNotFoundError:
            return _NotFound(text), False
        if error_type is ValidationError:
            return ValidationError(what, code, "a request AWS accepts", message=text), False
        return error_type(text), retriable
    if _is_connection_error(exc):
        return BackendUnavailableError(f"{what}: could not reach AWS: {exc}"), True
    return BackendUnavailableError(f"{what}: {type(exc).__name__}: {exc}"), False


class _NotFound(ScheduleNotFoundError):
    """ScheduleNotFoundError carrying AWS's own message."""

    def __init__(self, text: str) -> None:
        ReventlessError.__init__(self, text)
        self.name = text


async def call_aws(
    what: str,
    func: Callable[..., Awaitable[T]],
    /,
    *,
    attempts: int = 5,
    base_delay: float = 0.1,
    max_delay: float | None = None,
    table: ErrorTable = ERROR_TABLE,
    **kwargs: Any,
) -> T:
    """Call one AWS API, retrying throttling, 5xx and connection failures with exponential
    backoff (each wait at most ``max_delay``) and full jitter; anything else is translated at
    once, by ``table``. No botocore error escapes."""
    for attempt in range(attempts):
        try:
            return await func(**kwargs)
        except ReventlessError:
            raise
        except Exception as exc:
            error, retriable = translate_aws_error(exc, what, table)
            if not retriable or attempt == attempts - 1:
                raise error from exc
        delay = base_delay * 2**attempt
        await anyio.sleep(random.uniform(0, delay if max_delay is None else min(delay, max_delay)))
    raise AssertionError("unreachable")  # pragma: no cover
