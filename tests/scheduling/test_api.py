"""Jobs, bookings, ratings and availability over HTTP (docs/api.md).

The factory contractor works Mon-Fri 08:00-17:00 America/New_York; the factory job is a two-hour
tile job about 0.87 miles from it. Bookings are made on future weekdays (next_weekday).
"""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from contractors.models import Contractor, Rating
from scheduling.models import Assignment, Job
from tests.conftest import (
    assert_events,
    assert_first_page,
    client_for,
    events_of,
    make_user,
    next_weekday,
)
from tests.contractors.factories import (
    ContractorFactory,
    RatingFactory,
    RegionFactory,
    TimeOffFactory,
)
from tests.contractors.support import assert_contractor_rated
from tests.scheduling.factories import AssignmentFactory, JobFactory
from tests.scheduling.support import WRONG_STATES, assert_booking_event, assert_job_event, ny

JOB_FIELDS = {
    "id", "type", "requiredSkills", "location", "region", "desiredDate", "durationMinutes",
    "priority", "status", "assignment", "cancelReason", "createdAt", "updatedAt",
}  # fmt: skip
# The contract's assignment shape plus `scoreBreakdown` (the score's parts at booking) and the
# lifecycle's `startedAt`, `completedAt` and `notes`.
ASSIGNMENT_FIELDS = {
    "id", "jobId", "contractorId", "scheduledTimeSlot", "status", "score", "scoreBreakdown",
    "startedAt", "completedAt", "notes",
}  # fmt: skip
# Factory contractor and factory job, booked on the desired date: unrated, ~0.867 miles apart.
SCORE = 0.8207
BREAKDOWN = {"availability": 1.0, "rating": 0.5, "distance": 0.9827}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slot_body(day: date, hour: int, minute: int = 0, *, minutes: int = 120, **extra) -> dict:
    start = ny(day, hour, minute)
    return {"start": iso(start), "end": iso(start + timedelta(minutes=minutes)), **extra}


def payload_of(event) -> dict:
    payload = dict(event.payload)
    assert isinstance(payload.pop("timestamp"), str)
    return payload


def done_job(contractor, day: date, *, status: str = "completed") -> Assignment:
    """Set-up: a job at 10:00 New York time in progress or completed (rows written directly)."""
    job = JobFactory(desired_date=day, status=status)
    return AssignmentFactory(
        job=job,
        contractor=contractor,
        start=ny(day, 10),
        status=status,
        started_at=ny(day, 10),
        completed_at=ny(day, 11) if status == "completed" else None,
    )


def book(contractor, day: date, hour: int, minute: int = 0, **job_fields) -> Assignment:
    """Set-up: an assigned job with a live assignment (rows written directly, no events)."""
    job = JobFactory(desired_date=day, status="assigned", **job_fields)
    return AssignmentFactory(job=job, contractor=contractor, start=ny(day, hour, minute))


def booking_at_ten() -> tuple[Contractor, date, Assignment]:
    """Set-up: a factory contractor and its job booked for 10:00-12:00 New York time on a
    Tuesday a week or more away (book)."""
    contractor, day = ContractorFactory(), next_weekday(1)
    return contractor, day, book(contractor, day, 10)


def post_assign(client, job, contractor, day: date, hour: int, minute: int = 0):
    """POST /assign of `job` to `contractor`, for the two-hour slot at `hour`:`minute` New York
    time on `day`."""
    return client.post(
        f"/api/jobs/{job.pk}/assign",
        {"contractorId": contractor.pk, **slot_body(day, hour, minute)},
        format="json",
    )


def post_reschedule(client, assignment: Assignment, body: dict):
    """POST /reschedule of `assignment`'s job with `body`."""
    return client.post(f"/api/jobs/{assignment.job_id}/reschedule", body, format="json")


def lenient(client):
    """A client that turns a server error into a 500 response instead of raising it."""
    client.raise_request_exception = False
    return client


# --- create and list jobs ---------------------------------------------------------------------


def job_body(**overrides) -> dict:
    body = {
        "type": "tile",
        "requiredSkills": ["tile"],
        "location": {"lat": 40.72, "lng": -73.99, "address": "2 Broadway, New York"},
        "desiredDate": next_weekday(1).isoformat(),
        "durationMinutes": 120,
        "priority": "high",
    }
    body.update(overrides)
    return body


def test_create_job_answers_201_and_records_job_created(api):
    RegionFactory(slug="north")

    response = api.post("/api/jobs", job_body(requiredSkills=["Tile ", "grout"]), format="json")

    assert response.status_code == 201
    job = Job.objects.get()
    body = response.json()
    assert set(body) == JOB_FIELDS
    assert body["id"] == job.pk
    assert body["type"] == "tile"
    assert body["requiredSkills"] == ["grout", "tile"]
    assert body["location"] == {"lat": 40.72, "lng": -73.99, "address": "2 Broadway, New York"}
    assert body["region"] == "north"
    assert body["desiredDate"] == next_weekday(1).isoformat()
    assert body["durationMinutes"] == 120
    assert body["priority"] == "high"
    assert body["status"] == "open"
    assert body["assignment"] is None
    assert_job_event(
        "JobCreated",
        job,
        type="tile",
        desiredDate=next_weekday(1).isoformat(),
        durationMinutes=120,
        priority="high",
        region="north",
    )


