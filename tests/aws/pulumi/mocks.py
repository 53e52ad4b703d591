"""Pulumi mocks that answer as AWS would, closely enough for the components: each resource gets
the ARN (and URL) AWS would give it, and every resource registered is recorded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

ACCOUNT = "123456789012"
REGION = "eu-west-1"

_ARNS = {
    "aws:sqs/queue:Queue": "arn:aws:sqs:{region}:{account}:{name}",
    "aws:sns/topic:Topic": "arn:aws:sns:{region}:{account}:{name}",
    "aws:dynamodb/table:Table": "arn:aws:dynamodb:{region}:{account}:table/{name}",
    "aws:iam/role:Role": "arn:aws:iam::{account}:role/{name}",
    "aws:scheduler/scheduleGroup:ScheduleGroup": (
        "arn:aws:scheduler:{region}:{account}:schedule-group/{name}"
    ),
    "aws:lambda/function:Function": "arn:aws:lambda:{region}:{account}:function:{name}",
}

_CALLS = {
    "aws:index/getCallerIdentity:getCallerIdentity": {
        "accountId": ACCOUNT,
        "arn": f"arn:aws:iam::{ACCOUNT}:user/deployer",
        "userId": "AIDEPLOYER",
        "id": ACCOUNT,
    },
    "aws:index/getRegion:getRegion": {
        "region": REGION,
        "name": REGION,
        "endpoint": f"ec2.{REGION}.amazonaws.com",
        "description": "Europe (Ireland)",
        "id": REGION,
    },
    "aws:index/getPartition:getPartition": {
        "partition": "aws",
        "dnsSuffix": "amazonaws.com",
        "reverseDnsPrefix": "com.amazonaws",
        "id": "aws",
    },
}


@dataclass(frozen=True)
class Registered:
    type: str
    name: str  # the Pulumi resource name
    inputs: dict[str, Any]


class AwsMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Registered] = []
        self.calls: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        self.resources.append(Registered(args.typ, args.name, inputs))
        physical = inputs.get("name", args.name)
        state = dict(inputs)
        arn = _ARNS.get(args.typ)
        if arn is not None:
            state["arn"] = arn.format(region=REGION, account=ACCOUNT, name=physical)
        if args.typ == "aws:sqs/queue:Queue":
            state["url"] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical}"
        return (physical if args.typ == "aws:iam/role:Role" else f"{args.name}-id"), state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        self.calls.append(args.token)
        return _CALLS[args.token]

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        """The inputs of each registered resource of type ``kind``, by Pulumi name."""
        return {r.name: r.inputs for r in self.resources if r.type == kind}
