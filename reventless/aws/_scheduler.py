"""The ScheduledPublisher adapter on EventBridge Scheduler (contract: ``scheduler_adapter``)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import anyio
import msgspec

from reventless._attachments import duplicate_scheduler
from reventless._wall_time import ceil_minute
from reventless.aws._arn import queue_arn as is_queue_arn
from reventless.aws._command_dead_letters import CommandDeadLetters, reason_of
from reventless.aws._errors import call_aws
from reventless.aws._groups import schedule_group_name
from reventless.aws._sns import MAX_SNS_MESSAGE, SnsEventTopic
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
    first_fire,
    next_fire_after,
    single_instant,
    single_is_past,
)
from reventless.rate_translation import (
    aws_schedule_fields,
    created_at_from_start_date,
    from_expression,
    rate_from_description,
)
from reventless.schedule import IntervalRate, Rate, Schedule, Single
from reventless.scheduler_adapter import (
    DeadLetter,
    HistoryEntry,
    IfExists,
    PutOutcome,
    RetryPolicy,
    SchedulePage,
    ScheduleState,
)
from reventless.target import FireEnvelope, Target, fire_id

__all__ = ("SCHEDULED_TIME", "SNS_PUBLISH", "AwsScheduledPublisher", "SqsQueueTarget")

logger = logging.getLogger("reventless.aws")

SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
# EventBridge Scheduler's Target has no SnsParameters, and SqsParameters.MessageGroupId is for
# FIFO queues: a templated SNS target cannot publish to a FIFO topic, which needs a group id.
# The universal target calls sns:Publish with the request written in Input, where the context
# attributes are replaced in string values: group and deduplication ids included.
SNS_PUBLISH = "arn:aws:scheduler:::aws-sdk:sns:publish"
_MAX_GROUP_ID = 128  # SqsParameters.MessageGroupId
_MAX_SQS_MESSAGE = 262_144  # bytes in one SQS message
_TIME_WIDTH = len("2026-11-27T09:00:00Z")
_MARK = "reventless:created_at="
_RATE_MARK = " rate="
# The pause, last in the Description: " paused_at=TIME[ by=LENGTH:BY][ reason=REASON]". Nothing
# before it can hold this mark; the reason runs to the end, so neither it nor BY is escaped.
_PAUSE_MARK = " paused_at="
_MAX_DESCRIPTION = 512  # characters in a schedule's Description
_ENCODER = msgspec.json.Encoder()
# EventBridge Scheduler: a group name is 1-64 of [0-9a-zA-Z-_.]. A joined name longer than that
# keeps a prefix and ends in "-" and 16 hex digits of the SHA-256 of the whole name.
# Undoing a failed batch: more patience than one call (throttling is likely right after a burst).
_UNDO_ATTEMPTS = 8
_UNDO_BASE_DELAY = 0.1
_UNDO_MAX_DELAY = 1.0


class SqsQueueTarget:
    """An SQS queue as the target of an AWS scheduler.

    For a FIFO queue (its name ends in ``.fifo``) each fire carries a ``MessageGroupId``:
    ``message_group_id`` when given; with a ``command_topic``, the aggregate id the payload names
    (so commands keep their order per aggregate); otherwise the schedule's name. With a
    ``command_topic`` the scheduler also refuses, at create time, payloads the aggregate cannot
    decode. Fires are delivered by EventBridge Scheduler, never by this process.
    """

    def __init__(
        self,
        queue_arn: str,
        *,
        message_group_id: str | None = None,
        command_topic: Any = None,
    ) -> None:
        if not is_queue_arn(queue_arn):
            raise ValidationError(
                "queue_arn", queue_arn, "an SQS queue ARN, arn:aws:sqs:REGION:ACCOUNT:NAME"
            )
        if message_group_id is not None and (
            not isinstance(message_group_id, str) or not 1 <= len(message_group_id) <= 128
        ):
            raise ValidationError("message_group_id", message_group_id, "1-128 characters")
        self.arn = queue_arn
        self.fifo = queue_arn.endswith(".fifo")
        self.message_group_id = message_group_id
        self.command_topic = command_topic

    def check_payload(self, payload: str) -> None:
        if self.command_topic is not None:
            self.command_topic.check_payload(payload)

    def group_id(self, schedule: Schedule) -> str | None:
        return self.group_for(schedule.name, schedule.payload)

    def group_for(self, name: str, payload: str) -> str | None:
        """The MessageGroupId of a fire of schedule ``name`` with ``payload`` (None: standard)."""
        if not self.fifo:
            return None
        if self.message_group_id is not None:
            return self.message_group_id
        if self.command_topic is not None:
            aggregate_id, _ = self.command_topic.aggregate.spec.decode_payload(payload)
            if len(aggregate_id) > _MAX_GROUP_ID:
                raise ValidationError(
                    f"{name} payload aggregateId",
                    aggregate_id,
                    f"at most {_MAX_GROUP_ID} characters: it becomes the SQS MessageGroupId",
                )
            return str(aggregate_id)
        return name

    async def deliver(self, envelope: Any) -> None:
        raise UsageError(
            "fires of an AWS scheduler are delivered by EventBridge Scheduler to the queue; "
            "consume the queue (reventless.aws.SqsCommandConsumer) instead of calling deliver"
        )


def envelope_template(schedule: Schedule) -> str:
    """The Target Input: the fire envelope with EventBridge's scheduled-time placeholder."""
    return _ENCODER.encode(
        {"schedule": schedule.name, "scheduledTime": SCHEDULED_TIME, "payload": schedule.payload}
    ).decode()


