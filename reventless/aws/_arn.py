"""The one place that knows what an AWS name or ARN of each kind may be; the provider, the
targets and the IAM documents check theirs here, so they cannot disagree.

Limits, from AWS's documentation: an SQS queue name is 1-80 characters of letters, digits,
``-`` and ``_``, a FIFO queue's ending in ``.fifo`` within the 80; an SNS topic name is 1-256
characters of the same, a FIFO topic's ending in ``.fifo`` within the 256; an IAM role's path and
name up to 512 characters; a DynamoDB table name 3-255 of letters, digits, ``_``, ``-``, ``.``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from reventless.errors import ValidationError

__all__ = (
    "GROUP",
    "REGION",
    "Arn",
    "check",
    "kms_key_arn",
    "parse_arn",
    "queue_arn",
    "role_arn",
    "table_arn",
    "topic_arn",
)

_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*)"
    r":(?P<account>\d{12}|):(?P<resource>.+)"
)
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
GROUP = re.compile(r"[0-9A-Za-z._-]{1,64}")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_ROLE = re.compile(r"role/[\w+=,.@/-]{1,512}")
_TABLE = re.compile(r"table/[A-Za-z0-9_.-]{3,255}")
_KMS_KEY = re.compile(r"key/[0-9a-f-]{36}")


class Arn(NamedTuple):
    partition: str
    service: str
    region: str
    account: str
    resource: str


def parse_arn(text: object) -> Arn | None:
    """The parts of an ARN; None when ``text`` is not one."""
    if not isinstance(text, str) or (found := _ARN.fullmatch(text)) is None:
        return None
    return Arn(*found.group("partition", "service", "region", "account", "resource"))


def _named(arn: Arn | None, service: str, limit: int, fifo: bool | None) -> bool:
    """Whether ``arn`` is a regional ARN of ``service`` whose resource is a queue or topic name
    within ``limit`` characters, ``.fifo`` included (required when ``fifo``, refused when False)."""
    if arn is None or arn.service != service or not REGION.fullmatch(arn.region):
        return False
    name = arn.resource
    is_fifo = name.endswith(".fifo")
    base = name.removesuffix(".fifo") if is_fifo else name
    return (
        len(name) <= limit
        and _NAME.fullmatch(base) is not None
        and (fifo is None or fifo == is_fifo)
        and bool(arn.account)
    )


def queue_arn(text: object, *, fifo: bool | None = None) -> bool:
    """An SQS queue ARN (FIFO, standard, or either when ``fifo`` is None)."""
    return _named(parse_arn(text), "sqs", 80, fifo)


def topic_arn(text: object, *, fifo: bool | None = None) -> bool:
    """An SNS topic ARN (FIFO, standard, or either when ``fifo`` is None)."""
    return _named(parse_arn(text), "sns", 256, fifo)


def role_arn(text: object) -> bool:
    arn = parse_arn(text)
    return (
        arn is not None
        and (arn.service, arn.region) == ("iam", "")
        and bool(arn.account)
        and _ROLE.fullmatch(arn.resource) is not None
    )


def table_arn(text: object) -> bool:
    arn = parse_arn(text)
    return (
        arn is not None
        and arn.service == "dynamodb"
        and REGION.fullmatch(arn.region) is not None
        and bool(arn.account)
        and _TABLE.fullmatch(arn.resource) is not None
    )


def kms_key_arn(text: object) -> bool:
    arn = parse_arn(text)
    return (
        arn is not None
        and arn.service == "kms"
        and REGION.fullmatch(arn.region) is not None
        and bool(arn.account)
        and _KMS_KEY.fullmatch(arn.resource) is not None
    )


def check(field: str, value: object, valid: bool, allowed: str) -> str:
    """``value`` when ``valid``; else a ValidationError naming ``field``, value and ``allowed``."""
    if not valid or not isinstance(value, str):
        raise ValidationError(field, value, allowed)
    return value
