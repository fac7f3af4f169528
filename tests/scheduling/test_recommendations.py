"""GET /api/jobs/{id}/recommendations through the real ranking (docs/scheduling.md).

score = 0.40 x availability + 0.35 x rating + 0.25 x distance, where availability =
max(0, 1 - 0.1 x days late), rating = average / 5 (0.5 unrated), distance = clamp(1 - miles / 50,
0, 1). Every job here is the factory job (2 hours at 40.72, -73.99) wanted on a Monday a week or
two ahead; contractors work Mon-Fri 08:00-17:00 New York time unless a test says otherwise.
Contractors are put due north of the job: along a meridian the haversine distance is
R x delta-latitude (in radians), so `north_of_job(miles)` is exactly `miles` away (1 degree is
69.09 miles with R = 3958.8).
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contractors.geo import haversine_miles
from contractors.models import Contractor
from scheduling.availability import Rules, check_slot
from scheduling.models import ActiveRecommendationList, Job
from scheduling.recommendations import first_look
from scheduling.selectors import job_site, load_schedule
from tests.conftest import at, client_for, make_user, next_weekday
from tests.contractors.factories import ContractorFactory, TimeOffFactory
from tests.scheduling.factories import JOB_LNG, AssignmentFactory, JobFactory, north_of_job

pytestmark = pytest.mark.django_db

NY = ZoneInfo("America/New_York")
WEEKDAYS = [(day, time(8), time(17)) for day in range(5)]
EVERY_DAY = [(day, time(8), time(17)) for day in range(7)]


def contractor(name: str = "", *, miles: float = 0.0, average=None, count=None, **fields):
    """A tile contractor `miles` due north of the job site (0 = on the doorstep)."""
    if average is not None and count is None:
        count = 1
    return ContractorFactory(
        **({"name": name} if name else {}),
        lat=north_of_job(miles),
        lng=JOB_LNG,
        average_rating=average,
        rating_count=count or 0,
        **fields,
    )


def day_off(who: Contractor, day: date) -> None:
    TimeOffFactory(
        contractor=who, start=at(day, 0, tz=NY), end=at(day + timedelta(days=1), 0, tz=NY)
    )


def ny_slot(day: date, hour: int, minute: int = 0, hours: int = 2) -> dict[str, str]:
    start = at(day, hour, minute, tz=NY)
    return {"start": z(start), "end": z(start + timedelta(hours=hours))}


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def recommendations(client, job: Job, **params) -> list[dict]:
    response = client.get(f"/api/jobs/{job.pk}/recommendations", params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["jobId"] == job.pk
    assert [rec["rank"] for rec in body["recommendations"]] == list(
        range(1, len(body["recommendations"]) + 1)
    )
    return body["recommendations"]


@pytest.fixture
def monday() -> date:
    return next_weekday(0)


@pytest.fixture
def job(monday) -> Job:
    return JobFactory(desired_date=monday)


# --- scores -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "average", "miles", "first_day", "score", "breakdown"),
    [
        # free on the day: 0.40 x 1 + 0.35 x 4.8/5 + 0.25 x (1 - 2.3/50) = 0.40 + 0.336 + 0.2385
        pytest.param(
            {}, 4.8, 2.3, 0, 0.9745, {"availability": 1.0, "rating": 0.96, "distance": 0.954},
            id="same-day-4.8-2.3mi",
        ),
        # a day off on Monday, free Tuesday: 0.40 x 0.9 + 0.35 x 0.8 + 0.25 x 0.8 = 0.36+0.28+0.20
        pytest.param(
            {"off": True}, 4.0, 10.0, 1, 0.84,
            {"availability": 0.9, "rating": 0.8, "distance": 0.8},
            id="one-day-late-time-off-4.0-10mi",
        ),
        # no Monday hours at all: the same Tuesday, the same 0.84
        pytest.param(
            {"hours": WEEKDAYS[1:]}, 4.0, 10.0, 1, 0.84,
            {"availability": 0.9, "rating": 0.8, "distance": 0.8},
            id="one-day-late-no-monday-hours-4.0-10mi",
        ),
        # Thursdays only: 0.40 x 0.7 + 0.35 x 1 + 0.25 x 0 = 0.28 + 0.35
        pytest.param(
            {"hours": [WEEKDAYS[3]]}, 5.0, 50.0, 3, 0.63,
            {"availability": 0.7, "rating": 1.0, "distance": 0.0},
            id="three-days-late-5.0-50mi",
        ),
        # beyond 50 miles distance stays 0, the same 0.63
        pytest.param(
            {"hours": [WEEKDAYS[3]]}, 5.0, 80.0, 3, 0.63,
            {"availability": 0.7, "rating": 1.0, "distance": 0.0},
            id="three-days-late-5.0-80mi",
        ),
        # unrated on the doorstep: 0.40 + 0.35 x 0.5 + 0.25 = 0.825
        pytest.param(
            {}, None, 0.0, 0, 0.825, {"availability": 1.0, "rating": 0.5, "distance": 1.0},
            id="unrated-doorstep",
        ),
        # 25 miles, rated 1, Friday: 0.40 x 0.6 + 0.35 x 0.2 + 0.25 x 0.5 = 0.24 + 0.07 + 0.125
        pytest.param(
            {"hours": [WEEKDAYS[4]]}, 1.0, 25.0, 4, 0.435,
            {"availability": 0.6, "rating": 0.2, "distance": 0.5},
            id="four-days-late-1.0-25mi",
        ),
    ],
)  # fmt: skip
def test_score_and_breakdown_match_the_spec(
    api, job, monday, setup, average, miles, first_day, score, breakdown
):
    who = contractor(miles=miles, average=average, hours=setup.get("hours"))
    if setup.get("off"):
        day_off(who, monday)

    (rec,) = recommendations(api, job)

    assert haversine_miles(who.lat, who.lng, job.lat, job.lng) == pytest.approx(miles, abs=1e-9)
    assert rec["contractorId"] == who.pk
    assert rec["contractorName"] == who.name
    assert rec["score"] == score
    assert rec["scoreBreakdown"] == breakdown
    assert rec["distanceMiles"] == miles
    assert rec["slots"][0] == ny_slot(monday + timedelta(days=first_day), 8)


def test_ranked_best_first_and_limited(api, job, monday):
    # 0.9745, 0.84 and 0.63 from the table above, created worst first
    late = contractor("Thursdays", miles=50.0, average=5.0, hours=[WEEKDAYS[3]])
    tuesday = contractor("Tuesday", miles=10.0, average=4.0)
    day_off(tuesday, monday)
    best = contractor("Best", miles=2.3, average=4.8)

    ranked = recommendations(api, job)
    top_two = recommendations(api, job, limit=2)

    assert [(r["contractorId"], r["score"]) for r in ranked] == [
        (best.pk, 0.9745),
        (tuesday.pk, 0.84),
        (late.pk, 0.63),
    ]
    assert [r["contractorId"] for r in top_two] == [best.pk, tuesday.pk]


# --- who is a candidate -----------------------------------------------------------------------


@pytest.fixture
def crowd(monday) -> dict[str, Contractor]:
    """Everyone on the job's doorstep, unrated, free from Monday 08:00: ties, so by id."""
    everyone = {
        "tile": contractor("tile", skills=["grout", "tile"]),
        "multi": contractor("multi", type="multi", skills=["carpet", "grout", "tile"]),
        "carpet": contractor("carpet", type="carpet", skills=["carpet", "tile"]),
        "only tile skill": contractor("only tile skill", skills=["tile"]),
        "inactive": contractor("inactive", status="inactive"),
        "on leave": contractor("on leave", status="on_leave"),
        # deleted yet still marked active: the deletion alone must exclude it
        "deleted": contractor("deleted", deleted_at=timezone.now()),
        "no hours": contractor("no hours", hours=[]),
        # time off over the whole horizon, Monday to Monday + 13
        "away": contractor("away", hours=EVERY_DAY),
    }
    TimeOffFactory(
        contractor=everyone["away"],
        start=at(monday, 0, tz=NY),
        end=at(monday + timedelta(days=14), 0, tz=NY),
    )
    return everyone


