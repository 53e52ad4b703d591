"""The engine's bookkeeping of deliveries: rows in, rows out, no I/O.

Given the jobs a worker delivered and what each delivery came to, it writes into an ``Outcome``
the rows that one transaction will commit: the history (fired, missed, expired, completed,
failed, dead-lettered), the rows to advance or complete, the retries to create, update or
delete and the dead letters, and tells the observer (logs and metrics) what happened. The
engine only delivers and commits; ``tests/local/test_bookkeeping.py`` tests this part alone.
The embedded and the PostgreSQL engines share it (its rows are ``local._rows``' named rows).
"""

from __future__ import annotations

import zlib

from reventless._fire_jobs import DeliveryFailure, FireJob, RetryJob
from reventless._fire_rows import (
    FIRED_AND_COMPLETED,
    Advance,
    Complete,
    DeadLetterRow,
    HistoryRow,
    NewRetry,
    Outcome,
    RetryDelete,
    RetryUpdate,
    from_us,
    to_us,
)
from reventless._observe import Observer
from reventless.misfire import FireRange
from reventless.scheduler_adapter import HistoryKind, MisfirePolicy, RetryPolicy
from reventless.target import fire_id

__all__ = ("Bookkeeper", "Job", "note_expired", "note_missed")

Job = FireJob | RetryJob
_BACKOFF_CAP_S = 300.0
# History kinds as plain str: SQLite binds an exact str faster than a str subclass.
_FIRED = HistoryKind.FIRED.value
_COMPLETED = HistoryKind.COMPLETED.value
_MISSED = HistoryKind.MISSED.value
_EXPIRED = HistoryKind.EXPIRED.value


def _describe(name: str, fires: FireRange) -> str:
    first = fire_id(name, fires.first)
    if fires.size == 1:
        return f"1 fire ({first})"
    return f"{fires.size} fires from {first} to {fire_id(name, fires.last)}"


def note_missed(
    name: str, fires: FireRange | None, policy: MisfirePolicy
) -> tuple[int, str, int] | None:
    if fires is None:
        return None
    detail = f"{_describe(name, fires)} not delivered under misfire policy {policy.value}"
    return to_us(fires.last), detail, fires.size


def note_expired(name: str, fires: FireRange | None) -> tuple[int, str, int] | None:
    if fires is None:
        return None
    detail = f"{_describe(name, fires)} older than the misfire grace window"
    return to_us(fires.last), detail, fires.size


