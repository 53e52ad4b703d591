"""Misfire planning (pure core) against plain enumeration of the fire times."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from reventless import Daily, Minutes, Schedule, Weekdays, fire_times
from reventless.misfire import FireRange, MisfirePlan, plan_misfire
from reventless.scheduler_adapter import MisfirePolicy
from tests.strategies import ZONES, hours, minutes

CREATED = datetime(2026, 3, 1, 0, 0, 20, tzinfo=UTC)

small_rates = st.one_of(
    st.builds(Minutes, st.integers(1, 600)),
    st.builds(Daily, hours, minutes),
    st.builds(Weekdays, hours, minutes),
)


def enumerate_plan(
    schedule: Schedule,
    first_due: datetime,
    now: datetime,
    grace: timedelta,
    policy: MisfirePolicy,
    limit: int,
) -> MisfirePlan:
    """The plan, by listing every due instant one by one (the slow, obvious way)."""
    later = itertools.takewhile(
        lambda t: t <= now, fire_times(schedule, created_at=CREATED, after=first_due)
    )
    due = [first_due, *later] if first_due <= now else []
    after_now = next(iter(fire_times(schedule, created_at=CREATED, after=now)), None)
    expired = [t for t in due if t < now - grace]
    window = [t for t in due if t >= now - grace]

    def as_range(items: list[datetime]) -> FireRange | None:
        return FireRange(len(items), items[0], items[-1]) if items else None

    if policy is MisfirePolicy.LATEST:
        return MisfirePlan(tuple(window[-1:]), as_range(window[:-1]), as_range(expired), after_now)
    if policy is MisfirePolicy.SKIP:
        late = now - timedelta(seconds=60)
        deliver = tuple(t for t in window if t >= late)
        missed = [t for t in window if t < late]
        return MisfirePlan(deliver, as_range(missed), as_range(expired), after_now)
    deliver = tuple(window[:limit])
    if len(window) > limit:
        return MisfirePlan(deliver, None, as_range(expired), window[limit])
    return MisfirePlan(deliver, None, as_range(expired), after_now)


@given(
    rate=small_rates,
    zone=st.sampled_from(ZONES),
    start_minutes=st.integers(0, 60 * 24 * 60),
    down_minutes=st.integers(0, 60 * 24 * 12),
    grace_minutes=st.integers(0, 60 * 24 * 8),
    policy=st.sampled_from(list(MisfirePolicy)),
    limit=st.integers(1, 40),
    seconds=st.integers(0, 59),
)
def test_plan_matches_enumeration(
    rate: Minutes | Daily | Weekdays,
    zone: str,
    start_minutes: int,
    down_minutes: int,
    grace_minutes: int,
    policy: MisfirePolicy,
    limit: int,
    seconds: int,
) -> None:
    """Every field of the plan equals what listing each missed instant gives."""
    schedule = Schedule(name="s", rate=rate, payload="p", timezone=zone)
    start = CREATED + timedelta(minutes=start_minutes)
    first_due = next(iter(fire_times(schedule, created_at=CREATED, after=start)))
    now = first_due + timedelta(minutes=down_minutes, seconds=seconds)
    grace = timedelta(minutes=grace_minutes)
    plan = plan_misfire(
        schedule,
        first_due,
        created_at=CREATED,
        now=now,
        grace=grace,
        policy=policy,
        limit=limit,
    )
    assert plan == enumerate_plan(schedule, first_due, now, grace, policy, limit)


def test_a_day_of_minutes_is_planned_without_listing_it() -> None:
    """1,440 missed minutes: one delivery, one missed range, no list of 1,439 instants."""
    schedule = Schedule(name="tick", rate=Minutes(1), payload="p")
    first_due = datetime(2026, 3, 1, 0, 2, tzinfo=UTC)  # anchor 00:01, one minute later
    now = first_due + timedelta(hours=24, seconds=30)
    plan = plan_misfire(
        schedule,
        first_due,
        created_at=CREATED,
        now=now,
        grace=timedelta(hours=25),
        policy=MisfirePolicy.LATEST,
    )
    assert plan.deliver == (datetime(2026, 3, 2, 0, 2, tzinfo=UTC),)
    assert plan.missed == FireRange(1440, first_due, datetime(2026, 3, 2, 0, 1, tzinfo=UTC))
    assert plan.expired is None
    assert plan.next_fire == datetime(2026, 3, 2, 0, 3, tzinfo=UTC)


def test_all_hands_out_bounded_chunks_and_says_where_to_continue() -> None:
    schedule = Schedule(name="tick", rate=Minutes(1), payload="p")
    first_due = datetime(2026, 3, 1, 0, 2, tzinfo=UTC)
    now = first_due + timedelta(minutes=200)
    plan = plan_misfire(
        schedule,
        first_due,
        created_at=CREATED,
        now=now,
        grace=timedelta(hours=24),
        policy=MisfirePolicy.ALL,
        limit=64,
    )
    assert len(plan.deliver) == 64
    assert plan.next_fire == first_due + timedelta(minutes=64)


def test_years_of_downtime_expire_as_one_counted_range() -> None:
    schedule = Schedule(name="d", rate=Daily(2, 30), payload="p", timezone="Europe/Berlin")
    first_due = datetime(2016, 3, 1, 1, 30, tzinfo=UTC)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    plan = plan_misfire(
        schedule,
        first_due,
        created_at=datetime(2016, 2, 1, tzinfo=UTC),
        now=now,
        grace=timedelta(hours=24),
        policy=MisfirePolicy.LATEST,
    )
    assert plan.expired is not None
    # Every day of ten years, less the ten spring-forward days whose 02:30 did not exist.
    days = (datetime(2026, 2, 28).date() - datetime(2016, 3, 1).date()).days + 1
    assert plan.expired.size == days - 10
    assert plan.deliver == (datetime(2026, 3, 1, 1, 30, tzinfo=UTC),)
