"""The seed's shop on the AWS stack, against a local moto server: ``python3 dev.py aws-shop``.

The demo's plugin (``reventless.cli.demo.build_plugin``: four aggregates, a health topic, the
original documentation's schedules) runs unchanged on ``reventless.aws.provider``: schedules in
EventBridge Scheduler, commands through SQS FIFO queues, the event log in DynamoDB, events on SNS
FIFO topics with a subscriber queue each. moto keeps every resource but fires nothing and runs
no Lambda, so this script plays those parts: it fires each schedule as EventBridge Scheduler
would (``reventless.testing.aws.fire_as_eventbridge``) and hands each queue's messages to the
handlers a Lambda would run (``handle_sqs_batch``, ``handle_topic_batch``). It prints what
happened, then delivers one fire a second time and shows that nothing changes but the event is
published again with the same id. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

import aioboto3
from moto.server import ThreadedMotoServer

import reventless.aws
from reventless.aws import create_event_table, handle_sqs_batch, handle_topic_batch
from reventless.cli.demo import build_plugin
from reventless.event_topic import FireMessage, TopicMessage
from reventless.fire_times import fire_times
from reventless.testing import VirtualClock
from reventless.testing.aws import fire_as_eventbridge, receive_lambda_event

REGION = "eu-west-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/shop-scheduler"
ZONE = "Europe/Berlin"
START_LOCAL = datetime(2026, 3, 16, 8, 0, tzinfo=ZoneInfo(ZONE))  # a Monday
HOURS = 10
AGGREGATES = ("orders", "reports", "maintenance", "users")
TOPICS = (*AGGREGATES, "health")


def local(instant: datetime) -> str:
    return instant.astimezone(ZoneInfo(ZONE)).strftime("%a %H:%M")


async def create_stack(session: Any, url: str) -> dict[str, Any]:
    """What a deployment creates once: a FIFO command queue per aggregate, an SNS FIFO topic per
    event topic with a FIFO queue subscribed (raw delivery), and the event table."""
    stack: dict[str, Any] = {"queues": {}, "queue_urls": {}, "topics": {}, "subscribers": {}}
    async with (
        session.client("sqs", endpoint_url=url) as sqs,
        session.client("sns", endpoint_url=url) as sns,
        session.client("dynamodb", endpoint_url=url) as dynamodb,
    ):

        async def fifo_queue(name: str) -> tuple[str, str]:
            queue_url = (
                await sqs.create_queue(
                    QueueName=name,
                    Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
                )
            )["QueueUrl"]
            attributes = await sqs.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["QueueArn"]
            )
            return queue_url, attributes["Attributes"]["QueueArn"]

        for name in AGGREGATES:
            stack["queue_urls"][name], stack["queues"][name] = await fifo_queue(f"{name}.fifo")
        for name in TOPICS:
            topic = (
                await sns.create_topic(Name=f"{name}-events.fifo", Attributes={"FifoTopic": "true"})
            )["TopicArn"]
            queue_url, queue_arn = await fifo_queue(f"{name}-subscriber.fifo")
            await sns.subscribe(
                TopicArn=topic,
                Protocol="sqs",
                Endpoint=queue_arn,
                Attributes={"RawMessageDelivery": "true"},
            )
            stack["topics"][name] = topic
            stack["subscribers"][name] = queue_url
        await create_event_table(dynamodb, "shop-events")
    return stack


class Shop:
    """The running plugin on AWS, and the parts this script plays: EventBridge and Lambda."""

    def __init__(self, running: Any, provider: Any, stack: dict[str, Any], clients: Any) -> None:
        self.running = running
        self.provider = provider
        self.stack = stack
        self.sqs, self.sns, self.scheduler = clients
        self.published: Counter[str] = Counter()
        self.streams: set[tuple[str, str]] = set()
        self.received: Counter[str] = Counter()
        self.log: list[str] = []

    def watch(self) -> None:
        """Subscribe a printer to every topic: it runs where a subscriber queue is consumed."""

        async def show(message: TopicMessage) -> None:
            self.received[message.topic] += 1
            if isinstance(message, FireMessage):
                return  # 120 heartbeats: counted, not printed
            aggregate, aggregate_id = message.source.split("/", 1)
            self.streams.add((aggregate, aggregate_id))
            self.log.append(f"    {message.topic} subscriber: {message.type} {message.event_id}")

        for name in AGGREGATES:
            self.running.aggregates[name].event_topic.subscribe(show, name="show")
        self.running.event_topics["health"].subscribe(show, name="show")

    def topic(self, name: str) -> Any:
        if name == "health":
            return self.running.event_topics[name]
        return self.running.aggregates[name].event_topic

    async def lambdas(self, name: str) -> None:
        """Run the Lambdas of scheduler ``name``'s queues until they are empty."""
        if name in AGGREGATES:
            event = await receive_lambda_event(self.sqs, self.stack["queue_urls"][name])
            if event["Records"]:
                result = await handle_sqs_batch(event, self.running.aggregates[name])
                assert not result["batchItemFailures"], result
        for topic in (name, "users") if name == "users" else (name,):
            spec = [self.running.aggregates[topic].spec] if topic in AGGREGATES else []
            while True:
                event = await receive_lambda_event(self.sqs, self.stack["subscribers"][topic])
                if not event["Records"]:
                    break
                result = await handle_topic_batch(
                    event, self.topic(topic).receive, topic=topic, aggregates=spec
                )
                assert not result["batchItemFailures"], result

    async def fire(self, scheduler: str, name: str, at: datetime) -> None:
        group = self.provider.scheduled_publisher().group_name(scheduler)
        target = await fire_as_eventbridge(
            scheduler=self.scheduler,
            group=group,
            name=name,
            scheduled_time=at,
            sqs=self.sqs,
            sns=self.sns,
        )
        self.published[name] += 1
        if name != "health-check":
            where = target["Arn"].rsplit(":", 1)[-1]
            self.log.append(f"{local(at)}  EventBridge fires {name} -> {where}")
        await self.lambdas(scheduler)


