"""The Pulumi components under mocks: what each creates, with which names, properties, exact
policies, trust conditions and outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.aws.pulumi import require_pulumi

pulumi = require_pulumi()

from reventless.aws import iam  # noqa: E402
from reventless.errors import ValidationError  # noqa: E402
from tests.aws.pulumi.mocks import ACCOUNT, REGION, AwsMocks  # noqa: E402

rp = pytest.importorskip("reventless.aws.pulumi")


@pytest.fixture
def mocks() -> AwsMocks:
    recorder = AwsMocks()
    pulumi.runtime.set_mocks(recorder, project="shop", stack="test", preview=False)
    return recorder


def resolve(output: Any) -> Any:
    """The value of ``output`` once every resource has registered."""
    found: list[Any] = []

    @pulumi.runtime.test
    def wait() -> Any:
        return pulumi.Output.from_input(output).apply(found.append)

    wait()
    return found[0]


def arn(service: str, name: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{name}"


def test_scheduler_infrastructure(mocks: AwsMocks) -> None:
    infra = rp.SchedulerInfrastructure(
        "sched",
        group="shop",
        schedulers=["default", "orders"],
        target_queue_arns=[arn("sqs", "shop-orders.fifo")],
        target_topic_arns=[arn("sns", "shop-health-events.fifo")],
        caller_role="app-role",
    )
    outputs = resolve(
        pulumi.Output.all(
            role_arn=infra.role_arn,
            dead_letter_arn=infra.dead_letter_arn,
            region=infra.region,
            caller_policy=infra.caller_policy,
        )
    )
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/shop-scheduler"
    assert outputs == {
        "role_arn": role_arn,
        "dead_letter_arn": arn("sqs", "shop-dead-letters"),
        "region": REGION,
        "caller_policy": outputs["caller_policy"],
    }
    groups = mocks.of_type("aws:scheduler/scheduleGroup:ScheduleGroup")
    assert {k: v["name"] for k, v in groups.items()} == {
        "sched-default": "shop",
        "sched-orders": "shop.orders",
    }
    (dead,) = mocks.of_type("aws:sqs/queue:Queue").values()
    assert dead["name"] == "shop-dead-letters" and not dead.get("fifoQueue")
    assert dead["messageRetentionSeconds"] == 1209600
    (role,) = mocks.of_type("aws:iam/role:Role").values()
    trust = json.loads(role["assumeRolePolicy"])
    assert trust == iam.execution_role_trust_policy(
        account_id=ACCOUNT, region=REGION, group="shop", schedulers=["default", "orders"]
    )
    assert trust["Statement"][0]["Condition"]["StringEquals"] == {
        "aws:SourceAccount": ACCOUNT,
        "aws:SourceArn": [
            f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/shop",
            f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/shop.orders",
        ],
    }
    policies = mocks.of_type("aws:iam/rolePolicy:RolePolicy")
    execution = policies["sched-execution"]
    assert execution["role"] == "shop-scheduler"
    assert json.loads(execution["policy"])["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": [arn("sqs", "shop-orders.fifo"), arn("sqs", "shop-dead-letters")],
        },
        {
            "Effect": "Allow",
            "Action": "sns:Publish",
            "Resource": [arn("sns", "shop-health-events.fifo")],
        },
    ]
    caller = policies["sched-caller"]
    assert caller["role"] == "app-role"
    expected = iam.caller_policy(
        account_id=ACCOUNT,
        region=REGION,
        group="shop",
        execution_role_arn=role_arn,
        schedulers=["default", "orders"],
    )
    assert json.loads(caller["policy"]) == expected == json.loads(outputs["caller_policy"])


def test_scheduler_without_a_caller_role_gives_the_policy_as_an_output(mocks: AwsMocks) -> None:
    infra = rp.SchedulerInfrastructure(
        "sched", group="shop", target_queue_arns=[arn("sqs", "q.fifo")]
    )
    policy = json.loads(resolve(infra.caller_policy))
    assert policy["Statement"][0]["Resource"] == (
        f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/shop/*"
    )
    assert set(mocks.of_type("aws:iam/rolePolicy:RolePolicy")) == {"sched-execution"}


def test_aggregate_infrastructure(mocks: AwsMocks) -> None:
    infra = rp.AggregateInfrastructure(
        "orders", aggregate="orders", prefix="shop", handler="orders-handler"
    )
    assert resolve(pulumi.Output.all(infra.queue_arn, infra.topic_arn)) == [
        arn("sqs", "shop-orders.fifo"),
        arn("sns", "shop-orders-events.fifo"),
    ]
    queues = mocks.of_type("aws:sqs/queue:Queue")
    assert set(queues) == {"orders-commands", "orders-dead-letters"}
    queue, dead = queues["orders-commands"], queues["orders-dead-letters"]
    assert queue["name"] == "shop-orders.fifo"
    assert queue["fifoQueue"] is True and queue["contentBasedDeduplication"] is True
    # a poison command moves to the FIFO dead-letter queue after 5 receives (the default)
    assert json.loads(queue["redrivePolicy"]) == {
        "deadLetterTargetArn": arn("sqs", "shop-orders-dead-letters.fifo"),
        "maxReceiveCount": 5,
    }
    assert dead["name"] == "shop-orders-dead-letters.fifo" and dead["fifoQueue"] is True
    assert dead["messageRetentionSeconds"] == 14 * 24 * 3600
    assert resolve(infra.dead_letter_arn) == arn("sqs", "shop-orders-dead-letters.fifo")
    (topic,) = mocks.of_type("aws:sns/topic:Topic").values()
    assert topic["name"] == "shop-orders-events.fifo" and topic["fifoTopic"] is True
    (mapping,) = mocks.of_type("aws:lambda/eventSourceMapping:EventSourceMapping").values()
    assert mapping["eventSourceArn"] == arn("sqs", "shop-orders.fifo")
    assert mapping["functionName"] == "orders-handler"
    assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_command_queues_receive_count_is_configurable_and_checked(mocks: AwsMocks) -> None:
    infra = rp.PluginInfrastructure(
        "shop",
        group="shop",
        aggregates=["orders"],
        schedulers={"orders": "orders"},
        max_receive_count=3,
    )
    resolve(infra.provider_arguments)  # every resource registered
    queue = mocks.of_type("aws:sqs/queue:Queue")["shop-orders-commands"]
    assert json.loads(queue["redrivePolicy"])["maxReceiveCount"] == 3
    for count in (0, 1001, 2.5, True):
        with pytest.raises(ValidationError, match="max_receive_count"):
            rp.AggregateInfrastructure(
                f"bad-{count}", aggregate="orders", prefix="x", max_receive_count=count
            )
    with pytest.raises(ValidationError, match="62 characters"):
        rp.AggregateInfrastructure("long", aggregate="a" * 61, prefix="x")


def test_event_log_table_has_the_key_schema_of_create_event_table(mocks: AwsMocks) -> None:
    table = rp.EventLogTable("events", table_name="shop-events")
    assert resolve(table.arn) == arn("dynamodb", "table/shop-events")
    (inputs,) = mocks.of_type("aws:dynamodb/table:Table").values()
    assert inputs["name"] == "shop-events"
    assert inputs["billingMode"] == "PAY_PER_REQUEST"
    assert (inputs["hashKey"], inputs["rangeKey"]) == ("pk", "sk")
    assert inputs["attributes"] == [{"name": "pk", "type": "S"}, {"name": "sk", "type": "N"}]


def test_a_subscriber_queue_only_its_topic_may_send_to(mocks: AwsMocks) -> None:
    topic = rp.EventTopicInfrastructure("health", topic_name="shop-health-events")
    queue = topic.subscribe("monitor", "monitor-fn")
    assert resolve(queue.arn) == arn("sqs", "shop-health-events-monitor.fifo")
    (policy,) = mocks.of_type("aws:sqs/queuePolicy:QueuePolicy").values()
    assert json.loads(policy["policy"]) == iam.subscriber_queue_policy(
        queue_arn=arn("sqs", "shop-health-events-monitor.fifo"),
        topic_arn=arn("sns", "shop-health-events.fifo"),
    )
    (subscription,) = mocks.of_type("aws:sns/topicSubscription:TopicSubscription").values()
    assert subscription["protocol"] == "sqs" and subscription["rawMessageDelivery"] is True
    assert subscription["endpoint"] == arn("sqs", "shop-health-events-monitor.fifo")
    with pytest.raises(ValidationError, match="subscriber"):
        topic.subscribe("monitor", "again")


def test_plugin_outputs_are_the_providers_arguments(mocks: AwsMocks) -> None:
    infra = rp.PluginInfrastructure(
        "shop",
        group="shop",
        aggregates=["orders"],
        event_topics=["health"],
        schedulers={"orders": "orders", "health": "health"},
    )
    arguments = resolve(infra.provider_arguments)
    assert arguments == {
        "group": "shop",
        "role_arn": f"arn:aws:iam::{ACCOUNT}:role/shop-scheduler",
        "region": REGION,
        "dead_letter_arn": arn("sqs", "shop-dead-letters"),
        "event_table": "shop-events",
        "event_topics": {
            "orders": arn("sns", "shop-orders-events.fifo"),
            "health": arn("sns", "shop-health-events.fifo"),
        },
        "command_queues": {"orders": arn("sqs", "shop-orders.fifo")},
        "command_dead_letters": {"orders": arn("sqs", "shop-orders-dead-letters.fifo")},
    }
    assert json.loads(resolve(infra.environment)["REVENTLESS_AWS"]) == arguments
    groups = mocks.of_type("aws:scheduler/scheduleGroup:ScheduleGroup")
    # the schedulers' groups, and the provider's own, which it ensures when it starts
    assert sorted(v["name"] for v in groups.values()) == ["shop", "shop.health", "shop.orders"]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"schedulers": {"orders": "nothing"}}, "schedulers['orders']"),
        ({"group": "bad group"}, "group"),
        ({"aggregates": ["orders", "orders"]}, "aggregates/event_topics"),
        ({"aggregates": ["has.dot"], "schedulers": {}}, "aggregate"),
    ],
)
def test_bad_input_is_refused_before_anything_is_declared(
    mocks: AwsMocks, arguments: dict[str, Any], field: str
) -> None:
    base: dict[str, Any] = {"group": "shop", "aggregates": ["orders"], "schedulers": {}}
    with pytest.raises(ValidationError) as raised:
        rp.PluginInfrastructure("shop", **{**base, **arguments})
    assert raised.value.field == field
