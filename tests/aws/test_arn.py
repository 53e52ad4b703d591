"""One ARN parser (``reventless.aws._arn``) for the provider, the targets and the IAM documents:
each kind at and past its bounds, and the users of it agreeing."""

from __future__ import annotations

import pytest

from reventless.aws import handler_policy
from reventless.aws._arn import parse_arn, queue_arn, role_arn, table_arn, topic_arn
from reventless.aws._targets import SqsQueueTarget
from reventless.aws.iam import subscriber_queue_policy
from reventless.errors import ValidationError

Q = "arn:aws:sqs:eu-west-1:123456789012:"
T = "arn:aws:sns:eu-west-1:123456789012:"


@pytest.mark.parametrize(
    ("arn", "fifo", "valid"),
    [
        (Q + "a" * 80, None, True),
        (Q + "a" * 81, None, False),
        (Q + "a" * 75 + ".fifo", True, True),
        (Q + "a" * 76 + ".fifo", True, False),  # 81 with the suffix: the old check let it by
        (Q + "a" * 75 + ".fifo", False, False),
        (Q + "orders", True, False),
        (Q + "or.ders", None, False),
        (Q + "", None, False),
        ("arn:aws:sqs:eu-west-1:12345678901:q", None, False),
        ("arn:aws-cn:sqs:cn-north-1:123456789012:q", None, True),
    ],
)
def test_queue_names_within_80_characters_fifo_suffix_included(
    arn: str, fifo: bool | None, valid: bool
) -> None:
    assert queue_arn(arn, fifo=fifo) is valid


@pytest.mark.parametrize(
    ("arn", "valid"),
    [
        (T + "t" * 251 + ".fifo", True),
        (T + "t" * 252 + ".fifo", False),  # 257: the IAM helpers' old check let it by
        (T + "t" * 256, True),
        (T + "t" * 257, False),
    ],
)
def test_topic_names_within_256_characters_fifo_suffix_included(arn: str, valid: bool) -> None:
    assert topic_arn(arn) is valid


def test_roles_tables_and_what_is_no_arn() -> None:
    assert role_arn("arn:aws:iam::123456789012:role/service/scheduler")
    assert not role_arn("arn:aws:iam:eu-west-1:123456789012:role/x")
    assert table_arn("arn:aws:dynamodb:eu-west-1:123456789012:table/events")
    assert not table_arn("arn:aws:dynamodb:eu-west-1:123456789012:table/ev")
    assert parse_arn("not an arn") is None and parse_arn(42) is None


def test_the_target_and_the_iam_documents_refuse_the_same_queue() -> None:
    too_long = Q + "a" * 76 + ".fifo"
    with pytest.raises(ValidationError, match="queue_arn"):
        SqsQueueTarget(too_long)
    with pytest.raises(ValidationError, match="queue_arn"):
        subscriber_queue_policy(queue_arn=too_long, topic_arn=T + "t.fifo")
    with pytest.raises(ValidationError, match="queue_arns"):
        handler_policy(
            table_arn="arn:aws:dynamodb:eu-west-1:123456789012:table/events",
            queue_arns=[too_long],
        )