def test_create_job_priority_defaults_to_normal(api):
    body = job_body()
    del body["priority"]

    response = api.post("/api/jobs", body, format="json")

    assert response.status_code == 201
    assert response.json()["priority"] == "normal"
    assert response.json()["region"] == "default"
    assert events_of()[0].payload["priority"] == "normal"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"durationMinutes": 29}, "durationMinutes"),
        ({"durationMinutes": 481}, "durationMinutes"),
        ({"durationMinutes": "two hours"}, "durationMinutes"),
        ({"type": "multi"}, "type"),
        ({"priority": "asap"}, "priority"),
        ({"desiredDate": "2026-02-30"}, "desiredDate"),
        ({"desiredDate": "next tuesday"}, "desiredDate"),
        ({"location": {"lat": -91, "lng": 0}}, "location"),
        ({"location": None}, "location"),
        ({"requiredSkills": "tile"}, "requiredSkills"),
    ],
)
def test_create_job_rejects_bad_input(api, overrides, field):
    response = api.post("/api/jobs", job_body(**overrides), format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert Job.objects.count() == 0
    assert events_of() == []


@pytest.fixture
def jobs(db):
    first, second = next_weekday(1), next_weekday(2)
    return {
        "a": JobFactory(type="tile", status="open", desired_date=first),
        "b": JobFactory(type="carpet", status="assigned", region="north", desired_date=second),
        "c": JobFactory(type="flooring", status="cancelled", desired_date=first),
        "d": JobFactory(type="tile", status="completed", region="north", desired_date=second),
    }


@pytest.mark.parametrize(
    ("query", "keys"),
    [
        ({}, "abcd"),
        ({"status": "open"}, "a"),
        ({"status": "cancelled"}, "c"),
        ({"status": "in_progress"}, ""),
        ({"region": "north"}, "bd"),
        ({"region": "default"}, "ac"),
        ({"type": "tile"}, "ad"),
        ({"type": "carpet"}, "b"),
        ({"date": "first"}, "ac"),
        ({"date": "second"}, "bd"),
        ({"type": "tile", "region": "north"}, "d"),
        ({"status": "open", "date": "second"}, ""),
    ],
)
def test_list_jobs_filters(api, jobs, query, keys):
    days = {"first": next_weekday(1).isoformat(), "second": next_weekday(2).isoformat()}
    query = {k: days.get(v, v) for k, v in query.items()}

    response = api.get("/api/jobs", query)

    assert response.status_code == 200
    assert [j["id"] for j in response.json()["results"]] == [jobs[k].pk for k in keys]
    assert response.json()["count"] == len(keys)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "done"}, "status"),
        ({"type": "multi"}, "type"),
        ({"date": "tomorrow"}, "date"),
        ({"date": "2026-02-30"}, "date"),
        ({"region": "north pole"}, "region"),
    ],
)
def test_list_jobs_rejects_bad_filters(api, jobs, query, field):
    response = api.get("/api/jobs", query)

    assert response.status_code == 400
    assert field in response.json()


def test_list_jobs_is_paginated(api, jobs):
    response = api.get("/api/jobs", {"limit": 3})

    next_url = "http://testserver/api/jobs?limit=3&offset=3"
    page = assert_first_page(response, count=4, next_url=next_url, fields=JOB_FIELDS)
    assert [j["id"] for j in page["results"]] == [jobs[k].pk for k in "abc"]


def test_contractor_lists_only_its_booked_and_completed_jobs(db):
    me, someone = ContractorFactory(), ContractorFactory()
    day = next_weekday(1)
    mine = book(me, day, 10)
    done = AssignmentFactory(
        contractor=me, job=JobFactory(status="completed"), start=ny(day, 14), status="completed"
    )
    dropped = AssignmentFactory(
        contractor=me, job=JobFactory(status="cancelled"), start=ny(day, 8), status="cancelled"
    )
    book(someone, day, 10)
    JobFactory()
    user = make_user("me", role="contractor", contractor=me)

    response = client_for(user).get("/api/jobs")

    assert response.status_code == 200
    assert [j["id"] for j in response.json()["results"]] == [mine.job_id, done.job_id]
    assert client_for(user).get(f"/api/jobs/{dropped.job_id}").status_code == 404


# --- read and edit a job ----------------------------------------------------------------------


def test_get_job_embeds_its_live_assignment(api):
    contractor, day, assignment = booking_at_ten()

    response = api.get(f"/api/jobs/{assignment.job_id}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == JOB_FIELDS
    assert body["status"] == "assigned"
    assert set(body["assignment"]) == ASSIGNMENT_FIELDS
    assert body["assignment"]["id"] == assignment.pk
    assert body["assignment"]["jobId"] == assignment.job_id
    assert body["assignment"]["contractorId"] == contractor.pk
    assert body["assignment"]["scheduledTimeSlot"] == {
        "start": iso(ny(day, 10)),
        "end": iso(ny(day, 12)),
    }
    assert body["assignment"]["status"] == "scheduled"


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("patch", ""),
        ("post", "/assign"),
        ("post", "/reschedule"),
        ("post", "/cancel"),
        ("post", "/start"),
        ("post", "/complete"),
        ("put", "/rating"),
    ],
)
def test_unknown_job_is_404(api, method, suffix):
    response = getattr(api, method)(f"/api/jobs/999999{suffix}", {}, format="json")

    assert response.status_code == 404
    assert events_of() == []