async def timeline(shop: Shop, start: datetime, end: datetime) -> list[tuple[datetime, str, str]]:
    fires = []
    for scheduler_name, scheduler in shop.running.schedulers.items():
        page = await scheduler.operations.list_schedules()
        for state in page.schedules:
            for at in fire_times(state.schedule, created_at=state.created_at, after=start):
                if at > end:
                    break
                fires.append((at, scheduler_name, state.schedule.name))
    return sorted(fires)


async def run(url: str) -> int:
    session = aioboto3.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION
    )
    stack = await create_stack(session, url)
    start = START_LOCAL.astimezone(ZoneInfo("UTC"))
    end = start + timedelta(hours=HOURS)
    clock = VirtualClock(start)
    plugin = build_plugin(START_LOCAL, ZONE)
    async with (
        session.client("sqs", endpoint_url=url) as sqs,
        session.client("sns", endpoint_url=url) as sns,
        session.client("scheduler", endpoint_url=url) as scheduler_client,
        reventless.aws.provider(
            session=session,
            group="shop",
            role_arn=ROLE_ARN,
            region=REGION,
            endpoint_url=url,
            clock=clock,
            event_table="shop-events",
            event_topics=stack["topics"],
            command_queues=stack["queues"],
        ) as provider,
        plugin.start(provider) as running,
    ):
        shop = Shop(running, provider, stack, (sqs, sns, scheduler_client))
        shop.watch()
        fires = await timeline(shop, start, end)
        print(
            f"moto server at {url}: {len(AGGREGATES)} command queues, {len(TOPICS)} SNS FIFO "
            f"topics with a subscriber queue each, DynamoDB table shop-events"
        )
        print(f"{len(fires)} fires due from {local(start)} to {local(end)} ({ZONE}):\n")
        for at, scheduler_name, name in fires:
            await shop.fire(scheduler_name, name, at)
        print("\n".join(shop.log))
        print(
            f"\nhealth-check: {shop.published['health-check']} fires published to SNS by "
            f"EventBridge, {shop.received['health']} received by the subscriber"
        )
        print("\nfinal states (read back from DynamoDB):")
        for name, aggregate_id in sorted(shop.streams):
            state, version = await running.aggregates[name].load(aggregate_id)
            print(f"  {name}/{aggregate_id}: version {version}: {state}")
        await redeliver(shop, fires)
    return 0


async def redeliver(shop: Shop, fires: list[tuple[datetime, str, str]]) -> None:
    """Deliver the first orders fire again, as SQS may: the aggregate does not change, and the
    event that fire caused is published again with the same id."""
    at, scheduler_name, name = next(f for f in fires if f[1] == "orders")
    orders = shop.running.aggregates["orders"]
    _, before = await orders.load("order-processor")
    shop.log.clear()
    await shop.fire(scheduler_name, name, at)
    _, after = await orders.load("order-processor")
    print(f"\nthe {local(at)} fire of {name} delivered again: version {before} -> {after}")
    print("\n".join(shop.log[1:]) or "    (SNS dropped the repeat within its dedup window)")


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    for key in [key for key in os.environ if key.startswith("AWS_")]:
        del os.environ[key]  # never a real account
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        return asyncio.run(run(f"http://{host}:{port}"))
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
