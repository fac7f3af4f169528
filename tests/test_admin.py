"""The admin writes through the services: the same rows and the same events as the API."""

from datetime import time
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from contractors.models import Contractor, Region, TimeOff
from scheduling.models import Assignment, Job
from tests.conftest import at, events_of, make_user, next_weekday
from tests.contractors.factories import ContractorFactory
from tests.scheduling.factories import JobFactory

NY = ZoneInfo("America/New_York")


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(make_user("root", role="admin"))
    return client


def management(prefix: str, total: int, initial: int = 0) -> dict:
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def contractor_form(**overrides) -> dict:
    data = {
        "name": "Ana Ruiz",
        "type": "tile",
        "skills": "tile, grout",
        "lat": "40.71",
        "lng": "-74.0",
        "address": "1 Main St",
        "timezone": "America/New_York",
        "status": "active",
        "user": "",
        **management("hours", 2),
        "hours-0-weekday": "0",
        "hours-0-start": "08:00",
        "hours-0-end": "12:00",
        "hours-1-weekday": "0",
        "hours-1-start": "13:00",
        "hours-1-end": "17:00",
        **management("time_off", 1),
        "time_off-0-start_0": "2030-01-02",
        "time_off-0-start_1": "09:00",
        "time_off-0-end_0": "2030-01-03",
        "time_off-0-end_1": "09:00",
        "time_off-0-reason": "dentist",
    }
    data.update(overrides)
    return data


def test_adding_a_contractor_records_its_schedule_and_time_off(admin_client):
    response = admin_client.post("/admin/contractors/contractor/add/", contractor_form())

    assert response.status_code == 302, response.content.decode()[:2000]
    contractor = Contractor.objects.get()
    assert contractor.skills == ["grout", "tile"]
    assert list(contractor.hours.values_list("weekday", "start", "end")) == [
        (0, time(8), time(12)),
        (0, time(13), time(17)),
    ]
    assert TimeOff.objects.get().reason == "dentist"
    created, time_off = events_of()
    assert created.type == "ScheduleUpdated"
    assert created.payload["newValues"]["workingHours"] == [
        {"weekday": 0, "start": "08:00", "end": "12:00"},
        {"weekday": 0, "start": "13:00", "end": "17:00"},
    ]
    assert time_off.type == "ScheduleUpdated"
    assert time_off.payload["updatedFields"] == ["timeOff"]
    assert time_off.groups == ["dispatch/default", f"contractor/{contractor.pk}"]


def test_overlapping_hours_in_the_admin_are_a_form_error_and_write_nothing(admin_client):
    response = admin_client.post(
        "/admin/contractors/contractor/add/", contractor_form(**{"hours-1-start": "11:00"})
    )

    assert response.status_code == 200
    assert "overlap" in response.content.decode()
    assert Contractor.objects.count() == 0
    assert events_of() == []