def test_patch_open_job_records_job_updated(api):
    job = JobFactory(desired_date=next_weekday(1), priority="normal", duration_minutes=120)

    response = api.patch(
        f"/api/jobs/{job.pk}", {"priority": "urgent", "durationMinutes": 90}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["priority"] == "urgent"
    assert response.json()["durationMinutes"] == 90
    job.refresh_from_db()
    assert (job.priority, job.duration_minutes) == ("urgent", 90)
    assert_job_event(
        "JobUpdated",
        job,
        previousRegion="default",
        updatedFields=["durationMinutes", "priority"],
        previousValues={"durationMinutes": 120, "priority": "normal"},
        newValues={"durationMinutes": 90, "priority": "urgent"},
    )


def test_patch_moving_a_job_tells_both_regions(api):
    RegionFactory(slug="north")
    job = JobFactory(lat=34.05, lng=-118.24, address="LA", region="default")

    response = api.patch(
        f"/api/jobs/{job.pk}",
        {"location": {"lat": 40.9, "lng": -73.9, "address": "Yonkers"}},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["region"] == "north"
    [event] = events_of()
    assert event.groups == ["dispatch/north", "dispatch/default"]
    assert event.payload["updatedFields"] == ["location", "region"]


def test_patch_without_changes_records_nothing(api):
    job = JobFactory(priority="normal")

    response = api.patch(f"/api/jobs/{job.pk}", {"priority": "normal"}, format="json")

    assert response.status_code == 200
    assert events_of() == []


@pytest.mark.parametrize("status", ["assigned", "in_progress", "completed", "cancelled"])
def test_patch_is_409_for_a_job_that_is_not_open(api, status):
    job = JobFactory(status=status, priority="normal")

    response = api.patch(f"/api/jobs/{job.pk}", {"priority": "urgent"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "job_not_open"
    job.refresh_from_db()
    assert job.priority == "normal"
    assert events_of() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"durationMinutes": 500}, "durationMinutes"),
        ({"priority": "whenever"}, "priority"),
        ({"type": "multi"}, "type"),
        ({"desiredDate": "12/01/2026"}, "desiredDate"),
    ],
)
def test_patch_rejects_bad_input(api, body, field):
    job = JobFactory(priority="normal")

    response = api.patch(f"/api/jobs/{job.pk}", body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert events_of() == []


# --- assign -----------------------------------------------------------------------------------


def test_assign_answers_201_with_the_assignment_and_records_job_assigned(api):
    contractor = ContractorFactory()
    day = next_weekday(1)
    job = JobFactory(desired_date=day)
    start = ny(day, 10)

    response = api.post(
        f"/api/jobs/{job.pk}/assign",
        {
            "contractorId": contractor.pk,
            "start": start.isoformat(),  # any offset is accepted; answers are in UTC
            "end": (start + timedelta(hours=2)).isoformat(),
        },
        format="json",
    )

    assert response.status_code == 201
    assignment = Assignment.objects.get()
    slot = {"start": iso(ny(day, 10)), "end": iso(ny(day, 12))}
    assert response.json() == {
        "id": assignment.pk,
        "jobId": job.pk,
        "contractorId": contractor.pk,
        "scheduledTimeSlot": slot,
        "status": "scheduled",
        "score": SCORE,
        "scoreBreakdown": BREAKDOWN,
        "startedAt": None,
        "completedAt": None,
        "notes": "",
    }
    job.refresh_from_db()
    assert job.status == "assigned"
    assert (assignment.start, assignment.end) == (ny(day, 10), ny(day, 12))
    assert_booking_event(
        "JobAssigned", job, contractor, assignment.pk, scheduledTimeSlot=slot, score=SCORE
    )
    shown = api.get(f"/api/jobs/{job.pk}").json()
    assert shown["status"] == "assigned"
    assert shown["assignment"] == response.json()


def test_assign_a_day_late_scores_lower_availability(api):
    contractor = ContractorFactory()
    day = next_weekday(1)
    job = JobFactory(desired_date=day)

    response = post_assign(api, job, contractor, day + timedelta(days=1), 10)

    assert response.status_code == 201
    assert response.json()["scoreBreakdown"]["availability"] == 0.9
    assert response.json()["score"] == round(SCORE - 0.04, 4)


def test_assign_multi_contractor_to_any_job_type(api):
    contractor = ContractorFactory(type="multi", skills=["carpet"])
    day = next_weekday(1)
    job = JobFactory(desired_date=day, type="carpet", required_skills=["carpet"])

    response = post_assign(api, job, contractor, day, 8)

    assert response.status_code == 201
    assert [e.type for e in events_of()] == ["JobAssigned"]


@pytest.mark.parametrize(
    ("hour", "minute", "expected"),
    [
        (11, 0, 409),  # overlaps 10:00-12:00
        (12, 0, 409),  # back to back leaves no buffer
        (12, 29, 409),  # inside the 30-minute buffer
        (12, 30, 201),  # buffer exactly kept (same site: no travel)
        (7, 30, 400),  # outside hours, whatever else
        (8, 0, 409),  # ends at 10:00, inside the buffer before the booking
    ],
)
def test_assign_next_to_another_booking(api, hour, minute, expected):
    contractor = ContractorFactory()
    day = next_weekday(1)
    book(contractor, day, 10)
    job = JobFactory(desired_date=day)

    response = post_assign(api, job, contractor, day, hour, minute)

    assert response.status_code == expected
    if expected == 409:
        assert response.json()["code"] == "slot_taken"
    assert [e.type for e in events_of()] == (["JobAssigned"] if expected == 201 else [])


def test_assign_keeps_travel_time_between_distant_sites(api):
    contractor = ContractorFactory()
    day = next_weekday(1)
    # 30 miles away at 30 mph: one hour of travel plus the 30-minute buffer.
    book(contractor, day, 8, lat=40.71 + 30 / 69.05, lng=-74.0)
    job = JobFactory(desired_date=day)

    too_soon = post_assign(api, job, contractor, day, 11, 15)
    in_time = post_assign(api, job, contractor, day, 11, 45)

    assert too_soon.status_code == 409
    assert in_time.status_code == 201


@pytest.mark.parametrize("status", ["assigned", "in_progress", "completed", "cancelled"])
def test_assign_is_409_when_the_job_is_not_open(api, status):
    contractor = ContractorFactory()
    day = next_weekday(1)
    job = JobFactory(desired_date=day, status=status)

    response = post_assign(api, job, contractor, day, 10)

    assert response.status_code == 409
    assert response.json()["code"] == "job_not_open"
    assert Assignment.objects.count() == 0
    assert events_of() == []


def test_assign_twice_is_409_the_second_time(api):
    first, second = ContractorFactory(), ContractorFactory()
    day = next_weekday(1)
    job = JobFactory(desired_date=day)

    assert post_assign(api, job, first, day, 10).status_code == 201
    again = post_assign(api, job, second, day, 13)

    assert again.status_code == 409
    assert again.json()["code"] == "job_not_open"
    assert list(Assignment.objects.values_list("contractor_id", flat=True)) == [first.pk]
    assert [e.type for e in events_of()] == ["JobAssigned"]


def _bad_assign(case: str, contractor, job, day: date) -> dict:
    ok = {"contractorId": contractor.pk, **slot_body(day, 10)}
    saturday = day + timedelta(days=(5 - day.weekday()) % 7)
    past = datetime.now(UTC).date() - timedelta(days=7)
    return {
        "before hours": {**ok, **slot_body(day, 7)},
        "after hours": {**ok, **slot_body(day, 16)},
        "saturday": {**ok, **slot_body(saturday, 10)},
        "time off": ok,
        "wrong duration": {**ok, **slot_body(day, 10, minutes=180)},
        "end before start": {**ok, "start": ok["end"], "end": ok["start"]},
        "empty slot": {**ok, "end": ok["start"]},
        "past": {**ok, **slot_body(past, 10)},
        "unknown contractor": {**ok, "contractorId": 999_999},
        "contractor id not a number": {**ok, "contractorId": "ana"},
        "contractor id zero": {**ok, "contractorId": 0},
        "contractor id too big": {**ok, "contractorId": 2**64},
        "no contractor id": {k: v for k, v in ok.items() if k != "contractorId"},
        "malformed start": {**ok, "start": "tomorrow at ten"},
        "malformed end": {**ok, "end": "2026-02-30T12:00:00Z"},
        "naive start": {**ok, "start": ok["start"].removesuffix("Z")},
        "naive end": {**ok, "end": ok["end"].removesuffix("Z")},
        "inactive contractor": ok,
        "deleted contractor": ok,
        "wrong trade": ok,
        "missing skill": ok,
    }[case]


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("before hours", "start"),
        ("after hours", "start"),
        ("saturday", "start"),
        ("time off", "start"),
        ("wrong duration", "end"),
        ("end before start", "end"),
        ("empty slot", "end"),
        ("past", "start"),
        ("unknown contractor", "contractorId"),
        ("contractor id not a number", "contractorId"),
        ("contractor id zero", "contractorId"),
        ("contractor id too big", "contractorId"),
        ("no contractor id", "contractorId"),
        ("malformed start", "start"),
        ("malformed end", "end"),
        ("naive start", "start"),
        ("naive end", "end"),
        ("inactive contractor", "contractorId"),
        ("deleted contractor", "contractorId"),
        ("wrong trade", "contractorId"),
        ("missing skill", "contractorId"),
    ],
)
def test_assign_rejects_with_400(api, case, field):
    day = next_weekday(1)
    contractor = ContractorFactory(
        status="inactive" if case == "inactive contractor" else "active",
        type="carpet" if case == "wrong trade" else "tile",
        deleted_at=datetime.now(UTC) if case == "deleted contractor" else None,
    )
    job = JobFactory(
        desired_date=day,
        required_skills=["mosaic", "tile"] if case == "missing skill" else ["tile"],
    )
    if case == "time off":
        TimeOffFactory(contractor=contractor, start=ny(day, 11), end=ny(day, 17))

    response = api.post(
        f"/api/jobs/{job.pk}/assign", _bad_assign(case, contractor, job, day), format="json"
    )

    assert response.status_code == 400
    assert field in response.json()
    job.refresh_from_db()
    assert job.status == "open"
    assert Assignment.objects.count() == 0
    assert events_of() == []


