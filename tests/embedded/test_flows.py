"""The API's core flows on the embedded default (SQLite, in-memory channel layer, local-memory
cache), the way `scripts/run` serves them: whatever PostgreSQL does that SQLite cannot (JSON
containment, the exclusion constraint, SKIP LOCKED, NOTIFY) must give the same answers here by
the embedded route (docs/architecture.md, "The embedded default").

Runs in its own session: `DJANGO_SETTINGS_MODULE=smartscheduler.settings_embedded_test pytest
tests/embedded` (scripts/test does it after the main suite).

The world: Tuesday next week, a two-hour tile job needing `tile` and `grout` at 40.72, -73.99.
Ana (tile, grout) works on the job site, Ben (tile, grout) 5 miles north, Cy (tile only) on the
job site too but lacks `grout`; all work Mon-Fri 08:00-17:00 New York time, unrated.
"""

import math
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from contractors.geo import EARTH_RADIUS_MILES
from events.relay import Relay
from tests.conftest import client_for, make_user, next_weekday
from tests.contractors.factories import ContractorFactory
from tests.scheduling.factories import AssignmentFactory, JobFactory

pytestmark = pytest.mark.django_db

JOB_LAT, JOB_LNG = 40.72, -73.99


def test_the_session_runs_on_the_embedded_stores(settings):
    assert connection.vendor == "sqlite"
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert settings.CACHES["default"]["BACKEND"].endswith("LocMemCache")


def contractor_body(name: str, skills: list[str], miles_north: float = 0.0) -> dict:
    lat = JOB_LAT + math.degrees(miles_north / EARTH_RADIUS_MILES)
    return {
        "name": name,
        "type": "tile",
        "skills": skills,
        "location": {"lat": lat, "lng": JOB_LNG, "address": f"{name}'s yard"},
        "timezone": "America/New_York",
    }


@pytest.fixture
def api():
    return client_for(make_user("dana", role="dispatcher"))


@pytest.fixture
def world(api):
    ids = {}
    for name, skills, miles in [
        ("Ana", ["tile", "grout"], 0.0),
        ("Ben", ["grout", "tile", "epoxy"], 5.0),
        ("Cy", ["tile"], 0.0),
    ]:
        response = api.post("/api/contractors", contractor_body(name, skills, miles), format="json")
        assert response.status_code == 201, response.json()
        ids[name] = response.json()["id"]
    day = next_weekday(1)
    response = api.post(
        "/api/jobs",
        {
            "type": "tile",
            "requiredSkills": ["tile", "grout"],
            "location": {"lat": JOB_LAT, "lng": JOB_LNG, "address": "2 Broadway"},
            "desiredDate": day.isoformat(),
            "durationMinutes": 120,
            "priority": "high",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    return {"job": response.json()["id"], "day": day, **ids}


def event_types(api, **query) -> list[str]:
    response = api.get("/api/events", query)
    assert response.status_code == 200
    return [e["type"] for e in response.json()["results"]]


def test_recommend_assign_reschedule_cancel_and_the_events_they_record(api, world):
    job = world["job"]
    response = api.get(f"/api/jobs/{job}/recommendations", {"limit": 5})
    assert response.status_code == 200, response.content
    recs = response.json()["recommendations"]
    # Skills are matched on SQLite too: Cy lacks `grout`; Ana is on the site, Ben 5 miles off.
    assert [r["contractorId"] for r in recs] == [world["Ana"], world["Ben"]]
    assert recs[0]["scoreBreakdown"] == {"availability": 1.0, "rating": 0.5, "distance": 1.0}
    assert recs[0]["score"] == pytest.approx(0.825)
    first, second = recs[0]["slots"][:2]

    response = api.get(
        f"/api/contractors/{world['Ana']}/availability",
        {"from": world["day"].isoformat(), "to": world["day"].isoformat(), "duration": 120},
    )
    assert response.status_code == 200
    assert response.json()["slots"][0] == first

    response = api.post(
        f"/api/jobs/{job}/assign", {"contractorId": world["Ana"], **first}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["scheduledTimeSlot"] == first

    # No exclusion constraint on SQLite: the booking service's check under the lock answers.
    other = JobFactory(desired_date=world["day"], required_skills=["tile"])
    response = api.post(
        f"/api/jobs/{other.pk}/assign", {"contractorId": world["Ana"], **first}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "slot_taken"

    response = api.post(f"/api/jobs/{job}/reschedule", second, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["scheduledTimeSlot"] == second

    response = api.post(f"/api/jobs/{job}/cancel", {"reason": "customer away"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "cancelled"

    assert Relay().drain() > 0  # the relay publishes and delivers on SQLite too
    assert event_types(api, aggregate=f"job:{job}") == [
        "JobCreated", "JobAssigned", "JobRescheduled", "JobCancelled",
    ]  # fmt: skip
    assert Relay().drain() == 0


def test_contractor_list_filters_by_skill(api, world):
    response = api.get("/api/contractors", {"skill": "grout"})
    assert response.status_code == 200
    assert sorted(c["name"] for c in response.json()["results"]) == ["Ana", "Ben"]
    response = api.get("/api/contractors", {"skill": "epoxy"})
    assert [c["name"] for c in response.json()["results"]] == ["Ben"]


def test_rating_a_completed_job_updates_the_average_through_the_relay(api):
    contractor = ContractorFactory()
    past = datetime.now(UTC) - timedelta(days=7)
    job = AssignmentFactory(
        job=JobFactory(status="completed", desired_date=past.date()),
        contractor=contractor,
        start=past,
        status="completed",
    ).job

    response = api.put(f"/api/jobs/{job.pk}/rating", {"rating": 4}, format="json")
    assert response.status_code == 201, response.json()
    Relay().drain()
    assert event_types(api, type="ContractorRated") == ["ContractorRated"]
    response = api.get(f"/api/contractors/{contractor.pk}")
    assert (response.json()["averageRating"], response.json()["ratingCount"]) == (4.0, 1)


def test_an_active_list_is_re_ranked_when_a_schedule_change_reorders_it(api, world):
    job = world["job"]
    response = api.get(f"/api/jobs/{job}/recommendations")
    assert [r["contractorId"] for r in response.json()["recommendations"]] == [
        world["Ana"], world["Ben"],
    ]  # fmt: skip
    Relay().drain()

    # Ana moves 20 miles north: Ben (5 miles) now ranks first.
    body = contractor_body("Ana", ["tile", "grout"], 20.0)
    response = api.patch(
        f"/api/contractors/{world['Ana']}", {"location": body["location"]}, format="json"
    )
    assert response.status_code == 200, response.json()
    Relay().drain()

    response = api.get("/api/events", {"type": "RecommendationsUpdated"})
    updates = response.json()["results"]
    assert len(updates) == 1
    assert updates[0]["payload"]["jobId"] == job
    assert [r["contractorId"] for r in updates[0]["payload"]["recommendations"]] == [
        world["Ben"], world["Ana"],
    ]  # fmt: skip
