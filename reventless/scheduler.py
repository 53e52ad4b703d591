"""The Scheduler component: its operations and the component itself.

``Scheduler.make(provider, target=...)`` binds a scheduler to a provider's ScheduledPublisher and a
target; ``scheduler.operations`` holds what applications call at runtime. Every input is validated
here, before any adapter sees it, so each provider refuses exactly the same things.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from reventless.aggregate import Aggregate, AggregateSpec
from reventless.clock import Clock
from reventless.errors import ScheduleNotFoundError, UsageError, ValidationError
from reventless.fire_times import (
    MAX_PREVIEW,
    FirePreview,
    as_utc,
    first_fire,
    preview,
    single_is_past,
)
from reventless.schedule import Schedule, Single, check_name, rate_text
from reventless.scheduler_adapter import (
    DeadLetter,
    HistoryEntry,
    IfExists,
    PutOutcome,
    ScheduledPublisher,
    SchedulePage,
    SchedulerProvider,
    ScheduleState,
    check_pause_note,
)
from reventless.target import Target, check_target

__all__ = ("MAX_BATCH", "Scheduler", "SchedulerOperations", "parse_fire_id")

MAX_BATCH = 10_000
MAX_PAGE = 1000
_TICK = timedelta(seconds=1)
_PREFIX = re.compile(r"[0-9A-Za-z._-]{0,64}")


class SchedulerOperations:
    """What an application does with its schedules at runtime."""

    def __init__(
        self,
        scheduler: str,
        publisher: ScheduledPublisher,
        clock: Clock,
        target: Target | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._publisher = publisher
        self._clock = clock
        # A typed target (a command topic) can tell a bad payload at create time.
        # Read the attribute, not isinstance(target, ChecksPayload): from Python 3.12 a runtime
        # Protocol check no longer sees attributes a wrapper forwards through __getattr__.
        check = getattr(target, "check_payload", None) if target is not None else None
        self._check_payload: Callable[[str], None] | None = check if callable(check) else None

    async def create_schedule(
        self, schedule: Schedule, *, if_exists: IfExists | str = IfExists.REPLACE
    ) -> PutOutcome:
        """Create a schedule; ``if_exists`` says what to do when one with its name is stored.

        ``"replace"`` (the default) replaces it whole and atomically (REPLACED); ``"keep"``
        leaves it exactly as it is (KEPT); ``"error"`` raises ``ScheduleExistsError``. A new or
        replacing schedule's intervals are anchored at this moment, so a schedule created at
        every start-up should use ``"keep"`` or ``ensure_schedule``. A Single whose minute is
        before the current minute is refused.
        :raises ValidationError: the schedule is not valid now; nothing was stored.
        :raises ScheduleExistsError: ``if_exists="error"`` and the name is taken.
        """
        policy = _if_exists(if_exists)
        now = self._clock.now()
        self._check_schedule(schedule, now, "schedule")
        return await self._publisher.put(
            self._scheduler, schedule, created_at=now, if_exists=policy
        )

    async def update_schedule(self, schedule: Schedule) -> PutOutcome:
        """Change a stored schedule in place (UPDATED): its creation instant, so an interval's
        anchor and grid, its paused state and its history are kept; its next fire is the first
        after now under the new schedule. Where ``create_schedule`` replaces and re-anchors.
        :raises ScheduleNotFoundError: no schedule of that name is stored; nothing was written.
        :raises ValidationError: the schedule is not valid now; nothing was stored.
        """
        if not isinstance(schedule, Schedule):
            raise ValidationError("schedule", schedule, "a reventless.Schedule")
        await self.get_schedule(schedule.name)
        return await self.create_schedule(schedule, if_exists=IfExists.UPDATE)

    async def ensure_schedule(self, schedule: Schedule) -> PutOutcome:
        """Create the schedule unless the very same one is stored; then leave it (UNCHANGED).

        Unlike ``create_schedule`` this keeps an interval's anchor across restarts, so a plugin
        can declare its schedules and start any number of times. A Single whose minute has
        passed and that is no longer stored because it completed (fired or expired) stays
        completed: COMPLETED, nothing is written. A past Single that never existed is refused
        as ``create_schedule`` refuses it.
        """
        if not isinstance(schedule, Schedule):
            raise ValidationError("schedule", schedule, "a reventless.Schedule")
        try:
            stored = await self.get_schedule(schedule.name)
        except ScheduleNotFoundError:
            if single_is_past(schedule, self._clock.now()) and await self._has_history(
                schedule.name
            ):
                # A Single is removed once it completes (fired or expired): done, not re-made.
                return PutOutcome.COMPLETED
            return await self.create_schedule(schedule)
        if stored.schedule == schedule:
            return PutOutcome.UNCHANGED
        return await self.create_schedule(schedule)

    async def _has_history(self, name: str) -> bool:
        """Whether the schedule ever existed; True where the adapter keeps no history (then a
        past Single that is not stored can only have completed or been deleted)."""
        try:
            return bool(await self._publisher.history(self._scheduler, name, limit=1))
        except UsageError:
            return True

    async def create_schedules(
        self, schedules: Sequence[Schedule], *, if_exists: IfExists | str = IfExists.REPLACE
    ) -> list[PutOutcome]:
        """``create_schedule`` for up to 10,000 schedules with distinct names, all or none.

        With ``if_exists="error"`` one stored name refuses the whole batch; the error's ``names``
        lists every stored one.
        """
        policy = _if_exists(if_exists)
        if isinstance(schedules, (str, bytes)) or not isinstance(schedules, Sequence):
            raise ValidationError("schedules", schedules, "a list of Schedule")
        if not 1 <= len(schedules) <= MAX_BATCH:
            raise ValidationError(
                "schedules", f"{len(schedules)} schedules", f"1 to {MAX_BATCH} schedules"
            )
        now = self._clock.now()
        seen: set[str] = set()
        for index, schedule in enumerate(schedules):
            self._check_schedule(schedule, now, f"schedules[{index}]")
            if schedule.name in seen:
                raise ValidationError(
                    f"schedules[{index}].name", schedule.name, "a name not already in this batch"
                )
            seen.add(schedule.name)
        return await self._publisher.put_many(
            self._scheduler, schedules, created_at=now, if_exists=policy
        )

    async def delete_schedule(self, name: str) -> bool:
        """Delete a schedule; True when one was deleted, False when there was none."""
        return await self._publisher.delete(self._scheduler, check_name(name), at=self._clock.now())

    async def get_schedule(self, name: str) -> ScheduleState:
        """The stored schedule and where it stands.

        :raises ScheduleNotFoundError: there is none by that name.
        """
        return await self._publisher.get(self._scheduler, check_name(name))

    async def list_schedules(
        self, *, prefix: str = "", limit: int = 100, after: str | None = None
    ) -> SchedulePage:
        """Schedules whose names start with ``prefix``, in name order, ``limit`` (1-1000) a page.

        Pass a page's ``next_token`` as ``after`` for the next page.
        """
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            raise ValidationError(
                "prefix", prefix, "up to 64 characters of letters, digits, '.', '_' or '-'"
            )
        if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
            raise ValidationError("limit", limit, f"a whole number from 1 to {MAX_PAGE}")
        if after is not None:
            check_name(after)
        return await self._publisher.list_schedules(
            self._scheduler, prefix=prefix, limit=limit, after=after
        )

    async def pause_schedule(
        self, name: str, *, reason: str | None = None, by: str | None = None
    ) -> ScheduleState:
        """Stop a schedule from firing until resumed, saying why and who.

        ``reason`` (up to 256 characters) and ``by`` (who paused it, up to 100 characters) are
        printable text on one line, or None: not given, nothing is assumed (the CLI passes the
        login name of its user as ``by``). They are stored with the schedule, so ``get_schedule``
        and ``list_schedules`` show them (``paused_at``, ``paused_by``, ``pause_reason``) until it
        is resumed, and the history's ``paused`` entry records them. Pausing a paused schedule
        changes nothing, its first reason included.
        :raises ValidationError: a bad ``reason`` or ``by``, or (AWS) one too long to fit with
            the schedule; nothing was written.
        :raises ScheduleNotFoundError: there is none by that name.
        """
        checked = check_name(name)
        reason, by = check_pause_note(reason, by)
        return await self._publisher.pause(
            self._scheduler, checked, at=self._clock.now(), reason=reason, by=by
        )

    async def resume_schedule(
        self, name: str, *, reason: str | None = None, by: str | None = None
    ) -> ScheduleState | None:
        """Fire again from the first fire after now; nothing missed while paused is caught up.

        ``reason`` and ``by`` are checked as for ``pause_schedule`` and recorded in the history's
        ``resumed`` entry (where the provider keeps a history); the pause's own are cleared.
        Returns None when the schedule completed instead (a Single whose minute passed).
        :raises ValidationError: a bad ``reason`` or ``by``; nothing was written.
        :raises ScheduleNotFoundError: there is none by that name.
        """
        checked = check_name(name)
        reason, by = check_pause_note(reason, by)
        return await self._publisher.resume(
            self._scheduler, checked, at=self._clock.now(), reason=reason, by=by
        )

    async def preview(self, name: str, count: int = 10) -> list[FirePreview]:
        """The next ``count`` (1-10,000) fires of a stored schedule; none while it is paused."""
        if type(count) is not int or not 1 <= count <= MAX_PREVIEW:
            raise ValidationError("count", count, f"a whole number from 1 to {MAX_PREVIEW}")
        state = await self.get_schedule(name)
        if state.paused or state.next_fire is None:
            return []
        # Start just before the stored next fire so a fire due now is shown too.
        return preview(
            state.schedule,
            created_at=state.created_at,
            after=min(self._clock.now(), state.next_fire - _TICK),
            count=count,
        )

    async def history(self, name: str, limit: int = 100) -> list[HistoryEntry]:
        """The recorded facts of one schedule (also after deletion), oldest first."""
        if type(limit) is not int or not 1 <= limit <= MAX_PAGE * 10:
            raise ValidationError("limit", limit, f"a whole number from 1 to {MAX_PAGE * 10}")
        return await self._publisher.history(self._scheduler, check_name(name), limit=limit)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Fires that could not be delivered, with their payloads and reasons, oldest first."""
        if type(limit) is not int or not 1 <= limit <= MAX_PAGE * 10:
            raise ValidationError("limit", limit, f"a whole number from 1 to {MAX_PAGE * 10}")
        return await self._publisher.dead_letters(self._scheduler, limit=limit)

    async def trigger_schedule(
        self, name: str, *, reason: str | None = None, by: str | None = None
    ) -> str:
        """Fire a stored schedule now, once, besides its own fires; returns the fire id.

        The fire's ``scheduledTime`` is now to the second, never a whole minute, so its fire id
        (``"name@2026-11-27T09:14:07Z"``) cannot be one of the schedule's scheduled fires. It is
        delivered, retried and dead-lettered like any fire, also while the schedule is paused.
        ``reason`` and ``by`` (checked as for ``pause_schedule``) go into the history's
        ``triggered`` entry, where the provider keeps a history.
        :raises ScheduleNotFoundError: there is none by that name.
        :raises ValidationError: a bad ``reason`` or ``by``; nothing was written.
        :raises UsageError: the provider cannot deliver an extra fire.
        """
        checked = check_name(name)
        reason, by = check_pause_note(reason, by)
        return await self._publisher.trigger(
            self._scheduler, checked, at=self._clock.now(), reason=reason, by=by
        )

    async def backfill(
        self,
        name: str,
        start: datetime,
        end: datetime,
        *,
        reason: str | None = None,
        by: str | None = None,
    ) -> list[str]:
        """Deliver the schedule's fires from ``start`` to ``end`` that were not delivered.

        Fires recorded as delivered, or already queued, are left out: running it twice
        delivers nothing new. Instants at or after the schedule's next fire (the engine's to
        deliver) and after now are left out too. ``end - start`` may span at most 10,000 of
        the schedule's instants. Returns the fire ids queued for delivery. ``reason`` and
        ``by`` go into each ``backfilled`` entry of the history.
        :raises ValidationError: ``start``/``end`` are not aware datetimes with start <= end,
            the range holds more than 10,000 instants, or a bad ``reason`` or ``by``.
        :raises ScheduleNotFoundError: there is none by that name.
        :raises UsageError: the provider keeps no record of deliveries (AWS).
        """
        check_name(name)
        first = as_utc(start, "start")
        last = as_utc(end, "end")
        if last < first:
            raise ValidationError("end", end, f"an instant at or after start ({first.isoformat()})")
        reason, by = check_pause_note(reason, by)
        return await self._publisher.backfill(
            self._scheduler, name, start=first, end=last, at=self._clock.now(), reason=reason, by=by
        )

    async def redrive(
        self,
        *,
        schedule: str | None = None,
        fire_ids: Sequence[str] | None = None,
        reason: str | None = None,
        by: str | None = None,
    ) -> list[str]:
        """Deliver dead letters again: all (no argument), one schedule's, or by fire id.

        Each dead letter sent again leaves the dead letters and is recorded as ``redriven``; a
        failure dead-letters it anew. Returns the fire ids sent again. ``reason`` and ``by`` go
        into each ``redriven`` entry of the history.
        :raises ValidationError: both ``schedule`` and ``fire_ids`` given, a bad fire id, or a
            bad ``reason`` or ``by``.
        :raises UsageError: the provider has no dead letters to send again.
        """
        if schedule is not None and fire_ids is not None:
            raise ValidationError(
                "fire_ids", fire_ids, "None when schedule is given (pass one or the other)"
            )
        if schedule is not None:
            check_name(schedule)
        ids: list[str] | None = None
        if fire_ids is not None:
            if isinstance(fire_ids, (str, bytes)) or not isinstance(fire_ids, Sequence):
                raise ValidationError("fire_ids", fire_ids, "a list of fire ids")
            if not 1 <= len(fire_ids) <= MAX_BATCH:
                raise ValidationError(
                    "fire_ids", f"{len(fire_ids)} ids", f"1 to {MAX_BATCH} fire ids"
                )
            ids = [parse_fire_id(value, f"fire_ids[{i}]")[0] for i, value in enumerate(fire_ids)]
        reason, by = check_pause_note(reason, by)
        return await self._publisher.redrive(
            self._scheduler,
            schedule=schedule,
            fire_ids=ids,
            at=self._clock.now(),
            reason=reason,
            by=by,
        )

    def _check_schedule(self, schedule: object, now: datetime, field: str) -> None:
        if not isinstance(schedule, Schedule):
            raise ValidationError(field, schedule, "a reventless.Schedule")
        if schedule.not_after is not None and first_fire(schedule, now) is None:
            raise ValidationError(
                f"{field}.not_after",
                schedule.not_after,
                "an instant at or after the schedule's next fire",
                message=(
                    f"{field}.not_after {schedule.not_after.isoformat()} of {schedule.name!r} "
                    f"leaves no fire after now ({now:%Y-%m-%d %H:%M} UTC); the schedule would "
                    "never fire"
                ),
            )
        if self._check_payload is not None:
            try:
                self._check_payload(schedule.payload)
            except ValidationError as exc:
                raise ValidationError(
                    f"{field}.payload",
                    schedule.payload,
                    exc.allowed,
                    message=(
                        f"{field}.payload of {schedule.name!r} is refused by the target: {exc}"
                    ),
                ) from exc
        if isinstance(schedule.rate, Single):
            current_minute = now.replace(second=0, microsecond=0)
            if single_is_past(schedule, now):
                raise ValidationError(
                    f"{field}.rate",
                    rate_text(schedule.rate),
                    f"a minute no earlier than now ({current_minute:%Y-%m-%d %H:%M} UTC)",
                    message=(
                        f"{field}.rate {rate_text(schedule.rate)} in {schedule.timezone} is in "
                        f"the past (now is {now:%Y-%m-%d %H:%M} UTC); a Single must be at or "
                        "after the current minute"
                    ),
                )