def sns_publish_template(topic: SnsEventTopic, schedule: Schedule) -> str:
    """The Input of the universal ``sns:Publish`` target: the envelope as the message, the
    schedule as the message group (fires in order), the fire id as the deduplication id."""
    return _ENCODER.encode(
        {
            "TopicArn": topic.arn,
            "Message": envelope_template(schedule),
            "MessageGroupId": schedule.name,
            "MessageDeduplicationId": f"{schedule.name}@{SCHEDULED_TIME}",
        }
    ).decode()


def _envelope_of(target: dict[str, Any]) -> Any:
    """The fire envelope a stored target carries: its Input, or, for the universal sns:Publish
    target, the Input's Message."""
    document = msgspec.json.decode(target.get("Input", ""))
    if target.get("Arn") == SNS_PUBLISH:
        if not isinstance(document, dict) or not isinstance(document.get("Message"), str):
            raise ValueError("its sns:Publish Input has no Message")
        return msgspec.json.decode(document["Message"])
    return document


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
        self._command_dead = command_dead_letters
        self._command_queues = dict(command_queues or {})
        self._group = group
        self._role_arn = role_arn
        self._dead_letter_arn = dead_letter_arn
        self._retry_policy = retry_policy
        self._clock = clock
        self._sqs = sqs_client
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
        pause: _Pause | None = None,
    ) -> dict[str, Any]:
        """The request that writes ``schedule``; ``pause`` (when paused) rides in its
        Description. :raises ValidationError: the pause does not fit in the Description."""
        target = self._target(scheduler)
        _check_envelope_size(schedule, target)
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
            "Description": _description(schedule, created_at, fields.rate_text, pause),
            "Target": aws_target,
        }
        start_date = _start_date(schedule, created_at, now)
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
            _Pause.of(state),
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
        request["StartDate"] = _start_date(state.schedule, state.created_at, now)
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
        rate, stamp = _rate_and_stamp(name, raw)
        try:
            stamp, *bounds = stamp.split(" ")
            window: dict[str, Any] = {
                key: as_utc(datetime.fromisoformat(value), key)
                for key, _, value in (bound.partition("=") for bound in bounds)
                if key in ("not_before", "not_after")
            }
            created_at = as_utc(datetime.fromisoformat(stamp), "created_at")
            envelope = _envelope_of(raw.get("Target", {}))
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
                jitter_minutes=_jitter(raw.get("FlexibleTimeWindow")),
                **window,
            )
        except (ValueError, msgspec.DecodeError) as exc:
            raise ForeignScheduleError(name, str(exc)) from None
        start_date = raw.get("StartDate")
        if isinstance(rate, IntervalRate):
            if not isinstance(start_date, datetime):
                raise ForeignScheduleError(name, "an interval without a StartDate")
            if not _on_grid(rate, start_date, created_at):
                # Changed outside reventless: the StartDate is what AWS fires by.
                created_at = created_at_from_start_date(rate, start_date)
        paused = raw.get("State") == "DISABLED"
        pause = _pause_of(name, str(raw.get("Description") or "")) if paused else None
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
        self, scheduler: str, name: str, state: str, at: datetime, pause: _Pause | None = None
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
        pause = _Pause(at=at, by=by, reason=reason)
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

    async def history(self, scheduler: str, name: str, *, limit: int = 100) -> list[HistoryEntry]:
        raise UsageError(
            "EventBridge Scheduler keeps no per-schedule history: CloudTrail records the API "
            "calls and the consumer of the target queue sees each fire"
        )

    def _target_dead_letters(self, scheduler: str) -> str | None:
        """The aggregate whose command dead-letter queue holds this scheduler's fires that
        its target's handler gave up on (the target is that aggregate's command queue)."""
        target = self._targets.get(scheduler)
        if not isinstance(target, SqsQueueTarget) or self._command_dead is None:
            return None
        aggregate = self._command_dead.aggregate_of_queue(target.arn)
        if aggregate is None or self._command_dead.dead_letter_arn(aggregate) is None:
            return None
        return aggregate

    async def dead_letters(self, scheduler: str, *, limit: int = 100) -> list[DeadLetter]:
        """The fires EventBridge could not deliver (the dead-letter queue, ``dead_letter_arn``)
        and, when the target is a command queue with a dead-letter queue, the fires its
        handler gave up on (found there, with the reason the handler gave)."""
        aggregate = self._target_dead_letters(scheduler)
        if (self._dead_letter_arn is None or self._sqs is None) and aggregate is None:
            raise UsageError(
                "dead letters on AWS are read from the dead-letter queue: pass dead_letter_arn "
                "and sqs_client to reventless.aws.provider"
            )
        letters: list[DeadLetter] = []
        if self._dead_letter_arn is not None and self._sqs is not None:
            letters = await self._undelivered(limit)
        if aggregate is not None and self._command_dead is not None:
            for _, message in await self._command_dead.messages(aggregate):
                letter = _dead_letter(message)
                if letter is None:  # a command, not a fire: command_dead_letters() has it
                    continue
                reason, receives = reason_of(message)
                letters.append(msgspec.structs.replace(letter, reason=reason, attempts=receives))
        return letters[:limit]

    async def _undelivered(self, limit: int) -> list[DeadLetter]:
        assert self._dead_letter_arn is not None
        url = await _queue_url(self._sqs, self._dead_letter_arn)
        letters: list[DeadLetter] = []
        while len(letters) < limit:
            response = await call_aws(
                "reading the dead-letter queue",
                self._sqs.receive_message,
                QueueUrl=url,
                MaxNumberOfMessages=min(10, limit - len(letters)),
                VisibilityTimeout=0,  # a look, not a take: the messages stay for others
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            for message in messages:
                letter = _dead_letter(message)
                if letter is not None and letter.fire_id not in {d.fire_id for d in letters}:
                    letters.append(letter)
            if len(messages) < 10:
                break
        return letters

    # -- repair ----------------------------------------------------------------------------------

    async def trigger(self, scheduler: str, name: str, *, at: datetime) -> str:
        """Send the schedule's fire envelope to its target now, as EventBridge would."""
        target = self._target(scheduler)
        state = await self.get(scheduler, name)
        envelope = FireEnvelope(
            schedule=name, scheduled_time=extra_fire_time(at), payload=state.schedule.payload
        )
        await self._send(target, envelope)
        return envelope.fire_id

    async def _send(self, target: SqsQueueTarget | SnsEventTopic, envelope: FireEnvelope) -> None:
        if isinstance(target, SnsEventTopic):
            await target.deliver(envelope)  # publishes as the sns:Publish target does
            return
        if self._sqs is None:
            raise UsageError(
                "sending a fire to an SQS target needs an SQS client: pass sqs_client to "
                "reventless.aws.provider"
            )
        extra: dict[str, Any] = {}
        group = target.group_for(envelope.schedule, envelope.payload)
        if group is not None:
            extra = {"MessageGroupId": group, "MessageDeduplicationId": _dedup_id(envelope)}
        await call_aws(
            f"sending fire {envelope.fire_id!r}",
            self._sqs.send_message,
            QueueUrl=await _queue_url(self._sqs, target.arn),
            MessageBody=envelope.to_json().decode(),
            **extra,
        )

    async def backfill(
        self, scheduler: str, name: str, *, start: datetime, end: datetime, at: datetime
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
    ) -> list[str]:
        """Move matching messages of the dead-letter queue back to the scheduler's target,
        and the matching fires of the target command queue's dead letters back to it."""
        target = self._target(scheduler)
        aggregate = self._target_dead_letters(scheduler)
        if (self._dead_letter_arn is None or self._sqs is None) and aggregate is None:
            raise UsageError(
                "redrive on AWS reads the dead-letter queue: pass dead_letter_arn and sqs_client "
                "to reventless.aws.provider"
            )
        wanted = None if fire_ids is None else set(fire_ids)
        sent: list[str] = []
        if aggregate is not None and self._command_dead is not None:

            def choose(message: Any) -> str | None:
                letter = _dead_letter(message)
                if letter is None or not _wanted(letter, schedule, wanted):
                    return None
                return letter.fire_id

            sent += await self._command_dead.redrive_matching(aggregate, choose)
        if self._dead_letter_arn is None or self._sqs is None:
            return sent
        return await self._redrive_undelivered(target, schedule, wanted, sent)

    async def _redrive_undelivered(
        self,
        target: SqsQueueTarget | SnsEventTopic,
        schedule: str | None,
        wanted: set[str] | None,
        sent: list[str],
    ) -> list[str]:
        """Send the matching fires EventBridge could not deliver to ``target`` again."""
        assert self._dead_letter_arn is not None
        url = await _queue_url(self._sqs, self._dead_letter_arn)
        skipped: list[str] = []  # receipt handles to make visible again
        for _ in range(_MAX_REDRIVE // 10):
            response = await call_aws(
                "reading the dead-letter queue",
                self._sqs.receive_message,
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=_REDRIVE_VISIBILITY,  # not seen again while paging through
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            for message in messages:
                letter = _dead_letter(message)
                if letter is None or not _wanted(letter, schedule, wanted):
                    skipped.append(message["ReceiptHandle"])
                    continue
                if letter.fire_id not in sent:
                    await self._send(target, _envelope_of_letter(letter))
                    sent.append(letter.fire_id)
                await call_aws(
                    "deleting a redriven dead letter",
                    self._sqs.delete_message,
                    QueueUrl=url,
                    ReceiptHandle=message["ReceiptHandle"],
                )
        for handle in skipped:
            with contextlib.suppress(ReventlessError):  # it shows again after the timeout
                await call_aws(
                    "releasing a dead letter",
                    self._sqs.change_message_visibility,
                    QueueUrl=url,
                    ReceiptHandle=handle,
                    VisibilityTimeout=0,
                )
        return sent


_MAX_REDRIVE = 10_000  # dead-letter messages looked at by one redrive
_REDRIVE_VISIBILITY = 60


def extra_fire_time(at: datetime) -> datetime:
    """The scheduled time of an extra fire at ``at``: to the second, never a whole minute, so
    its fire id is none of a schedule's (they all fire on whole minutes)."""
    instant = as_utc(at, "at").replace(microsecond=0)
    return instant + timedelta(seconds=1) if instant.second == 0 else instant


def _dedup_id(envelope: FireEnvelope) -> str:
    # An SQS deduplication id is at most 128 of [!-~]; a fire id can be longer (a long name).
    text = envelope.fire_id
    return text if len(text) <= 128 else hashlib.sha256(text.encode()).hexdigest()


def _wanted(letter: DeadLetter, schedule: str | None, fire_ids: set[str] | None) -> bool:
    if schedule is not None and letter.schedule != schedule:
        return False
    return fire_ids is None or letter.fire_id in fire_ids


def _envelope_of_letter(letter: DeadLetter) -> FireEnvelope:
    return FireEnvelope(
        schedule=letter.schedule, scheduled_time=letter.scheduled_time, payload=letter.payload
    )


def _check_envelope_size(schedule: Schedule, target: SqsQueueTarget | SnsEventTopic) -> None:
    """Refuse a payload whose fire envelope could never be delivered: JSON escaping can make a
    payload within 256 KiB too big for one SQS or SNS message."""
    size = len(envelope_template(schedule).encode()) - len(SCHEDULED_TIME) + _TIME_WIDTH
    kind, limit = (
        ("SNS", MAX_SNS_MESSAGE) if isinstance(target, SnsEventTopic) else ("SQS", _MAX_SQS_MESSAGE)
    )
    if size > limit:
        raise ValidationError(
            "payload",
            schedule.payload,
            f"a payload whose fire envelope fits one {kind} message ({limit} bytes)",
            message=(
                f"payload of {schedule.name!r} makes a {size}-byte fire envelope; an {kind} "
                f"message holds {limit} bytes, so EventBridge could never deliver it"
            ),
        )


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


def _jitter(window: object) -> int | None:
    """``jitter_minutes`` from a FlexibleTimeWindow read back: None when it is off."""
    if not isinstance(window, dict) or window.get("Mode") != "FLEXIBLE":
        return None
    minutes = window.get("MaximumWindowInMinutes")
    if type(minutes) is not int:
        raise ValueError(f"its FlexibleTimeWindow {window!r} has no MaximumWindowInMinutes")
    return minutes


def _description(
    schedule: Schedule, created_at: datetime, rate_text: str | None, pause: _Pause | None = None
) -> str:
    """The mark, the creation instant, the window and the rate as written where needed: what
    AWS does not keep otherwise (EndDate is half a minute off, StartDate gone once passed);
    then, while paused, when, by whom and why (AWS has no field for them).

    :raises ValidationError: the pause's ``reason`` (or ``by``) does not fit in the 512
        characters of a Description with the rest.
    """
    parts = [f"{_MARK}{_iso(created_at)}"]
    if schedule.not_before is not None:
        parts.append(f"not_before={_iso(schedule.not_before)}")
    if schedule.not_after is not None:
        parts.append(f"not_after={_iso(schedule.not_after)}")
    text = " ".join(parts)
    text = text if rate_text is None else f"{text}{_RATE_MARK}{rate_text}"
    if pause is None:
        return text
    full = text + pause.mark()
    if len(full) > _MAX_DESCRIPTION:
        field, value = ("reason", pause.reason) if pause.reason is not None else ("by", pause.by)
        room = _MAX_DESCRIPTION - (len(full) - len(value or ""))
        raise ValidationError(
            field,
            value,
            f"at most {max(room, 0)} characters for schedule {schedule.name!r} on AWS, where "
            f"the {field} is kept in the schedule's Description ({_MAX_DESCRIPTION} characters"
            ", shared with what reventless keeps there)",
        )
    return full


class _Pause(NamedTuple):
    """When a schedule was paused, by whom and why, as kept in its Description."""

    at: datetime
    by: str | None
    reason: str | None

    @classmethod
    def of(cls, state: ScheduleState) -> _Pause | None:
        """The pause of a state read back (None: active, or paused with nothing kept)."""
        if not state.paused or state.paused_at is None:
            return None
        return cls(at=state.paused_at, by=state.paused_by, reason=state.pause_reason)

    def mark(self) -> str:
        at = self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        by = "" if self.by is None else f" by={len(self.by)}:{self.by}"
        reason = "" if self.reason is None else f" reason={self.reason}"
        return f"{_PAUSE_MARK}{at}{by}{reason}"


def _pause_of(name: str, description: str) -> _Pause | None:
    """The pause a Description carries; None where it carries none (paused before reventless
    kept one, or outside reventless) or one that does not read back (edited outside
    reventless): the schedule itself is still read, and can be resumed."""
    _, found, text = description.partition(_PAUSE_MARK)
    if not found:
        return None
    try:
        stamp, rest = text[:_PAUSE_WIDTH], text[_PAUSE_WIDTH:]
        at = as_utc(datetime.fromisoformat(stamp), "paused_at")
        by = None
        if rest.startswith(" by="):
            size, colon, rest = rest[len(" by=") :].partition(":")
            if not colon or not size.isdigit():
                raise ValueError("its pause's by= has no length")
            by, rest = rest[: int(size)], rest[int(size) :]
        reason = None
        if rest.startswith(" reason="):
            reason, rest = rest[len(" reason=") :], ""
        if rest:
            raise ValueError(f"its pause mark ends in {rest[:40]!r}")
    except ValueError as exc:
        logger.warning("schedule %r: its Description's pause is not read: %s", name, exc)
        return None
    return _Pause(at=at, by=by, reason=reason)


_PAUSE_WIDTH = len("2026-11-27T09:00:00.000000Z")


def _start_date(schedule: Schedule, created_at: datetime, now: datetime) -> datetime | None:
    """An interval's StartDate: its first fire while that is ahead, else its next fire after
    ``now`` on the same grid (AWS refuses a StartDate more than five minutes ago). For the
    other rates, ``not_before`` while it is ahead; else None."""
    if not isinstance(schedule.rate, IntervalRate):
        low = schedule.not_before
        return low if low is not None and low > now else None
    first = first_fire(schedule, created_at)
    if first is None or first > now:
        return first
    return next_fire_after(schedule, now, created_at=created_at)


def _rate_and_stamp(name: str, raw: dict[str, Any]) -> tuple[Rate, str]:
    """The rate of a schedule read with GetSchedule and the creation instant its Description
    carries (still to be parsed). :raises ForeignScheduleError: not written by reventless."""
    expression = str(raw.get("ScheduleExpression"))
    try:
        rate = from_expression(expression)
    except ValidationError as exc:
        raise ForeignScheduleError(name, str(exc)) from None
    description = str(raw.get("Description") or "").partition(_PAUSE_MARK)[0]
    if not description.startswith(_MARK):
        raise ForeignScheduleError(name, "its Description carries no reventless mark")
    stamp, _, written = description[len(_MARK) :].partition(_RATE_MARK)
    if written:
        # The rate as written, where the expression reads back as another with its fires.
        rate = rate_from_description(expression, written) or rate
    return rate, stamp


def _on_grid(rate: IntervalRate, start_date: datetime, created_at: datetime) -> bool:
    """Whether ``start_date`` is one of the fires of an interval created at ``created_at``."""
    since = as_utc(start_date, "start_date") - ceil_minute(created_at)
    step = timedelta(minutes=rate.minutes)
    return since >= step and since % step == timedelta(0)


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


async def _queue_url(sqs: Any, arn: str) -> str:
    _, _, _, _, account, name = arn.split(":", 5)
    response = await call_aws(
        f"queue {name!r}", sqs.get_queue_url, QueueName=name, QueueOwnerAWSAccountId=account
    )
    return str(response["QueueUrl"])


def _dead_letter(message: dict[str, Any]) -> DeadLetter | None:
    """A dead letter from EventBridge Scheduler's DLQ message: the envelope as the body, the
    failure in message attributes (ERROR_CODE, ERROR_MESSAGE, RETRY_ATTEMPTS)."""
    try:
        envelope = msgspec.json.decode(message.get("Body", ""))
        scheduled = datetime.fromisoformat(str(envelope["scheduledTime"]).replace("Z", "+00:00"))
        name = str(envelope["schedule"])
        payload = str(envelope["payload"])
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        return None
    attributes = message.get("MessageAttributes", {})

    def attribute(key: str) -> str:
        return str(attributes.get(key, {}).get("StringValue", ""))

    attempts = attribute("RETRY_ATTEMPTS")
    sent = message.get("Attributes", {}).get("SentTimestamp")
    at = datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else scheduled
    return DeadLetter(
        schedule=name,
        fire_id=fire_id(name, scheduled),
        scheduled_time=scheduled,
        payload=payload,
        attempts=int(attempts) + 1 if attempts.isdigit() else 0,
        reason=f"{attribute('ERROR_CODE')}: {attribute('ERROR_MESSAGE')}".strip(": "),
        at=at,
    )
