"""`GET /api/jobs?bookedFrom=&bookedTo=`: jobs by the slot they are booked for (the board's
timeline), not by the day they were wanted."""

from datetime import timedelta

import pytest

from scheduling.models import Job
from tests.conftest import at, client_for, make_user, next_weekday
from tests.contractors.factories import ContractorFactory
from tests.scheduling.factories import AssignmentFactory, JobFactory

pytestmark = pytest.mark.django_db


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def booked(contractor, start, *, status="scheduled", desired=None, minutes=120) -> Job:
    job = JobFactory(
        desired_date=desired or start.date(), status="assigned", duration_minutes=minutes
    )
    AssignmentFactory(job=job, contractor=contractor, start=start, status=status)
    return job


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [job["id"] for job in response.json()["results"]]


def test_jobs_are_listed_by_the_slot_they_are_booked_for(api):
    monday = next_weekday(0)
    ana = ContractorFactory()
    # Wanted on Monday, booked for Tuesday 10:00-12:00: a Tuesday job on the timeline.
    tuesday_job = booked(ana, at(monday + timedelta(days=1), 10), desired=monday)
    monday_job = booked(ana, at(monday, 9))
    ends_at_midnight = booked(ana, at(monday, 22))  # 22:00-24:00 ends where Tuesday starts
    booked(ana, at(monday + timedelta(days=1), 14), status="cancelled")
    JobFactory(desired_date=monday + timedelta(days=1))  # open: booked for nothing

    tuesday = {
        "bookedFrom": iso(at(monday + timedelta(days=1), 0)),
        "bookedTo": iso(at(monday + timedelta(days=2), 0)),
    }
    assert ids(api.get("/api/jobs", tuesday)) == [tuesday_job.pk]
    monday_only = {"bookedFrom": iso(at(monday, 0)), "bookedTo": iso(at(monday, 23, 59))}
    assert ids(api.get("/api/jobs", monday_only)) == [monday_job.pk, ends_at_midnight.pk]
    # Either bound alone is a half-open ray; filters combine with the others.
    assert ids(api.get("/api/jobs", {"bookedFrom": tuesday["bookedFrom"]})) == [tuesday_job.pk]
    assert ids(api.get("/api/jobs", {"bookedTo": iso(at(monday, 10))})) == [monday_job.pk]
    assert ids(api.get("/api/jobs", {**tuesday, "status": "open"})) == []


def test_a_contractor_sees_only_its_own_bookings_in_the_range():
    monday = next_weekday(0)
    ana, ben = ContractorFactory(), ContractorFactory()
    mine = booked(ana, at(monday, 9))
    booked(ben, at(monday, 9))
    user = make_user("ana", role="contractor", contractor=ana)

    week = {"bookedFrom": iso(at(monday, 0)), "bookedTo": iso(at(monday + timedelta(days=7), 0))}
    assert ids(client_for(user).get("/api/jobs", week)) == [mine.pk]


def test_the_longest_job_still_running_when_the_range_opens_is_listed(api):
    monday = next_weekday(0)
    ana = ContractorFactory()
    # Eight hours from 16:01 Monday: still on at 00:00 Tuesday, one minute before it ends.
    overnight = booked(ana, at(monday, 16, 1), minutes=8 * 60)
    booked(ContractorFactory(), at(monday, 16, 0), minutes=8 * 60)  # ends at midnight: not listed

    tuesday = {"bookedFrom": iso(at(monday + timedelta(days=1), 0))}
    assert ids(api.get("/api/jobs", tuesday)) == [overnight.pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"bookedFrom": "tomorrow"}, "bookedFrom"),
        ({"bookedFrom": "2026-12-01T00:00:00"}, "bookedFrom"),  # which instant? no offset
        ({"bookedTo": "2026-13-01T00:00:00Z"}, "bookedTo"),
        ({"bookedFrom": "2026-12-02T00:00:00Z", "bookedTo": "2026-12-01T00:00:00Z"}, "bookedTo"),
        ({"bookedFrom": "2026-12-01T00:00:00Z", "bookedTo": "2026-12-01T00:00:00Z"}, "bookedTo"),
    ],
)
def test_a_bad_range_is_a_400_naming_the_field(api, query, field):
    response = api.get("/api/jobs", query)
    assert response.status_code == 400
    assert field in response.json()
