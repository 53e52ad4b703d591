"""Schedule group names: one rule for the provider at runtime and for IAM documents and
deployments, so a policy always names the groups the provider writes to."""

from __future__ import annotations

import hashlib

MAX_GROUP_NAME = 64  # EventBridge Scheduler's limit
_GROUP_HASH = 16


def schedule_group_name(group: str, scheduler: str) -> str:
    """The schedule group of reventless scheduler ``scheduler`` on provider group ``group``:
    ``group`` for "default", else ``group.scheduler``; one longer than AWS allows (64) ends in a
    hash of the whole name instead, so that two schedulers never share a group."""
    if scheduler == "default":
        return group
    joined = f"{group}.{scheduler}"
    if len(joined) <= MAX_GROUP_NAME:
        return joined
    digest = hashlib.sha256(joined.encode()).hexdigest()[:_GROUP_HASH]
    return f"{joined[: MAX_GROUP_NAME - _GROUP_HASH - 1]}-{digest}"
