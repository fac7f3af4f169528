"""Re-ranking recomputes only the active lists a change can affect, and ends exactly where
re-ranking every active list would (scheduling.services.active_lists).

The world: 30 days from a Monday a week or more away, each with two tile jobs (one also
needing grout) and one carpet job, every one with an active list of three. Tile contractors
at increasing distances (T, on the job site and rated 5, tops every tile list), a multi-trade
one, two carpet ones, and W, a tile contractor 45 miles away who makes no list. The clock is
stopped, so a recomputation at any moment ranks as at any other.
"""

from datetime import datetime, time, timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from contractors.models import Contractor
from contractors.services import (
    Location,
    Window,
    add_time_off,
    create_contractor,
    remove_time_off,
    set_working_hours,
    update_contractor,
)
from events.relay import Relay
from scheduling.handlers import ranking_changes
from scheduling.models import ActiveRecommendationList, Job
from scheduling.recommendations import recommend
from scheduling.services import (
    assign_job,
    cancel_job,
    rate_job,
    recommend_for_job,
    rerank_active_lists,
    reschedule_job,
)
from scheduling.services.active_lists import ranking_of
from tests.conftest import at, events_of, next_weekday
from tests.contractors.factories import ContractorFactory, RatingFactory
from tests.scheduling.factories import JOB_LAT, JOB_LNG, JobFactory, north_of_job
from tests.scheduling.support import NY, completed_job

pytestmark = pytest.mark.django_db

DAYS = 30
LIMIT = 3


@pytest.fixture
def frozen(monkeypatch) -> datetime:
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)
    return now


@pytest.fixture
def world(frozen) -> SimpleNamespace:
    start = next_weekday(0)
    t = ContractorFactory(name="T", lat=JOB_LAT, lng=JOB_LNG, average_rating=5.0, rating_count=1)
    RatingFactory(contractor=t, job_id=completed_job(t).pk, stars=5)
    tiles = [ContractorFactory(lat=north_of_job(2 + 3 * n), lng=JOB_LNG) for n in range(4)]
    multi = ContractorFactory(
        name="M", type="multi", skills=["carpet", "grout", "tile"], lat=north_of_job(8), lng=JOB_LNG
    )
    carpets = [
        ContractorFactory(type="carpet", skills=["carpet"], lat=north_of_job(n), lng=JOB_LNG)
        for n in (1, 4)
    ]
    w = ContractorFactory(name="W", lat=north_of_job(45), lng=JOB_LNG)
    w_job = completed_job(w)
    jobs = []
    for day in range(DAYS):
        desired = start + timedelta(days=day)
        jobs += [
            JobFactory(desired_date=desired),
            JobFactory(desired_date=desired, required_skills=["grout", "tile"]),
            JobFactory(desired_date=desired, type="carpet", required_skills=["carpet"]),
        ]
    for job in jobs:
        recommend_for_job(job_id=job.pk, limit=LIMIT)
    return SimpleNamespace(
        start=start, t=t, tiles=tiles, multi=multi, carpets=carpets, w=w, w_job=w_job, jobs=jobs
    )


def assert_every_list_is_what_a_full_recompute_gives(now: datetime) -> None:
    lists = list(ActiveRecommendationList.objects.select_related("job"))
    assert len(lists) > 0
    for active in lists:
        expected = ranking_of(recommend(active.job, limit=active.limit, now=now))
        assert active.ranking == expected, f"job {active.job_id} on {active.job.desired_date}"


def latest_event(event_type: str):
    return events_of(event_type)[-1]


def test_one_day_off_for_one_contractor_recomputes_only_the_lists_it_reaches(world, frozen):
    off_day = world.start + timedelta(days=21)  # a Monday
    add_time_off(
        contractor_id=world.t.pk,
        start=at(off_day, 0, tz=NY),
        end=at(off_day + timedelta(days=1), 0, tz=NY),
    )
    changes = ranking_changes([latest_event("ScheduleUpdated")])

    result = rerank_active_lists(changes=changes, reason="ScheduleUpdated")

    # The day off reaches local days off_day - 2 .. off_day + 3 (bookings a day either side,
    # time zones); horizons (desired .. + 13) meeting them start at days 6 .. 24: 19 days of
    # two tile lists, T in each. Carpet lists and every other day are not recomputed.
    assert len(ActiveRecommendationList.objects.all()) == 3 * DAYS
    assert result.recomputed + result.confirmed == 19 * 2
    # Lists change where T's first slot was that Monday: its own lists and the weekend's
    # before it (T does not work weekends); T's first slot is the Tuesday now. In the others
    # T keeps its score, and it is tied with no one: scoring T alone shows them unchanged, so
    # only the six are ranked afresh.
    assert (result.recomputed, result.changed) == (6, 6)
    moved = {world.start + timedelta(days=d) for d in (19, 20, 21)}
    assert {e.payload["jobId"] for e in events_of("RecommendationsUpdated")} == {
        job.pk for job in world.jobs if job.desired_date in moved and job.type == "tile"
    }
    assert_every_list_is_what_a_full_recompute_gives(frozen)


