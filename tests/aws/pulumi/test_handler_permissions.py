"""The handlers of docs/deploy.md, run against a moto server with every AWS call they make
recorded, and each call checked against the IAM policies the page's Pulumi program attaches to
the handlers' role (under Pulumi's mocks): a call the policies do not allow is an AccessDenied
on real AWS, so it fails here.

The check evaluates Allow statements the way IAM does for these documents: an action matches
case-insensitively with ``*`` wildcards, a resource ARN with ``*`` and ``?``, and a statement
with a condition applies only when every condition holds in the call's context. Calls are
recorded with botocore's ``before-parameter-build`` event on every client the handlers open
(from their ``aioboto3.Session``), so nothing the runtime calls escapes; a call this module
cannot name a resource for fails the test.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import runpy
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.aws.pulumi import require_pulumi
from tests.docs_pages import PAGES, lay_out

pulumi = require_pulumi()

import aioboto3  # noqa: E402
import msgspec  # noqa: E402

import reventless.aws._sns  # noqa: E402
from reventless.aws import create_event_table  # noqa: E402
from reventless.testing.aws import fire_as_eventbridge, receive_lambda_event  # noqa: E402
from tests.aws.conftest import CountingMotoServer  # noqa: E402
from tests.aws.pulumi.mocks import ACCOUNT, REGION, AwsMocks  # noqa: E402

pytestmark = pytest.mark.anyio
PAGE = next(page for page in PAGES if page.name == "deploy.md")
AGGREGATES = ["orders", "reports", "maintenance", "users"]


# -- what the page's program deploys ---------------------------------------------------------


def deploy(directory: Path) -> tuple[AwsMocks, dict[str, Any]]:
    mocks = AwsMocks()
    pulumi.runtime.set_mocks(mocks, project="shop", stack="test", preview=False)
    lay_out(PAGE, directory)
    found: list[dict[str, Any]] = []

    @pulumi.runtime.test
    def run() -> object:
        namespace = runpy.run_path(str(directory / "__main__.py"))
        return namespace["shop"].provider_arguments.apply(found.append)

    run()
    return mocks, found[0]


def handler_policies(mocks: AwsMocks) -> list[dict[str, Any]]:
    """The inline policies on the handlers' role: every role policy but the execution role's
    (the page attaches the caller policy and the handlers' policy to it)."""
    attached = mocks.of_type("aws:iam/rolePolicy:RolePolicy")
    documents = [
        json.loads(inputs["policy"])
        for inputs in attached.values()
        if inputs.get("name") != "reventless-execution"
    ]
    assert len(documents) == 2, attached.keys()
    return documents


# -- a small IAM evaluator -------------------------------------------------------------------


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, pairs in conditions.items():
        for key, wanted in pairs.items():
            actual = context.get(key)
            if actual is None:
                return False
            if operator == "StringEquals" and actual not in _listed(wanted):
                return False
            if operator == "ArnEquals" and actual not in _listed(wanted):
                return False
            if operator not in ("StringEquals", "ArnEquals"):
                return False  # not understood here: never taken as granting
    return True


def allowed(
    policies: list[dict[str, Any]], action: str, resource: str, context: dict[str, str]
) -> bool:
    granted = False
    for policy in policies:
        for statement in policy["Statement"]:
            actions = [a.lower() for a in _listed(statement["Action"])]
            if not any(fnmatch.fnmatchcase(action.lower(), a) for a in actions):
                continue
            if not any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement["Resource"])):
                continue
            if not _conditions_hold(statement.get("Condition", {}), context):
                continue
            if statement["Effect"] == "Deny":
                return False
            granted = True
    return granted


# -- what each recorded call needs -----------------------------------------------------------

_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _queue_arn(url: str) -> str:
    account, name = url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{REGION}:{account}:{name}"


def _table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


Need = tuple[str, str, dict[str, str]]


