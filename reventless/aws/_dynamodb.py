"""The EventLog adapter on DynamoDB (contract: ``aggregate_adapter``).

One table, partition key ``pk`` (string) and sort key ``sk`` (number):

- an event: ``pk = "aggregate#id"``, ``sk = version`` (1, 2, ...);
- the stream's head: ``pk = "aggregate#id"``, ``sk = 0``, holding ``version``: the one item
  every append of the stream conditions on, so writers of a stream are serialised by a single
  condition, also an append of no events;
- a handled message: ``pk = "aggregate#id#message_id"``, ``sk = 0``, holding the versions the
  message appended; put with ``attribute_not_exists``, so a repeat is refused by DynamoDB itself.

An append is one ``TransactWriteItems``: the head (updated, or only checked when no event is
appended), each event, and the message item. The cancellation reasons say which condition
failed: the message item means a duplicate (which wins over a conflict), the head a conflict.
Aggregate names and ids never hold ``#``, so a stream key (one ``#``) never equals a message key
(two or more).

DynamoDB keeps no order across partitions, so there is no ``read_all`` here: the event topic is
the feed. ``position`` is the event's version.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from reventless.aggregate_adapter import AppendResult, NewEvent, StoredEvent
from reventless.aws._errors import EVENT_LOG_ERRORS, call_aws
from reventless.errors import (
    BackendUnavailableError,
    ConflictError,
    CorruptDataError,
    UsageError,
    ValidationError,
)
from reventless.fire_times import as_utc

__all__ = ("CANCELLATION_REASONS", "DynamoDbEventLog", "create_event_table")

# DynamoDB's limits (developer guide, "Service, account, and table quotas").
MAX_ITEMS_PER_TRANSACTION = 100
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
MAX_ITEM_BYTES = 400 * 1024
MAX_PARTITION_KEY_BYTES = 2048
_NUMBER_BYTES = 21  # the most a number attribute takes
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A cancellation reason's code -> what it means for the append. A test walks this table.
# "duplicate" and "conflict" depend on the item (message or head/event) and are read by role.
CANCELLATION_REASONS: dict[str, str] = {
    "None": "ok",
    "ConditionalCheckFailed": "by item",
    "TransactionConflict": "retry",
    "ThrottlingError": "retry",
    "ProvisionedThroughputExceeded": "retry",
    "RequestLimitExceeded": "retry",
    "ValidationError": "invalid",
}


def _us(instant: datetime) -> int:
    return (as_utc(instant, "recorded_at") - _EPOCH) // timedelta(microseconds=1)


def _stream_key(aggregate: str, aggregate_id: str) -> str:
    for field, value in (("aggregate", aggregate), ("aggregate_id", aggregate_id)):
        if not isinstance(value, str) or not value or "#" in value:
            raise ValidationError(field, value, "a non-empty string without '#'")
    return f"{aggregate}#{aggregate_id}"


def _message_key(stream: str, message_id: str) -> str:
    if not isinstance(message_id, str) or not message_id:
        raise ValidationError("message_id", message_id, "a non-empty string")
    key = f"{stream}#{message_id}"
    size = len(key.encode())
    if size > MAX_PARTITION_KEY_BYTES:
        raise ValidationError(
            "message_id",
            message_id,
            f"an id whose key {stream}#<id> is at most {MAX_PARTITION_KEY_BYTES} bytes",
            message=(
                f"message_id makes a {size}-byte DynamoDB key; a partition key holds at most "
                f"{MAX_PARTITION_KEY_BYTES} bytes"
            ),
        )
    return key


def _item_size(item: dict[str, Any]) -> int:
    """An upper bound of DynamoDB's size of an item: names plus values."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        kind, raw = next(iter(value.items()))
        size += (
            _NUMBER_BYTES
            if kind == "N"
            else len(raw)
            if isinstance(raw, bytes)
            else len(str(raw).encode())
        )
    return size


