"""The admin writes through the services: the same rows and the same events as the API."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from contractors.models import Contractor, Region, TimeOff
from events.publisher import publish_all
from scheduling.models import Assignment, Job
from tests.conftest import at, events_of, make_user, next_weekday
from tests.contractors.factories import ContractorFactory
from tests.scheduling.factories import AssignmentFactory, JobFactory

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


def change_form(contractor: Contractor, **overrides) -> dict:
    """contractor_form for the change page of `contractor`, whose one working-hours row (Monday
    08:00-17:00) it keeps as it is."""
    form = contractor_form(
        **management("hours", 1, initial=1),
        **{
            "hours-0-id": str(contractor.hours.get().pk),
            "hours-0-contractor": str(contractor.pk),
            "hours-0-weekday": "0",
            "hours-0-start": "08:00",
            "hours-0-end": "17:00",
        },
        **overrides,
    )
    return {k: v for k, v in form.items() if not k.startswith("hours-1-")}


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
    form = change_form(contractor, status="on_leave", **management("time_off", 0))
    form = {k: v for k, v in form.items() if not k.startswith("time_off-0-")}

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


def utc_parts(moment) -> tuple[str, str]:
    moment = moment.astimezone(ZoneInfo("UTC"))
    return moment.date().isoformat(), moment.strftime("%H:%M")


def assignment_form(job, contractor, start, end=None) -> dict:
    data = {"job": str(job.pk), "contractor": str(contractor.pk)}
    data["start_0"], data["start_1"] = utc_parts(start)
    data["end_0"], data["end_1"] = utc_parts(end) if end is not None else ("", "")
    return data


def book_in_the_admin(admin_client, hour: int, hours: int):
    """Posts the admin's add-assignment form: a new contractor for a new job on a Wednesday,
    from `hour` New York time for `hours` (negative: ending before it starts). Returns the
    job, the contractor, the start and the response."""
    day = next_weekday(2)
    contractor = ContractorFactory()
    job = JobFactory(desired_date=day)
    start = at(day, hour, tz=NY)
    response = admin_client.post(
        "/admin/scheduling/assignment/add/",
        assignment_form(job, contractor, start, start + timedelta(hours=hours)),
    )
    return job, contractor, start, response


def test_assigning_in_the_admin_books_through_the_service(admin_client):
    job, contractor, start, response = book_in_the_admin(admin_client, 9, 2)

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

    asked = admin_client.post(
        "/admin/scheduling/job/",
        {"action": "cancel_jobs", "_selected_action": [str(job.pk)]},
    )
    assert asked.status_code == 200  # asks for the reason first, cancels nothing yet
    assert 'name="reason"' in asked.content.decode()
    assert Job.objects.get(pk=job.pk).status == "open"

    response = admin_client.post(
        "/admin/scheduling/job/",
        {
            "action": "cancel_jobs",
            "_selected_action": [str(job.pk)],
            "apply": "1",
            "reason": "Customer moved",
        },
    )

    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.status, job.cancel_reason) == ("cancelled", "Customer moved")
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
    publish_all()  # the admin lists the published log, as the API does
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


# --- the admin as a dispatcher's tool -------------------------------------------------------


def test_a_refused_booking_keeps_the_form_and_says_why_in_plain_words(admin_client):
    _, contractor, start, response = book_in_the_admin(admin_client, 10, -1)

    assert response.status_code == 200  # the same form again, not a redirect to an empty one
    html = response.content.decode()
    assert "Constraint" not in html
    assert "must be after start" in html
    form = response.context["adminform"].form
    assert (form["contractor"].value(), form["start"].value()) == (
        str(contractor.pk),
        list(utc_parts(start)),
    )
    assert Assignment.objects.count() == 0
    assert events_of() == []


def test_a_slot_taken_in_the_admin_is_a_message_on_the_kept_form(admin_client):
    day = next_weekday(2)
    contractor = ContractorFactory()
    AssignmentFactory(contractor=contractor, start=at(day, 10, tz=NY))
    job = JobFactory(desired_date=day)

    response = admin_client.post(
        "/admin/scheduling/assignment/add/", assignment_form(job, contractor, at(day, 11, tz=NY))
    )

    assert response.status_code == 200
    assert "overlaps another live assignment" in response.content.decode()
    assert response.context["adminform"].form["job"].value() == str(job.pk)
    assert Assignment.objects.count() == 1
    assert events_of() == []


def test_the_assignment_list_shows_each_slot_in_the_contractors_time(admin_client):
    day = next_weekday(2)
    chicago = ContractorFactory(timezone="America/Chicago", hours=[(2, time(8), time(17))])
    AssignmentFactory(contractor=chicago, start=at(day, 9, tz=ZoneInfo("America/Chicago")))

    html = admin_client.get("/admin/scheduling/assignment/").content.decode()

    zone = at(day, 9, tz=ZoneInfo("America/Chicago")).strftime("%Z")  # CST or CDT
    assert f"{day:%a} {day.day} {day:%b} 09:00 {zone} - 11:00" in html


def test_booking_in_the_admin_without_an_end_takes_the_jobs_duration(admin_client):
    day = next_weekday(2)
    contractor = ContractorFactory()
    job = JobFactory(desired_date=day, duration_minutes=90)

    response = admin_client.post(
        "/admin/scheduling/assignment/add/", assignment_form(job, contractor, at(day, 10, tz=NY))
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    saved = Assignment.objects.get()
    assert (saved.start, saved.end) == (at(day, 10, tz=NY), at(day, 11, 30, tz=NY))
    assert [e.type for e in events_of()] == ["JobAssigned"]


def job_form(**overrides) -> dict:
    return {
        "type": "carpet",
        "required_skills": "carpet",
        "lat": "40.72",
        "lng": "-73.99",
        "address": "5 Elm St",
        "desired_date": next_weekday(3).isoformat(),
        "duration_minutes": "90",
        "priority": "high",
        **management("assignments", 0),
        **overrides,
    }


def test_the_admin_refuses_a_past_desired_date_as_the_api_does(admin_client, api):
    past = (next_weekday(0) - timedelta(days=30)).isoformat()

    response = admin_client.post("/admin/scheduling/job/add/", job_form(desired_date=past))
    from_api = api.post(
        "/api/jobs",
        {
            "type": "carpet",
            "location": {"lat": 40.72, "lng": -73.99},
            "desiredDate": past,
            "durationMinutes": 90,
        },
        format="json",
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["desired_date"] == ["is in the past."]
    assert from_api.status_code == 400
    assert from_api.json() == {"desiredDate": ["is in the past."]}
    assert Job.objects.count() == 0
    assert events_of() == []


def test_working_hours_read_as_weekday_names(admin_client):
    contractor = ContractorFactory(hours=[(2, time(8), time(17))])

    html = admin_client.get(f"/admin/contractors/contractor/{contractor.pk}/change/").content
    html = html.decode()

    assert '<option value="2" selected>Wednesday</option>' in html
    assert "Sunday" in html
    assert "the contractor&#x27;s local time" in html


def test_a_contractor_added_without_a_timezone_gets_its_locations(admin_client):
    response = admin_client.post(
        "/admin/contractors/contractor/add/",
        contractor_form(timezone="", lat="41.8781", lng="-87.6298", address="Chicago"),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Contractor.objects.get().timezone == "America/Chicago"


def test_a_zone_name_that_is_not_a_place_is_a_field_error(admin_client):
    response = admin_client.post(
        "/admin/contractors/contractor/add/", contractor_form(timezone="EST5EDT")
    )

    assert response.status_code == 200
    [message] = response.context["adminform"].form.errors["timezone"]
    assert "America/New_York" in message
    assert Contractor.objects.count() == 0
    assert events_of() == []


def test_time_off_on_a_contractors_page_is_in_its_timezone(admin_client):
    contractor = ContractorFactory(timezone="America/Chicago", hours=[(0, time(8), time(17))])
    form = change_form(contractor, timezone="America/Chicago")

    response = admin_client.post(f"/admin/contractors/contractor/{contractor.pk}/change/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    chicago = ZoneInfo("America/Chicago")
    saved = TimeOff.objects.get()
    # Typed as 2030-01-02 09:00 on a Chicago contractor's page: 09:00 in Chicago.
    assert (saved.start, saved.end) == (
        datetime(2030, 1, 2, 9, tzinfo=chicago),
        datetime(2030, 1, 3, 9, tzinfo=chicago),
    )
    page = admin_client.get(f"/admin/contractors/contractor/{contractor.pk}/change/")
    assert 'value="09:00:00"' in page.content.decode()


def test_a_jobs_page_shows_its_recommendations_and_books_one(admin_client):
    day = next_weekday(1)
    contractor = ContractorFactory(name="Ana Ruiz")
    job = JobFactory(desired_date=day)

    page = admin_client.get(f"/admin/scheduling/job/{job.pk}/change/")

    assert page.status_code == 200
    [rec] = page.context["recommendations"]
    assert rec["contractor"] == contractor
    html = page.content.decode()
    assert "Recommended contractors" in html
    first = rec["slots"][0]
    assert f'value="{first["start"]}"' in html
    # Local time on the button: the factory contractor works 08:00-17:00 New York time.
    assert first["label"].split(" - ")[0].endswith(("EST", "EDT"))

    booked = admin_client.post(
        f"/admin/scheduling/job/{job.pk}/do/book/",
        {"contractor": str(contractor.pk), "start": first["start"]},
    )

    assert booked.status_code == 302
    assignment = Assignment.objects.get(job=job)
    assert (assignment.contractor_id, assignment.start.isoformat()) == (
        contractor.pk,
        first["start"],
    )
    assert [e.type for e in events_of()] == ["JobAssigned"]


def test_the_job_page_starts_completes_and_rates_through_the_services(admin_client):
    contractor = ContractorFactory()
    assignment = AssignmentFactory(contractor=contractor, start=at(next_weekday(1), 10, tz=NY))
    job = assignment.job
    act = f"/admin/scheduling/job/{job.pk}/do"

    too_early = admin_client.post(f"{act}/rate/", {"rating": "5"}, follow=True)
    assert "only completed jobs can be rated" in too_early.content.decode()
    assert (
        'name="start"'
        in admin_client.get(f"/admin/scheduling/job/{job.pk}/change/").content.decode()
    )

    admin_client.post(f"{act}/start/")
    page = admin_client.get(f"/admin/scheduling/job/{job.pk}/change/")
    assert "Complete the job" in page.content.decode()
    admin_client.post(f"{act}/complete/", {"notes": "All done"})
    rated = admin_client.post(f"{act}/rate/", {"rating": "4"}, follow=True)

    assert "Rated." in rated.content.decode()
    saved = Assignment.objects.get(pk=assignment.pk)
    assert (saved.status, saved.notes) == ("completed", "All done")
    assert Job.objects.get(pk=job.pk).status == "completed"
    assert Contractor.objects.get(pk=contractor.pk).average_rating == 4.0
    assert [e.type for e in events_of()] == ["JobStarted", "JobCompleted", "ContractorRated"]
    cancel = admin_client.post(f"{act}/cancel/", {"reason": "late"}, follow=True)
    assert "already completed" in cancel.content.decode()
    assert len(events_of()) == 3


def test_a_booked_jobs_page_moves_it_to_an_offered_slot(admin_client):
    day = next_weekday(1)
    ana, ben = ContractorFactory(name="Ana Ruiz"), ContractorFactory(name="Ben Ortiz")
    assignment = AssignmentFactory(
        contractor=ana,
        start=at(day, 10, tz=NY),
        job=JobFactory(desired_date=day, status="assigned"),
    )
    job = assignment.job

    page = admin_client.get(f"/admin/scheduling/job/{job.pk}/change/")

    html = page.content.decode()
    assert "Reschedule: move it to another slot" in html
    assert f'href="/admin/scheduling/assignment/{assignment.pk}/change/"' in html
    offer = next(rec for rec in page.context["recommendations"] if rec["contractor"] == ben)
    slot = offer["slots"][0]
    assert f"Move to {slot['label']}" in html
    refused = admin_client.post(f"/admin/scheduling/job/{job.pk}/do/reschedule/", follow=True)
    assert "Pick one of the offered slots to move the job to." in refused.content.decode()
    assert events_of() == []

    moved = admin_client.post(
        f"/admin/scheduling/job/{job.pk}/do/reschedule/",
        {"contractor": str(ben.pk), "start": slot["start"]},
        follow=True,
    )

    assert f"Moved to Ben Ortiz, {slot['label']}." in moved.content.decode()
    saved = Assignment.objects.get(pk=assignment.pk)
    assert (saved.contractor_id, saved.start.isoformat()) == (ben.pk, slot["start"])
    assert [e.type for e in events_of()] == ["JobRescheduled"]


def test_a_started_jobs_page_offers_no_moves_and_reads_plainly(admin_client):
    contractor = ContractorFactory(timezone="America/New_York")
    assignment = AssignmentFactory(
        contractor=contractor,
        start=at(next_weekday(1), 10, tz=NY),
        job=JobFactory(required_skills=["tile", "grout"], status="assigned"),
    )
    admin_client.post(f"/admin/scheduling/job/{assignment.job_id}/do/start/")

    page = admin_client.get(f"/admin/scheduling/job/{assignment.job_id}/change/")

    html = page.content.decode()
    assert "recommendations" not in page.context
    assert "Move to" not in html
    assert "tile, grout" in html and "[&quot;tile&quot;" not in html
    started = Assignment.objects.get(pk=assignment.pk).started_at.astimezone(NY)
    assert f"{started:%a} {started.day} {started:%b %H:%M %Z}" in html  # its local time


def test_saving_a_booking_from_its_page_goes_back_to_the_job(admin_client):
    day = next_weekday(1)
    contractor = ContractorFactory()
    assignment = AssignmentFactory(contractor=contractor, start=at(day, 10, tz=NY))

    response = admin_client.post(
        f"/admin/scheduling/assignment/{assignment.pk}/change/",
        {**assignment_form(assignment.job, contractor, at(day, 13, tz=NY)), "_save": "Save"},
    )

    assert response.status_code == 302
    assert response["Location"] == f"/admin/scheduling/job/{assignment.job_id}/change/"
    assert Assignment.objects.get(pk=assignment.pk).start == at(day, 13, tz=NY)
    assert [e.type for e in events_of()] == ["JobRescheduled"]


def test_cancelling_from_the_job_page_records_the_reason(admin_client):
    assignment = AssignmentFactory(start=at(next_weekday(1), 10, tz=NY))

    response = admin_client.post(
        f"/admin/scheduling/job/{assignment.job_id}/do/cancel/", {"reason": "Rain"}
    )

    assert response.status_code == 302
    job = Job.objects.get(pk=assignment.job_id)
    assert (job.status, job.cancel_reason) == ("cancelled", "Rain")
    [event] = events_of()
    assert (event.type, event.payload["reason"]) == ("JobCancelled", "Rain")


def test_start_and_complete_are_list_actions(admin_client):
    first, second = (AssignmentFactory(start=at(next_weekday(1), hour, tz=NY)) for hour in (9, 13))
    selected = [str(first.job_id), str(second.job_id)]

    admin_client.post(
        "/admin/scheduling/job/", {"action": "start_jobs", "_selected_action": selected}
    )
    admin_client.post(
        "/admin/scheduling/job/", {"action": "complete_jobs", "_selected_action": selected[:1]}
    )

    statuses = dict(Job.objects.values_list("pk", "status"))
    assert (statuses[first.job_id], statuses[second.job_id]) == ("completed", "in_progress")
    assert [e.type for e in events_of()] == ["JobStarted", "JobStarted", "JobCompleted"]
