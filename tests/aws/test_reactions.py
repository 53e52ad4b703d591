"""Reactions on AWS, on a moto server: an account's events reach the reaction's queue through
SNS FIFO, and ``handle_reaction_batch`` runs the same handler as the embedded provider does: it
creates and deletes schedules in EventBridge Scheduler. A redelivered batch changes nothing; a
failing event holds back the rest of its stream and only its stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest

import reventless.aws
from reventless import (
    AggregateSpec,
    CommandContext,
    Days,
    Plugin,
    ReactionContext,
    ReactionEvent,
    Schedule,
    ScheduleNotFoundError,
    UsageError,
)
from reventless.aws import create_event_table, handle_reaction_batch
from reventless.testing.aws import receive_lambda_event
from tests.aws.conftest import REGION, ROLE_ARN, CountingMotoServer, make_queue

pytestmark = pytest.mark.anyio


class Open(msgspec.Struct, tag=True, frozen=True):
    pass


class Close(msgspec.Struct, tag=True, frozen=True):
    pass


class Renew(msgspec.Struct, tag=True, frozen=True):
    pass


class Opened(msgspec.Struct, tag=True, frozen=True):
    pass


class Closed(msgspec.Struct, tag=True, frozen=True):
    pass


class Renewed(msgspec.Struct, tag=True, frozen=True):
    pass


def _decide(state: int, command: Any, context: CommandContext) -> list[Any]:
    return [{Open: Opened, Close: Closed, Renew: Renewed}[type(command)]()]


ACCOUNTS: AggregateSpec[int] = AggregateSpec(
    "accounts",
    commands=[Open, Close, Renew],
    events=[Opened, Closed, Renewed],
    initial=0,
    decide=_decide,
    evolve=lambda state, event: state + 1,
)
calls: list[tuple[str, int, int]] = []


async def renewals(event: ReactionEvent, context: ReactionContext) -> None:
    calls.append((event.aggregate_id, event.version, context.attempt))
    if event.aggregate_id == "bad":
        raise RuntimeError("this account cannot be handled")
    name = f"renew-{event.aggregate_id}"
    if isinstance(event.event, Opened):
        payload = f'{{"aggregateId": "{event.aggregate_id}", "command": "Renew"}}'
        await context.ensure_schedule(
            "renewals", Schedule(name=name, rate=Days(30), payload=payload)
        )
    elif isinstance(event.event, Closed):
        await context.delete_schedule("renewals", name)


def accounts_plugin() -> Plugin:
    plugin = Plugin("accounts")
    accounts = plugin.aggregate(ACCOUNTS)
    plugin.scheduler("renewals", target=accounts)
    plugin.reaction("renewals", follows=[ACCOUNTS], handler=renewals)
    return plugin


@asynccontextmanager
async def running_on_aws(
    session: Any, moto: CountingMotoServer
) -> AsyncIterator[tuple[Any, Any, str]]:
    """The plugin started on the AWS stack; yields (running plugin, sqs client, reaction queue)."""
    async with (
        session.client("sqs", endpoint_url=moto.url) as sqs,
        session.client("sns", endpoint_url=moto.url) as sns,
        session.client("dynamodb", endpoint_url=moto.url) as dynamodb,
    ):
        _, commands_arn = await make_queue(sqs, "accounts-commands.fifo")
        topic = await sns.create_topic(
            Name="accounts-events.fifo", Attributes={"FifoTopic": "true"}
        )
        reaction_url, reaction_arn = await make_queue(sqs, "renewals-reaction.fifo")
        await sns.subscribe(
            TopicArn=topic["TopicArn"],
            Protocol="sqs",
            Endpoint=reaction_arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        await create_event_table(dynamodb, "accounts-events")
        async with (
            reventless.aws.provider(
                session=session,
                group="accounts",
                role_arn=ROLE_ARN,
                region=REGION,
                endpoint_url=moto.url,
                event_table="accounts-events",
                event_topics={"accounts": topic["TopicArn"]},
                command_queues={"accounts": commands_arn},
            ) as provider,
            accounts_plugin().start(provider) as running,
        ):
            yield running, sqs, reaction_url


async def test_events_reach_the_reaction_which_creates_and_deletes_schedules(
    session: Any, moto: CountingMotoServer
) -> None:
    calls.clear()
    async with running_on_aws(session, moto) as (running, sqs, queue):
        accounts = running.aggregates["accounts"].command_topic
        ops = running.schedulers["renewals"].operations
        await accounts.send("a1", Open(), message_id="web-1")
        batch = await receive_lambda_event(sqs, queue)
        assert len(batch["Records"]) == 1
        assert await handle_reaction_batch(batch, running, "renewals") == {"batchItemFailures": []}
        state = await ops.get_schedule("renew-a1")
        assert state.schedule.rate == Days(30)
        # The same batch again, as SQS redelivers after a lost acknowledgement: nothing changes.
        assert await handle_reaction_batch(batch, running, "renewals") == {"batchItemFailures": []}
        assert await ops.get_schedule("renew-a1") == state
        await accounts.send("a1", Close(), message_id="web-2")
        batch = await receive_lambda_event(sqs, queue)
        assert await handle_reaction_batch(batch, running, "renewals") == {"batchItemFailures": []}
        with pytest.raises(ScheduleNotFoundError):
            await ops.get_schedule("renew-a1")
    assert calls == [("a1", 1, 1), ("a1", 1, 1), ("a1", 2, 1)]


async def test_a_failing_event_holds_back_its_stream_only(
    session: Any, moto: CountingMotoServer
) -> None:
    calls.clear()
    async with running_on_aws(session, moto) as (running, sqs, queue):
        accounts = running.aggregates["accounts"].command_topic
        await accounts.send("bad", Open(), message_id="web-1")
        await accounts.send("bad", Close(), message_id="web-2")
        await accounts.send("a2", Open(), message_id="web-3")
        batch = await receive_lambda_event(sqs, queue, delete=False)
        ids = {record["messageId"]: record for record in batch["Records"]}
        assert len(ids) == 3
        result = await handle_reaction_batch(batch, running, "renewals")
        failed = [ids[item["itemIdentifier"]] for item in result["batchItemFailures"]]
        assert [record["attributes"]["MessageGroupId"] for record in failed] == ["bad", "bad"]
        # The second event of the failing stream was held back untouched: called once, for v1.
        assert [call for call in calls if call[0] == "bad"] == [("bad", 1, 1)]
        assert await running.schedulers["renewals"].operations.get_schedule("renew-a2")
        with pytest.raises(UsageError, match="'nope' is not registered"):
            await handle_reaction_batch(batch, running, "nope")