def needs(service: str, operation: str, params: dict[str, Any]) -> list[Need]:
    """(IAM action, resource ARN, condition context) for each permission a call needs."""
    action = f"{service}:{operation}"
    scheduler = f"arn:aws:scheduler:{REGION}:{ACCOUNT}"
    if service == "scheduler":
        if operation in ("GetScheduleGroup", "CreateScheduleGroup", "DeleteScheduleGroup"):
            return [(action, f"{scheduler}:schedule-group/{params['Name']}", {})]
        if operation == "ListSchedules":
            return [(action, "*", {})]
        group = params.get("GroupName", "default")
        wanted: list[Need] = [(action, f"{scheduler}:schedule/{group}/{params['Name']}", {})]
        if operation in ("CreateSchedule", "UpdateSchedule"):
            passed = {"iam:PassedToService": "scheduler.amazonaws.com"}
            wanted.append(("iam:PassRole", params["Target"]["RoleArn"], passed))
        return wanted
    if service == "dynamodb":
        if operation == "TransactWriteItems":
            return [
                (f"dynamodb:{_ITEM_ACTIONS[kind]}", _table_arn(item["TableName"]), {})
                for entry in params["TransactItems"]
                for kind, item in entry.items()
            ]
        return [(action, _table_arn(params["TableName"]), {})]
    if service == "sns":
        return [(action, params["TopicArn"], {})]
    if service == "sqs":
        if operation == "GetQueueUrl":
            account = params.get("QueueOwnerAWSAccountId", ACCOUNT)
            return [(action, f"arn:aws:sqs:{REGION}:{account}:{params['QueueName']}", {})]
        return [(action, _queue_arn(params["QueueUrl"]), {})]
    raise AssertionError(f"no resource known for {action}: add it to this test")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.service_model.signing_name, model.name, dict(params)))


# -- the run ---------------------------------------------------------------------------------


@pytest.fixture
def page_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "build").mkdir()
    yield tmp_path
    sys.modules.pop("handler", None)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def deployment(page_directory: Path) -> tuple[AwsMocks, dict[str, Any]]:
    """The page's program under Pulumi's mocks, run outside the test's event loop (the mocks
    run one of their own)."""
    return deploy(page_directory)


async def create_what_the_program_created(
    mocks: AwsMocks, arguments: dict[str, Any], session: Any, url: str
) -> None:
    async with (
        session.client("sqs", endpoint_url=url) as sqs,
        session.client("sns", endpoint_url=url) as sns,
        session.client("dynamodb", endpoint_url=url) as dynamodb,
        session.client("scheduler", endpoint_url=url) as scheduler,
    ):
        await create_event_table(dynamodb, arguments["event_table"])
        queues: dict[str, str] = {}
        for inputs in mocks.of_type("aws:sqs/queue:Queue").values():
            attributes = {"FifoQueue": "true"} if inputs.get("fifoQueue") else {}
            if inputs.get("contentBasedDeduplication"):
                attributes["ContentBasedDeduplication"] = "true"
            if inputs.get("redrivePolicy"):
                attributes["RedrivePolicy"] = inputs["redrivePolicy"]
            created = await sqs.create_queue(QueueName=inputs["name"], Attributes=attributes)
            queues[inputs["name"]] = created["QueueUrl"]
        topics = {}
        for inputs in mocks.of_type("aws:sns/topic:Topic").values():
            created = await sns.create_topic(Name=inputs["name"], Attributes={"FifoTopic": "true"})
            topics[inputs["name"]] = created["TopicArn"]
        for inputs in mocks.of_type("aws:sns/topicSubscription:TopicSubscription").values():
            await sns.subscribe(
                TopicArn=inputs["topic"],
                Protocol="sqs",
                Endpoint=inputs["endpoint"],
                Attributes={"RawMessageDelivery": "true"},
            )
        for inputs in mocks.of_type("aws:scheduler/scheduleGroup:ScheduleGroup").values():
            await scheduler.create_schedule_group(Name=inputs["name"])
        assert set(arguments["event_topics"].values()) <= set(topics.values())


