"""Who may call what: every endpoint of docs/api.md against every role, exact status codes.

Roles: anonymous (401), dispatcher and admin (allowed; `POST /api/regions` is admin only),
a dispatcher who watches another region (allowed alike: region links scope what a dispatcher
*watches*, not what it may book, docs/api.md; `/api/events` hides the other regions' events), a
contractor on its own data (may read its own contractor record, jobs and availability, and
start and complete its own jobs; every other write is 403), another contractor (404 on someone
else's data, as for an id that does not exist, so ids cannot be probed), and a signed-in user
with no role (403).
A refused request records no event; an allowed write records exactly its event.

Public by design: `POST /api/auth/token` (how one signs in), `GET /healthz` (up or down only)
and `GET /api/schema`, `GET /api/docs` (the docs page fetches the schema before anyone can
authorise in it), and `GET /api/asyncapi` likewise. `GET /metrics` answers operators only
(tests/test_security.py); the test client's address is this machine's, which the default allows.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contractors.services import Location
from events.publisher import publish_all
from scheduling.models import Assignment, Job
from scheduling.services import create_job
from tests.conftest import at, client_for, events_of, make_user, next_weekday
from tests.contractors.factories import ContractorFactory, RegionFactory, TimeOffFactory
from tests.scheduling.factories import AssignmentFactory, JobFactory

NY = ZoneInfo("America/New_York")
SOUTH_CENTRE = {"center_lat": 39.95, "center_lng": -75.17, "radius_miles": 25}  # Philadelphia
ROLES = (
    "anonymous", "dispatcher", "south_dispatcher", "admin", "contractor", "other_contractor",
    "no_role",
)  # fmt: skip


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def world(db):
    """`own` (linked to the `contractor` login) has a booked job, a completed job and time off;
    `other` (linked to `other_contractor`) has nothing; one job is open."""
    own, other = ContractorFactory(name="Own"), ContractorFactory(name="Other")
    day = next_weekday(1)
    booked = AssignmentFactory(
        job=JobFactory(desired_date=day, status="assigned"),
        contractor=own,
        start=at(day, 10, tz=NY),
    )
    past = datetime.now(UTC).date() - timedelta(days=14)
    done = AssignmentFactory(
        job=JobFactory(desired_date=past, status="completed"),
        contractor=own,
        start=at(past, 10, tz=NY),
        status="completed",
    )
    open_job = JobFactory(desired_date=day)
    time_off = TimeOffFactory(
        contractor=own,
        start=at(day + timedelta(days=2), 8, tz=NY),
        end=at(day + timedelta(days=2), 17, tz=NY),
    )
    users = {
        "anonymous": None,
        "dispatcher": make_user("dispatch", role="dispatcher"),
        "south_dispatcher": make_user(
            "sol", role="dispatcher", regions=[RegionFactory(slug="south", **SOUTH_CENTRE)]
        ),
        "admin": make_user("boss", role="admin"),
        "contractor": make_user("own", role="contractor", contractor=own),
        "other_contractor": make_user("other", role="contractor", contractor=other),
        "no_role": make_user("nobody"),
    }
    return SimpleNamespace(
        own=own,
        other=other,
        day=day,
        booked=booked,
        users=users,
        ids={
            "own": own.pk,
            "other": other.pk,
            "booked": booked.job_id,
            "done": done.job_id,
            "open": open_job.pk,
            "time_off": time_off.pk,
            "day": day.isoformat(),
        },
    )


def slot(w, day_offset: int, hour: int, **extra) -> dict:
    start = at(w.day + timedelta(days=day_offset), hour, tz=NY)
    return {"start": iso(start), "end": iso(start + timedelta(hours=2)), **extra}


def free_own(w) -> None:
    """Set-up for the delete row: `own` must have no live assignment to be deletable."""
    Assignment.objects.filter(pk=w.booked.pk).update(status="cancelled")
    Job.objects.filter(pk=w.booked.job_id).update(status="cancelled")


CONTRACTOR = {
    "name": "New Hire",
    "type": "carpet",
    "skills": ["carpet"],
    "location": {"lat": 40.7, "lng": -74.0, "address": ""},
    "timezone": "America/New_York",
}
JOB = {
    "type": "tile",
    "requiredSkills": ["tile"],
    "location": {"lat": 40.72, "lng": -73.99, "address": ""},
    "durationMinutes": 60,
}
REGION = {"slug": "east", "name": "East", "center": {"lat": 40.7, "lng": -73.0}, "radiusMiles": 20}

#                 anonymous dispatcher south admin contractor other no_role
READ_OWN = (401, 200, 200, 200, 200, 404, 403)
LIST = (401, 200, 200, 200, 200, 200, 403)
SIGNED_IN = (401, 200, 200, 200, 200, 200, 200)
PUBLIC = (200, 200, 200, 200, 200, 200, 200)
DISPATCH_ONLY_READ = (401, 200, 200, 200, 403, 403, 403)
NOT_A_CONTRACTORS = (401, 200, 200, 200, 404, 404, 403)  # a job no contractor of theirs holds


def put_booked_in_progress(w) -> None:
    """Set-up (rows written directly, no events): the booked job's work has started."""
    Assignment.objects.filter(job_id=w.ids["booked"]).update(
        status="in_progress", started_at=datetime.now(UTC)
    )
    Job.objects.filter(pk=w.ids["booked"]).update(status="in_progress")