@pytest.mark.parametrize(
    ("job_type", "skills", "expected"),
    [
        ("tile", ["tile"], ["tile", "multi", "only tile skill"]),
        ("tile", ["grout", "tile"], ["tile", "multi"]),
        ("carpet", ["carpet"], ["multi", "carpet"]),
        ("carpet", ["carpet", "grout"], ["multi"]),
        ("flooring", [], ["multi"]),
    ],
)
def test_candidates_are_active_of_the_type_with_the_skills_and_a_slot(
    api, crowd, monday, job_type, skills, expected
):
    job = JobFactory(desired_date=monday, type=job_type, required_skills=skills)

    ranked = recommendations(api, job, limit=50)

    assert [r["contractorName"] for r in ranked] == expected


def test_a_job_nobody_can_do_gets_an_empty_list(api, crowd, monday):
    job = JobFactory(desired_date=monday, type="flooring", required_skills=["hardwood"])

    assert recommendations(api, job) == []


@pytest.mark.parametrize(
    ("back_after_days", "expected"),
    [
        # free again on Monday + 13, the horizon's last day: 13 days late, availability 0,
        # 0 + 0.35 x 0.5 + 0.25 x 1 = 0.425
        (13, [(13, 0.425)]),
        # free again on Monday + 14: one day past the 14-day horizon
        (14, []),
    ],
)
def test_the_horizon_is_fourteen_days_from_the_desired_date(
    api, job, monday, back_after_days, expected
):
    who = contractor(hours=EVERY_DAY)
    TimeOffFactory(
        contractor=who,
        start=at(monday, 0, tz=NY),
        end=at(monday + timedelta(days=back_after_days), 0, tz=NY),
    )

    ranked = recommendations(api, job)

    assert [
        (
            (datetime.fromisoformat(r["slots"][0]["start"]).astimezone(NY).date() - monday).days,
            r["score"],
        )
        for r in ranked
    ] == expected