def test_changing_a_contractor_status_records_schedule_updated(admin_client):
    contractor = ContractorFactory(hours=[(0, time(8), time(17))])
    form = contractor_form(
        status="on_leave",
        **management("hours", 1, initial=1),
        **{
            "hours-0-id": str(contractor.hours.get().pk),
            "hours-0-contractor": str(contractor.pk),
            "hours-0-weekday": "0",
            "hours-0-start": "08:00",
            "hours-0-end": "17:00",
        },
        **management("time_off", 0),
    )
    form = {k: v for k, v in form.items() if not k.startswith(("hours-1-", "time_off-0-"))}

    response = admin_client.post(f"/admin/contractors/contractor/{contractor.pk}/change/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    contractor.refresh_from_db()
    assert contractor.status == "on_leave"
    [event] = events_of()
    assert event.type == "ScheduleUpdated"
    assert event.payload["previousValues"]["status"] == "active"
    assert event.payload["newValues"]["status"] == "on_leave"


def test_deleting_a_busy_contractor_in_the_admin_is_refused(admin_client):
    day = next_weekday(1)
    contractor = ContractorFactory()
    job = JobFactory(desired_date=day, status="assigned")
    Assignment.objects.create(
        job=job, contractor=contractor, start=at(day, 9, tz=NY), end=at(day, 11, tz=NY)
    )

    response = admin_client.post(
        f"/admin/contractors/contractor/{contractor.pk}/delete/", {"post": "yes"}, follow=True
    )

    assert "live assignment" in response.content.decode()
    contractor.refresh_from_db()
    assert contractor.deleted_at is None
    assert events_of() == []


def test_assigning_in_the_admin_books_through_the_service(admin_client):
    day = next_weekday(2)
    contractor = ContractorFactory()
    job = JobFactory(desired_date=day)
    start = at(day, 9, tz=NY)

    response = admin_client.post(
        "/admin/scheduling/assignment/add/",
        {
            "job": str(job.pk),
            "contractor": str(contractor.pk),
            "start_0": start.astimezone(ZoneInfo("UTC")).date().isoformat(),
            "start_1": start.astimezone(ZoneInfo("UTC")).strftime("%H:%M"),
            "end_0": start.astimezone(ZoneInfo("UTC")).date().isoformat(),
            "end_1": (start.astimezone(ZoneInfo("UTC")).hour + 2).__format__("02d") + ":00",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    job.refresh_from_db()
    assert job.status == "assigned"
    [event] = events_of()
    assert event.type == "JobAssigned"
    assert event.payload["contractorId"] == contractor.pk
    assert event.payload["scheduledTimeSlot"]["start"] == start.astimezone(
        ZoneInfo("UTC")
    ).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_assignment_outside_hours_in_the_admin_is_refused_with_a_message(admin_client):
    day = next_weekday(2)
    contractor = ContractorFactory()
    job = JobFactory(desired_date=day)

    response = admin_client.post(
        "/admin/scheduling/assignment/add/",
        {
            "job": str(job.pk),
            "contractor": str(contractor.pk),
            "start_0": day.isoformat(),
            "start_1": "02:00",
            "end_0": day.isoformat(),
            "end_1": "04:00",
        },
        follow=True,
    )

    assert "outside the contractor" in response.content.decode()
    assert Assignment.objects.count() == 0
    assert events_of() == []


def test_creating_and_cancelling_a_job_in_the_admin_records_events(admin_client):
    day = next_weekday(3)
    response = admin_client.post(
        "/admin/scheduling/job/add/",
        {
            "type": "carpet",
            "required_skills": "carpet",
            "lat": "40.72",
            "lng": "-73.99",
            "address": "5 Elm St",
            "desired_date": day.isoformat(),
            "duration_minutes": "90",
            "priority": "high",
            **management("assignments", 0),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.get()

    response = admin_client.post(
        "/admin/scheduling/job/",
        {"action": "cancel_jobs", "_selected_action": [str(job.pk)]},
    )

    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert [e.type for e in events_of()] == ["JobCreated", "JobCancelled"]
    assert events_of()[0].payload["priority"] == "high"


def test_deleting_an_idle_contractor_in_the_admin_is_a_soft_delete(admin_client):
    contractor = ContractorFactory()

    response = admin_client.post(
        f"/admin/contractors/contractor/{contractor.pk}/delete/", {"post": "yes"}
    )

    assert response.status_code == 302
    contractor.refresh_from_db()
    assert contractor.deleted_at is not None
    assert contractor.status == "inactive"
    [event] = events_of()
    assert event.payload["newValues"] == {"status": "inactive", "deleted": True}


def test_the_event_log_is_listed_but_read_only_in_the_admin(admin_client):
    admin_client.post("/admin/contractors/contractor/add/", contractor_form())
    event = events_of()[0]

    listing = admin_client.get("/admin/events/event/")
    detail = admin_client.get(f"/admin/events/event/{event.pk}/change/")

    assert listing.status_code == 200
    assert "ScheduleUpdated" in listing.content.decode()
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert admin_client.get("/admin/events/event/add/").status_code == 403


def test_a_region_is_added_and_its_watchers_set_in_the_admin(admin_client):
    watcher = make_user("north-desk", role="dispatcher")
    response = admin_client.post(
        "/admin/contractors/region/add/",
        {
            "slug": "north",
            "name": "North",
            "center_lat": "40.9",
            "center_lng": "-73.9",
            "radius_miles": "25",
            "watchers": [str(watcher.pk)],
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    region = Region.objects.get(slug="north")
    assert list(region.watchers.all()) == [watcher]

    response = admin_client.post(
        f"/admin/contractors/region/{region.pk}/change/",
        {"name": "North Shore", "watchers": []},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    region.refresh_from_db()
    assert (region.name, region.radius_miles, list(region.watchers.all())) == (
        "North Shore",
        25.0,
        [],
    )