def write(code: int) -> tuple[int, ...]:
    return (401, code, code, code, 403, 403, 403)


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    path: str
    codes: tuple[int, ...]
    body: Any = None
    events: tuple[str, ...] = ()
    prepare: Any = field(default=None, compare=False)


ROWS = [
    Row("contractors-list", "GET", "/api/contractors", LIST),
    Row(
        "contractors-create",
        "POST",
        "/api/contractors",
        write(201),
        CONTRACTOR,
        ("ScheduleUpdated",),
    ),
    Row("contractor-read", "GET", "/api/contractors/{own}", READ_OWN),
    Row(
        "contractor-update",
        "PATCH",
        "/api/contractors/{own}",
        write(200),
        {"name": "Renamed"},
        ("ScheduleUpdated",),
    ),
    Row(
        "contractor-delete",
        "DELETE",
        "/api/contractors/{own}",
        write(204),
        events=("ScheduleUpdated",),
        prepare=free_own,
    ),
    Row(
        "working-hours",
        "PUT",
        "/api/contractors/{own}/working-hours",
        write(200),
        [{"weekday": 0, "start": "09:00", "end": "17:00"}],
        ("ScheduleUpdated",),
    ),
    Row(
        "time-off-add",
        "POST",
        "/api/contractors/{own}/time-off",
        write(201),
        lambda w: {**slot(w, 1, 8), "reason": "dentist"},
        ("ScheduleUpdated",),
    ),
    Row(
        "time-off-remove",
        "DELETE",
        "/api/contractors/{own}/time-off/{time_off}",
        write(204),
        events=("ScheduleUpdated",),
    ),
    Row(
        "availability",
        "GET",
        "/api/contractors/{own}/availability?from={day}&to={day}&duration=60",
        READ_OWN,
    ),
    Row("jobs-list", "GET", "/api/jobs", LIST),
    Row(
        "jobs-create",
        "POST",
        "/api/jobs",
        write(201),
        lambda w: {**JOB, "desiredDate": w.ids["day"]},
        ("JobCreated",),
    ),
    Row("job-read-booked", "GET", "/api/jobs/{booked}", READ_OWN),
    Row("job-read-completed", "GET", "/api/jobs/{done}", READ_OWN),
    Row("job-read-unassigned", "GET", "/api/jobs/{open}", NOT_A_CONTRACTORS),
    Row(
        "job-update",
        "PATCH",
        "/api/jobs/{open}",
        write(200),
        {"priority": "urgent"},
        ("JobUpdated",),
    ),
    # activates the job's recommendation list, which is not a domain event
    Row("recommendations", "GET", "/api/jobs/{open}/recommendations", DISPATCH_ONLY_READ),
    Row(
        "assign",
        "POST",
        "/api/jobs/{open}/assign",
        write(201),
        lambda w: slot(w, 0, 14, contractorId=w.own.pk),
        ("JobAssigned",),
    ),
    Row(
        "reschedule",
        "POST",
        "/api/jobs/{booked}/reschedule",
        write(200),
        lambda w: slot(w, 1, 10),
        ("JobRescheduled",),
    ),
    Row(
        "cancel",
        "POST",
        "/api/jobs/{booked}/cancel",
        write(200),
        {"reason": "rain"},
        ("JobCancelled",),
    ),
    # The assigned contractor starts and completes its own job (its only writes); to another
    # contractor the job does not exist (404, as for any job it may not see).
    Row(
        "start",
        "POST",
        "/api/jobs/{booked}/start",
        (401, 200, 200, 200, 200, 404, 403),
        {},
        ("JobStarted",),
    ),
    Row(
        "complete",
        "POST",
        "/api/jobs/{booked}/complete",
        (401, 200, 200, 200, 200, 404, 403),
        {"notes": "done"},
        ("JobCompleted",),
        prepare=put_booked_in_progress,
    ),
    Row(
        "rating",
        "PUT",
        "/api/jobs/{done}/rating",
        write(201),
        {"rating": 5},
        ("ContractorRated",),
    ),
    Row("events", "GET", "/api/events", SIGNED_IN),
    Row("regions-list", "GET", "/api/regions", SIGNED_IN),
    Row("regions-create", "POST", "/api/regions", (401, 403, 403, 201, 403, 403, 403), REGION),
    Row(
        "auth-token",
        "POST",
        "/api/auth/token",
        PUBLIC,
        {"username": "own", "password": "pw-own"},
    ),
    Row("schema", "GET", "/api/schema", PUBLIC),
    Row("asyncapi", "GET", "/api/asyncapi", PUBLIC),
    Row("webhooks-list", "GET", "/api/webhooks", (401, 403, 403, 200, 403, 403, 403)),
    Row("docs", "GET", "/api/docs", PUBLIC),
    Row("healthz", "GET", "/healthz", PUBLIC),
    Row("metrics", "GET", "/metrics", PUBLIC),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_role_matrix(world, row, role):
    if row.prepare is not None:
        row.prepare(world)
    body = row.body(world) if callable(row.body) else row.body
    client = client_for(world.users[role])
    client.raise_request_exception = False
    expected = dict(zip(ROLES, row.codes, strict=True))[role]

    response = getattr(client, row.method.lower())(
        row.path.format(**world.ids), body, format="json"
    )

    assert response.status_code == expected
    if expected == 401:
        assert response["WWW-Authenticate"] == "Token"
    assert [e.type for e in events_of()] == (list(row.events) if expected < 300 else [])


def test_a_contractor_reads_its_own_record_and_nobody_elses(world):
    client = client_for(world.users["contractor"])

    listed = client.get("/api/contractors").json()["results"]
    jobs = client.get("/api/jobs").json()["results"]
    availability = client.get(
        f"/api/contractors/{world.own.pk}/availability",
        {"from": world.ids["day"], "to": world.ids["day"]},
    ).json()

    assert [c["id"] for c in listed] == [world.own.pk]
    assert [j["id"] for j in jobs] == sorted([world.ids["booked"], world.ids["done"]])
    assert availability["contractorId"] == world.own.pk
    assert client.get(f"/api/contractors/{world.other.pk}").status_code == 404
    assert (
        client.get(
            f"/api/contractors/{world.other.pk}/availability",
            {"from": world.ids["day"], "to": world.ids["day"]},
        ).status_code
        == 404
    )


def test_a_deleted_contractors_login_loses_its_role(world):
    free_own(world)
    client_for(world.users["admin"]).delete(f"/api/contractors/{world.own.pk}")
    client = client_for(world.users["contractor"])

    assert client.get("/api/contractors").status_code == 403
    assert client.get(f"/api/jobs/{world.ids['done']}").status_code == 403
    assert client.get("/api/events").json()["results"] == []


def test_a_dispatcher_of_another_region_works_on_its_jobs_but_does_not_watch_its_events(world):
    """Region links scope what a dispatcher watches (`/api/events`), not what it may book."""
    RegionFactory(slug="north")
    north = create_job(
        type="tile", location=Location(lat=40.9, lng=-73.9), desired_date=world.day,
        duration_minutes=60, required_skills=["tile"],
    )  # fmt: skip
    south = create_job(
        type="tile", location=Location(lat=39.95, lng=-75.17), desired_date=world.day,
        duration_minutes=60, required_skills=["tile"],
    )  # fmt: skip
    publish_all()  # as the relay does after commit
    south_watcher = client_for(world.users["south_dispatcher"])
    everywhere = client_for(world.users["dispatcher"])

    seen = south_watcher.get("/api/events").json()["results"]
    asked_for_north = south_watcher.get("/api/events", {"aggregate": f"job:{north.pk}"}).json()
    seen_by_all = everywhere.get("/api/events").json()["results"]

    assert (north.region, south.region) == ("north", "south")
    assert [(e["type"], e["aggregate"]["id"], e["groups"]) for e in seen] == [
        ("JobCreated", str(south.pk), ["dispatch/south"])
    ]
    assert asked_for_north["results"] == []
    assert [e["aggregate"]["id"] for e in seen_by_all] == [str(north.pk), str(south.pk)]
    # ... and it may still read and edit the north job: dispatchers cover for each other.
    assert south_watcher.get(f"/api/jobs/{north.pk}").status_code == 200
    assert (
        south_watcher.patch(f"/api/jobs/{north.pk}", {"priority": "urgent"}, format="json").json()[
            "priority"
        ]
        == "urgent"
    )
