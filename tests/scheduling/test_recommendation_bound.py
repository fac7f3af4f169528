"""The ranking skips contractors who cannot make the list, and gives exactly the ranking that
working out every candidate's availability gives.

A contractor's score is at most its score for a slot on the desired day (`best_total`), which
needs no availability; the ranking looks at the `first_look` best-placed candidates, then at those
whose best could still reach the `limit`-th score. The reference here ranks every eligible
contractor from the database through the pure engine (`load_schedule`, `free_windows`,
`slot_starts`), with no cache, bound or batching.
"""

import math
import random
from collections.abc import Iterator
from datetime import date, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_redis import get_redis_connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contractors.geo import EARTH_RADIUS_MILES, haversine_miles
from contractors.models import Contractor, ContractorStatus
from scheduling.availability import Rules, free_windows, slot_starts
from scheduling.models import Job
from scheduling.recommendations import (
    SLOTS_SHOWN,
    Recommendation,
    first_look,
    horizon_days,
    near,
    recommend,
)
from scheduling.scoring import best_total, best_total_sql, score, weights
from scheduling.selectors import job_site, load_schedule, local_period
from tests.conftest import at, next_weekday
from tests.contractors.factories import ContractorFactory, TimeOffFactory
from tests.scheduling.factories import JOB_LAT, JOB_LNG, AssignmentFactory, JobFactory, north_of_job

pytestmark = pytest.mark.django_db

NY = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
FIRST = first_look(5)  # for the default limit


def every_candidate_ranked(job: Job) -> list[Recommendation]:
    """Every eligible contractor, its first three distinct slots from the pure engine, scored
    and sorted: the ranking by definition."""
    rules, site = Rules.from_settings(), job_site(job)
    duration = timedelta(minutes=job.duration_minutes)
    horizon = [job.desired_date + timedelta(days=n) for n in range(horizon_days())]
    ranked = []
    for contractor in Contractor.objects.filter(
        status=ContractorStatus.ACTIVE, deleted_at__isnull=True
    ):
        if not (contractor.matches_type(job.type) and contractor.has_skills(job.required_skills)):
            continue
        schedule = load_schedule(contractor, *local_period(contractor, horizon[0], horizon[-1]))
        slots = []
        for day in horizon:
            windows = free_windows(schedule, *local_period(contractor, day, day), site, rules)
            for slot in slot_starts(windows, duration, rules.grid):
                if not slots or slot[0] >= slots[-1][1]:
                    slots.append(slot)
        if not slots:
            continue
        days_late = max(0, (slots[0][0].astimezone(contractor.tz).date() - job.desired_date).days)
        miles = haversine_miles(contractor.lat, contractor.lng, job.lat, job.lng)
        ranked.append(
            Recommendation(
                contractor=contractor,
                score=score(
                    days_late=days_late, average_rating=contractor.average_rating, miles=miles
                ),
                miles=miles,
                slots=slots[:SLOTS_SHOWN],
                days_late=days_late,
            )
        )
    ranked.sort(key=Recommendation.sort_key)
    return ranked


def shown(ranking: list[Recommendation]) -> list[tuple]:
    return [
        (rec.contractor.pk, rec.score, rec.miles, rec.slots, rec.days_late, rec.explanation())
        for rec in ranking
    ]


@pytest.fixture(autouse=True)
def prefix(private_cache) -> Iterator[str]:
    """This run's cache prefix: no cached days left by other tests, and none left for them."""
    cache.delete_pattern("avail:*")  # only this run's keys (private_cache)
    yield private_cache
    cache.delete_pattern("avail:*")


def looked_at(prefix: str) -> set[int]:
    """Contractors whose availability the ranking worked out since `prefix` was set up (it
    cached their days)."""
    keys = get_redis_connection("default").keys(f"{prefix}:*avail:*")
    return {int(key.decode().split(":")[3]) for key in keys}


