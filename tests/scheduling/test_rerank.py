"""Active recommendation lists and their live re-ranking (docs/scheduling.md, docs/events.md).

A recommendation request makes the job's list active for 30 minutes, until the job is assigned or
cancelled. When a rating, schedule change or booking changes the ranking of an active list, the
relay's `scheduling.rerank` handler re-ranks it and records one `RecommendationsUpdated` to the
job's dispatch group; anything else records nothing, however often it is delivered.

The world: an open two-hour tile job on a Monday at 40.72, -73.99 and, working Mon-Fri
08:00-17:00 New York time (score = 0.40 x availability + 0.35 x rating + 0.25 x distance):
- B, 5 miles north, rated 4 once: 0.40 + 0.35 x 0.8 + 0.25 x 0.9 = 0.40 + 0.28 + 0.225 = 0.905
- A, on the job site, unrated:      0.40 + 0.35 x 0.5 + 0.25 x 1   = 0.40 + 0.175 + 0.25 = 0.825
- E, 10 miles north, unrated:       0.40 + 0.175 + 0.25 x 0.8            = 0.775
- C, a carpet contractor on the job site: never a candidate for tile.
B (two), E and C (one each) have completed jobs in the past, to be rated.
"""

from datetime import time, timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from contractors.models import Contractor
from contractors.services import (
    Location,
    Window,
    add_time_off,
    create_contractor,
    delete_contractor,
    set_working_hours,
    update_contractor,
)
from events.models import Subscriber
from events.relay import Relay
from scheduling.models import ActiveRecommendationList, Job
from scheduling.services import assign_job, cancel_job, rate_job, recommend_for_job, update_job
from tests.conftest import at, events_of, next_weekday
from tests.contractors.factories import ContractorFactory, RatingFactory
from tests.scheduling.factories import JOB_LAT, JOB_LNG, JobFactory, north_of_job
from tests.scheduling.support import NY, completed_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def w() -> SimpleNamespace:
    monday = next_weekday(0)
    a = ContractorFactory(name="A", lat=JOB_LAT, lng=JOB_LNG)
    b = ContractorFactory(
        name="B", lat=north_of_job(5), lng=JOB_LNG, average_rating=4.0, rating_count=1
    )
    e = ContractorFactory(name="E", lat=north_of_job(10), lng=JOB_LNG)
    c = ContractorFactory(name="C", type="carpet", skills=["carpet"], lat=JOB_LAT, lng=JOB_LNG)
    b_rated, b_unrated = completed_job(b, 9), completed_job(b, 13)
    RatingFactory(contractor=b, job_id=b_rated.pk, stars=4)
    return SimpleNamespace(
        monday=monday,
        job=JobFactory(desired_date=monday),
        a=a,
        b=b,
        c=c,
        e=e,
        b_unrated=b_unrated,
        e_job=completed_job(e, 9),
        c_job=completed_job(c, 9),
    )


def ranking(*rows: tuple[Contractor, float]) -> list[dict]:
    return [
        {"rank": rank, "contractorId": who.pk, "score": score}
        for rank, (who, score) in enumerate(rows, start=1)
    ]


def by_name(w, rows: list[tuple[str, float]]) -> list[dict]:
    return ranking(*[(getattr(w, name), score) for name, score in rows])


def initial(w) -> list[dict]:
    return ranking((w.b, 0.905), (w.a, 0.825), (w.e, 0.775))


def active_ranking(job: Job) -> list[dict]:
    return ActiveRecommendationList.objects.get(job=job).ranking


def redeliver_everything() -> None:
    """As after a relay died between delivering and moving the positions: every subscriber
    back at the start of the log."""
    Subscriber.objects.update(position=0)


# --- activation -------------------------------------------------------------------------------


def test_a_request_activates_the_list_for_thirty_minutes(w, monkeypatch):
    first = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: first)
    recommend_for_job(job_id=w.job.pk)
    activated = ActiveRecommendationList.objects.get(job=w.job)

    later = first + timedelta(minutes=10)
    monkeypatch.setattr(timezone, "now", lambda: later)
    recommend_for_job(job_id=w.job.pk, limit=2)
    renewed = ActiveRecommendationList.objects.get(job=w.job)

    assert (activated.limit, activated.ranking) == (5, initial(w))
    assert (activated.activated_at, activated.expires_at) == (first, first + timedelta(minutes=30))
    # asking again renews the list with the new limit
    assert (renewed.pk, renewed.limit, renewed.ranking) == (
        activated.pk,
        2,
        ranking((w.b, 0.905), (w.a, 0.825)),
    )
    assert (renewed.activated_at, renewed.expires_at) == (later, later + timedelta(minutes=30))
    assert events_of() == []  # activating is not a domain event