# --- ties -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "expected_order", "score"),
    [
        # 8 miles on Monday: 0.40 + 0.175 + 0.25 x 0.84 = 0.785;
        # doorstep on Tuesday: 0.36 + 0.175 + 0.25 = 0.785: the earlier slot wins
        pytest.param(
            [("doorstep, Tuesday", 0.0, None, 8, True), ("8 miles, Monday", 8.0, None, 8, False)],
            ["8 miles, Monday", "doorstep, Tuesday"], 0.785,
            id="earlier-first-slot-before-distance",
        ),
        # both on Monday, on the doorstep, unrated (0.825); 08:00 beats 10:00
        pytest.param(
            [("from ten", 0.0, None, 10, False), ("from eight", 0.0, None, 8, False)],
            ["from eight", "from ten"], 0.825, id="earlier-first-slot-same-day",
        ),
        # rated 5 at 14 miles: 0.40 + 0.35 + 0.25 x 0.72 = 0.93;
        # rated 4 on the doorstep: 0.40 + 0.28 + 0.25 = 0.93: both at Monday 08:00, nearer wins
        pytest.param(
            [("5 stars, 14 miles", 14.0, 5.0, 8, False), ("4 stars, doorstep", 0.0, 4.0, 8, False)],
            ["4 stars, doorstep", "5 stars, 14 miles"], 0.93, id="shorter-distance",
        ),
        # identical in everything: lower id first
        pytest.param(
            [("older", 0.0, None, 8, False), ("newer", 0.0, None, 8, False)],
            ["older", "newer"], 0.825, id="lower-id",
        ),
    ],
)  # fmt: skip
def test_ties_break_on_first_slot_then_distance_then_id(
    api, job, monday, created, expected_order, score
):
    for name, miles, average, opens_at, monday_off in created:
        who = contractor(
            name,
            miles=miles,
            average=average,
            hours=[(day, time(opens_at), time(17)) for day in range(5)],
        )
        if monday_off:
            day_off(who, monday)

    ranked = recommendations(api, job)

    assert [r["contractorName"] for r in ranked] == expected_order
    assert [r["score"] for r in ranked] == [score, score]


# --- suggested slots --------------------------------------------------------------------------