def seeded_crowd(monday: date, *, seed: int, size: int) -> None:
    """Contractors of every kind around the job: near and far, rated and not, some with the
    very same place and rating (ties), odd hours, time off and bookings elsewhere."""
    rng = random.Random(seed)
    spots = [(rng.uniform(0, 40), rng.choice([None, 3.0, 4.5, 5.0])) for _ in range(6)]
    for n in range(size):
        if n % 4 == 0:
            miles, average = rng.choice(spots)
        else:
            miles, average = rng.uniform(0, 80), rng.choice([None, 1.0, 2.5, 3.7, 4.2, 4.9, 5.0])
        tz = rng.choice([NY, NY, CHICAGO])
        weekdays = sorted(rng.sample(range(7), rng.randint(0, 6)))
        start = rng.choice([6, 8, 9, 13])
        who = ContractorFactory(
            type=rng.choice(["tile", "tile", "multi", "carpet"]),
            skills=rng.choice([["tile"], ["grout", "tile"], ["carpet", "grout", "tile"]]),
            status=rng.choice(["active"] * 8 + ["inactive"]),
            lat=north_of_job(miles),
            lng=JOB_LNG + rng.uniform(-0.05, 0.05),
            timezone=str(tz),
            average_rating=average,
            rating_count=0 if average is None else rng.randint(1, 30),
            hours=[(day, time(start), time(start + rng.choice([2, 4, 9]))) for day in weekdays],
        )
        for _ in range(rng.randint(0, 2)):
            first = monday + timedelta(days=rng.randint(-1, 10))
            TimeOffFactory(
                contractor=who,
                start=at(first, rng.choice([0, 10]), tz=tz),
                end=at(first + timedelta(days=rng.randint(0, 3)), rng.choice([12, 23]), tz=tz),
            )
        for offset in rng.sample(range(-1, 8), rng.randint(0, 3)):
            job = JobFactory(
                status="assigned",
                lat=JOB_LAT + rng.uniform(-0.3, 0.3),
                lng=JOB_LNG + rng.uniform(-0.3, 0.3),
            )
            AssignmentFactory(
                contractor=who,
                job=job,
                start=at(monday + timedelta(days=offset), rng.randint(7, 15), tz=tz),
            )


@pytest.mark.parametrize("seed", [1, 2])
def test_the_ranking_is_the_ranking_of_every_candidate(prefix, seed):
    monday = next_weekday(0)
    seeded_crowd(monday, seed=seed, size=250)
    jobs = [
        JobFactory(desired_date=monday),
        JobFactory(desired_date=monday + timedelta(days=2), required_skills=["grout", "tile"]),
        JobFactory(
            desired_date=monday, type="carpet", required_skills=["carpet"], duration_minutes=240
        ),
    ]
    for job in jobs:
        reference = every_candidate_ranked(job)
        assert len(reference) > 5
        for limit in (1, 5, 50):
            assert shown(recommend(job, limit=limit)) == shown(reference[:limit])
    # and the bound spared work: for a top five, some candidates were never looked at
    cache.delete_pattern("avail:*")
    recommend(jobs[0], limit=5)
    assert {rec.contractor.pk for rec in every_candidate_ranked(jobs[0])} - looked_at(prefix)


def test_the_best_placed_being_busy_the_others_are_looked_at():
    monday = next_weekday(0)
    # FIRST contractors on the doorstep, rated 5, with no working hours at all
    for _ in range(FIRST):
        ContractorFactory(lat=JOB_LAT, lng=JOB_LNG, average_rating=5.0, rating_count=3, hours=[])
    far = ContractorFactory(lat=north_of_job(30), lng=JOB_LNG)
    farther = ContractorFactory(lat=north_of_job(40), lng=JOB_LNG)
    job = JobFactory(desired_date=monday)

    ranked = recommend(job, limit=5)

    assert [rec.contractor.pk for rec in ranked] == [far.pk, farther.pk]


def test_contractors_who_cannot_reach_the_list_are_not_looked_at(prefix):
    monday = next_weekday(0)
    near = [
        ContractorFactory(lat=north_of_job(1), lng=JOB_LNG, average_rating=4.0, rating_count=2)
        for _ in range(FIRST)
    ]
    # 0.40 + 0.35 x 0.8 + 0.25 x 0.98 = 0.925 near; far ones at best 0.40 + 0.175 + 0.10 = 0.675
    far = [ContractorFactory(lat=north_of_job(30), lng=JOB_LNG) for _ in range(20)]
    job = JobFactory(desired_date=monday)

    ranked = recommend(job, limit=5)

    assert [rec.contractor.pk for rec in ranked] == [c.pk for c in near[:5]]
    assert {rec.score.total for rec in ranked} == {0.925}
    assert looked_at(prefix) == {c.pk for c in near}
    assert not looked_at(prefix) & {c.pk for c in far}


def test_a_first_look_ending_below_the_bar_reads_no_more_candidates(prefix):
    monday = next_weekday(0)
    near = [ContractorFactory(lat=north_of_job(1), lng=JOB_LNG) for _ in range(10)]
    far = [ContractorFactory(lat=north_of_job(30), lng=JOB_LNG) for _ in range(FIRST)]
    job = JobFactory(desired_date=monday)

    with CaptureQueriesContext(connection) as captured:
        ranked = recommend(job, limit=5)

    assert [rec.contractor.pk for rec in ranked] == [c.pk for c in near[:5]]
    # the first look: the ten near ones, then far ones by id, the last of them below the bar
    assert looked_at(prefix) == {c.pk for c in near + far[: FIRST - 10]}
    reads = [q["sql"] for q in captured.captured_queries if "contractors_contractor" in q["sql"]]
    assert len(reads) == 2  # the first look's two: those near the job, and the others


