"""The one SQS batch loop (``reventless.aws._batch``): which records a batch reports failed."""

from __future__ import annotations

from typing import Any

import anyio

from reventless.aws._batch import handle_records


def _record(number: int, group: str | None) -> dict[str, Any]:
    attributes = {} if group is None else {"MessageGroupId": group}
    return {"messageId": f"m{number}", "body": str(number), "attributes": attributes}


def _run(records: list[dict[str, Any]], failing: set[str], settled: set[str]) -> list[str]:
    seen: list[str] = []

    async def handle(record: dict[str, Any]) -> None:
        seen.append(record["messageId"])
        if record["messageId"] in failing:
            raise RuntimeError("down")

    async def failed(record: dict[str, Any], exc: Exception) -> bool:
        assert isinstance(exc, RuntimeError)
        return record["messageId"] in settled

    response = anyio.run(handle_records, {"Records": records}, handle, failed)
    failures = [item["itemIdentifier"] for item in response["batchItemFailures"]]
    assert [r["messageId"] for r in records if r["messageId"] not in seen] == [
        f for f in failures if f not in failing
    ]
    return failures


def test_a_failure_holds_back_the_rest_of_its_group_only() -> None:
    records = [_record(1, "a"), _record(2, "b"), _record(3, "a"), _record(4, "b")]
    assert _run(records, failing={"m1"}, settled=set()) == ["m1", "m3"]


def test_records_of_a_standard_queue_do_not_hold_each_other_up() -> None:
    records = [_record(1, None), _record(2, None), _record(3, None)]
    assert _run(records, failing={"m1"}, settled=set()) == ["m1"]


def test_a_failure_settled_by_its_handler_is_not_reported_and_its_group_goes_on() -> None:
    records = [_record(1, "a"), _record(2, "a")]
    assert _run(records, failing={"m1"}, settled={"m1"}) == []
    assert _run([], failing=set(), settled=set()) == []
