"""The ScheduledPublisher adapter on EventBridge Scheduler (contract: ``scheduler_adapter``)."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import anyio
import msgspec

from reventless._attachments import duplicate_scheduler
from reventless._repairs import extra_fire_time
from reventless.aws._command_dead_letters import CommandDeadLetters
from reventless.aws._description import (
    PauseNote,
    jitter_of_window,
    on_grid,
    pause_of,
    rate_and_stamp,
    schedule_description,
    start_date_of,
)
from reventless.aws._errors import call_aws
from reventless.aws._fire_dead_letters import FireDeadLetters
from reventless.aws._groups import schedule_group_name
from reventless.aws._sns import SnsEventTopic
from reventless.aws._targets import (
    SCHEDULED_TIME,
    SNS_PUBLISH,
    SqsQueueTarget,
    check_envelope_size,
    envelope_of,
    envelope_template,
    sns_publish_template,
)
from reventless.clock import Clock
from reventless.command_topic import CommandTopic
from reventless.errors import (
    BackendUnavailableError,
    ConflictError,
    ForeignScheduleError,
    ReventlessError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    UsageError,
    ValidationError,
)
from reventless.fire_times import (
    as_utc,
    next_fire_after,
    single_instant,
    single_is_past,
)
from reventless.rate_translation import (
    aws_schedule_fields,
    created_at_from_start_date,
)
from reventless.schedule import IntervalRate, Schedule, Single
from reventless.scheduler_adapter import (
    DeadLetter,
    HistoryEntry,
    IfExists,
    PublisherOverview,
    PutOutcome,
    RetryPolicy,
    SchedulePage,
    ScheduleState,
)
from reventless.target import FireEnvelope, Target

__all__ = ("AwsScheduledPublisher",)

logger = logging.getLogger("reventless.aws")

_ENCODER = msgspec.json.Encoder()
# EventBridge Scheduler: a group name is 1-64 of [0-9a-zA-Z-_.]. A joined name longer than that
# keeps a prefix and ends in "-" and 16 hex digits of the SHA-256 of the whole name.
# Undoing a failed batch: more patience than one call (throttling is likely right after a burst).
_UNDO_ATTEMPTS = 8
_UNDO_BASE_DELAY = 0.1
_UNDO_MAX_DELAY = 1.0


class AwsScheduledPublisher:
    """Schedules live in EventBridge Scheduler, one schedule group per reventless scheduler."""

    def __init__(
        self,
        client: Any,
        *,
        group: str,
        role_arn: str,
        dead_letter_arn: str | None,
        retry_policy: RetryPolicy,
        clock: Clock,
        sqs_client: Any = None,
        command_queues: dict[str, str] | None = None,
        command_dead_letters: CommandDeadLetters | None = None,
    ) -> None:
        self._client = client
        self._command_queues = dict(command_queues or {})
        self._group = group
        self._role_arn = role_arn
        self._dead_letter_arn = dead_letter_arn
        self._retry_policy = retry_policy
        self._clock = clock
        self._dead_letters = FireDeadLetters(sqs_client, dead_letter_arn, command_dead_letters)
        self._targets: dict[str, SqsQueueTarget | SnsEventTopic] = {}
        self._attached: set[str] = set()
        self._groups_ready: set[str] = set()

    def group_name(self, scheduler: str) -> str:
        """The schedule group of a reventless scheduler: the provider's group for "default",
        else ``group.scheduler``; one longer than AWS allows (64) ends in a hash of the whole
        name instead, so that two schedulers never share a group."""
        return schedule_group_name(self._group, scheduler)

    async def ensure_group(self, group: str) -> None:
        if group in self._groups_ready:
            return
        try:
            await call_aws(f"schedule group {group!r}", self._client.get_schedule_group, Name=group)
        except ScheduleNotFoundError:
            # A ConflictError means someone else created it meanwhile: fine.
            with contextlib.suppress(ConflictError):
                await call_aws(
                    f"creating schedule group {group!r}",
                    self._client.create_schedule_group,
                    Name=group,
                    ClientToken=_token("group"),
                )
        self._groups_ready.add(group)

    def _aws_target(self, target: Target) -> SqsQueueTarget | SnsEventTopic:
        """What EventBridge Scheduler sends to: a queue, or an SNS FIFO topic. A command topic
        stands for its aggregate's queue (``command_queues``), so a plugin runs unchanged."""
        if isinstance(target, (SqsQueueTarget, SnsEventTopic)):
            return target
        if isinstance(target, CommandTopic):
            arn = self._command_queues.get(target.name)
            if arn is None:
                raise ValidationError(
                    "target",
                    target.name,
                    "an aggregate with a queue in the provider's command_queues",
                    message=(
                        f"the command topic of {target.name!r} has no queue on AWS; pass "
                        f"command_queues={{{target.name!r}: QUEUE_ARN}} to "
                        "reventless.aws.provider (a FIFO queue)"
                    ),
                )
            return SqsQueueTarget(arn, command_topic=target)
        raise ValidationError(
            "target",
            target,
            "an SqsQueueTarget, an aggregate's command topic with a queue in command_queues, "
            "or an event topic of the AWS provider (SNS FIFO): EventBridge Scheduler delivers "
            "fires to a queue or a topic",
        )

    async def attach(self, scheduler: str, target: Target) -> None:
        target = self._aws_target(target)
        if scheduler in self._attached:
            raise duplicate_scheduler(scheduler, self._targets.get(scheduler))
        self._attached.add(scheduler)  # before the await: two concurrent makes cannot both pass
        try:
            await self.ensure_group(self.group_name(scheduler))
        except BaseException:
            self._attached.discard(scheduler)
            raise
        self._targets[scheduler] = target

    def _target(self, scheduler: str) -> SqsQueueTarget | SnsEventTopic:
        target = self._targets.get(scheduler)
        if target is None:
            raise UsageError(f"scheduler {scheduler!r} has no target; use Scheduler.make first")
        return target

    def _request(
        self,
        scheduler: str,
        schedule: Schedule,
        created_at: datetime,
        state: str,
        now: datetime,
        pause: PauseNote | None = None,
    ) -> dict[str, Any]:
        """The request that writes ``schedule``; ``pause`` (when paused) rides in its
        Description. :raises ValidationError: the pause does not fit in the Description."""
        target = self._target(scheduler)
        check_envelope_size(schedule, target)
        fields = aws_schedule_fields(schedule, created_at=created_at)
        policy = self._retry_policy
        aws_target: dict[str, Any] = {
            "RoleArn": self._role_arn,
            "RetryPolicy": {
                "MaximumRetryAttempts": policy.max_attempts,
                "MaximumEventAgeInSeconds": int(policy.max_event_age.total_seconds()),
            },
        }
        if isinstance(target, SnsEventTopic):
            aws_target["Arn"] = SNS_PUBLISH
            aws_target["Input"] = sns_publish_template(target, schedule)
        else:
            aws_target["Arn"] = target.arn
            aws_target["Input"] = envelope_template(schedule)
            group_id = target.group_id(schedule)
            if group_id is not None:
                aws_target["SqsParameters"] = {"MessageGroupId": group_id}
        if self._dead_letter_arn is not None:
            aws_target["DeadLetterConfig"] = {"Arn": self._dead_letter_arn}
        request: dict[str, Any] = {
            "Name": schedule.name,
            "GroupName": self.group_name(scheduler),
            "ScheduleExpression": fields.expression,
            "ScheduleExpressionTimezone": fields.timezone,
            "FlexibleTimeWindow": fields.flexible_time_window,
            "ActionAfterCompletion": fields.action_after_completion,
            "State": state,
            "Description": schedule_description(schedule, created_at, fields.rate_text, pause),
            "Target": aws_target,
        }
        start_date = start_date_of(schedule, created_at, now)
        if start_date is not None:
            request["StartDate"] = start_date
        if fields.end_date is not None:
            request["EndDate"] = fields.end_date
        return request

    async def _write(self, request: dict[str, Any], if_exists: IfExists) -> PutOutcome:
        what = f"schedule {request['Name']!r} in group {request['GroupName']!r}"
        try:
            await call_aws(
                f"creating {what}",
                self._client.create_schedule,
                ClientToken=_token("create"),
                **request,
            )
            return PutOutcome.CREATED
        except ConflictError:
            # CreateSchedule refuses an existing name atomically: that is KEEP's and ERROR's check.
            if if_exists is IfExists.KEEP:
                return PutOutcome.KEPT
            if if_exists is IfExists.ERROR:
                raise ScheduleExistsError([request["Name"]]) from None
            # AWS replaces every field on update, so the whole request is sent again.
            await call_aws(
                f"replacing {what}",
                self._client.update_schedule,
                ClientToken=_token("update"),
                **request,
            )
            return PutOutcome.REPLACED

    async def put(
        self,
        scheduler: str,
        schedule: Schedule,
        *,
        created_at: datetime,
        if_exists: IfExists = IfExists.REPLACE,
    ) -> PutOutcome:
        if if_exists is IfExists.UPDATE:
            previous = await self._raw_or_none(scheduler, schedule.name)
            return await self._update(scheduler, schedule, created_at, previous)
        request = self._request(scheduler, schedule, created_at, "ENABLED", created_at)
        return await self._write(request, if_exists)

    async def _update(
        self,
        scheduler: str,
        schedule: Schedule,
        now: datetime,
        previous: dict[str, Any] | None,
    ) -> PutOutcome:
        """``IfExists.UPDATE``: the stored schedule's creation instant (its Description) and
        state are kept in the request; with none stored, a create as REPLACE writes it."""
        if previous is None:
            request = self._request(scheduler, schedule, now, "ENABLED", now)
            return await self._write(request, IfExists.REPLACE)
        state = self._state(previous)
        request = self._request(
            scheduler,
            schedule,
            state.created_at,
            "DISABLED" if state.paused else "ENABLED",
            now,
            PauseNote.of(state),
        )
        await call_aws(
            f"updating schedule {schedule.name!r} in group {request['GroupName']!r}",
            self._client.update_schedule,
            ClientToken=_token("update"),
            **request,
        )
        return PutOutcome.UPDATED

    async def put_many(
        self,
        scheduler: str,
        schedules: Sequence[Schedule],
        *,
        created_at: datetime,
        if_exists: IfExists = IfExists.REPLACE,
    ) -> list[PutOutcome]:
        # AWS has no batch call: write one by one and undo what this call did if one fails.
        requests = [
            self._request(scheduler, s, created_at, "ENABLED", created_at) for s in schedules
        ]
        if if_exists is IfExists.ERROR:
            await self._refuse_stored(scheduler, requests)
        outcomes: list[PutOutcome] = []
        written: list[_Written] = []
        try:
            for request in requests:
                # ERROR's check just read every name and found none: nothing to restore.
                previous = (
                    None
                    if if_exists is IfExists.ERROR
                    else await self._raw_or_none(scheduler, request["Name"])
                )
                try:
                    if if_exists is IfExists.UPDATE:
                        schedule = schedules[len(outcomes)]
                        outcome = await self._update(scheduler, schedule, created_at, previous)
                    else:
                        outcome = await self._write(request, if_exists)
                except BaseException as exc:
                    if _may_have_landed(exc):
                        written.append(_Written(request["Name"], previous, certain=False))
                    raise
                outcomes.append(outcome)
                if outcome is PutOutcome.KEPT:
                    continue  # this call wrote nothing there: nothing to undo
                replaced = (
                    previous if outcome in (PutOutcome.REPLACED, PutOutcome.UPDATED) else None
                )
                written.append(_Written(request["Name"], replaced, certain=True))
        except BaseException as exc:
            await self._undo_or_report(scheduler, written, exc)
            raise
        return outcomes

    async def _refuse_stored(self, scheduler: str, requests: list[dict[str, Any]]) -> None:
        """ERROR's check for the whole batch before any write, naming every stored name.

        A name created by another writer after this check still refuses the batch at its write
        (CreateSchedule is atomic) and the writes before it are undone."""
        stored = [
            request["Name"]
            for request in requests
            if await self._raw_or_none(scheduler, request["Name"]) is not None
        ]
        if stored:
            raise ScheduleExistsError(stored)

    async def _undo_or_report(
        self, scheduler: str, written: list[_Written], exc: BaseException
    ) -> None:
        """Undo the batch's writes; never silently leave some of them in place."""
        remaining = await self._undo(scheduler, written)
        if not remaining:
            return
        names = ", ".join(
            repr(item.name) + ("" if item.certain else " (if its failed write landed)")
            for item in remaining
        )
        text = (
            f"a batch create in group {self.group_name(scheduler)!r} failed ({exc}) and undoing "
            f"it failed too; these schedules remain as the batch wrote them: {names}"
        )
        if isinstance(exc, Exception):
            raise BackendUnavailableError(text) from exc
        logger.error("%s", text)  # cancelled or interrupted: that stays the error raised
        exc.add_note(text)

    async def _undo(self, scheduler: str, written: list[_Written]) -> list[_Written]:
        """Undo writes, newest first, each retried with backoff; what could not be undone."""
        remaining: list[_Written] = []
        with anyio.CancelScope(shield=True):  # a cancelled batch is still undone
            for item in reversed(written):
                try:
                    await self._undo_one(scheduler, item)
                except ReventlessError:
                    remaining.insert(0, item)
        return remaining

    async def _undo_one(self, scheduler: str, item: _Written) -> None:
        patience: dict[str, Any] = {
            "attempts": _UNDO_ATTEMPTS,
            "base_delay": _UNDO_BASE_DELAY,
            "max_delay": _UNDO_MAX_DELAY,
        }
        if item.previous is None:
            await self._delete(scheduler, item.name, **patience)
            return
        await call_aws(
            f"restoring the replaced schedule {item.name!r}",
            self._client.update_schedule,
            ClientToken=_token("restore"),
            **self._restoration(item.previous),
            **patience,
        )

    def _restoration(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The request that puts a schedule read with GetSchedule back as it was, with a
        StartDate AWS accepts: an interval's next instant on its own grid."""
        request = _as_request(raw)
        start = request.get("StartDate")
        now = self._clock.now()
        if not isinstance(start, datetime) or start > now:
            return request
        try:
            state = self._state(raw)
        except ForeignScheduleError:
            request["StartDate"] = now  # not ours: from now on, as it already was active
            return request
        request["StartDate"] = start_date_of(state.schedule, state.created_at, now)
        return request

    async def delete(self, scheduler: str, name: str, *, at: datetime) -> bool:
        return await self._delete(scheduler, name)

    async def _delete(self, scheduler: str, name: str, **retrying: Any) -> bool:
        group = self.group_name(scheduler)
        try:
            await call_aws(
                f"deleting schedule {name!r} in group {group!r}",
                self._client.delete_schedule,
                Name=name,
                GroupName=group,
                **retrying,
            )
        except ScheduleNotFoundError:
            return False  # nothing was there: deleting is idempotent
        return True

    async def _raw(self, scheduler: str, name: str) -> dict[str, Any]:
        group = self.group_name(scheduler)
        try:
            response: dict[str, Any] = await call_aws(
                f"schedule {name!r} in group {group!r}",
                self._client.get_schedule,
                Name=name,
                GroupName=group,
            )
        except ScheduleNotFoundError:
            raise ScheduleNotFoundError(name) from None
        return response

    async def _raw_or_none(self, scheduler: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._raw(scheduler, name)
        except ScheduleNotFoundError:
            return None

    def _state(self, raw: dict[str, Any]) -> ScheduleState:
        name = str(raw.get("Name"))
        rate, stamp = rate_and_stamp(name, raw)
        try:
            stamp, *bounds = stamp.split(" ")
            window: dict[str, Any] = {
                key: as_utc(datetime.fromisoformat(value), key)
                for key, _, value in (bound.partition("=") for bound in bounds)
                if key in ("not_before", "not_after")
            }
            created_at = as_utc(datetime.fromisoformat(stamp), "created_at")
            envelope = envelope_of(raw.get("Target", {}))
            if (
                not isinstance(envelope, dict)
                or envelope.get("schedule") != name
                or envelope.get("scheduledTime") != SCHEDULED_TIME
                or not isinstance(envelope.get("payload"), str)
            ):
                raise ValueError("its Input is not a reventless fire envelope")
            schedule = Schedule(
                name=name,
                rate=rate,
                payload=envelope["payload"],
                timezone=str(raw.get("ScheduleExpressionTimezone") or "UTC"),
                jitter_minutes=jitter_of_window(raw.get("FlexibleTimeWindow")),
                **window,
            )
        except (ValueError, msgspec.DecodeError) as exc:
            raise ForeignScheduleError(name, str(exc)) from None
        start_date = raw.get("StartDate")
        if isinstance(rate, IntervalRate):
            if not isinstance(start_date, datetime):
                raise ForeignScheduleError(name, "an interval without a StartDate")
            if not on_grid(rate, start_date, created_at):
                # Changed outside reventless: the StartDate is what AWS fires by.
                created_at = created_at_from_start_date(rate, start_date)
        paused = raw.get("State") == "DISABLED"
        pause = pause_of(name, str(raw.get("Description") or "")) if paused else None
        modified = raw.get("LastModificationDate") or raw.get("CreationDate")
        version = int(modified.timestamp() * 1_000_000) if isinstance(modified, datetime) else 0
        next_fire = None
        if not paused:
            if isinstance(rate, Single):
                now = self._clock.now()
                next_fire = None if single_is_past(schedule, now) else single_instant(schedule)
            else:
                next_fire = next_fire_after(schedule, self._clock.now(), created_at=created_at)
        return ScheduleState(
            schedule=schedule,
            created_at=created_at,
            paused=paused,
            next_fire=next_fire,
            version=version,
            paused_at=None if pause is None else pause.at,
            paused_by=None if pause is None else pause.by,
            pause_reason=None if pause is None else pause.reason,
        )

    async def get(self, scheduler: str, name: str) -> ScheduleState:
        return self._state(await self._raw(scheduler, name))

    async def list_schedules(
        self, scheduler: str, *, prefix: str = "", limit: int = 100, after: str | None = None
    ) -> SchedulePage:
        # ListSchedules has no order; name order and name-based paging need all names first.
        group = self.group_name(scheduler)
        names: list[str] = []
        token: str | None = None
        while True:
            request: dict[str, Any] = {"GroupName": group, "MaxResults": 100}
            if prefix:
                request["NamePrefix"] = prefix
            if token:
                request["NextToken"] = token
            response = await call_aws(
                f"listing schedules in group {group!r}", self._client.list_schedules, **request
            )
            names += [str(item["Name"]) for item in response.get("Schedules", [])]
            token = response.get("NextToken")
            if not token:
                break
        names = sorted(
            n for n in set(names) if n.startswith(prefix) and (after is None or n > after)
        )
        states: list[ScheduleState] = []
        foreign: list[str] = []
        for name in names[:limit]:
            try:
                states.append(await self.get(scheduler, name))
            except ForeignScheduleError:
                foreign.append(name)
            except ScheduleNotFoundError:
                continue  # deleted between the listing and the read
        next_token = names[limit - 1] if len(names) > limit else None
        return SchedulePage(schedules=states, next_token=next_token, foreign=foreign)

    async def _set_state(
        self, scheduler: str, name: str, state: str, at: datetime, pause: PauseNote | None = None
    ) -> ScheduleState | None:
        current = self._state(await self._raw(scheduler, name))
        wanted_paused = state == "DISABLED"
        if current.paused == wanted_paused:
            return current
        schedule = current.schedule
        if not wanted_paused and single_is_past(schedule, at):
            # Its minute passed while paused: it completes without firing.
            await self.delete(scheduler, name, at=at)
            return None
        request = self._request(scheduler, schedule, current.created_at, state, at, pause)
        await call_aws(
            f"{'pausing' if wanted_paused else 'resuming'} schedule {name!r}",
            self._client.update_schedule,
            ClientToken=_token(state.lower()),
            **request,
        )
        return await self.get(scheduler, name)

    async def pause(
        self,
        scheduler: str,
        name: str,
        *,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> ScheduleState:
        pause = PauseNote(at=at, by=by, reason=reason)
        state = await self._set_state(scheduler, name, "DISABLED", at, pause)
        assert state is not None  # pausing never completes a schedule
        return state

    async def resume(
        self,
        scheduler: str,
        name: str,
        *,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> ScheduleState | None:
        # EventBridge keeps no history: the resume's reason has nowhere to go. The pause's
        # goes with the Description rewritten without it.
        return await self._set_state(scheduler, name, "ENABLED", at)

    async def overview(self) -> PublisherOverview:
        raise UsageError(
            "not available on AWS: EventBridge Scheduler fires the schedules (there is no engine "
            "to watch) and names a long scheduler's schedule group by a hash; name the scheduler"
        )

    async def history(self, scheduler: str, name: str, *, limit: int = 100) -> list[HistoryEntry]:
        raise UsageError(
            "EventBridge Scheduler keeps no per-schedule history: CloudTrail records the API "
            "calls and the consumer of the target queue sees each fire"
        )

    async def dead_letters(self, scheduler: str, *, limit: int = 100) -> list[DeadLetter]:
        """The fires EventBridge could not deliver (the dead-letter queue, ``dead_letter_arn``)
        and, when the target is a command queue with a dead-letter queue, the fires its
        handler gave up on (found there, with the reason the handler gave)."""
        return await self._dead_letters.dead_letters(self._targets.get(scheduler), limit)

    # -- repair ----------------------------------------------------------------------------------

    async def trigger(
        self,
        scheduler: str,
        name: str,
        *,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> str:
        """Send the schedule's fire envelope to its target now, as EventBridge would (no
        history keeps the reason)."""
        target = self._target(scheduler)
        state = await self.get(scheduler, name)
        envelope = FireEnvelope(
            schedule=name, scheduled_time=extra_fire_time(at), payload=state.schedule.payload
        )
        await self._dead_letters.send(target, envelope)
        return envelope.fire_id

    async def backfill(
        self,
        scheduler: str,
        name: str,
        *,
        start: datetime,
        end: datetime,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> list[str]:
        raise UsageError(
            "EventBridge Scheduler keeps no record of which fires were delivered, so a backfill "
            "cannot tell the missed ones: send them with trigger_schedule, or from the target "
            "queue's consumer"
        )

    async def redrive(
        self,
        scheduler: str,
        *,
        schedule: str | None = None,
        fire_ids: Sequence[str] | None = None,
        at: datetime,
        reason: str | None = None,
        by: str | None = None,
    ) -> list[str]:
        """Move matching messages of the dead-letter queue back to the scheduler's target,
        and the matching fires of the target command queue's dead letters back to it."""
        return await self._dead_letters.redrive(self._target(scheduler), schedule, fire_ids)


class _Written(NamedTuple):
    """One write of a batch, for undoing it: ``previous`` is what it replaced (None: nothing);
    ``certain`` is false for a write that failed in a way that may still have landed."""

    name: str
    previous: dict[str, Any] | None
    certain: bool


def _may_have_landed(exc: BaseException) -> bool:
    # AWS refused it (invalid, conflict, denied): nothing was written. A timeout, a 5xx or a
    # cancellation leaves it open.
    return not isinstance(exc, ReventlessError) or isinstance(exc, BackendUnavailableError)


def _token(operation: str) -> str:
    """A ClientToken for one write (1-64 of [a-zA-Z0-9-_]): new per write, so that two equal
    writes (pause, resume, pause) are not taken for a replay; the retries of one write reuse it,
    so that a retried call cannot apply twice."""
    return f"{operation}-{uuid.uuid4().hex}"


def _as_request(raw: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "Name",
        "GroupName",
        "ScheduleExpression",
        "ScheduleExpressionTimezone",
        "FlexibleTimeWindow",
        "ActionAfterCompletion",
        "State",
        "Description",
        "Target",
        "StartDate",
        "EndDate",
        "KmsKeyArn",
    )
    return {key: raw[key] for key in keys if key in raw}
