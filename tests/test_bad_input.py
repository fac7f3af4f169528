"""A rejected request writes nothing (docs/api.md, Errors): for representative 400s and 409s, every
table the API can write to holds exactly the same rows before and after, and no event is
recorded."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from knox.models import AuthToken
from rest_framework.test import APIClient

from contractors.models import Contractor, Rating, Region, TimeOff, WorkingHours
from events.models import Event, EventGroup
from scheduling.models import Assignment, Job
from tests.conftest import at, client_for, make_user, next_weekday
from tests.contractors.factories import ContractorFactory, RatingFactory, RegionFactory
from tests.scheduling.factories import AssignmentFactory, JobFactory

NY = ZoneInfo("America/New_York")
COUNTED = (Contractor, Job, Assignment, Rating, TimeOff, Event)
ALSO_COMPARED = (WorkingHours, Region, EventGroup, AuthToken)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in COUNTED}


def rows() -> dict[str, list[dict]]:
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in COUNTED + ALSO_COMPARED
    }


@pytest.fixture
def world(db):
    RegionFactory(slug="north")
    busy = ContractorFactory(name="Busy")
    carpet = ContractorFactory(name="Carpet", type="carpet", skills=["carpet"])
    day = next_weekday(1)
    morning = AssignmentFactory(
        job=JobFactory(desired_date=day, status="assigned"),
        contractor=busy,
        start=at(day, 10, tz=NY),
    )
    afternoon = AssignmentFactory(
        job=JobFactory(desired_date=day, status="assigned"),
        contractor=busy,
        start=at(day, 14, tz=NY),
    )
    RatingFactory(contractor=busy, job_id=morning.job_id, stars=4)
    open_job = JobFactory(desired_date=day)
    cancelled = JobFactory(desired_date=day, status="cancelled")
    admin = make_user("boss", role="admin")
    client = client_for(admin)
    client.raise_request_exception = False
    return SimpleNamespace(
        client=client,
        day=day,
        busy=busy.pk,
        carpet=carpet.pk,
        morning=morning.job_id,
        afternoon=afternoon.job_id,
        open=open_job.pk,
        cancelled=cancelled.pk,
    )


def slot(w, hour: int, **extra) -> dict:
    start = at(w.day, hour, tz=NY)
    return {"start": iso(start), "end": iso(start + timedelta(hours=2)), **extra}


CONTRACTOR = {
    "name": "Ana",
    "type": "tile",
    "location": {"lat": 40.71, "lng": -74.0},
    "timezone": "America/New_York",
}
OVERLAPPING = [
    {"weekday": 1, "start": "08:00", "end": "12:00"},
    {"weekday": 1, "start": "09:00", "end": "10:00"},
]

CASES = [
    ("contractor with unknown timezone", 400, "POST", "/api/contractors",
     lambda w: {**CONTRACTOR, "timezone": "Nowhere/Special"}),
    ("contractor with overlapping hours", 400, "POST", "/api/contractors",
     lambda w: {**CONTRACTOR, "workingHours": OVERLAPPING}),
    ("rename with a bad timezone", 400, "PATCH", "/api/contractors/{busy}",
     lambda w: {"name": "Renamed", "status": "on_leave", "timezone": "Nowhere/Special"}),
    ("overlapping working hours", 400, "PUT", "/api/contractors/{busy}/working-hours",
     lambda w: OVERLAPPING),
    ("time off ending before it starts", 400, "POST", "/api/contractors/{busy}/time-off",
     lambda w: {"start": slot(w, 12)["end"], "end": slot(w, 12)["start"]}),
    ("delete a busy contractor", 409, "DELETE", "/api/contractors/{busy}", lambda w: None),
    ("duplicate region", 409, "POST", "/api/regions",
     lambda w: {"slug": "north", "name": "N", "center": {"lat": 1, "lng": 1}, "radiusMiles": 5}),
    ("job longer than a day's work", 400, "POST", "/api/jobs",
     lambda w: {"type": "tile", "location": {"lat": 40.7, "lng": -74.0},
                "desiredDate": w.day.isoformat(), "durationMinutes": 481}),
    ("edit an assigned job", 409, "PATCH", "/api/jobs/{morning}",
     lambda w: {"priority": "urgent"}),
    ("assign outside working hours", 400, "POST", "/api/jobs/{open}/assign",
     lambda w: slot(w, 17, contractorId=w.busy)),
    ("assign over another booking", 409, "POST", "/api/jobs/{open}/assign",
     lambda w: slot(w, 11, contractorId=w.busy)),
    ("assign the wrong trade", 400, "POST", "/api/jobs/{open}/assign",
     lambda w: slot(w, 10, contractorId=w.carpet)),
    ("assign an unknown contractor", 400, "POST", "/api/jobs/{open}/assign",
     lambda w: slot(w, 10, contractorId=999_999)),
    ("assign a booked job", 409, "POST", "/api/jobs/{morning}/assign",
     lambda w: slot(w, 16, contractorId=w.busy)),
    ("reschedule onto another booking", 409, "POST", "/api/jobs/{morning}/reschedule",
     lambda w: slot(w, 14)),
    ("reschedule to the wrong trade", 400, "POST", "/api/jobs/{morning}/reschedule",
     lambda w: slot(w, 8, contractorId=w.carpet)),
    ("cancel a cancelled job", 409, "POST", "/api/jobs/{cancelled}/cancel",
     lambda w: {"reason": "again"}),
    ("replace a rating with six stars", 400, "PUT", "/api/jobs/{morning}/rating",
     lambda w: {"rating": 6}),
    ("rate an open job", 409, "PUT", "/api/jobs/{open}/rating", lambda w: {"rating": 3}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "status", "method", "path", "body"), CASES, ids=[case[0] for case in CASES]
)
def test_a_rejected_request_writes_nothing(world, name, status, method, path, body):
    counts_before, rows_before = counts(), rows()

    response = getattr(world.client, method.lower())(
        path.format(**vars(world)), body(world), format="json"
    )

    assert response.status_code == status
    assert counts() == counts_before
    assert rows() == rows_before


DEEP = "[" * 1000 + "]" * 1000  # 2 KB, nested deeper than Python's recursion limit


@pytest.mark.parametrize(
    ("path", "signed_in"),
    [("/api/auth/token", False), ("/api/jobs", True), ("/api/contractors", True)],
)
def test_json_nested_too_deeply_is_a_400_that_writes_nothing(world, path, signed_in):
    client = world.client if signed_in else APIClient()
    client.raise_request_exception = False
    counts_before, rows_before = counts(), rows()

    response = client.post(path, DEEP, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - nested too deeply."}
    assert counts() == counts_before
    assert rows() == rows_before


def test_a_browser_asking_only_for_html_gets_json_without_debug(world):
    response = world.client.get("/api/jobs", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["count"] == 4