def parse_fire_id(value: object, field: str = "fire_id") -> tuple[str, str, datetime]:
    """(the fire id, its schedule, its scheduled time) of ``"name@2026-11-27T09:00:00Z"``.

    :raises ValidationError: naming ``field`` when the text is not a fire id.
    """
    allowed = "a fire id such as 'daily-report@2026-11-27T09:00:00Z'"
    if not isinstance(value, str) or "@" not in value:
        raise ValidationError(field, value, allowed)
    name, _, when = value.rpartition("@")
    try:
        check_name(name)
        instant = datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (ValidationError, ValueError) as exc:
        raise ValidationError(field, value, allowed) from exc
    return value, name, instant


def _if_exists(value: object) -> IfExists:
    if isinstance(value, str) and value in IfExists.__members__.values():
        return IfExists(value)
    raise ValidationError(
        "if_exists", value, "'replace', 'keep', 'error' or 'update' (reventless.IfExists)"
    )


def _check_scheduler_target(target: object) -> Target:
    """``check_target``, with the fix spelled out for an aggregate passed where its command topic
    belongs (it has commands, not fires)."""
    if isinstance(target, Aggregate):
        raise ValidationError(
            "target",
            target,
            "a Target, such as an aggregate's command_topic",
            message=(
                f"target is the Aggregate {target.name!r}, which takes commands, not fires; "
                "pass its command topic: Scheduler.make(provider, "
                "target=aggregate.command_topic), and give the schedules payloads that name a "
                f"command of {target.name!r}"
            ),
        )
    if isinstance(target, AggregateSpec):
        raise ValidationError(
            "target",
            target,
            "a Target, such as an aggregate's command_topic",
            message=(
                f"target is the AggregateSpec {target.name!r}; make the aggregate and pass its "
                "command topic: aggregate = await Aggregate.make(provider, spec), then "
                "Scheduler.make(provider, target=aggregate.command_topic)"
            ),
        )
    return check_target(target)