async def test_every_call_the_handlers_make_is_allowed_by_the_policies_the_deployment_attaches(
    deployment: tuple[AwsMocks, dict[str, Any]],
    moto: CountingMotoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mocks, arguments = deployment
    policies = handler_policies(mocks)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    monkeypatch.setenv("REVENTLESS_AWS", json.dumps(arguments, sort_keys=True))
    harness = aioboto3.Session(region_name=REGION)  # the test's own calls: not recorded
    await create_what_the_program_created(mocks, arguments, harness, moto.url)

    recorder = Recorder()
    plain_session = aioboto3.Session

    class RecordingSession(plain_session):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._session.register("before-parameter-build", recorder)

    monkeypatch.setattr(aioboto3, "Session", RecordingSession)
    handler = importlib.import_module("handler")

    async with (
        harness.client("sqs", endpoint_url=moto.url) as sqs,
        harness.client("sns", endpoint_url=moto.url) as sns,
        harness.client("scheduler", endpoint_url=moto.url) as scheduler,
    ):
        queue_urls = {
            name: (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
            for name in (inputs["name"] for inputs in mocks.of_type("aws:sqs/queue:Queue").values())
        }

        async def drain(queue: str, handle: Any) -> int:
            handled = 0
            while (event := await receive_lambda_event(sqs, queue_urls[queue]))["Records"]:
                assert await handle(event) == {"batchItemFailures": []}
                handled += len(event["Records"])
            return handled

        # Each command function starts the plugin (ensuring its schedules) with no records...
        for aggregate in AGGREGATES:
            monkeypatch.setenv("AGGREGATE", aggregate)
            await handler.handle_commands({"Records": []})
        # ... then EventBridge fires every schedule once, and each queue's function runs.
        # real clock: a fire's instant for the envelopes; any hour alike
        at = datetime.now(UTC).replace(second=0, microsecond=0)
        groups = [
            g["name"] for g in mocks.of_type("aws:scheduler/scheduleGroup:ScheduleGroup").values()
        ]
        for group in groups:
            listed = await scheduler.list_schedules(GroupName=group)
            for schedule in listed["Schedules"]:
                await fire_as_eventbridge(
                    scheduler=scheduler,
                    group=group,
                    name=schedule["Name"],
                    scheduled_time=at,
                    sqs=sqs,
                    sns=sns,
                )
        await sqs.send_message(
            QueueUrl=queue_urls["shop-users.fifo"],
            MessageBody=msgspec.json.encode(
                {
                    "aggregate": "users",
                    "aggregateId": "ada",
                    "messageId": "sign-up-ada",
                    "command": {"type": "SignUp", "timezone": "Europe/Berlin"},
                }
            ).decode(),
            MessageGroupId="ada",
        )
        handled = 0
        for aggregate in AGGREGATES:
            monkeypatch.setenv("AGGREGATE", aggregate)
            handled += await drain(f"shop-{aggregate}.fifo", handler.handle_commands)
        assert handled >= 2
        assert await drain("shop-health-events-monitor.fifo", handler.handle_health) >= 1
        assert await drain("shop-users-events-user-reminders.fifo", handler.handle_reminders) == 1

        # A command handled, then delivered again when its event can no longer be published
        # (here: SNS's limit made tiny): the handler moves it to the command dead letters.
        monkeypatch.setenv("AGGREGATE", "orders")
        command = {
            "aggregate": "orders",
            "aggregateId": "order-processor",
            "messageId": "again-1",
            "command": {"type": "ProcessPendingOrders"},
        }
        for limit in (reventless.aws._sns.MAX_SNS_MESSAGE, 10):
            monkeypatch.setattr(reventless.aws._sns, "MAX_SNS_MESSAGE", limit)
            await sqs.send_message(
                QueueUrl=queue_urls["shop-orders.fifo"],
                MessageBody=json.dumps(command),
                MessageGroupId="order-processor",
                MessageDeduplicationId=f"again-{limit}",
            )
            assert await drain("shop-orders.fifo", handler.handle_commands) == 1
        dead = await sqs.receive_message(QueueUrl=queue_urls["shop-orders-dead-letters.fifo"])
        assert len(dead["Messages"]) == 1

    services = {service for service, _, _ in recorder.calls}
    assert {"scheduler", "dynamodb", "sns"} <= services, services
    denied = sorted(
        {
            f"{action} on {resource}"
            for service, operation, params in recorder.calls
            for action, resource, context in needs(service, operation, params)
            if not allowed(policies, action, resource, context)
        }
    )
    assert not denied, "calls the deployment's policies do not allow:\n" + "\n".join(denied)