def _reasons(exc: BaseException) -> list[dict[str, Any]] | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    if response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons = response.get("CancellationReasons")
    return list(reasons) if isinstance(reasons, list) else None


def _version_of(reason: dict[str, Any] | None, expected: int) -> int:
    """The head's version as a cancelled transaction saw it: its condition passed (the
    expected version), or the old item came back (its version), or there was none (0)."""
    if reason is None or reason.get("Code") in (None, "None"):
        return expected
    item = reason.get("Item") or {}
    return int(item.get("version", {}).get("N", 0))


class _Append:
    """The items of one append, and what each index of the cancellation reasons means."""

    def __init__(
        self,
        table: str,
        stream: str,
        expected: int,
        events: Sequence[NewEvent],
        message_id: str | None,
        recorded_us: int,
    ) -> None:
        self.stream = stream
        self.expected = expected
        self.count = len(events)
        self.message_id = message_id
        head: dict[str, Any] = {
            "TableName": table,
            "Key": {"pk": {"S": stream}, "sk": {"N": "0"}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if expected == 0:
            head["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            head["ConditionExpression"] = "version = :expected"
            head["ExpressionAttributeValues"] = {":expected": {"N": str(expected)}}
        if events:
            head["UpdateExpression"] = "SET version = :new"
            head.setdefault("ExpressionAttributeValues", {})[":new"] = {
                "N": str(expected + len(events))
            }
        self.items: list[dict[str, Any]] = [{"Update" if events else "ConditionCheck": head}]
        self.sizes = [_item_size({"pk": {"S": stream}, "sk": {"N": "0"}, "version": {"N": "0"}})]
        for offset, event in enumerate(events, 1):
            item: dict[str, Any] = {
                "pk": {"S": stream},
                "sk": {"N": str(expected + offset)},
                "type": {"S": event.type},
                "data": {"B": event.data},
                "recorded_at": {"N": str(recorded_us)},
            }
            if message_id is not None:
                item["message_id"] = {"S": message_id}
            self._put(table, item, event.type)
        if message_id is not None:
            self._put(
                table,
                {
                    "pk": {"S": _message_key(stream, message_id)},
                    "sk": {"N": "0"},
                    "first": {"N": str(expected + 1)},
                    "count": {"N": str(len(events))},
                },
                "handled message",
            )
        self._check_limits()

    def _put(self, table: str, item: dict[str, Any], what: str) -> None:
        size = _item_size(item)
        if size > MAX_ITEM_BYTES:
            raise ValidationError(
                "events",
                what,
                f"events whose items fit DynamoDB's {MAX_ITEM_BYTES}-byte item limit",
                message=(
                    f"event {what} of stream {self.stream!r} makes a {size}-byte DynamoDB item; "
                    f"an item holds at most {MAX_ITEM_BYTES} bytes"
                ),
            )
        self.sizes.append(size)
        self.items.append(
            {
                "Put": {
                    "TableName": table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
        )

    def _check_limits(self) -> None:
        if len(self.items) > MAX_ITEMS_PER_TRANSACTION:
            room = MAX_ITEMS_PER_TRANSACTION - 1 - (self.message_id is not None)
            raise ValidationError(
                "events",
                self.count,
                f"at most {room} events in one append",
                message=(
                    f"{self.count} events for stream {self.stream!r} in one append; one "
                    f"DynamoDB transaction holds {MAX_ITEMS_PER_TRANSACTION} items, so at most "
                    f"{room} events (the head and the message id take the rest)"
                ),
            )
        total = sum(self.sizes)
        if total > MAX_TRANSACTION_BYTES:
            raise ValidationError(
                "events",
                self.count,
                f"events of at most {MAX_TRANSACTION_BYTES} bytes in one append",
                message=(
                    f"the append to stream {self.stream!r} is {total} bytes; one DynamoDB "
                    f"transaction holds at most {MAX_TRANSACTION_BYTES} bytes"
                ),
            )

    def outcome(self, reasons: list[dict[str, Any]]) -> AppendResult:
        """The result of a cancelled transaction, or the error it means."""
        codes = [str(reason.get("Code", "None")) for reason in reasons]
        if "ValidationError" in codes:
            index = codes.index("ValidationError")
            raise ValidationError(
                "events",
                self.stream,
                "an append DynamoDB accepts",
                message=f"DynamoDB refused the append to {self.stream!r}: "
                f"{reasons[index].get('Message', '')}",
            )
        current = _version_of(reasons[0], self.expected)
        if self.message_id is not None and codes[-1] == "ConditionalCheckFailed":
            return AppendResult(duplicate=True, version=current)
        if codes[0] == "ConditionalCheckFailed":
            raise ConflictError(
                f"stream {self.stream} is at version {current}, not {self.expected}: "
                "another writer came first"
            )
        if "ConditionalCheckFailed" in codes:
            raise ConflictError(
                f"stream {self.stream} has an event beyond its head (version {self.expected}): "
                "written by something other than reventless"
            )
        raise BackendUnavailableError(
            f"DynamoDB cancelled the append to {self.stream!r}: {', '.join(codes)}"
        )


class DynamoDbEventLog:
    """Streams of events in one DynamoDB table (layout in this module's docstring).

    ``client`` is a ready aioboto3 DynamoDB client; it stays yours to close. ``attempts`` and
    ``base_delay`` set the backoff of throttling, 5xx and transaction conflicts.
    """

    def __init__(
        self, client: Any, table: str, *, attempts: int = 5, base_delay: float = 0.05
    ) -> None:
        if not isinstance(table, str) or not 3 <= len(table) <= 255:
            raise ValidationError("table", table, "a DynamoDB table name, 3-255 characters")
        self._client = client
        self.table = table
        self._retry: dict[str, Any] = {
            "attempts": attempts,
            "base_delay": base_delay,
            "table": EVENT_LOG_ERRORS,
        }

    async def append(
        self,
        aggregate: str,
        aggregate_id: str,
        *,
        expected_version: int,
        events: Sequence[NewEvent],
        message_id: str | None,
        recorded_at: datetime,
    ) -> AppendResult:
        if type(expected_version) is not int or expected_version < 0:
            raise ValidationError("expected_version", expected_version, "a whole number >= 0")
        stream = _stream_key(aggregate, aggregate_id)
        plan = _Append(self.table, stream, expected_version, events, message_id, _us(recorded_at))
        # One token for the retries of this append: should a retried call find its first
        # attempt landed, DynamoDB answers it as that success instead of a conflict.
        reasons = await call_aws(
            f"appending to stream {stream!r} in table {self.table!r}",
            self._transact,
            items=plan.items,
            token=uuid.uuid4().hex,
            **self._retry,
        )
        if reasons is not None:
            return plan.outcome(reasons)
        count = len(events)
        versions = tuple(range(expected_version + 1, expected_version + count + 1))
        return AppendResult(duplicate=False, version=expected_version + count, positions=versions)

    async def _transact(
        self, *, items: list[dict[str, Any]], token: str
    ) -> list[dict[str, Any]] | None:
        """None when the transaction committed; its cancellation reasons when a condition
        refused it. A cancellation with a temporary reason is raised, to be retried."""
        try:
            await self._client.transact_write_items(TransactItems=items, ClientRequestToken=token)
        except Exception as exc:
            reasons = _reasons(exc)
            if reasons is None or any(
                CANCELLATION_REASONS.get(str(reason.get("Code"))) == "retry" for reason in reasons
            ):
                raise
            return reasons
        return None

    async def load(
        self, aggregate: str, aggregate_id: str, *, after_version: int = 0
    ) -> list[StoredEvent]:
        stream = _stream_key(aggregate, aggregate_id)
        return await self._query(aggregate, aggregate_id, stream, after_version + 1, None)

    async def _query(
        self, aggregate: str, aggregate_id: str, stream: str, first: int, last: int | None
    ) -> list[StoredEvent]:
        values: dict[str, Any] = {":pk": {"S": stream}, ":first": {"N": str(max(first, 1))}}
        condition = "pk = :pk AND sk >= :first"
        if last is not None:
            condition = "pk = :pk AND sk BETWEEN :first AND :last"
            values[":last"] = {"N": str(last)}
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        loaded: list[StoredEvent] = []
        while True:
            response = await call_aws(
                f"loading stream {stream!r} from table {self.table!r}",
                self._client.query,
                **request,
                **self._retry,
            )
            loaded += [_stored(aggregate, aggregate_id, item) for item in response["Items"]]
            if "LastEvaluatedKey" not in response:
                return loaded
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    async def _handled_item(
        self, aggregate: str, aggregate_id: str, message_id: str
    ) -> dict[str, Any] | None:
        key = _message_key(_stream_key(aggregate, aggregate_id), message_id)
        response = await call_aws(
            f"reading message {message_id!r} in table {self.table!r}",
            self._client.get_item,
            TableName=self.table,
            Key={"pk": {"S": key}, "sk": {"N": "0"}},
            ConsistentRead=True,
            **self._retry,
        )
        item = response.get("Item")
        return item if isinstance(item, dict) else None

    async def was_handled(self, aggregate: str, aggregate_id: str, message_id: str) -> bool:
        return await self._handled_item(aggregate, aggregate_id, message_id) is not None

    async def handled_events(
        self, aggregate: str, aggregate_id: str, message_id: str
    ) -> list[StoredEvent] | None:
        item = await self._handled_item(aggregate, aggregate_id, message_id)
        if item is None:
            return None
        first, count = int(item["first"]["N"]), int(item["count"]["N"])
        if count == 0:
            return []
        stream = _stream_key(aggregate, aggregate_id)
        return await self._query(aggregate, aggregate_id, stream, first, first + count - 1)

    async def read_all(
        self,
        *,
        after_position: int = 0,
        limit: int = 1000,
        aggregates: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        raise UsageError(_NO_ORDER.format(what="read_all"))

    async def head_position(self) -> int:
        raise UsageError(_NO_ORDER.format(what="head_position"))

    async def count(
        self, *, after_position: int = 0, aggregates: Sequence[str] | None = None
    ) -> int:
        raise UsageError(_NO_ORDER.format(what="count"))


_NO_ORDER = (
    "the DynamoDB event log keeps no order across streams, so it has no {what}; subscribe a "
    "queue to the aggregate's event topic (SNS FIFO) to follow every event"
)


def _stored(aggregate: str, aggregate_id: str, item: dict[str, Any]) -> StoredEvent:
    try:
        version = int(item["sk"]["N"])
        message = item.get("message_id")
        return StoredEvent(
            position=version,
            aggregate=aggregate,
            aggregate_id=aggregate_id,
            version=version,
            type=str(item["type"]["S"]),
            data=bytes(item["data"]["B"]),
            message_id=None if message is None else str(message["S"]),
            recorded_at=_EPOCH + timedelta(microseconds=int(item["recorded_at"]["N"])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptDataError(
            f"an item of stream {aggregate}#{aggregate_id} is not an event: {exc!r}"
        ) from exc


async def create_event_table(client: Any, table: str) -> None:
    """Create the event log's table (on-demand capacity) and wait until it is active; a table
    that exists already is left as it is. For tests and first deployments; infrastructure code
    may create the same table itself (``pk`` string hash key, ``sk`` number range key)."""
    with contextlib.suppress(ConflictError):  # it exists
        await call_aws(
            f"creating table {table!r}",
            client.create_table,
            TableName=table,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
            table={**EVENT_LOG_ERRORS, "ResourceInUseException": (ConflictError, False)},
        )
    waiter = client.get_waiter("table_exists")
    await waiter.wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