class Scheduler:
    """A scheduler bound to a provider and a target. Make one with ``await Scheduler.make``."""

    def __init__(self, name: str, operations: SchedulerOperations, target: Target) -> None:
        self.name = name
        self.operations = operations
        self.target = target

    @classmethod
    async def make(
        cls, provider: SchedulerProvider, *, target: Target, name: str = "default"
    ) -> Scheduler:
        """Bind a scheduler named ``name`` on ``provider`` that delivers every fire to ``target``.

        Schedule names are unique within one scheduler; several schedulers on one provider keep
        separate namespaces and targets.

        ``target`` must have ``async def deliver(self, envelope)``: a plain ``def`` is refused
        here (see ``reventless.target.check_target``), and so is an ``Aggregate``, whose
        ``command_topic`` is the target that sends it commands.
        :raises ValidationError: the name or the target is refused; nothing was attached.
        :raises UsageError: ``provider`` is not open (use it inside its ``async with`` block).
        """
        try:
            check_name(name)
        except ValidationError as exc:
            raise ValidationError("scheduler name", name, exc.allowed) from exc
        target = _check_scheduler_target(target)
        publisher = provider.scheduled_publisher()
        await publisher.attach(name, target)
        return cls(name, SchedulerOperations(name, publisher, provider.clock, target), target)