@pytest.mark.parametrize("action", ["assign", "reschedule"])
def test_assign_or_reschedule_to_a_far_future_slot_is_400_not_500(api, action):
    contractor = ContractorFactory()
    if action == "assign":
        job_id, body = JobFactory(desired_date=next_weekday(1)).pk, {"contractorId": contractor.pk}
    else:
        job_id, body = book(contractor, next_weekday(1), 10).job_id, {}
    body.update(start="9999-12-31T10:00:00Z", end="9999-12-31T12:00:00Z")

    response = lenient(api).post(f"/api/jobs/{job_id}/{action}", body, format="json")

    assert response.status_code == 400
    assert events_of() == []


# --- reschedule -------------------------------------------------------------------------------


def test_reschedule_same_contractor_answers_200_and_records_job_rescheduled(api):
    contractor, day, assignment = booking_at_ten()

    response = post_reschedule(api, assignment, slot_body(day, 14))

    assert response.status_code == 200
    new_slot = {"start": iso(ny(day, 14)), "end": iso(ny(day, 16))}
    assert set(response.json()) == ASSIGNMENT_FIELDS
    assert response.json()["id"] == assignment.pk
    assert response.json()["contractorId"] == contractor.pk
    assert response.json()["scheduledTimeSlot"] == new_slot
    assert response.json()["status"] == "scheduled"
    assignment.refresh_from_db()
    assert (assignment.start, assignment.end) == (ny(day, 14), ny(day, 16))
    assert_booking_event(
        "JobRescheduled",
        assignment.job,
        contractor,
        assignment.pk,
        previousContractorId=contractor.pk,
        previousTimeSlot={"start": iso(ny(day, 10)), "end": iso(ny(day, 12))},
        scheduledTimeSlot=new_slot,
    )