@pytest.mark.parametrize("status", ["assigned", "cancelled"])
def test_a_job_that_is_not_open_is_ranked_without_activating(w, status):
    job = JobFactory(desired_date=w.monday, status=status)

    ranked = recommend_for_job(job_id=job.pk)

    assert [rec.contractor.pk for rec in ranked] == [w.b.pk, w.a.pk, w.e.pk]
    assert not ActiveRecommendationList.objects.filter(job=job).exists()


def assign(w) -> None:
    start = at(w.monday, 8, tz=NY)
    assign_job(job_id=w.job.pk, contractor_id=w.a.pk, start=start, end=start + timedelta(hours=2))


def cancel(w) -> None:
    cancel_job(job_id=w.job.pk, reason="customer changed their mind")


@pytest.mark.parametrize(("end", "event"), [(assign, "JobAssigned"), (cancel, "JobCancelled")])
def test_assigning_or_cancelling_ends_the_list(w, end, event):
    recommend_for_job(job_id=w.job.pk)

    end(w)
    Relay().drain()

    assert not ActiveRecommendationList.objects.filter(job=w.job).exists()
    assert [e.type for e in events_of()] == [event]


# --- re-ranking -------------------------------------------------------------------------------


def rate_b_once_more(stars: int):
    def change(w) -> None:
        rate_job(job_id=w.b_unrated.pk, stars=stars)

    return change


def a_off_on_monday(w) -> None:
    add_time_off(
        contractor_id=w.a.pk,
        start=at(w.monday, 0, tz=NY),
        end=at(w.monday + timedelta(days=1), 0, tz=NY),
    )


def a_off_on_thursday(w) -> None:
    thursday = w.monday + timedelta(days=3)
    add_time_off(
        contractor_id=w.a.pk,
        start=at(thursday, 0, tz=NY),
        end=at(thursday + timedelta(days=1), 0, tz=NY),
    )


def a_booked_from_eight(hours: int):
    def change(w) -> None:
        other = JobFactory(desired_date=w.monday, duration_minutes=60 * hours)
        start = at(w.monday, 8, tz=NY)
        assign_job(
            job_id=other.pk, contractor_id=w.a.pk, start=start, end=start + timedelta(hours=hours)
        )

    return change


def b_status(status: str):
    def change(w) -> None:
        update_contractor(contractor_id=w.b.pk, status=status)

    return change


def b_deleted(w) -> None:
    delete_contractor(contractor_id=w.b.pk)


def new_contractor(w) -> None:
    w.n = create_contractor(
        name="N",
        type="tile",
        skills=["tile"],
        location=Location(JOB_LAT, JOB_LNG),
        timezone_name="America/New_York",
    )


def rate_c(w) -> None:
    rate_job(job_id=w.c_job.pk, stars=5)


def c_new_hours(w) -> None:
    set_working_hours(contractor_id=w.c.pk, windows=[Window(0, time(6), time(12))])


@pytest.mark.parametrize(
    ("change", "reason", "expected"),
    [
        # B rated 1 on its second job: average (4 + 1) / 2 = 2.5, 0.40 + 0.175 + 0.225 = 0.8
        pytest.param(
            rate_b_once_more(1), "ContractorRated", [("a", 0.825), ("b", 0.8), ("e", 0.775)],
            id="rating",
        ),
        # A off all Monday: first slot Tuesday, 0.36 + 0.175 + 0.25 = 0.785
        pytest.param(
            a_off_on_monday, "ScheduleUpdated", [("b", 0.905), ("a", 0.785), ("e", 0.775)],
            id="time-off",
        ),
        # A booked Monday 08:00-16:00: 16:30-17:00 is too short, first slot Tuesday: 0.785
        pytest.param(
            a_booked_from_eight(8), "JobAssigned", [("b", 0.905), ("a", 0.785), ("e", 0.775)],
            id="booking",
        ),
        # B no longer active: out of the list
        pytest.param(
            b_status("inactive"), "ScheduleUpdated", [("a", 0.825), ("e", 0.775)],
            id="inactive",
        ),
        pytest.param(
            b_status("on_leave"), "ScheduleUpdated", [("a", 0.825), ("e", 0.775)],
            id="on-leave",
        ),
        pytest.param(
            b_deleted, "ScheduleUpdated", [("a", 0.825), ("e", 0.775)],
            id="deleted",
        ),
        # a new contractor on the job site, unrated: 0.825 like A, after A on id
        pytest.param(
            new_contractor, "ScheduleUpdated",
            [("b", 0.905), ("a", 0.825), ("n", 0.825), ("e", 0.775)],
            id="new-contractor",
        ),
    ],
)  # fmt: skip
def test_a_change_to_the_ranking_records_recommendations_updated(w, change, reason, expected):
    recommend_for_job(job_id=w.job.pk)
    assert active_ranking(w.job) == initial(w)

    change(w)
    Relay().drain()

    (update,) = events_of("RecommendationsUpdated")
    payload = dict(update.payload)
    assert payload.pop("timestamp").endswith("Z")
    assert reason in payload.pop("reason")
    assert payload == {
        "jobId": w.job.pk,
        "region": "default",
        "recommendations": by_name(w, expected),
    }
    assert (update.aggregate, update.groups) == (f"job:{w.job.pk}", ["dispatch/default"])
    assert active_ranking(w.job) == by_name(w, expected)
    # Broadcast by the same drain.
    assert Subscriber.objects.get(name="realtime.broadcast").position >= update.sequence

    # delivered again (at least once): the list already shows this ranking
    redeliver_everything()
    Relay().drain()
    assert Relay().drain() == 0
    assert len(events_of("RecommendationsUpdated")) == 1