def test_a_rating_that_cannot_lift_a_contractor_into_a_full_list_recomputes_none(world, frozen):
    rate_job(job_id=world.w_job.pk, stars=1)  # W, 45 miles away: best 0.4 + 0.07 + 0.025 = 0.495
    changes = ranking_changes([latest_event("ContractorRated")])

    result = rerank_active_lists(changes=changes, reason="ContractorRated")

    assert (result.recomputed, result.changed) == (0, 0)
    assert_every_list_is_what_a_full_recompute_gives(frozen)


def test_new_hours_for_a_listed_contractor_recompute_its_lists_only(world, frozen):
    set_working_hours(
        contractor_id=world.t.pk, windows=[Window(day, time(13), time(17)) for day in range(5)]
    )
    changes = ranking_changes([latest_event("ScheduleUpdated")])

    result = rerank_active_lists(changes=changes, reason="ScheduleUpdated")

    # Every tile list is looked at, no carpet one; T's first slots move to 13:00, but it keeps
    # its score and its place at the top, so none needs ranking afresh.
    assert (result.recomputed, result.confirmed) == (0, 2 * DAYS)
    assert_every_list_is_what_a_full_recompute_gives(frozen)


def first_tile_job(world, day: int) -> Job:
    return next(
        j
        for j in world.jobs
        if j.type == "tile" and j.desired_date == world.start + timedelta(days=day)
    )


def book(world, who: Contractor, day: int, hour: int):
    job = first_tile_job(world, day)
    start = at(world.start + timedelta(days=day), hour, tz=NY)
    return assign_job(
        job_id=job.pk, contractor_id=who.pk, start=start, end=start + timedelta(hours=2)
    ), job


def test_through_the_relay_every_kind_of_change_ends_as_a_full_recompute(world, frozen):
    """Each change is delivered by the relay (its rerank handler), then every active list is
    compared with a full recompute."""
    _, booked = book(world, world.t, 3, 8)
    checks = [lambda: None]

    def reschedule() -> None:
        later = at(world.start + timedelta(days=15), 8, tz=NY)
        reschedule_job(
            job_id=booked.pk,
            contractor_id=world.tiles[0].pk,
            start=later,
            end=later + timedelta(hours=2),
        )

    off: dict = {}

    def time_off() -> None:
        day = world.start + timedelta(days=7)
        off["entry"] = add_time_off(
            contractor_id=world.tiles[0].pk,
            start=at(day, 0, tz=NY),
            end=at(day + timedelta(days=2), 0, tz=NY),
        )

    changes = [
        lambda: book(world, world.tiles[1], 8, 8),
        reschedule,
        lambda: cancel_job(job_id=booked.pk, reason="no longer needed"),
        time_off,
        lambda: remove_time_off(contractor_id=world.tiles[0].pk, time_off_id=off["entry"].pk),
        lambda: rate_job(job_id=world.w_job.pk, stars=1),
        lambda: update_contractor(contractor_id=world.t.pk, status="on_leave"),
        lambda: update_contractor(contractor_id=world.carpets[0].pk, type="multi"),
        lambda: update_contractor(
            contractor_id=world.carpets[0].pk, skills=["carpet", "grout", "tile"]
        ),
        lambda: update_contractor(contractor_id=world.multi.pk, name="Renamed"),
        lambda: set_working_hours(
            contractor_id=world.tiles[2].pk, windows=[Window(5, time(8), time(17))]
        ),
        lambda: create_contractor(
            name="N",
            type="tile",
            skills=["tile"],
            location=Location(JOB_LAT, JOB_LNG),
            timezone_name="America/New_York",
        ),
    ]
    for change in checks + changes:
        change()
        Relay().drain()
        assert_every_list_is_what_a_full_recompute_gives(frozen)
    assert len(events_of("RecommendationsUpdated")) > 0