def test_reschedule_to_another_contractor_tells_both(api):
    before, after = ContractorFactory(), ContractorFactory()
    day = next_weekday(1)
    assignment = book(before, day, 10)

    response = post_reschedule(
        api, assignment, slot_body(day + timedelta(days=1), 9, contractorId=after.pk)
    )

    assert response.status_code == 200
    assert response.json()["contractorId"] == after.pk
    assert response.json()["scheduledTimeSlot"] == {
        "start": iso(ny(day + timedelta(days=1), 9)),
        "end": iso(ny(day + timedelta(days=1), 11)),
    }
    [event] = events_of()
    assert event.type == "JobRescheduled"
    assert event.groups == ["dispatch/default", f"contractor/{after.pk}", f"contractor/{before.pk}"]
    assert event.payload["contractorId"] == after.pk
    assert event.payload["previousContractorId"] == before.pk
    assert api.get(f"/api/jobs/{assignment.job_id}").json()["assignment"]["contractorId"] == (
        after.pk
    )


@pytest.mark.parametrize("status", ["in_progress", "completed"])
def test_reschedule_or_cancel_of_a_started_or_completed_job_is_409(api, status):
    """So a rating, which only a completed job has, never moves nor vanishes."""
    contractor, other = ContractorFactory(), ContractorFactory()
    day = next_weekday(1)
    assignment = done_job(contractor, day, status=status)
    if status == "completed":
        RatingFactory(contractor=contractor, job_id=assignment.job_id, stars=4)

    moved = post_reschedule(api, assignment, slot_body(day, 13, contractorId=other.pk))
    cancelled = api.post(f"/api/jobs/{assignment.job_id}/cancel", {}, format="json")

    assert (moved.status_code, cancelled.status_code) == (409, 409)
    assert moved.json()["code"] == "job_not_assigned"
    assert cancelled.json()["code"] == ("job_started" if status == "in_progress" else "job_closed")
    assert Assignment.objects.get(pk=assignment.pk).contractor_id == contractor.pk
    assert [r.contractor_id for r in Rating.objects.all()] == (
        [contractor.pk] if status == "completed" else []
    )
    assert events_of() == []