@pytest.mark.parametrize(
    "change",
    [
        # C does carpet: no tile list can change
        pytest.param(rate_c, id="rating-a-contractor-of-another-type"),
        pytest.param(c_new_hours, id="hours-of-a-contractor-of-another-type"),
        # B rated 4 again: average (4 + 4) / 2 = 4.0, score unchanged
        pytest.param(rate_b_once_more(4), id="rating-that-keeps-the-average"),
        # A's first slot is still Monday 08:00
        pytest.param(a_off_on_thursday, id="time-off-after-the-first-slot"),
        # A booked 08:00-10:00 Monday: still free from 10:30 Monday, still 0.825
        pytest.param(a_booked_from_eight(2), id="booking-that-leaves-the-desired-day-free"),
    ],
)
def test_a_change_that_keeps_the_ranking_records_nothing(w, change):
    recommend_for_job(job_id=w.job.pk)

    change(w)
    Relay().drain()

    assert events_of("RecommendationsUpdated") == []
    assert active_ranking(w.job) == initial(w)


def test_an_eligible_contractor_outside_the_list_can_enter_it(w):
    recommend_for_job(job_id=w.job.pk, limit=2)
    assert active_ranking(w.job) == ranking((w.b, 0.905), (w.a, 0.825))

    # E rated 5: 0.40 + 0.35 + 0.25 x 0.8 = 0.95, first now
    rate_job(job_id=w.e_job.pk, stars=5)
    Relay().drain()

    (update,) = events_of("RecommendationsUpdated")
    assert update.payload["recommendations"] == ranking((w.e, 0.95), (w.b, 0.905))
    assert active_ranking(w.job) == ranking((w.e, 0.95), (w.b, 0.905))


@pytest.mark.parametrize(("minutes_later", "reranked"), [(29, True), (31, False)])
def test_an_expired_list_is_not_reranked(w, monkeypatch, minutes_later, reranked):
    recommend_for_job(job_id=w.job.pk)
    later = timezone.now() + timedelta(minutes=minutes_later)
    monkeypatch.setattr(timezone, "now", lambda: later)

    rate_b_once_more(1)(w)
    Relay().drain()

    assert len(events_of("RecommendationsUpdated")) == int(reranked)
    if reranked:
        # re-ranked: A 0.825, B 0.8, E 0.775 (the "rating" case above)
        assert active_ranking(w.job) == ranking((w.a, 0.825), (w.b, 0.8), (w.e, 0.775))
    else:
        # expired lists are cleared away by the handler, not re-ranked
        assert not ActiveRecommendationList.objects.filter(job=w.job).exists()


def test_every_active_list_a_rating_touches_is_reranked(w):
    second = JobFactory(desired_date=w.monday + timedelta(days=1))
    expired = JobFactory(desired_date=w.monday)
    for job in (w.job, second, expired):
        recommend_for_job(job_id=job.pk)
    ActiveRecommendationList.objects.filter(job=expired).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    rate_b_once_more(1)(w)
    Relay().drain()

    # the same scores for the Tuesday job: everyone is free on its desired day
    updates = events_of("RecommendationsUpdated")
    assert [e.payload["jobId"] for e in updates] == [w.job.pk, second.pk]
    for event in updates:
        assert event.payload["recommendations"] == ranking((w.a, 0.825), (w.b, 0.8), (w.e, 0.775))
    assert not ActiveRecommendationList.objects.filter(job=expired).exists()


