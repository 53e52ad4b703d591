"""docs/deploy.md's Pulumi program runs under Pulumi's mocks, its handlers import, and the page's
program turns the program's output into a provider: the page cannot rot."""

from __future__ import annotations

import importlib
import inspect
import json
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aws.pulumi import require_pulumi
from tests.docs_pages import PAGES, lay_out

pulumi = require_pulumi()

from tests.aws.pulumi.mocks import ACCOUNT, REGION, AwsMocks  # noqa: E402

PAGE = next(page for page in PAGES if page.name == "deploy.md")
AGGREGATES = ["orders", "reports", "maintenance", "users"]


@pytest.fixture
def page_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "build").mkdir()
    yield tmp_path
    sys.modules.pop("handler", None)


def test_the_deploy_program_runs_under_mocks(page_directory: Path) -> None:
    mocks = AwsMocks()
    pulumi.runtime.set_mocks(mocks, project="shop", stack="test", preview=False)
    program = lay_out(PAGE, page_directory)
    assert program is not None
    found: list[dict[str, object]] = []

    @pulumi.runtime.test
    def deploy() -> object:
        namespace = runpy.run_path(str(page_directory / "__main__.py"))
        return namespace["shop"].provider_arguments.apply(found.append)

    deploy()
    (arguments,) = found
    assert arguments["event_table"] == "shop-events"
    assert arguments["command_queues"] == {
        name: f"arn:aws:sqs:{REGION}:{ACCOUNT}:shop-{name}.fifo" for name in AGGREGATES
    }
    assert set(arguments["event_topics"]) == {*AGGREGATES, "health"}  # type: ignore[arg-type]
    functions = mocks.of_type("aws:lambda/function:Function")
    assert sorted(functions) == sorted(
        [*(f"shop-{a}" for a in AGGREGATES), "shop-health", "shop-reminders"]
    )
    for name, inputs in functions.items():
        variables = inputs["environment"]["variables"]
        assert json.loads(variables["REVENTLESS_AWS"]) == arguments
        expected = None if name in ("shop-health", "shop-reminders") else name[5:]
        assert variables.get("AGGREGATE") == expected
    mappings = mocks.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    assert len(mappings) == 6
    groups = mocks.of_type("aws:scheduler/scheduleGroup:ScheduleGroup")
    assert sorted(g["name"] for g in groups.values()) == sorted(
        ["shop", *(f"shop.{name}" for name in [*AGGREGATES, "health"])]
    )
    handlers = json.loads(mocks.of_type("aws:iam/rolePolicy:RolePolicy")["shop-handlers"]["policy"])
    consumed = next(s for s in handlers["Statement"] if s["Sid"] == "ConsumeTheQueues")
    assert f"arn:aws:sqs:{REGION}:{ACCOUNT}:shop-health-events-monitor.fifo" in consumed["Resource"]
    attached = mocks.of_type("aws:iam/rolePolicy:RolePolicy")
    assert any("CreateSchedule" in inputs["policy"] for inputs in attached.values())
    reminders = f"arn:aws:sqs:{REGION}:{ACCOUNT}:shop-users-events-user-reminders.fifo"
    assert reminders in consumed["Resource"]
    queues = mocks.of_type("aws:sqs/queue:Queue")
    redrive = json.loads(queues["shop-users-events-user-reminders"]["redrivePolicy"])
    assert redrive == {
        "deadLetterTargetArn": f"{reminders[: -len('.fifo')]}-dead-letters.fifo",
        "maxReceiveCount": 5,
    }

    # the handlers the functions name exist, and the page's program reads the outputs back
    handler = importlib.import_module("handler")
    assert inspect.iscoroutinefunction(handler.handle_commands)
    assert callable(handler.commands) and callable(handler.health)
    assert callable(handler.reminders)
    (page_directory / "outputs.json").write_text(json.dumps(arguments))
    namespace = runpy.run_path(str(program))
    assert type(namespace["shop_provider"]).__name__ == "ProviderContext"


NUMBERS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def test_what_the_page_says_pulumi_up_creates_is_what_the_program_creates(
    page_directory: Path,
) -> None:
    """Each count in "What `pulumi up` creates" is the count in the program's run."""
    mocks = AwsMocks()
    pulumi.runtime.set_mocks(mocks, project="shop", stack="test", preview=False)
    lay_out(PAGE, page_directory)

    @pulumi.runtime.test
    def deploy() -> object:
        namespace = runpy.run_path(str(page_directory / "__main__.py"))
        return namespace["shop"].provider_arguments

    deploy()
    text = PAGE.read_text()
    start = text.index("For the demo's plugin:")
    paragraph = " ".join(text[start : text.index("\n\n", start)].split())
    queues = list(mocks.of_type("aws:sqs/queue:Queue").values())
    fifo = [q for q in queues if q.get("fifoQueue")]
    counts = {
        "DynamoDB table": len(mocks.of_type("aws:dynamodb/table:Table")),
        "FIFO command queues": len([q for q in fifo if q["name"] in _command_queue_names()]),
        "FIFO dead-letter queues": len([q for q in fifo if "-dead-letters" in q["name"]]),
        "SNS FIFO topics": len(mocks.of_type("aws:sns/topic:Topic")),
        "FIFO subscriber queues": len(mocks.of_type("aws:sns/topicSubscription:TopicSubscription")),
        "queue policies": len(mocks.of_type("aws:sqs/queuePolicy:QueuePolicy")),
        "subscriptions": len(mocks.of_type("aws:sns/topicSubscription:TopicSubscription")),
        "schedule groups": len(mocks.of_type("aws:scheduler/scheduleGroup:ScheduleGroup")),
        "standard dead-letter queue": len([q for q in queues if not q.get("fifoQueue")]),
        "Lambda functions": len(mocks.of_type("aws:lambda/function:Function")),
        "event-source mappings": len(
            mocks.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
        ),
    }
    # Every queue is one of those counted.
    assert len(queues) == sum(
        counts[k]
        for k in (
            "FIFO command queues",
            "FIFO dead-letter queues",
            "FIFO subscriber queues",
            "standard dead-letter queue",
        )
    )
    for phrase, count in counts.items():
        claim = f"{NUMBERS[count]} {phrase}"
        assert claim in paragraph, f"the page should say {claim!r}: {paragraph}"


def _command_queue_names() -> set[str]:
    return {f"shop-{name}.fifo" for name in AGGREGATES}