def test_reschedule_may_overlap_its_own_old_slot(api):
    _, day, assignment = booking_at_ten()

    response = post_reschedule(api, assignment, slot_body(day, 11))

    assert response.status_code == 200
    assert [e.type for e in events_of()] == ["JobRescheduled"]


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("open job", "job_not_assigned"),
        ("cancelled job", "job_not_assigned"),
        ("same slot", "no_change"),
        ("slot taken", "slot_taken"),
        ("started", "job_not_assigned"),
    ],
)
def test_reschedule_conflicts_are_409(api, case, code):
    contractor, day, assignment = booking_at_ten()
    book(contractor, day, 14)
    job_id = assignment.job_id
    body = slot_body(day, 14) if case == "slot taken" else slot_body(day, 10)
    if case == "open job":
        job_id = JobFactory(desired_date=day).pk
    elif case == "cancelled job":
        Job.objects.filter(pk=job_id).update(status="cancelled")
        Assignment.objects.filter(pk=assignment.pk).update(status="cancelled")
    elif case == "started":
        Job.objects.filter(pk=job_id).update(status="in_progress")
        Assignment.objects.filter(pk=assignment.pk).update(status="in_progress")
        body = slot_body(day, 11)

    response = api.post(f"/api/jobs/{job_id}/reschedule", body, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == code
    assignment.refresh_from_db()
    assert assignment.start == ny(day, 10)
    assert events_of() == []


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("outside hours", "start"),
        ("wrong duration", "end"),
        ("unknown contractor", "contractorId"),
        ("malformed start", "start"),
        ("no start", "start"),
        ("wrong trade", "contractorId"),
    ],
)
def test_reschedule_rejects_with_400(api, case, field):
    contractor = ContractorFactory()
    carpet = ContractorFactory(type="carpet", skills=["carpet"])
    day = next_weekday(1)
    assignment = book(contractor, day, 10)
    body = {
        "outside hours": slot_body(day, 18),
        "wrong duration": slot_body(day, 13, minutes=60),
        "unknown contractor": slot_body(day, 13, contractorId=999_999),
        "malformed start": {**slot_body(day, 13), "start": "13:00"},
        "no start": {"end": slot_body(day, 13)["end"]},
        "wrong trade": slot_body(day, 13, contractorId=carpet.pk),
    }[case]

    response = post_reschedule(api, assignment, body)

    assert response.status_code == 400
    assert field in response.json()
    assignment.refresh_from_db()
    assert (assignment.contractor_id, assignment.start) == (contractor.pk, ny(day, 10))
    assert events_of() == []


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_assigned_job_frees_the_slot_and_records_job_cancelled(api):
    contractor, day, assignment = booking_at_ten()

    response = api.post(
        f"/api/jobs/{assignment.job_id}/cancel", {"reason": "customer moved"}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == JOB_FIELDS
    assert body["status"] == "cancelled"
    assert body["cancelReason"] == "customer moved"
    assert body["assignment"] is None
    assignment.refresh_from_db()
    assert assignment.status == "cancelled"
    assert_booking_event(
        "JobCancelled", assignment.job, contractor, assignment.pk, reason="customer moved"
    )
    other_job = JobFactory(desired_date=day)
    rebooked = post_assign(api, other_job, contractor, day, 10)
    assert rebooked.status_code == 201


def test_cancel_open_job_has_no_contractor(api):
    job = JobFactory()

    response = api.post(f"/api/jobs/{job.pk}/cancel", format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancelReason"] == ""
    assert_job_event("JobCancelled", job, assignmentId=None, contractorId=None, reason="")


@pytest.mark.parametrize("status", ["cancelled", "completed"])
def test_cancel_is_409_for_a_closed_job(api, status):
    job = JobFactory(status=status, cancel_reason="first")

    response = api.post(f"/api/jobs/{job.pk}/cancel", {"reason": "again"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "job_closed"
    job.refresh_from_db()
    assert (job.status, job.cancel_reason) == (status, "first")
    assert events_of() == []


def test_cancel_twice_is_409_the_second_time(api):
    job = JobFactory()

    assert api.post(f"/api/jobs/{job.pk}/cancel", {}, format="json").status_code == 200
    again = api.post(f"/api/jobs/{job.pk}/cancel", {}, format="json")

    assert again.status_code == 409
    assert [e.type for e in events_of()] == ["JobCancelled"]


def test_cancel_reason_too_long_is_400(api):
    job = JobFactory()

    response = api.post(f"/api/jobs/{job.pk}/cancel", {"reason": "x" * 501}, format="json")

    assert response.status_code == 400
    assert "reason" in response.json()
    job.refresh_from_db()
    assert job.status == "open"
    assert events_of() == []


# --- start and complete ---------------------------------------------------------------------


def test_a_dispatcher_starts_and_completes_a_job_and_then_rates_it(api, monkeypatch):
    contractor, day, assignment = booking_at_ten()
    url = f"/api/jobs/{assignment.job_id}"
    monkeypatch.setattr(timezone, "now", lambda: ny(day, 10, 5))

    early = api.put(f"{url}/rating", {"rating": 5}, format="json")
    started = api.post(f"{url}/start", {}, format="json")
    monkeypatch.setattr(timezone, "now", lambda: ny(day, 11, 20))
    completed = api.post(f"{url}/complete", {"notes": "Grout sealed."}, format="json")
    rated = api.put(f"{url}/rating", {"rating": 5}, format="json")

    assert early.status_code == 409
    assert early.json()["code"] == "job_not_rateable"
    assert started.status_code == 200
    assert started.json()["status"] == "in_progress"
    assert started.json()["assignment"]["status"] == "in_progress"
    assert started.json()["assignment"]["startedAt"] == iso(ny(day, 10, 5))
    assert completed.status_code == 200
    assert set(completed.json()) == JOB_FIELDS
    assert completed.json()["status"] == "completed"
    shown = completed.json()["assignment"]
    assert {k: shown[k] for k in ("status", "startedAt", "completedAt", "notes")} == {
        "status": "completed",
        "startedAt": iso(ny(day, 10, 5)),
        "completedAt": iso(ny(day, 11, 20)),
        "notes": "Grout sealed.",
    }
    assert rated.status_code == 201
    job, groups = f"job:{assignment.job_id}", ["dispatch/default", f"contractor/{contractor.pk}"]
    ids = {"jobId": assignment.job_id, "region": "default"}
    booking = {**ids, "assignmentId": assignment.pk, "contractorId": contractor.pk}
    done = {**booking, "completedAt": iso(ny(day, 11, 20)), "notes": "Grout sealed."}
    rating = {**ids, "contractorId": contractor.pk, "rating": 5, "previousRating": None}
    assert_events(
        ("JobStarted", job, groups, {**booking, "startedAt": iso(ny(day, 10, 5))}),
        ("JobCompleted", job, groups, done),
        ("ContractorRated", f"contractor:{contractor.pk}", groups, rating),
    )


def test_the_assigned_contractor_starts_and_completes_its_own_job(db):
    me = ContractorFactory()
    assignment = book(me, next_weekday(1), 10)
    client = client_for(make_user("me", role="contractor", contractor=me))
    url = f"/api/jobs/{assignment.job_id}"

    started = client.post(f"{url}/start", format="json")
    completed = client.post(f"{url}/complete", format="json")

    assert (started.status_code, completed.status_code) == (200, 200)
    assert completed.json()["status"] == "completed"
    assert completed.json()["assignment"]["notes"] == ""
    assert [e.type for e in events_of()] == ["JobStarted", "JobCompleted"]
    assert events_of()[1].payload["notes"] == ""
    # ... and may do nothing else with it.
    for method, suffix, body in (
        ("put", "/rating", {"rating": 5}),
        ("post", "/cancel", {}),
        ("post", "/reschedule", slot_body(next_weekday(2), 10)),
        ("patch", "", {"priority": "urgent"}),
    ):
        assert getattr(client, method)(f"{url}{suffix}", body, format="json").status_code == 403
    assert len(events_of()) == 2


@pytest.mark.parametrize("status", ["assigned", "in_progress", "completed", "cancelled"])
@pytest.mark.parametrize("action", ["start", "complete"])
def test_a_contractor_cannot_start_or_complete_someone_elses_job(db, status, action):
    owner, intruder = ContractorFactory(), ContractorFactory()
    job = JobFactory(status=status)
    AssignmentFactory(
        job=job,
        contractor=owner,
        start=ny(next_weekday(1), 10),
        status={"assigned": "scheduled"}.get(status, status),
    )
    JobFactory(status="open")
    client = client_for(make_user("intruder", role="contractor", contractor=intruder))

    response = client.post(f"/api/jobs/{job.pk}/{action}", {}, format="json")

    assert response.status_code == 404  # as for any job it may not see: ids cannot be probed
    assert Job.objects.get(pk=job.pk).status == status
    assert events_of() == []


def test_a_contractor_cannot_start_an_open_job(db):
    me = ContractorFactory()
    job = JobFactory(status="open")
    client = client_for(make_user("me", role="contractor", contractor=me))

    assert client.post(f"/api/jobs/{job.pk}/start", format="json").status_code == 404
    assert Job.objects.get(pk=job.pk).status == "open"
    assert events_of() == []


@pytest.mark.parametrize(("action", "status", "code"), WRONG_STATES)
def test_start_and_complete_are_409_from_any_other_state(api, action, status, code):
    job = JobFactory(status=status)
    if status != "open":
        AssignmentFactory(
            job=job,
            start=ny(next_weekday(1), 10),
            status={"assigned": "scheduled"}.get(status, status),
        )

    response = api.post(f"/api/jobs/{job.pk}/{action}", {}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == code
    assert Job.objects.get(pk=job.pk).status == status
    assert events_of() == []


@pytest.mark.parametrize("notes", ["x" * 2001, None, ["a"], {"a": 1}])
def test_complete_with_bad_notes_is_400(api, notes):
    assignment = done_job(ContractorFactory(), next_weekday(1), status="in_progress")

    response = api.post(f"/api/jobs/{assignment.job_id}/complete", {"notes": notes}, format="json")

    assert response.status_code == 400
    assert "notes" in response.json()
    assert Job.objects.get(pk=assignment.job_id).status == "in_progress"
    assert events_of() == []


def test_assign_and_reschedule_without_end_take_the_jobs_duration(api):
    contractor = ContractorFactory()
    day = next_weekday(1)
    job = JobFactory(desired_date=day, duration_minutes=90)

    booked = api.post(
        f"/api/jobs/{job.pk}/assign",
        {"contractorId": contractor.pk, "start": iso(ny(day, 10))},
        format="json",
    )
    moved = api.post(f"/api/jobs/{job.pk}/reschedule", {"start": iso(ny(day, 14))}, format="json")

    assert booked.status_code == 201
    assert booked.json()["scheduledTimeSlot"] == {
        "start": iso(ny(day, 10)),
        "end": iso(ny(day, 11, 30)),
    }
    assert moved.status_code == 200
    assert moved.json()["scheduledTimeSlot"] == {
        "start": iso(ny(day, 14)),
        "end": iso(ny(day, 15, 30)),
    }
    assert [e.type for e in events_of()] == ["JobAssigned", "JobRescheduled"]


def test_a_naive_start_is_400_asking_for_an_offset(api):
    contractor = ContractorFactory()
    day = next_weekday(1)
    job = JobFactory(desired_date=day)

    response = api.post(
        f"/api/jobs/{job.pk}/assign",
        {"contractorId": contractor.pk, "start": f"{day.isoformat()}T10:00:00"},
        format="json",
    )

    assert response.status_code == 400
    [message] = response.json()["start"]
    assert '"Z"' in message and '"+01:00"' in message
    assert Assignment.objects.count() == 0
    assert events_of() == []


# --- rating -----------------------------------------------------------------------------------


def test_rating_is_created_then_replaced_and_the_same_value_changes_nothing(api):
    contractor = ContractorFactory()
    assignment = done_job(contractor, next_weekday(1))
    url = f"/api/jobs/{assignment.job_id}/rating"

    first = api.put(url, {"rating": 4}, format="json")

    assert first.status_code == 201
    assert first.json() == {"jobId": assignment.job_id, "contractorId": contractor.pk, "rating": 4}
    assert_contractor_rated(contractor, assignment.job, 4, None)

    replaced = api.put(url, {"rating": 2}, format="json")

    assert replaced.status_code == 200
    assert replaced.json() == {
        "jobId": assignment.job_id,
        "contractorId": contractor.pk,
        "rating": 2,
    }
    assert Rating.objects.get().stars == 2
    second = events_of()[1]
    assert second.type == "ContractorRated"
    assert payload_of(second) == {
        "contractorId": contractor.pk,
        "region": "default",
        "jobId": assignment.job_id,
        "rating": 2,
        "previousRating": 4.0,
    }

    same = api.put(url, {"rating": 2}, format="json")

    assert same.status_code == 200
    assert same.json() == replaced.json()
    assert len(events_of()) == 2
    assert Rating.objects.count() == 1


def test_previous_rating_is_the_average_before_this_rating(api):
    contractor = ContractorFactory()
    RatingFactory(contractor=contractor, stars=5)
    RatingFactory(contractor=contractor, stars=2)
    assignment = done_job(contractor, next_weekday(1))

    response = api.put(f"/api/jobs/{assignment.job_id}/rating", {"rating": 1}, format="json")

    assert response.status_code == 201
    [event] = events_of()
    assert event.payload["previousRating"] == 3.5


def test_completed_job_can_be_rated(api):
    contractor = ContractorFactory()
    assignment = AssignmentFactory(
        contractor=contractor,
        job=JobFactory(status="completed"),
        start=ny(next_weekday(1), 10),
        status="completed",
    )

    response = api.put(f"/api/jobs/{assignment.job_id}/rating", {"rating": 5}, format="json")

    assert response.status_code == 201
    assert [e.type for e in events_of()] == ["ContractorRated"]


@pytest.mark.parametrize("value", [0, 6, -1, "x", 4.5, None, True, [4]])
def test_rating_out_of_range_or_not_a_number_is_400(api, value):
    assignment = done_job(ContractorFactory(), next_weekday(1))

    response = api.put(f"/api/jobs/{assignment.job_id}/rating", {"rating": value}, format="json")

    assert response.status_code == 400
    assert "rating" in response.json()
    assert Rating.objects.count() == 0
    assert events_of() == []


def test_rating_missing_is_400(api):
    assignment = done_job(ContractorFactory(), next_weekday(1))

    response = api.put(f"/api/jobs/{assignment.job_id}/rating", {}, format="json")

    assert response.status_code == 400
    assert "rating" in response.json()


@pytest.mark.parametrize("status", ["open", "assigned", "in_progress", "cancelled"])
def test_rating_is_409_before_the_job_is_completed(api, status):
    job = JobFactory(status=status)
    if status != "open":
        assignment_status = {"assigned": "scheduled"}.get(status, status)
        AssignmentFactory(job=job, start=ny(next_weekday(1), 10), status=assignment_status)

    response = api.put(f"/api/jobs/{job.pk}/rating", {"rating": 3}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "job_not_rateable"
    assert Rating.objects.count() == 0
    assert events_of() == []


# --- availability -----------------------------------------------------------------------------


def windows(*pairs) -> list[dict]:
    return [{"start": iso(a), "end": iso(b)} for a, b in pairs]


def slots_between(first: datetime, last: datetime, minutes: int) -> list[dict]:
    result, start = [], first
    while start <= last:
        result.append({"start": iso(start), "end": iso(start + timedelta(minutes=minutes))})
        start += timedelta(minutes=15)
    return result


def test_availability_of_a_free_day(api):
    contractor = ContractorFactory()
    day = next_weekday(1)

    response = api.get(
        f"/api/contractors/{contractor.pk}/availability",
        {"from": day.isoformat(), "to": day.isoformat(), "duration": 120},
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"contractorId", "windows", "slots"}
    assert body["contractorId"] == contractor.pk
    assert body["windows"] == windows((ny(day, 8), ny(day, 17)))
    assert body["slots"] == slots_between(ny(day, 8), ny(day, 15), 120)
    assert len(body["slots"]) == 29


def test_availability_leaves_out_bookings_with_buffer_and_time_off(api):
    contractor = ContractorFactory()
    day = next_weekday(1)
    book(contractor, day, 10)
    TimeOffFactory(contractor=contractor, start=ny(day, 15), end=ny(day, 16))
    cancelled = book(contractor, day, 13)
    Assignment.objects.filter(pk=cancelled.pk).update(status="cancelled")

    response = api.get(
        f"/api/contractors/{contractor.pk}/availability",
        {"from": day.isoformat(), "to": day.isoformat(), "duration": 60},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["windows"] == windows(
        (ny(day, 8), ny(day, 9, 30)), (ny(day, 12, 30), ny(day, 15)), (ny(day, 16), ny(day, 17))
    )
    assert body["slots"] == (
        slots_between(ny(day, 8), ny(day, 8, 30), 60)
        + slots_between(ny(day, 12, 30), ny(day, 14), 60)
        + slots_between(ny(day, 16), ny(day, 16), 60)
    )


def test_availability_over_several_days_skips_the_weekend(api):
    contractor = ContractorFactory()
    friday = next_weekday(4)
    monday = friday + timedelta(days=3)

    response = api.get(
        f"/api/contractors/{contractor.pk}/availability",
        {"from": friday.isoformat(), "to": monday.isoformat(), "duration": 480},
    )

    assert response.status_code == 200
    assert response.json()["windows"] == windows(
        (ny(friday, 8), ny(friday, 17)), (ny(monday, 8), ny(monday, 17))
    )
    assert response.json()["slots"] == (
        slots_between(ny(friday, 8), ny(friday, 9), 480)
        + slots_between(ny(monday, 8), ny(monday, 9), 480)
    )


def test_availability_duration_defaults_to_an_hour(api):
    contractor = ContractorFactory()
    day = next_weekday(1)

    response = api.get(
        f"/api/contractors/{contractor.pk}/availability",
        {"from": day.isoformat(), "to": day.isoformat()},
    )

    assert response.status_code == 200
    assert response.json()["slots"][0] == {"start": iso(ny(day, 8)), "end": iso(ny(day, 9))}
    assert len(response.json()["slots"]) == 33


def test_availability_accepts_sixty_days(api):
    contractor = ContractorFactory()
    day = next_weekday(1)

    response = api.get(
        f"/api/contractors/{contractor.pk}/availability",
        {"from": day.isoformat(), "to": (day + timedelta(days=59)).isoformat(), "duration": 480},
    )

    assert response.status_code == 200
    assert len(response.json()["windows"]) > 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "day+1", "to": "day"}, "to"),
        ({"from": "day", "to": "day+60"}, "to"),
        ({"from": "day", "to": "day", "duration": 29}, "duration"),
        ({"from": "day", "to": "day", "duration": 481}, "duration"),
        ({"from": "day", "to": "day", "duration": "long"}, "duration"),
        ({"from": "2026-02-30", "to": "day"}, "from"),
        ({"from": "12/01/2026", "to": "day"}, "from"),
        ({"from": "day", "to": "soon"}, "to"),
        ({"to": "day"}, "from"),
        ({"from": "day"}, "to"),
    ],
)
def test_availability_rejects_bad_queries(api, query, field):
    contractor = ContractorFactory()
    day = next_weekday(1)
    named = {
        "day": day.isoformat(),
        "day+1": (day + timedelta(days=1)).isoformat(),
        "day+60": (day + timedelta(days=60)).isoformat(),
    }

    response = api.get(
        f"/api/contractors/{contractor.pk}/availability",
        {k: named.get(v, v) if isinstance(v, str) else v for k, v in query.items()},
    )

    assert response.status_code == 400
    assert field in response.json()


def test_availability_of_unknown_contractor_is_404(api):
    day = next_weekday(1).isoformat()

    response = api.get("/api/contractors/999999/availability", {"from": day, "to": day})

    assert response.status_code == 404


def test_availability_past_the_end_of_the_calendar_is_400_not_500(api):
    contractor = ContractorFactory()

    response = lenient(api).get(
        f"/api/contractors/{contractor.pk}/availability",
        {"from": "9999-12-30", "to": "9999-12-31"},
    )

    assert response.status_code == 400
    assert "to" in response.json()


def test_availability_at_the_start_of_the_calendar_east_of_utc_is_empty_not_500(api):
    # Local midnight of 0001-01-01 in Tokyo is before the first representable UTC instant.
    contractor = ContractorFactory(timezone="Asia/Tokyo")

    response = lenient(api).get(
        f"/api/contractors/{contractor.pk}/availability",
        {"from": "0001-01-01", "to": "0001-01-02"},
    )

    assert response.status_code == 200
    assert response.json() == {"contractorId": contractor.pk, "windows": [], "slots": []}
