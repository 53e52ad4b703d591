"""What a deployment hands the runtime: the provider's arguments from its outputs or the
environment, and the IAM documents for a plugin's several schedule groups."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("aioboto3")

import reventless.aws
from reventless.aws import iam
from reventless.errors import ValidationError

OUTPUTS = {
    "group": "shop",
    "role_arn": "arn:aws:iam::123456789012:role/shop-scheduler",
    "region": "eu-west-1",
    "event_table": "shop-events",
}


def test_outputs_and_the_environment_become_the_providers_arguments() -> None:
    assert reventless.aws.provider_from_outputs(OUTPUTS, client=object()) is not None
    environ = {"REVENTLESS_AWS": json.dumps(OUTPUTS)}
    assert reventless.aws._outputs.arguments_from_environment(environ) == OUTPUTS


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "REVENTLESS_AWS"),
        ({"REVENTLESS_AWS": "{not json"}, "a JSON object"),
        ({"REVENTLESS_AWS": json.dumps([1])}, "a mapping"),
        ({"REVENTLESS_AWS": json.dumps({**OUTPUTS, "session": 1})}, "only"),
        ({"REVENTLESS_AWS": json.dumps({"group": "shop"})}, "role_arn"),
    ],
)
def test_bad_outputs_are_refused_naming_what_is_wrong(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        reventless.aws.provider_from_environment(environ, client=object())


def test_a_plugins_groups_are_named_in_the_trust_and_caller_policies() -> None:
    schedulers = ["default", "orders", "x" * 64]
    trust = iam.execution_role_trust_policy(
        account_id="123456789012", region="eu-west-1", group="shop", schedulers=schedulers
    )
    groups = [iam.schedule_group_name("shop", name) for name in schedulers]
    assert groups[:2] == ["shop", "shop.orders"] and len(groups[2]) == 64
    prefix = "arn:aws:scheduler:eu-west-1:123456789012"
    assert trust["Statement"][0]["Condition"]["StringEquals"]["aws:SourceArn"] == [
        f"{prefix}:schedule-group/{g}" for g in groups
    ]
    caller = iam.caller_policy(
        account_id="123456789012",
        region="eu-west-1",
        group="shop",
        execution_role_arn=OUTPUTS["role_arn"],
        schedulers=schedulers,
    )
    assert caller["Statement"][0]["Resource"] == [f"{prefix}:schedule/{g}/*" for g in groups]
    assert caller["Statement"][1]["Resource"] == [f"{prefix}:schedule-group/{g}" for g in groups]
    with pytest.raises(ValidationError, match="schedulers"):
        iam.caller_policy(
            account_id="123456789012",
            region="eu-west-1",
            group="shop",
            execution_role_arn=OUTPUTS["role_arn"],
            schedulers="orders",
        )


def test_the_execution_role_may_send_to_several_queues() -> None:
    queues = [f"arn:aws:sqs:eu-west-1:123456789012:{n}.fifo" for n in ("a", "b")]
    policy = iam.execution_role_policy(target_queue_arns=queues)
    assert policy["Statement"] == [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queues}
    ]
    with pytest.raises(ValidationError, match="target_queue_arns"):
        iam.execution_role_policy(target_queue_arns=["not-an-arn"])