@pytest.mark.django_db(transaction=True)
def test_end_to_end_with_real_commits(w, api):
    """The handlers run outside the relay's transaction: the update they record commits on its
    own and reaches the EventLog API like any other event."""
    listed = api.get(f"/api/jobs/{w.job.pk}/recommendations").json()["recommendations"]
    assert [(r["contractorId"], r["score"]) for r in listed] == [
        (w.b.pk, 0.905),
        (w.a.pk, 0.825),
        (w.e.pk, 0.775),
    ]

    assert (
        api.put(f"/api/jobs/{w.e_job.pk}/rating", {"rating": 5}, format="json").status_code == 201
    )
    Relay().drain()

    # E rated 5: 0.95, first
    (update,) = api.get("/api/events", {"type": "RecommendationsUpdated"}).json()["results"]
    assert update["aggregate"] == {"type": "job", "id": str(w.job.pk)}
    assert update["groups"] == ["dispatch/default"]
    assert update["payload"]["recommendations"] == ranking((w.e, 0.95), (w.b, 0.905), (w.a, 0.825))
    assert Contractor.objects.get(pk=w.e.pk).average_rating == 5.0


def test_a_priority_edit_reranks_nothing_and_a_ranked_field_does(w):
    recommend_for_job(job_id=w.job.pk)
    # A list whose stored order is stale shows whether an edit recomputed it.
    stale = ranking((w.a, 0.825), (w.b, 0.905), (w.e, 0.775))
    ActiveRecommendationList.objects.filter(job=w.job).update(ranking=stale)

    update_job(job_id=w.job.pk, priority="urgent")
    Relay().drain()
    assert events_of("RecommendationsUpdated") == []
    assert active_ranking(w.job) == stale

    update_job(job_id=w.job.pk, duration_minutes=90)
    Relay().drain()
    (update,) = events_of("RecommendationsUpdated")
    assert update.payload["recommendations"] == ranking((w.b, 0.905), (w.a, 0.825), (w.e, 0.775))


def twin_of_a(w) -> Contractor:
    """A2: A's twin (on the job site, unrated: 0.825 too), created after A, so a tie between
    them goes by first slot, then by id."""
    return ContractorFactory(name="A2", lat=JOB_LAT, lng=JOB_LNG)


def test_a_tied_contractor_whose_first_slot_moves_changes_places(w):
    a2 = twin_of_a(w)
    recommend_for_job(job_id=w.job.pk)
    assert active_ranking(w.job) == ranking((w.b, 0.905), (w.a, 0.825), (a2, 0.825), (w.e, 0.775))

    # A's score stays (it is still free on the desired day), but its first slot is now later
    # than A2's: the tie goes the other way.
    set_working_hours(contractor_id=w.a.pk, windows=[Window(0, time(13), time(17))])
    Relay().drain()

    expected = ranking((w.b, 0.905), (a2, 0.825), (w.a, 0.825), (w.e, 0.775))
    assert active_ranking(w.job) == expected
    assert events_of("RecommendationsUpdated")[-1].payload["recommendations"] == expected


def test_the_last_of_a_full_list_gives_way_to_a_tied_contractor_left_out(w):
    a2 = twin_of_a(w)
    recommend_for_job(job_id=w.job.pk, limit=2)
    assert active_ranking(w.job) == ranking((w.b, 0.905), (w.a, 0.825))

    set_working_hours(contractor_id=w.a.pk, windows=[Window(0, time(13), time(17))])
    Relay().drain()

    assert active_ranking(w.job) == ranking((w.b, 0.905), (a2, 0.825))


def test_editing_the_job_reranks_its_own_list(w):
    recommend_for_job(job_id=w.job.pk)

    # The site moves to E's base, 10 miles north: E 0 miles -> 0.825, A now 10 miles -> 0.775,
    # B now 5 miles away on the other side -> still 0.905.
    update_job(job_id=w.job.pk, location=Location(north_of_job(10), JOB_LNG, "New site"))
    Relay().drain()

    (update,) = events_of("RecommendationsUpdated")
    assert update.payload["reason"] == "JobUpdated"
    assert update.payload["recommendations"] == ranking((w.b, 0.905), (w.e, 0.825), (w.a, 0.775))
    assert active_ranking(w.job) == update.payload["recommendations"]