def assert_each_slot_bookable(who: Contractor, job: Job, slots: list[dict]) -> None:
    """Inside working hours, in the future, apart from each other, and accepted by the same
    check the booking service runs against the database."""
    starts = [datetime.fromisoformat(s["start"]) for s in slots]
    ends = [datetime.fromisoformat(s["end"]) for s in slots]
    for start, end in zip(starts, ends, strict=True):
        local_start, local_end = start.astimezone(NY), end.astimezone(NY)
        assert local_start.weekday() < 5
        assert local_start.date() == local_end.date()
        assert time(8) <= local_start.time() and local_end.time() <= time(17)
        assert start >= timezone.now()
        schedule = load_schedule(who, start, end)
        assert check_slot(schedule, (start, end), job_site(job), Rules.from_settings()) is None
    assert all(later >= earlier for earlier, later in zip(ends, starts[1:], strict=False))


@pytest.mark.parametrize(
    ("booked_from", "miles", "expected"),
    [
        # booking 09:00-11:00 at the job's own site: 30 min buffer, no travel -> from 11:30
        (9, 0.0, [(0, 11, 30), (0, 13, 30), (1, 8, 0)]),
        # 15 miles away: + 30 min travel at 30 mph -> from 12:00; 16:00-18:00 would end too late
        (9, 15.0, [(0, 12, 0), (0, 14, 0), (1, 8, 0)]),
        # 30 miles: + 60 min travel -> from 12:30
        (9, 30.0, [(0, 12, 30), (0, 14, 30), (1, 8, 0)]),
        # booking 13:00-15:00, 15 miles: the job must end by 12:00 and may start from 16:00,
        # too late for two hours
        (13, 15.0, [(0, 8, 0), (0, 10, 0), (1, 8, 0)]),
    ],
)
def test_slots_keep_buffer_and_travel_from_existing_bookings(
    api, job, monday, booked_from, miles, expected
):
    who = contractor()
    AssignmentFactory(
        job=JobFactory(
            desired_date=monday, status="assigned", lat=north_of_job(miles), lng=JOB_LNG
        ),
        contractor=who,
        start=at(monday, booked_from, tz=NY),
    )

    (rec,) = recommendations(api, job)

    assert rec["slots"] == [
        ny_slot(monday + timedelta(days=offset), hour, minute) for offset, hour, minute in expected
    ]
    assert_each_slot_bookable(who, job, rec["slots"])


def test_slots_are_never_in_the_past(api, job, monday, monkeypatch):
    who = contractor()
    now = at(monday, 13, 7, tz=NY)
    monkeypatch.setattr(timezone, "now", lambda: now)

    (rec,) = recommendations(api, job)

    # 13:07 rounds up to 13:15 on the 15-minute grid; 15:15-17:15 would end after hours
    assert rec["slots"] == [
        ny_slot(monday, 13, 15),
        ny_slot(monday + timedelta(days=1), 8),
        ny_slot(monday + timedelta(days=1), 10),
    ]
    # still the desired day: no availability lost
    assert rec["scoreBreakdown"]["availability"] == 1.0
    assert_each_slot_bookable(who, job, rec["slots"])


def test_slots_are_the_first_three_that_do_not_overlap(api, monday):
    who = contractor()
    job = JobFactory(desired_date=monday, duration_minutes=240)

    (rec,) = recommendations(api, job)

    # 4-hour job in 08:00-17:00: 08:00-12:00, 12:00-16:00, then Tuesday 08:00
    assert rec["slots"] == [
        ny_slot(monday, 8, hours=4),
        ny_slot(monday, 12, hours=4),
        ny_slot(monday + timedelta(days=1), 8, hours=4),
    ]
    assert_each_slot_bookable(who, job, rec["slots"])