class Bookkeeper:
    """Records what deliveries came to, under one retry policy, telling ``observer``."""

    def __init__(self, retry_policy: RetryPolicy, observer: Observer) -> None:
        self.retry_policy = retry_policy
        self.max_age_us = int(retry_policy.max_event_age.total_seconds() * 1_000_000)
        self.observer = observer

    def record_fire(
        self, job: FireJob, results: list[DeliveryFailure | None], outcome: Outcome, at_us: int
    ) -> bool:
        """Record a job's deliveries; False when none was started (the job is left to run
        again)."""
        if job.deliver and not results:
            return False
        if len(results) == 1 and results[0] is None and len(job.deliver) == 1:
            self._record_one_fire(job, outcome, at_us)
            return True
        # The usual last fire (a Single's) and its completion are one row.
        merge = job.completed and job.missed is None and job.expired is None
        last = len(job.deliver) - 1
        for index, (scheduled_us, failure) in enumerate(zip(job.deliver, results, strict=False)):
            if failure is None:
                kind = FIRED_AND_COMPLETED if merge and index == last else _FIRED
                outcome.history.append(
                    HistoryRow(job.scheduler, job.name, kind, at_us, scheduled_us, None)
                )
            else:
                merge = False
                self.record_failure(outcome, job, scheduled_us, 0, failure, at_us)
        if not (merge and len(results) == len(job.deliver) and job.deliver):
            self.record_plan(job, outcome, at_us)
        if len(results) < len(job.deliver):
            # Stopped midway: the row moves to the first fire not delivered.
            job.next_us, job.completed = job.deliver[len(results)], False
        if job.completed:
            outcome.complete.append(Complete(job.row_id, job.version))
        else:
            outcome.advance.append(Advance(job.next_us, job.row_id, job.version))
        return True

    def _record_one_fire(self, job: FireJob, outcome: Outcome, at_us: int) -> None:
        """The usual job: one fire, delivered. Its rows are plain tuples (see Outcome): cheaper
        to make than NamedTuples, and soon untracked by the garbage collector."""
        usual = job.missed is None and job.expired is None
        kind = FIRED_AND_COMPLETED if job.completed and usual else _FIRED
        outcome.history.append((job.scheduler, job.name, kind, at_us, job.deliver[0], None))
        if not usual:
            self.record_plan(job, outcome, at_us)
        if job.completed:
            outcome.complete.append((job.row_id, job.version))
        else:
            outcome.advance.append((job.next_us, job.row_id, job.version))

    def record_plan(self, job: FireJob, outcome: Outcome, at_us: int) -> None:
        if job.missed is None and job.expired is None and not job.completed:
            return  # the usual fire: nothing more to record
        history = outcome.history
        for kind, outcome_name, note in (
            (_MISSED, "skipped", job.missed),
            (_EXPIRED, "missed", job.expired),
        ):
            if note is not None:
                last_us, detail, count = note
                self.observer.not_delivered(
                    scheduler=job.scheduler,
                    schedule=job.name,
                    outcome=outcome_name,
                    count=count,
                    detail=detail,
                )
                history.append((job.scheduler, job.name, kind, at_us, last_us, detail))
        if job.completed:
            history.append((job.scheduler, job.name, _COMPLETED, at_us, None, None))

    def backoff_us(self, fire: str, attempts: int) -> int:
        base = min(2.0 ** (attempts - 1), _BACKOFF_CAP_S)
        # Deterministic jitter in [0.5, 1.0) so that retries of a burst spread out.
        jitter = 0.5 + (zlib.crc32(f"{fire}#{attempts}".encode()) % 1000) / 2000
        return int(base * jitter * 1_000_000)

    def give_up_reason(
        self, failure: DeliveryFailure, attempts: int, next_at: int, scheduled_us: int
    ) -> str | None:
        if failure.permanent:
            return "refused by the target; not retried"
        if attempts - 1 >= self.retry_policy.max_attempts:
            return f"gave up after {attempts} attempt(s)"
        if next_at - scheduled_us > self.max_age_us:
            return "the next retry would pass max_event_age"
        return None

    def record_failure(
        self,
        outcome: Outcome,
        job: Job,
        scheduled_us: int,
        attempts: int,
        failure: DeliveryFailure,
        at_us: int,
    ) -> None:
        """A delivery failed after ``attempts`` earlier tries: retry it or dead-letter it."""
        attempts += 1
        error = failure.reason
        outcome.history.append(
            HistoryRow(
                job.scheduler,
                job.name,
                HistoryKind.FAILED,
                at_us,
                scheduled_us,
                f"attempt {attempts}: {error}",
            )
        )
        next_at = at_us + self.backoff_us(fire_id(job.name, from_us(scheduled_us)), attempts)
        why = self.give_up_reason(failure, attempts, next_at, scheduled_us)
        self.observer.failed(
            scheduler=job.scheduler,
            schedule=job.name,
            scheduled_us=scheduled_us,
            attempt=attempts,
            now_us=at_us,
            reason=error if why is None else f"{error}; {why}",
            dead_lettered=why is not None,
        )
        if why is not None:
            reason = f"{error}; {why}"
            outcome.dead_letters.append(
                DeadLetterRow(
                    job.scheduler, job.name, scheduled_us, job.payload, attempts, reason, at_us
                )
            )
            outcome.history.append(
                HistoryRow(
                    job.scheduler, job.name, HistoryKind.DEAD_LETTERED, at_us, scheduled_us, reason
                )
            )
            if isinstance(job, RetryJob):
                outcome.retry_deletes.append(RetryDelete(job.row_id))
                job.next_us = None
        elif isinstance(job, RetryJob):
            outcome.retry_updates.append(RetryUpdate(attempts, next_at, error, job.row_id))
            job.next_us = next_at
        else:
            outcome.new_retries.append(
                NewRetry(
                    job.scheduler, job.name, scheduled_us, job.payload, attempts, next_at, error
                )
            )

    def record_retry(
        self, job: RetryJob, results: list[DeliveryFailure | None], outcome: Outcome, at_us: int
    ) -> bool:
        if not results:
            return False
        failure = results[0]
        if failure is not None:
            self.record_failure(outcome, job, job.scheduled_us, job.attempts, failure, at_us)
            return True
        outcome.retry_deletes.append(RetryDelete(job.row_id))
        outcome.history.append(
            HistoryRow(
                job.scheduler,
                job.name,
                HistoryKind.FIRED,
                at_us,
                job.scheduled_us,
                f"delivered on attempt {job.attempts + 1}",
            )
        )
        job.next_us = None
        return True