def test_a_far_contractor_with_the_better_rating_outranks_a_near_one():
    monday = next_weekday(0)
    # near: 0.40 + 0.35 x 0.2 + 0.25 x 0.98 = 0.715; 80 miles away: 0.40 + 0.35 x 1.0 = 0.75
    close = ContractorFactory(lat=north_of_job(1), lng=JOB_LNG, average_rating=1.0, rating_count=1)
    far = ContractorFactory(lat=north_of_job(80), lng=JOB_LNG, average_rating=5.0, rating_count=9)
    unrated = ContractorFactory(lat=north_of_job(90), lng=JOB_LNG)  # 0.40 + 0.175 = 0.575
    job = JobFactory(desired_date=monday)

    ranked = recommend(job, limit=3)

    assert [rec.contractor.pk for rec in ranked] == [far.pk, close.pk, unrated.pk]
    assert [rec.score.total for rec in ranked] == [0.75, 0.715, 0.575]
    assert shown(ranked) == shown(every_candidate_ranked(job))


@pytest.mark.parametrize(
    ("lat", "lng"),
    [(40.72, -73.99), (0.0, 0.0), (-33.9, 151.2), (70.0, 20.0), (89.6, 0.0), (10.0, 179.8)],
    ids=["new-york", "equator", "sydney", "arctic", "near-the-pole", "antimeridian"],
)
def test_everyone_within_fifty_miles_is_read_as_near(lat, lng):
    job = JobFactory(lat=lat, lng=lng)
    inside, outside = [], []
    for bearing in range(0, 360, 15):
        for miles in (0.5, 25.0, 49.9, 50.2, 75.0):
            there = destination(lat, lng, bearing, miles)
            assert abs(haversine_miles(*there, lat, lng) - miles) < 1e-6
            who = ContractorFactory(lat=there[0], lng=there[1])
            (inside if miles < 50 else outside).append(who.pk)

    found = set(Contractor.objects.filter(near(job)).values_list("pk", flat=True))

    assert set(inside) <= found
    assert set(outside) - found  # a box, not the circle: some beyond it are still left out


def destination(lat: float, lng: float, bearing: float, miles: float) -> tuple[float, float]:
    """Where `miles` along the great circle at `bearing` (degrees) from (lat, lng) ends."""
    phi, lmb, theta = math.radians(lat), math.radians(lng), math.radians(bearing)
    d = miles / EARTH_RADIUS_MILES
    phi2 = math.asin(math.sin(phi) * math.cos(d) + math.cos(phi) * math.sin(d) * math.cos(theta))
    lmb2 = lmb + math.atan2(
        math.sin(theta) * math.sin(d) * math.cos(phi), math.cos(d) - math.sin(phi) * math.sin(phi2)
    )
    lng2 = (math.degrees(lmb2) + 540) % 360 - 180
    return math.degrees(phi2), lng2


def test_a_tie_with_the_last_place_is_looked_at(prefix):
    monday = next_weekday(0)
    # FIRST + 1 identical contractors: the last can tie the fifth, so it is looked at
    crowd = [ContractorFactory(lat=JOB_LAT, lng=JOB_LNG) for _ in range(FIRST + 1)]
    job = JobFactory(desired_date=monday)

    ranked = recommend(job, limit=5)

    assert [rec.contractor.pk for rec in ranked] == [c.pk for c in crowd[:5]]
    assert looked_at(prefix) == {c.pk for c in crowd}


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    days_late=st.integers(min_value=0, max_value=30),
    average=st.none() | st.floats(min_value=1, max_value=5),
    miles=st.floats(min_value=0, max_value=20_000),
)
def test_the_best_total_bounds_every_score(days_late, average, miles):
    w = weights()
    best = best_total(average_rating=average, miles=miles, w=w)
    assert best == score(days_late=0, average_rating=average, miles=miles).total
    assert best >= score(days_late=days_late, average_rating=average, miles=miles).total


def test_the_database_bound_is_the_python_bound():
    rng = random.Random(3)
    for _ in range(40):
        ContractorFactory(
            lat=JOB_LAT + rng.uniform(-0.8, 0.8),
            lng=JOB_LNG + rng.uniform(-0.8, 0.8),
            average_rating=rng.choice([None, 1.0, 2.2, 3.9, 5.0]),
        )
    job = JobFactory()
    w = weights()

    rows = Contractor.objects.annotate(
        best=best_total_sql(lat=job.lat, lng=job.lng, w=w)
    ).values_list("lat", "lng", "average_rating", "best")

    for lat, lng, average, in_sql in rows:
        miles = haversine_miles(lat, lng, job.lat, job.lng)
        # unrounded in SQL, rounded to four places in Python; far off the last bits agree
        assert abs(in_sql - best_total(average_rating=average, miles=miles, w=w)) <= 0.00005 + 1e-9
    assert len({round(best, 2) for *_, best in rows}) > 10
