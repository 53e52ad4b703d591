"""The providers every conformance suite of ``reventless.testing`` runs on: one fixture,
``provider_under_test``, parametrized over them. The next provider gets every suite by adding
one entry to ``PROVIDERS`` (and its ``ProviderUnderTest``).

The embedded provider runs on asyncio and trio, in memory and on a file; the AWS provider on
asyncio (aioboto3), against one moto server in server mode (``tests/aws/conftest.py``); the
PostgreSQL provider on asyncio (asyncpg), on a new database of the session's server
(``tests/postgres_server.py``), offering the ports built so far (``Capabilities.ports``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import reventless.aws
import reventless.local
from reventless.aggregate import AggregateSpec
from reventless.aws import SqsQueueTarget, create_event_table, decode_topic_message
from reventless.aws._dynamodb import MAX_ITEM_BYTES
from reventless.event_topic import EventTopic, PublishError
from reventless.testing import VirtualClock
from reventless.testing.aws import receive_lambda_event
from reventless.testing.ports import NOTES, Capabilities, ProviderUnderTest
from tests.aws.conftest import (  # noqa: F401  (fixtures, used by name)
    REGION,
    ROLE_ARN,
    CountingMotoServer,
    make_queue,
    moto,
    moto_server,
    session,
)
from tests.postgres_server import PostgresServer

# (provider, anyio backend): the AWS adapter is asyncio-only.
PROVIDERS = [
    ("local-memory", "asyncio"),
    ("local-memory", "trio"),
    ("local-file", "asyncio"),
    ("local-file", "trio"),
    ("aws", "asyncio"),
    ("postgres", "asyncio"),
]
REACTION = "follower"  # the reaction the Reactions suite declares (its queue on AWS)
COMMAND_QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:commands.fifo"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "provider_under_test" in metafunc.fixturenames:
        metafunc.parametrize(
            "provider_case", PROVIDERS, ids=[f"{name}-{backend}" for name, backend in PROVIDERS]
        )


@pytest.fixture
def anyio_backend(provider_case: tuple[str, str]) -> str:
    return provider_case[1]


class LocalUnderTest(ProviderUnderTest):
    """The embedded provider, on ``path`` (``":memory:"``: a fresh store at every open)."""

    def __init__(self, name: str, path: Path | str) -> None:
        self.name = name
        self.path = path
        self.capabilities = Capabilities(durable=path != ":memory:")

    def open(self, clock: VirtualClock) -> Any:
        return reventless.local.provider(self.path, clock=clock)


class AwsUnderTest(ProviderUnderTest):
    """The AWS provider on moto: a DynamoDB event log, the SNS FIFO topic of ``NOTES`` with a
    subscriber queue (``deliver_published``) and the queue of the reaction ``REACTION``."""

    name = "aws"
    capabilities = Capabilities(
        fires=False,  # EventBridge Scheduler fires remotely (moto fires nothing)
        keeps_history=False,
        dst_policies=False,  # EventBridge Scheduler has one fixed DST rule
        global_order=False,
        max_events_per_append=98,  # 100 items: the head and the message id take two
        max_event_bytes=MAX_ITEM_BYTES,
        # moto applies a TransactWriteItems' condition checks and writes in separate steps, so
        # concurrent appends at one version can both win there (seen: 1 run in 3); DynamoDB
        # itself serialises them. The single-writer conflict tests still run.
        serialises_concurrent_writers=False,
        topics_in_process=False,
        reactions_in_process=False,
        durable=True,
    )

    def __init__(self, aws_session: Any, server: CountingMotoServer) -> None:
        self.session = aws_session
        self.moto = server
        self.queues: dict[str, str] = {}
        self.topic_arn: str | None = None
        self._made = False

    async def _make(self, sqs: Any, sns: Any, dynamodb: Any) -> None:
        if self._made:  # opened again within one test: the same resources
            return
        self._made = True
        await create_event_table(dynamodb, "events")
        topic = await sns.create_topic(
            Name=f"{NOTES.name}-events.fifo", Attributes={"FifoTopic": "true"}
        )
        self.topic_arn = topic["TopicArn"]
        for queue in ("subscriber", REACTION):
            url, arn = await make_queue(sqs, f"{queue}.fifo")
            self.queues[queue] = url
            await sns.subscribe(
                TopicArn=self.topic_arn,
                Protocol="sqs",
                Endpoint=arn,
                Attributes={"RawMessageDelivery": "true"},
            )

    @asynccontextmanager
    async def open(self, clock: VirtualClock) -> AsyncIterator[Any]:
        self.moto.use_clock(clock.now)  # AWS's limits are judged at the test's now
        url = self.moto.url
        async with (
            self.session.client("sqs", endpoint_url=url) as sqs,
            self.session.client("sns", endpoint_url=url) as sns,
            self.session.client("dynamodb", endpoint_url=url) as dynamodb,
        ):
            await self._make(sqs, sns, dynamodb)
            assert self.topic_arn is not None
            async with reventless.aws.provider(
                session=self.session,
                group="conformance",
                role_arn=ROLE_ARN,
                region=REGION,
                endpoint_url=url,
                clock=clock,
                event_table="events",
                event_topics={NOTES.name: self.topic_arn},
            ) as provider:
                yield provider

    def scheduler_target(self) -> Any:
        return SqsQueueTarget(COMMAND_QUEUE_ARN)

    async def _received(self, queue: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        async with self.session.client("sqs", endpoint_url=self.moto.url) as sqs:
            while batch := (await receive_lambda_event(sqs, self.queues[queue]))["Records"]:
                records += batch
        return records

    async def deliver_published(
        self, topic: EventTopic, aggregates: Sequence[AggregateSpec[Any]] = ()
    ) -> None:
        failures: list[PublishError] = []
        for record in await self._received("subscriber"):
            message = decode_topic_message(record["body"], topic.name, aggregates)
            try:
                await topic.receive(message)  # type: ignore[attr-defined]
            except PublishError as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    async def reaction_batch(self, name: str) -> dict[str, Any]:
        assert name == REACTION, f"the AWS provider under test has the queue of {REACTION!r}"
        return {"Records": await self._received(REACTION)}


class PostgresUnderTest(ProviderUnderTest):
    """The PostgreSQL provider (its event log, schedules, in-process event and command topics,
    reactions), on a database of its own, made at the first open."""

    name = "postgres"
    capabilities = Capabilities(
        durable=True,
        ports=frozenset(
            {"event_log", "scheduled_publisher", "event_topic", "command_topic", "reactions"}
        ),
    )

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.dsn: str | None = None

    @asynccontextmanager
    async def open(self, clock: VirtualClock) -> AsyncIterator[Any]:
        import reventless.postgres

        if self.dsn is None:
            self.dsn = self.server.create_database()
        async with reventless.postgres.provider(self.dsn, schema="conformance", clock=clock) as p:
            yield p


@pytest.fixture
def provider_under_test(
    provider_case: tuple[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> ProviderUnderTest:
    provider_name = provider_case[0]
    if provider_name == "local-memory":
        return LocalUnderTest(provider_name, ":memory:")
    if provider_name == "local-file":
        return LocalUnderTest(provider_name, tmp_path / "state.db")
    if provider_name == "postgres":
        return PostgresUnderTest(request.getfixturevalue("postgres_server"))
    return AwsUnderTest(request.getfixturevalue("session"), request.getfixturevalue("moto"))
