"""The DynamoDB event log beyond the EventLog conformance suite (``tests/conformance``): what
is DynamoDB's own, its limits refused before any call, cancellation reasons and errors mapped
through one table, temporary faults retried."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reventless.aggregate_adapter import NewEvent
from reventless.aws._dynamodb import (
    CANCELLATION_REASONS,
    MAX_ITEM_BYTES,
    DynamoDbEventLog,
    create_event_table,
)
from reventless.aws._errors import EVENT_LOG_ERRORS, SNS_ERRORS, translate_aws_error
from reventless.errors import (
    BackendUnavailableError,
    ConflictError,
    PermissionDeniedError,
    ValidationError,
)
from tests.aws.conftest import CountingMotoServer

pytestmark = pytest.mark.anyio
AT = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)
TABLE = "events"


@pytest.fixture
async def dynamodb(session: Any, moto: CountingMotoServer) -> AsyncIterator[Any]:
    async with session.client("dynamodb", endpoint_url=moto.url) as client:
        await create_event_table(client, TABLE)
        yield client


def client_error(code: str, status: int = 400, **extra: Any) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} from the test"},
            "ResponseMetadata": {"HTTPStatusCode": status},
            **extra,
        },
        "TransactWriteItems",
    )


class FailingFirst:
    """The real client, except that its first calls of ``operation`` raise ``faults`` in turn."""

    def __init__(self, client: Any, operation: str, faults: list[BaseException]) -> None:
        self._client = client
        self._operation = operation
        self._faults = list(faults)
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if name != self._operation:
            return real

        async def call(**kwargs: Any) -> Any:
            self.calls += 1
            if self._faults:
                raise self._faults.pop(0)
            return await real(**kwargs)

        return call


async def append(log: DynamoDbEventLog, expected: int = 0, message_id: str | None = "m") -> Any:
    return await log.append(
        "orders",
        "o-1",
        expected_version=expected,
        events=[NewEvent(type="E", data=b"{}")],
        message_id=message_id,
        recorded_at=AT,
    )


def test_every_code_of_the_event_log_and_sns_tables_maps_to_its_type() -> None:
    for table in (EVENT_LOG_ERRORS, SNS_ERRORS):
        for code, (error_type, retriable) in table.items():
            error, retry = translate_aws_error(client_error(code), "op", table)
            assert isinstance(error, error_type), code
            assert retry is retriable, code
            assert code in str(error)


async def test_throttling_and_transaction_conflicts_are_retried_then_succeed(
    dynamodb: Any,
) -> None:
    faults: list[BaseException] = [
        client_error("ProvisionedThroughputExceededException"),
        client_error("InternalServerError", 500),
        client_error(
            "TransactionCanceledException",
            CancellationReasons=[{"Code": "TransactionConflict"}, {"Code": "None"}],
        ),
    ]
    client = FailingFirst(dynamodb, "transact_write_items", faults)
    log = DynamoDbEventLog(client, TABLE, base_delay=0.001)
    result = await append(log)
    assert (result.duplicate, result.version, client.calls) == (False, 1, 4)


async def test_throttling_that_never_ends_is_backend_unavailable_and_writes_nothing(
    dynamodb: Any,
) -> None:
    client = FailingFirst(
        dynamodb, "transact_write_items", [client_error("ThrottlingException")] * 9
    )
    log = DynamoDbEventLog(client, TABLE, attempts=3, base_delay=0.001)
    with pytest.raises(BackendUnavailableError, match="ThrottlingException") as caught:
        await append(log)
    assert isinstance(caught.value.__cause__, ClientError)
    assert client.calls == 3
    assert await log.load("orders", "o-1") == []


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        ("AccessDeniedException", PermissionDeniedError),
        ("ValidationException", ValidationError),
        ("ResourceNotFoundException", BackendUnavailableError),
    ],
)
async def test_lasting_faults_are_typed_and_not_retried(
    dynamodb: Any, code: str, error_type: type[Exception]
) -> None:
    client = FailingFirst(dynamodb, "transact_write_items", [client_error(code)])
    log = DynamoDbEventLog(client, TABLE, base_delay=0.001)
    with pytest.raises(error_type):
        await append(log)
    assert client.calls == 1


async def test_a_missing_table_is_a_typed_error_naming_it(session: Any, moto: Any) -> None:
    async with session.client("dynamodb", endpoint_url=moto.url) as client:
        log = DynamoDbEventLog(client, "no-such-table", base_delay=0.001)
        with pytest.raises(BackendUnavailableError, match="no-such-table"):
            await append(log)
        with pytest.raises(BackendUnavailableError, match="no-such-table"):
            await log.load("orders", "o-1")


def test_every_cancellation_reason_has_a_meaning() -> None:
    assert set(CANCELLATION_REASONS.values()) <= {"ok", "by item", "retry", "invalid"}
    assert CANCELLATION_REASONS["ConditionalCheckFailed"] == "by item"


async def test_limits_are_refused_before_any_call(dynamodb: Any) -> None:
    client = FailingFirst(dynamodb, "transact_write_items", [])
    log = DynamoDbEventLog(client, TABLE)
    refusals = [
        {"events": [NewEvent(type="E", data=b"")] * 99, "message_id": "m"},
        {"events": [NewEvent(type="E", data=b"x" * 300_000)] * 14, "message_id": None},
        {"events": [NewEvent(type="E", data=b"x" * (MAX_ITEM_BYTES + 1))], "message_id": None},
        {"events": [], "message_id": "m" * 2100},
    ]
    for arguments in refusals:
        with pytest.raises(ValidationError):
            await log.append("orders", "o-1", expected_version=0, recorded_at=AT, **arguments)
    for aggregate, aggregate_id in (("ord#ers", "o-1"), ("orders", "o#1"), ("", "o-1")):
        with pytest.raises(ValidationError):
            await log.load(aggregate, aggregate_id)
    with pytest.raises(ValidationError, match="recorded_at"):
        await log.append(
            "orders",
            "o-1",
            expected_version=0,
            events=[],
            message_id=None,
            recorded_at=datetime(2026, 1, 1),
        )
    assert client.calls == 0
    # 99 events without a message id fit: the head and 99 events are 100 items.
    result = await log.append(
        "orders",
        "o-1",
        expected_version=0,
        events=[NewEvent(type="E", data=b"")] * 99,
        message_id=None,
        recorded_at=AT,
    )
    assert result.version == 99


async def test_the_table_holds_a_head_an_item_per_event_and_one_per_message(
    dynamodb: Any,
) -> None:
    log = DynamoDbEventLog(dynamodb, TABLE)
    await log.append(
        "orders",
        "o-1",
        expected_version=0,
        events=[NewEvent(type="A", data=b"1"), NewEvent(type="B", data=b"2")],
        message_id="fire@2026-03-20T06:00:00Z",
        recorded_at=AT,
    )
    items = (await dynamodb.scan(TableName=TABLE))["Items"]
    keys = sorted((item["pk"]["S"], int(item["sk"]["N"])) for item in items)
    assert keys == [
        ("orders#o-1", 0),
        ("orders#o-1", 1),
        ("orders#o-1", 2),
        ("orders#o-1#fire@2026-03-20T06:00:00Z", 0),
    ]
    head = next(i for i in items if i["pk"]["S"] == "orders#o-1" and i["sk"]["N"] == "0")
    assert head["version"] == {"N": "2"}


async def test_a_conflict_names_the_version_the_stream_is_at(dynamodb: Any) -> None:
    log = DynamoDbEventLog(dynamodb, TABLE)
    await append(log, 0, "m1")
    await append(log, 1, "m2")
    with pytest.raises(ConflictError, match="at version 2, not 1"):
        await append(log, 1, "m3")