# --- explanation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (
            {"miles": 2.3, "average": 4.8, "count": 5},
            "Free on the desired day from 08:00 {monday_tz}; rated 4.8/5 from 5 jobs; "
            "2.3 miles away.",
        ),
        (
            {"miles": 10.0, "average": 4.0, "count": 1, "off": True},
            "First free 1 day after the desired day ({tuesday:%a %d %b} 08:00 {tuesday_tz}); "
            "rated 4.0/5 from 1 job; 10.0 miles away.",
        ),
        (
            {"miles": 50.0, "hours": [WEEKDAYS[3]]},
            "First free 3 days after the desired day ({thursday:%a %d %b} 08:00 {thursday_tz}); "
            "not rated yet; 50.0 miles away.",
        ),
    ],
)
def test_explanation_says_when_how_rated_and_how_far(api, job, monday, setup, expected):
    setup = dict(setup)
    off = setup.pop("off", False)
    who = contractor(**setup)
    if off:
        day_off(who, monday)

    (rec,) = recommendations(api, job)

    tuesday, thursday = monday + timedelta(days=1), monday + timedelta(days=3)
    # The time is the contractor's local time, with its zone's abbreviation (EST or EDT).
    assert rec["explanation"] == expected.format(
        tuesday=tuesday,
        thursday=thursday,
        monday_tz=at(monday, 8, tz=NY).strftime("%Z"),
        tuesday_tz=at(tuesday, 8, tz=NY).strftime("%Z"),
        thursday_tz=at(thursday, 8, tz=NY).strftime("%Z"),
    )
    assert f"{rec['distanceMiles']:.1f} miles" in rec["explanation"]


# --- bad input and access ---------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "51", "x", "-1", "2.5"])
def test_a_bad_limit_is_a_400_on_the_limit_field(api, job, limit):
    contractor()

    response = api.get(f"/api/jobs/{job.pk}/recommendations", {"limit": limit})

    assert response.status_code == 400
    assert list(response.json()) == ["limit"]
    assert response.json()["limit"][0]
    assert not ActiveRecommendationList.objects.exists()


@pytest.mark.parametrize(("limit", "count"), [("1", 1), ("50", 3)])
def test_limit_bounds_are_accepted(api, job, limit, count):
    for _ in range(3):
        contractor()

    assert len(recommendations(api, job, limit=limit)) == count


def test_an_unknown_job_is_a_404(api):
    response = api.get("/api/jobs/987654321/recommendations")

    assert response.status_code == 404


@pytest.mark.parametrize(("role", "code"), [("anonymous", 401), ("contractor", 403)])
def test_only_dispatchers_get_recommendations(job, role, code):
    user = None
    if role == "contractor":
        user = make_user("worker", role="contractor", contractor=contractor())
    client = client_for(user)

    response = client.get(f"/api/jobs/{job.pk}/recommendations")

    assert response.status_code == code
    assert not ActiveRecommendationList.objects.exists()


# --- queries ----------------------------------------------------------------------------------


def queries_for(client, job: Job) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        recommendations(client, job)
    return [query["sql"] for query in captured.captured_queries]


def test_query_count_does_not_grow_with_the_candidates(api, monday, django_assert_max_num_queries):
    def measure() -> tuple[list[str], list[str]]:
        cache.delete_pattern("avail:*")  # only this run's keys (private_cache)
        # two fresh jobs on the same day: the second reads the days the first cached
        return (
            queries_for(api, JobFactory(desired_date=monday)),
            queries_for(api, JobFactory(desired_date=monday)),
        )

    def crowd(size: int) -> None:
        # all alike (on the doorstep, unrated, free Monday): they tie, so the bound spares
        # nobody and the ranking looks at every one of them
        while Contractor.objects.count() < size:
            contractor()

    first = first_look(5)
    crowd(first // 2)
    cold_few, warm_few = measure()
    crowd(first + 50)
    cold_more, warm_more = measure()
    crowd(first + 150)
    cold_most, warm_most = measure()

    # cold (18 with one look): token, role, own-contractor check, the job twice (view,
    # service), the best-placed candidates (two reads: near the job, the others by rating),
    # hours + time off + bookings in bulk, the active list's upsert (with the savepoints of a
    # test transaction); past `first_look` candidates a second look reads the other
    # candidates (the same two reads), then hours + time off + bookings once more, and never
    # a third time; warm spares the bulk reads
    assert len(cold_more) == len(cold_few) + 5
    assert len(cold_most) == len(cold_more)
    assert len(warm_few) == len(cold_few) - 3
    assert len(warm_more) == len(warm_most) == len(cold_more) - 6
    assert not [sql for sql in warm_most if "workinghours" in sql]
    cache.delete_pattern("avail:*")
    job = JobFactory(desired_date=monday)
    with django_assert_max_num_queries(len(cold_most)):
        ranked = recommendations(api, job, limit=50)
    assert len(ranked) == 50
    assert Contractor.objects.count() == first + 150
