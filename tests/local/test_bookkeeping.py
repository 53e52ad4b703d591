"""The engine's bookkeeping (``reventless._fire_bookkeeping``), alone: jobs and what their
deliveries came to in, the rows of one transaction out. No store, no clock, no event loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reventless._fire_bookkeeping import Bookkeeper, note_missed
from reventless._fire_jobs import DeliveryFailure, FireJob, RetryJob
from reventless._observe import Observer
from reventless.local._rows import FIRED_AND_COMPLETED, Outcome, to_us
from reventless.misfire import FireRange
from reventless.scheduler_adapter import MisfirePolicy, RetryPolicy
from reventless.testing import RecordingTarget

T = to_us(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
AT = T + 2_000_000
MINUTE = 60_000_000


def _books(**policy: object) -> Bookkeeper:
    return Bookkeeper(RetryPolicy(**policy), Observer("local"))  # type: ignore[arg-type]


def _fire(**fields: object) -> FireJob:
    return FireJob(7, "s", "tick", "p", RecordingTarget(), 3, **fields)  # type: ignore[arg-type]


def _retry(attempts: int) -> RetryJob:
    return RetryJob(9, "s", "tick", "p", RecordingTarget(), attempts, T)


def test_a_delivered_fire_is_one_history_row_and_its_row_advances() -> None:
    outcome = Outcome()
    job = _fire(deliver=(T,), next_us=T + 5 * MINUTE)
    assert _books().record_fire(job, [None], outcome, AT)
    assert outcome.history == [("s", "tick", "fired", AT, T, None)]
    assert outcome.advance == [(T + 5 * MINUTE, 7, 3)] and outcome.complete == []


def test_a_singles_fire_and_its_completion_are_one_row() -> None:
    outcome = Outcome()
    assert _books().record_fire(_fire(deliver=(T,), completed=True), [None], outcome, AT)
    assert outcome.history == [("s", "tick", FIRED_AND_COMPLETED, AT, T, None)]
    assert outcome.complete == [(7, 3)] and outcome.advance == []


def test_missed_fires_are_noted_beside_the_one_delivered() -> None:
    missed = FireRange(
        first=datetime(2026, 3, 1, 8, 0, tzinfo=UTC),
        last=datetime(2026, 3, 1, 8, 55, tzinfo=UTC),
        size=12,
    )
    note = note_missed("tick", missed, MisfirePolicy.LATEST)
    assert note is not None and note[2] == 12
    outcome = Outcome()
    job = _fire(deliver=(T,), next_us=T + 5 * MINUTE, missed=note)
    _books().record_fire(job, [None], outcome, AT)
    kinds = [row[2] for row in outcome.history]
    assert kinds == ["fired", "missed"] and "misfire policy latest" in outcome.history[1][5]


def test_a_failed_fire_becomes_a_retry_with_backoff_and_its_row_advances() -> None:
    outcome = Outcome()
    job = _fire(deliver=(T,), next_us=T + 5 * MINUTE)
    _books().record_fire(job, [DeliveryFailure("down", permanent=False)], outcome, AT)
    (retry,) = outcome.new_retries
    assert (retry.attempts, retry.last_error) == (1, "down")
    assert AT + 500_000 <= retry.next_attempt_at <= AT + 1_000_000  # 1 s, jittered to [0.5, 1)
    assert [row[2] for row in outcome.history] == ["failed"]
    assert outcome.advance == [(T + 5 * MINUTE, 7, 3)] and outcome.dead_letters == []


def test_a_refused_fire_is_dead_lettered_at_once() -> None:
    outcome = Outcome()
    job = _fire(deliver=(T,), next_us=T + 5 * MINUTE)
    _books().record_fire(job, [DeliveryFailure("bad payload", permanent=True)], outcome, AT)
    assert outcome.new_retries == []
    (letter,) = outcome.dead_letters
    assert letter.reason == "bad payload; refused by the target; not retried"
    assert [row[2] for row in outcome.history] == ["failed", "dead_lettered"]


def test_a_retry_past_its_last_attempt_is_dead_lettered_and_its_row_deleted() -> None:
    outcome = Outcome()
    job = _retry(attempts=3)
    books = _books(max_attempts=3)
    assert books.record_retry(job, [DeliveryFailure("down", permanent=False)], outcome, AT)
    assert [d[0] for d in outcome.retry_deletes] == [9] and job.next_us is None
    assert outcome.dead_letters[0].reason == "down; gave up after 4 attempt(s)"


def test_a_retry_that_would_pass_max_event_age_is_dead_lettered() -> None:
    outcome = Outcome()
    books = _books(max_event_age=timedelta(seconds=60))
    late = AT + 59 * 1_000_000  # the next retry would be past T + 60 s
    books.record_retry(_retry(attempts=1), [DeliveryFailure("x", permanent=False)], outcome, late)
    assert "max_event_age" in outcome.dead_letters[0].reason


def test_a_retry_delivered_deletes_its_row_and_says_on_which_attempt() -> None:
    outcome = Outcome()
    assert _books().record_retry(_retry(attempts=2), [None], outcome, AT)
    assert outcome.history == [("s", "tick", "fired", AT, T, "delivered on attempt 3")]
    assert [d[0] for d in outcome.retry_deletes] == [9]


def test_a_job_none_of_whose_deliveries_started_is_not_recorded() -> None:
    outcome = Outcome()
    assert not _books().record_fire(_fire(deliver=(T,)), [], outcome, AT)
    assert not _books().record_retry(_retry(attempts=1), [], outcome, AT)
    assert outcome.history == [] and outcome.advance == []


def test_backoff_is_deterministic_per_fire_and_attempt_and_capped() -> None:
    books = _books()
    assert books.backoff_us("tick@x", 3) == books.backoff_us("tick@x", 3)
    assert books.backoff_us("tick@x", 30) <= 300_000_000
