"""AWS faults through a fake client, SQS FIFO command topics, dead letters, IAM documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

import reventless.aws
import reventless.local
from reventless import (
    BackendUnavailableError,
    ConflictError,
    Hours,
    PermissionDeniedError,
    Schedule,
    ScheduleNotFoundError,
    Scheduler,
    ValidationError,
)
from reventless.aggregate import Aggregate
from reventless.aws import SqsCommandConsumer, SqsCommandPublisher, SqsQueueTarget
from reventless.aws._errors import ERROR_TABLE, call_aws, translate_aws_error
from reventless.aws.iam import caller_policy, execution_role_policy, execution_role_trust_policy
from reventless.testing import VirtualClock
from tests.aws.conftest import ACCOUNT, REGION, ROLE_ARN, CountingMotoServer, make_queue
from tests.test_aggregate import TICK, Add, Tick, counter_spec

pytestmark = pytest.mark.anyio
START = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:commands.fifo"


def client_error(code: str, status: int, operation: str = "CreateSchedule") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


class FakeSchedulerClient:
    """Implements the calls the adapter makes; raises the queued faults first (fault injection)."""

    def __init__(self, faults: list[BaseException]) -> None:
        self.faults = list(faults)
        self.calls: list[str] = []
        self.schedules: dict[str, dict[str, Any]] = {}

    async def _maybe_fail(self, name: str) -> None:
        self.calls.append(name)
        if self.faults:
            raise self.faults.pop(0)

    async def get_schedule_group(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("get_schedule_group")
        return {"Name": kwargs["Name"]}

    async def create_schedule(self, **kwargs: Any) -> dict[str, Any]:
        await self._maybe_fail("create_schedule")
        self.schedules[kwargs["Name"]] = kwargs
        return {"ScheduleArn": "arn"}

    async def delete_schedule(self, **kwargs: Any) -> dict[str, Any]:
        await self._maybe_fail("delete_schedule")
        if kwargs["Name"] not in self.schedules:
            raise client_error("ResourceNotFoundException", 404, "DeleteSchedule")
        del self.schedules[kwargs["Name"]]
        return {}


async def provider_with(client: FakeSchedulerClient) -> Any:
    return reventless.aws.provider(
        client=client, group="shop", role_arn=ROLE_ARN, clock=VirtualClock(START)
    )


@pytest.mark.parametrize(
    "fault",
    [
        client_error("ThrottlingException", 400),
        client_error("InternalServerException", 500),
        client_error("SomethingNew", 503),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ],
    ids=["throttled", "500", "unknown 5xx", "timeout"],
)
async def test_temporary_faults_are_retried_then_succeed(fault: BaseException) -> None:
    client = FakeSchedulerClient([fault, fault])
    async with await provider_with(client) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        await ops.create_schedule(Schedule(name="x", rate=Hours(1), payload="p"))
    assert client.calls.count("create_schedule") == 3
    assert "x" in client.schedules


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        (client_error("AccessDeniedException", 403), PermissionDeniedError),
        (client_error("ValidationException", 400), ValidationError),
        (client_error("ServiceQuotaExceededException", 402), BackendUnavailableError),
    ],
)
async def test_lasting_faults_are_typed_and_not_retried(
    fault: BaseException, error_type: type[Exception]
) -> None:
    client = FakeSchedulerClient([fault])
    async with await provider_with(client) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        with pytest.raises(error_type) as caught:
            await ops.create_schedule(Schedule(name="x", rate=Hours(1), payload="p"))
    assert not isinstance(caught.value, ClientError)
    assert isinstance(caught.value.__cause__, ClientError)
    assert client.calls.count("create_schedule") == 1


async def test_throttling_that_never_ends_gives_a_retriable_error() -> None:
    client = FakeSchedulerClient([client_error("ThrottlingException", 400)] * 10)
    async with await provider_with(client) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        with pytest.raises(BackendUnavailableError, match="ThrottlingException") as caught:
            await ops.create_schedule(Schedule(name="x", rate=Hours(1), payload="p"))
    assert caught.value.retriable is True
    assert client.calls.count("create_schedule") == 5


def test_every_code_in_the_error_table_maps_to_its_type() -> None:
    for code, (error_type, retriable) in ERROR_TABLE.items():
        error, retry = translate_aws_error(client_error(code, 400), "op")
        assert isinstance(error, error_type), code
        assert retry is retriable, code
        assert code in str(error)


async def test_call_aws_never_lets_a_client_error_escape() -> None:
    async def boom(**_: Any) -> None:
        raise client_error("WeirdUnknownCode", 400)

    with pytest.raises(BackendUnavailableError) as caught:
        await call_aws("weird", boom, attempts=2, base_delay=0)
    assert "WeirdUnknownCode" in str(caught.value)


async def test_conflicts_and_missing_schedules_are_typed() -> None:
    error, _ = translate_aws_error(client_error("ConflictException", 409), "op")
    assert isinstance(error, ConflictError)
    error, _ = translate_aws_error(client_error("ResourceNotFoundException", 404), "op")
    assert isinstance(error, ScheduleNotFoundError) and isinstance(error, LookupError)


# -- SQS FIFO command topics -----------------------------------------------------------------


def as_lambda_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The shape Lambda gives an SQS-triggered function."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {k: str(v) for k, v in m.get("Attributes", {}).items()},
                "eventSource": "aws:sqs",
            }
            for m in messages
        ]
    }


async def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    response = await sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
    )
    return list(response.get("Messages", []))


async def test_commands_round_trip_through_an_sqs_fifo_queue(
    sqs: Any, moto: CountingMotoServer
) -> None:
    url, _ = await make_queue(sqs, "counters.fifo")
    async with reventless.local.provider(":memory:", clock=VirtualClock(START)) as local:
        counters = await Aggregate.make(local, counter_spec())
        publisher = SqsCommandPublisher(sqs, url, counters)
        await publisher.publish("c-1", Tick(), message_id="m-1")
        await publisher.publish("c-1", Tick(), message_id="m-1")  # SQS drops the repeat
        await publisher.publish("c-2", Add(amount_due=4), message_id="m-2")
        messages = await receive_all(sqs, url)
        assert len(messages) == 2
        assert {m["Attributes"]["MessageGroupId"] for m in messages} == {"c-1", "c-2"}
        assert {m["Attributes"]["MessageDeduplicationId"] for m in messages} == {"m-1", "m-2"}
        event = as_lambda_event(messages)
        assert await reventless.aws.handle_sqs_batch(event, counters) == {"batchItemFailures": []}
        consumer = SqsCommandConsumer(counters)
        # The same batch delivered again (at-least-once) changes nothing.
        assert await consumer.handle_batch(event) == {"batchItemFailures": []}
        assert (await counters.load("c-1"))[1] == 1
        assert (await counters.load("c-2"))[0].total == 4


async def test_a_poisoned_record_is_reported_and_holds_back_its_group_only(
    sqs: Any, moto: CountingMotoServer
) -> None:
    async with reventless.local.provider(":memory:", clock=VirtualClock(START)) as local:
        counters = await Aggregate.make(local, counter_spec())
        consumer = SqsCommandConsumer(counters)
        good = {
            "aggregate": "counters",
            "aggregateId": "c-1",
            "messageId": "ok-1",
            "command": {"type": "Tick"},
        }
        event = {
            "Records": [
                {"messageId": "r1", "body": "{not json", "attributes": {"MessageGroupId": "c-9"}},
                {
                    "messageId": "r2",
                    "body": json.dumps({**good, "aggregateId": "c-9", "messageId": "later"}),
                    "attributes": {"MessageGroupId": "c-9"},
                },
                {
                    "messageId": "r3",
                    "body": json.dumps(good),
                    "attributes": {"MessageGroupId": "c-1"},
                },
                {
                    "messageId": "r4",
                    "body": json.dumps({**good, "command": {"type": "Nope"}}),
                    "attributes": {"MessageGroupId": "c-2"},
                },
            ]
        }
        response = await consumer.handle_batch(event)
        assert response == {
            "batchItemFailures": [
                {"itemIdentifier": "r1"},
                {"itemIdentifier": "r2"},
                {"itemIdentifier": "r4"},
            ]
        }
        assert (await counters.load("c-1"))[1] == 1
        assert (await counters.load("c-9"))[1] == 0  # held back behind the poisoned record


async def test_a_scheduled_fire_on_the_queue_becomes_a_command_once(
    session: Any, sqs: Any, moto: CountingMotoServer, scheduler_client: Any
) -> None:
    """What EventBridge Scheduler would send: the stored Input with the time filled in."""
    url, arn = await make_queue(sqs, "counters.fifo")
    aws_clock = VirtualClock(START)
    moto.use_clock(aws_clock.now)
    async with reventless.local.provider(":memory:", clock=VirtualClock(START)) as local:
        counters = await Aggregate.make(local, counter_spec())
        async with reventless.aws.provider(
            session=session,
            group="shop",
            role_arn=ROLE_ARN,
            region=REGION,
            endpoint_url=moto.url,
            clock=aws_clock,
        ) as provider:
            target = SqsQueueTarget(arn, command_topic=counters.command_topic)
            ops = (await Scheduler.make(provider, target=target)).operations
            with pytest.raises(ValidationError, match="refused by the target"):
                await ops.create_schedule(
                    Schedule(name="bad", rate=Hours(1), payload='{"command": "Explode"}')
                )
            await ops.create_schedule(Schedule(name="tick", rate=Hours(1), payload=TICK))
        stored = await scheduler_client.get_schedule(Name="tick", GroupName="shop")
        assert stored["Target"]["SqsParameters"] == {"MessageGroupId": "c-1"}  # the aggregate
        body = stored["Target"]["Input"].replace(
            reventless.aws.SCHEDULED_TIME, "2026-03-20T07:01:00Z"
        )
        for _ in range(2):  # EventBridge retried: the same fire twice
            await sqs.send_message(
                QueueUrl=url,
                MessageBody=body,
                MessageGroupId="c-1",
                MessageDeduplicationId=f"tick-{_}",
            )
        event = as_lambda_event(await receive_all(sqs, url))
        assert len(event["Records"]) == 2
        assert await SqsCommandConsumer(counters).handle_batch(event) == {"batchItemFailures": []}
        [ticked] = await counters.history("c-1")
        assert ticked.scheduled_for == datetime(2026, 3, 20, 7, 1, tzinfo=UTC)


async def test_dead_letters_are_read_from_the_dead_letter_queue(
    session: Any, sqs: Any, moto: CountingMotoServer
) -> None:
    dlq_url, dlq_arn = await make_queue(sqs, "dead-letters")
    body = json.dumps(
        {"schedule": "tick", "scheduledTime": "2026-03-20T07:01:00Z", "payload": TICK}
    )
    await sqs.send_message(
        QueueUrl=dlq_url,
        MessageBody=body,
        MessageAttributes={
            "ERROR_CODE": {"DataType": "String", "StringValue": "AWS.SQS.AccessDenied"},
            "ERROR_MESSAGE": {"DataType": "String", "StringValue": "not allowed to send"},
            "RETRY_ATTEMPTS": {"DataType": "Number", "StringValue": "185"},
        },
    )
    async with reventless.aws.provider(
        session=session,
        group="shop",
        role_arn=ROLE_ARN,
        region=REGION,
        endpoint_url=moto.url,
        clock=VirtualClock(START),
        dead_letter_arn=dlq_arn,
        sqs_client=sqs,
    ) as provider:
        ops = (await Scheduler.make(provider, target=SqsQueueTarget(QUEUE_ARN))).operations
        [letter] = await ops.dead_letters()
        assert letter.fire_id == "tick@2026-03-20T07:01:00Z"
        assert letter.payload == TICK and letter.attempts == 186
        assert letter.reason == "AWS.SQS.AccessDenied: not allowed to send"
        assert len(await ops.dead_letters()) == 1  # reading does not take them away


# -- IAM as data ---------------------------------------------------------------------------


def test_the_trust_policy_admits_only_the_scheduler_for_this_group() -> None:
    policy = execution_role_trust_policy(account_id=ACCOUNT, region=REGION, group="shop")
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"]["StringEquals"] == {
        "aws:SourceAccount": ACCOUNT,
        "aws:SourceArn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/shop",
    }
    json.dumps(policy)


def test_the_execution_role_may_only_send_to_its_queues() -> None:
    dlq = f"arn:aws:sqs:{REGION}:{ACCOUNT}:dead-letters"
    policy = execution_role_policy(target_queue_arn=QUEUE_ARN, dead_letter_arn=dlq)
    assert policy["Statement"] == [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": [QUEUE_ARN, dlq]}
    ]


def test_the_caller_policy_is_scoped_to_the_group_and_the_role() -> None:
    policy = caller_policy(
        account_id=ACCOUNT, region=REGION, group="shop", execution_role_arn=ROLE_ARN
    )
    statements = {s["Sid"]: s for s in policy["Statement"]}
    manage = statements["ManageTheGroupsSchedules"]
    assert manage["Resource"] == f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/shop/*"
    assert all(action.startswith("scheduler:") and "*" not in action for action in manage["Action"])
    passing = statements["PassTheExecutionRoleToSchedulerOnly"]
    assert passing["Resource"] == ROLE_ARN
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
    }
    actions = [
        a
        for s in policy["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert not any(a.endswith(":*") or a.startswith("events:") for a in actions)
    # Only ListSchedules, which IAM cannot scope, has a wildcard resource.
    assert [s["Sid"] for s in policy["Statement"] if s["Resource"] == "*"] == ["ListSchedules"]


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (
            lambda: execution_role_trust_policy(account_id="12", region=REGION, group="g"),
            "account_id",
        ),
        (lambda: execution_role_policy(target_queue_arn="arn:aws:sns:x"), "target_queue_arn"),
        (
            lambda: caller_policy(
                account_id=ACCOUNT, region=REGION, group="g", execution_role_arn="role"
            ),
            "execution_role_arn",
        ),
    ],
)
def test_policy_inputs_are_validated(build: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build()
    assert caught.value.field == field


async def test_aggregate_ids_too_long_for_a_message_group_are_refused(
    sqs: Any, moto: CountingMotoServer
) -> None:
    url, _ = await make_queue(sqs, "long.fifo")
    async with reventless.local.provider(":memory:", clock=VirtualClock(START)) as local:
        counters = await Aggregate.make(local, counter_spec())
        publisher = SqsCommandPublisher(sqs, url, counters)
        before = len(moto.requests)
        with pytest.raises(ValidationError, match="MessageGroupId"):
            await publisher.publish("c" * 129, Tick(), message_id="m")
        assert moto.requests[before:] == []
