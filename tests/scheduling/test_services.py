"""Job services: each test checks the rows the service leaves behind (re-read from the database)
and the exact events it records; a rejected call leaves the database as it found it.

The factory contractor lives at 40.71, -74.0 and works Mon-Fri 08:00-17:00 New York time. Jobs
here sit at that same spot unless a test moves them, so travel time is zero and the padding
between two bookings is exactly the 30-minute buffer.
"""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from contractors.models import Contractor, Rating
from contractors.selectors import rating_summary
from contractors.services import Location, refresh_rating_summaries
from events.errors import Conflict, Forbidden, Invalid, NotFound
from scheduling.models import Assignment, Job
from scheduling.selectors import availability
from scheduling.services import (
    assign_job,
    cancel_job,
    complete_job,
    create_job,
    rate_job,
    reschedule_job,
    start_job,
    update_job,
)
from tests.conftest import assert_one_event, db_state, events_of, next_weekday, place, refused
from tests.contractors.factories import ContractorFactory, RatingFactory, RegionFactory
from tests.contractors.support import assert_contractor_rated
from tests.scheduling.factories import AssignmentFactory, JobFactory
from tests.scheduling.support import WRONG_STATES, assert_booking_event, assert_job_event, ny

pytestmark = pytest.mark.django_db

MISSING_ID = 987_654_321
HOME = {"lat": 40.71, "lng": -74.0}  # the factory contractor's base
FAR = {"lat": 40.91, "lng": -74.0}  # 13.8 miles north: 27.6 minutes of travel at 30 mph


# --- helpers ----------------------------------------------------------------------------------


def z(moment: datetime) -> str:
    """The payload spelling of a timestamp, written out independently of events.timefmt."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slot(start: datetime, end: datetime) -> dict[str, str]:
    return {"start": z(start), "end": z(end)}


# Every row the scheduling services may touch (db_state: a rejected call wrote nothing).
TOUCHED = (Contractor, Job, Assignment, Rating)


# On the contractor's doorstep, unrated, on the desired day: 0.40 + 0.35 x 0.5 + 0.25 x 1.
DOORSTEP_SCORE = 0.825


def assert_scheduled(
    job: Job, contractor: Contractor, start: datetime, end: datetime, score=DOORSTEP_SCORE
) -> Assignment:
    """`job` is assigned, its one assignment `contractor`'s for [start, end), scored `score`."""
    (saved,) = Assignment.objects.filter(job=job)
    assert (saved.contractor_id, saved.start, saved.end, saved.status, saved.score) == (
        contractor.pk,
        start,
        end,
        "scheduled",
        score,
    )
    assert Job.objects.get(pk=job.pk).status == "assigned"
    return saved


def assert_booked(
    job: Job, contractor: Contractor, start: datetime, end: datetime, score=DOORSTEP_SCORE
) -> Assignment:
    """`job` is now booked with `contractor` for [start, end), announced by one JobAssigned."""
    saved = assert_scheduled(job, contractor, start, end, score)
    assert_booking_event(
        "JobAssigned", job, contractor, saved.pk, scheduledTimeSlot=slot(start, end), score=score
    )
    return saved


@pytest.fixture
def monday() -> date:
    return next_weekday(0)


@pytest.fixture
def contractor() -> Contractor:
    return ContractorFactory()


def open_job(day: date, **overrides) -> Job:
    return JobFactory(desired_date=day, **{**HOME, **overrides})


def booking(contractor: Contractor, start: datetime, *, status="scheduled", **job) -> Assignment:
    """A live (or other) assignment of a job at HOME, written directly as set-up."""
    job_status = {"scheduled": "assigned"}.get(status, status)
    job_fields = {"job__" + key: value for key, value in {**HOME, **job}.items()}
    return AssignmentFactory(
        contractor=contractor,
        start=start,
        status=status,
        job__status=job_status,
        job__desired_date=start.date(),
        **job_fields,
    )


def job_in_state(state: str, contractor: Contractor, day: date) -> Job:
    """A job in `state`, with the assignment that state implies."""
    if state == "open":
        return open_job(day)
    assignment_status = {"assigned": "scheduled"}.get(state, state)
    return booking(contractor, ny(day, 10), status=assignment_status).job


# --- create_job -------------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [30, 120, 480])
def test_create_job(monday, duration):
    job = create_job(
        type="carpet",
        location=Location(lat=40.72, lng=-73.99, address="2 Broadway"),
        desired_date=monday,
        duration_minutes=duration,
        required_skills=["Carpet ", "stairs", "carpet", " "],
        priority="high",
    )

    saved = Job.objects.get(pk=job.pk)
    assert (saved.type, saved.status, saved.priority) == ("carpet", "open", "high")
    assert saved.required_skills == ["carpet", "stairs"]
    assert (saved.lat, saved.lng, saved.address) == (40.72, -73.99, "2 Broadway")
    assert (saved.desired_date, saved.duration_minutes) == (monday, duration)
    assert saved.region == "default"
    assert_job_event(
        "JobCreated",
        job,
        type="carpet",
        desiredDate=monday.isoformat(),
        durationMinutes=duration,
        priority="high",
    )


def test_create_job_derives_its_region(monday):
    RegionFactory(slug="north")  # centre 40.9, -73.9, radius 25 miles
    RegionFactory(slug="far-away", center_lat=34.05, center_lng=-118.24, radius_miles=50)

    job = create_job(
        type="tile",
        location=Location(lat=40.85, lng=-73.92),
        desired_date=monday,
        duration_minutes=60,
    )

    assert Job.objects.get(pk=job.pk).region == "north"
    assert_job_event(
        "JobCreated",
        job,
        type="tile",
        desiredDate=monday.isoformat(),
        durationMinutes=60,
        priority="normal",
        region="north",
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"type": "plumbing"}, "type"),
        ({"type": "multi"}, "type"),  # a contractor type, not a job type
        ({"duration_minutes": 29}, "durationMinutes"),
        ({"duration_minutes": 481}, "durationMinutes"),
        ({"duration_minutes": 0}, "durationMinutes"),
        ({"priority": "asap"}, "priority"),
    ],
)
def test_create_job_rejects_invalid_input_and_writes_nothing(monday, overrides, field):
    arguments = {
        "type": "tile",
        "location": Location(**HOME),
        "desired_date": monday,
        "duration_minutes": 120,
        **overrides,
    }

    with refused(Invalid, TOUCHED, field=field):
        create_job(**arguments)


# --- update_job -------------------------------------------------------------------------------


def test_update_job_saves_and_reports_what_changed(monday):
    job = open_job(monday, required_skills=["tile"], duration_minutes=120, priority="normal")
    tuesday = monday + timedelta(days=1)

    update_job(
        job_id=job.pk,
        type="tile",  # unchanged, so not reported
        required_skills=["Grout", "tile"],
        desired_date=tuesday,
        duration_minutes=180,
        priority="urgent",
    )

    saved = Job.objects.get(pk=job.pk)
    assert saved.required_skills == ["grout", "tile"]
    assert (saved.desired_date, saved.duration_minutes, saved.priority) == (tuesday, 180, "urgent")
    assert saved.status == "open"
    assert_job_event(
        "JobUpdated",
        job,
        previousRegion="default",
        updatedFields=["requiredSkills", "desiredDate", "durationMinutes", "priority"],
        previousValues={
            "requiredSkills": ["tile"],
            "desiredDate": monday.isoformat(),
            "durationMinutes": 120,
            "priority": "normal",
        },
        newValues={
            "requiredSkills": ["grout", "tile"],
            "desiredDate": tuesday.isoformat(),
            "durationMinutes": 180,
            "priority": "urgent",
        },
    )


def test_moving_a_job_to_another_region_tells_both_regions(monday):
    RegionFactory(slug="north")
    job = open_job(monday, address="1 Main St")
    target = {"lat": 40.85, "lng": -73.92, "address": "9 Hill Rd"}

    update_job(job_id=job.pk, location=Location(**target))

    saved = Job.objects.get(pk=job.pk)
    assert (place(saved), saved.region) == (target, "north")
    assert_one_event(
        "JobUpdated",
        aggregate=f"job:{job.pk}",
        groups=["dispatch/north", "dispatch/default"],
        payload={
            "jobId": job.pk,
            "region": "north",
            "previousRegion": "default",
            "updatedFields": ["location", "region"],
            "previousValues": {"location": {**HOME, "address": "1 Main St"}, "region": "default"},
            "newValues": {"location": target, "region": "north"},
        },
    )


def test_update_job_without_a_change_writes_nothing(monday):
    job = open_job(monday, required_skills=["grout", "tile"], priority="low")
    before = db_state(*TOUCHED)

    update_job(
        job_id=job.pk, required_skills=["TILE", "grout"], priority="low", desired_date=monday
    )

    assert db_state(*TOUCHED) == before
    assert events_of() == []


@pytest.mark.parametrize("state", ["assigned", "in_progress", "completed", "cancelled"])
def test_update_job_edits_only_open_jobs(contractor, monday, state):
    job = job_in_state(state, contractor, monday)

    with refused(Conflict, TOUCHED, code="job_not_open"):
        update_job(job_id=job.pk, priority="urgent")

    assert Job.objects.get(pk=job.pk).priority == "normal"


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"type": "roofing"}, "type"),
        ({"duration_minutes": 500}, "durationMinutes"),
        ({"priority": "whenever"}, "priority"),
    ],
)
def test_update_job_rejects_invalid_values_and_writes_nothing(monday, arguments, field):
    job = open_job(monday)

    with refused(Invalid, TOUCHED, field=field):
        update_job(job_id=job.pk, desired_date=monday + timedelta(days=2), **arguments)


def test_update_unknown_job_is_not_found():
    with refused(NotFound, TOUCHED):
        update_job(job_id=MISSING_ID, priority="high")


# --- assign_job -------------------------------------------------------------------------------


def test_assign_job_books_the_slot(contractor, monday):
    job = open_job(monday)
    start, end = ny(monday, 10), ny(monday, 12)

    assignment = assign_job(job_id=job.pk, contractor_id=contractor.pk, start=start, end=end)

    saved = assert_booked(job, contractor, start, end)
    assert saved.pk == assignment.pk
    assert saved.score_breakdown == {"availability": 1.0, "rating": 0.5, "distance": 1.0}


@pytest.mark.parametrize(
    ("desired_offset", "average_rating", "breakdown", "total"),
    [
        # Two days late: availability 1 - 0.2; rated 4.0 -> 0.8. 0.32 + 0.28 + 0.25.
        (-2, 4.0, {"availability": 0.8, "rating": 0.8, "distance": 1.0}, 0.85),
        # Booked before the desired day is not late; rated 5.0. 0.40 + 0.35 + 0.25.
        (3, 5.0, {"availability": 1.0, "rating": 1.0, "distance": 1.0}, 1.0),
        # Eleven days late: availability floors at 0; rated 2.0 -> 0.4. 0 + 0.14 + 0.25.
        (-11, 2.0, {"availability": 0.0, "rating": 0.4, "distance": 1.0}, 0.39),
    ],
)
def test_assign_job_scores_the_booking(monday, desired_offset, average_rating, breakdown, total):
    contractor = ContractorFactory(average_rating=average_rating, rating_count=3)
    job = open_job(monday + timedelta(days=desired_offset))
    start, end = ny(monday, 13), ny(monday, 15)

    assignment = assign_job(job_id=job.pk, contractor_id=contractor.pk, start=start, end=end)

    saved = assert_booked(job, contractor, start, end, score=total)
    assert (saved.pk, saved.score_breakdown) == (assignment.pk, breakdown)


@pytest.mark.parametrize(
    ("site", "start_hm", "duration", "score"),
    [
        # Around a booking at 10:00-12:00 at HOME; same site, so the padding is the 30 min buffer.
        # On the contractor's doorstep, unrated, on the desired day: 0.40 + 0.175 + 0.25.
        pytest.param(HOME, (8, 0), 90, 0.825, id="ends-exactly-a-buffer-before"),
        pytest.param(HOME, (12, 30), 60, 0.825, id="starts-exactly-a-buffer-after"),
        pytest.param(HOME, (15, 0), 120, 0.825, id="ends-with-the-working-day"),
        # 13.82 miles away (0.2 degrees of latitude): buffer plus 27.6 minutes of travel on each
        # side; distance score 1 - 13.82 / 50 = 0.7236, so 0.40 + 0.175 + 0.25 x 0.7236.
        pytest.param(FAR, (13, 0), 60, 0.7559, id="far-site-after-buffer-and-travel"),
        pytest.param(FAR, (8, 0), 60, 0.7559, id="far-site-before-buffer-and-travel"),
    ],
)
def test_assign_job_next_to_another_booking(contractor, monday, site, start_hm, duration, score):
    booking(contractor, ny(monday, 10))
    job = open_job(monday, duration_minutes=duration, **site)
    start = ny(monday, *start_hm)
    end = start + timedelta(minutes=duration)

    assignment = assign_job(job_id=job.pk, contractor_id=contractor.pk, start=start, end=end)

    assert assert_booked(job, contractor, start, end, score=score).pk == assignment.pk
    assert Assignment.objects.filter(contractor=contractor, status="scheduled").count() == 2


@pytest.mark.parametrize(
    ("site", "start_hm", "duration"),
    [
        # Around a booking at 10:00-12:00 at HOME.
        pytest.param(HOME, (10, 0), 120, id="same-slot"),
        pytest.param(HOME, (11, 0), 60, id="overlaps-the-end"),
        pytest.param(HOME, (9, 0), 90, id="overlaps-the-start"),
        pytest.param(HOME, (10, 30), 60, id="inside"),
        pytest.param(HOME, (9, 0), 240, id="around"),
        pytest.param(HOME, (12, 0), 60, id="back-to-back-without-buffer"),
        pytest.param(HOME, (12, 15), 60, id="within-buffer-after"),
        pytest.param(HOME, (8, 45), 60, id="within-buffer-before"),
        # 13.8 miles away: fine under the bare buffer, too close once travel is added.
        pytest.param(FAR, (12, 45), 60, id="far-site-within-travel-after"),
        pytest.param(FAR, (8, 15), 60, id="far-site-within-travel-before"),
    ],
)
def test_assign_job_into_a_taken_slot_is_a_conflict(contractor, monday, site, start_hm, duration):
    booking(contractor, ny(monday, 10))
    job = open_job(monday, duration_minutes=duration, **site)
    start = ny(monday, *start_hm)
    end = start + timedelta(minutes=duration)

    with refused(Conflict, TOUCHED, code="slot_taken"):
        assign_job(job_id=job.pk, contractor_id=contractor.pk, start=start, end=end)

    assert Job.objects.get(pk=job.pk).status == "open"


def test_other_contractors_and_dead_bookings_do_not_take_the_slot(contractor, monday):
    booking(ContractorFactory(), ny(monday, 10))
    booking(contractor, ny(monday, 10), status="cancelled")
    job = open_job(monday)
    start, end = ny(monday, 10), ny(monday, 12)

    assign_job(job_id=job.pk, contractor_id=contractor.pk, start=start, end=end)

    assert_booked(job, contractor, start, end)


@pytest.mark.parametrize(
    ("timezone", "day_offset", "start_hm", "duration"),
    [
        pytest.param("America/New_York", 0, (7, 0), 120, id="starts-before-the-day"),
        pytest.param("America/New_York", 0, (7, 45), 60, id="starts-15-min-early"),
        pytest.param("America/New_York", 0, (16, 0), 120, id="ends-after-the-day"),
        pytest.param("America/New_York", 5, (10, 0), 120, id="saturday"),
        pytest.param("America/New_York", 6, (10, 0), 120, id="sunday"),
        # 09:00 in New York is 06:00 in Los Angeles, before that contractor's 08:00 start.
        pytest.param("America/Los_Angeles", 0, (9, 0), 120, id="contractors-own-timezone"),
    ],
)
def test_assign_job_outside_working_hours_is_invalid(
    monday, timezone, day_offset, start_hm, duration
):
    contractor = ContractorFactory(timezone=timezone)
    job = open_job(monday, duration_minutes=duration)
    start = ny(monday + timedelta(days=day_offset), *start_hm)
    end = start + timedelta(minutes=duration)

    with refused(Invalid, TOUCHED, field="start"):
        assign_job(job_id=job.pk, contractor_id=contractor.pk, start=start, end=end)


def test_assign_job_in_the_contractors_own_timezone(monday):
    contractor = ContractorFactory(timezone="America/Los_Angeles")
    job = open_job(monday)
    # 15:00-17:00 in Los Angeles: the end of that contractor's day, long after New York's.
    start, end = ny(monday, 18), ny(monday, 20)

    assign_job(job_id=job.pk, contractor_id=contractor.pk, start=start, end=end)

    assert_booked(job, contractor, start, end)


@pytest.mark.parametrize(
    ("off_from", "off_to"),
    [
        pytest.param((9, 0), (10, 30), id="overlaps-the-start"),
        pytest.param((11, 30), (14, 0), id="overlaps-the-end"),
        pytest.param((10, 30), (11, 0), id="inside"),
        pytest.param((0, 0), (23, 59), id="whole-day"),
    ],
)
def test_assign_job_in_time_off_is_invalid(contractor, monday, off_from, off_to):
    contractor.time_off.create(start=ny(monday, *off_from), end=ny(monday, *off_to))
    job = open_job(monday)

    with refused(Invalid, TOUCHED, field="start"):
        assign_job(
            job_id=job.pk, contractor_id=contractor.pk, start=ny(monday, 10), end=ny(monday, 12)
        )


def test_time_off_that_only_touches_the_slot_does_not_block_it(contractor, monday):
    contractor.time_off.create(start=ny(monday, 8), end=ny(monday, 10))
    contractor.time_off.create(start=ny(monday, 12), end=ny(monday, 17))
    job = open_job(monday)

    assign_job(job_id=job.pk, contractor_id=contractor.pk, start=ny(monday, 10), end=ny(monday, 12))

    assert_booked(job, contractor, ny(monday, 10), ny(monday, 12))


@pytest.mark.parametrize(
    ("end_after_start", "field"),
    [
        (timedelta(minutes=90), "end"),
        (timedelta(minutes=150), "end"),
        (timedelta(0), "end"),
        (timedelta(minutes=-120), "end"),
    ],
)
def test_assign_job_slot_must_last_the_jobs_duration(contractor, monday, end_after_start, field):
    job = open_job(monday, duration_minutes=120)
    start = ny(monday, 10)

    with refused(Invalid, TOUCHED, field=field):
        assign_job(
            job_id=job.pk, contractor_id=contractor.pk, start=start, end=start + end_after_start
        )


def test_assign_job_in_the_past_is_invalid(contractor, monday):
    last_monday = monday - timedelta(weeks=2)  # next_weekday is 7 to 13 days ahead
    job = open_job(last_monday)

    with refused(Invalid, TOUCHED, field="start"):
        assign_job(
            job_id=job.pk,
            contractor_id=contractor.pk,
            start=ny(last_monday, 10),
            end=ny(last_monday, 12),
        )


@pytest.mark.parametrize(
    ("contractor_fields", "job_fields"),
    [
        pytest.param({"status": "inactive"}, {}, id="inactive"),
        pytest.param({"status": "on_leave"}, {}, id="on-leave"),
        pytest.param({"type": "carpet", "skills": ["tile", "carpet"]}, {}, id="wrong-type"),
        pytest.param(
            {"type": "flooring"},
            {"type": "carpet", "required_skills": []},
            id="wrong-type-no-skills-needed",
        ),
        pytest.param({}, {"required_skills": ["tile", "waterproofing"]}, id="missing-skill"),
        pytest.param(
            {"type": "multi", "skills": ["carpet"]},
            {"required_skills": ["tile"]},
            id="multi-missing-skill",
        ),
    ],
)
def test_assign_job_to_an_ineligible_contractor_is_invalid(monday, contractor_fields, job_fields):
    contractor = ContractorFactory(**contractor_fields)
    job = open_job(monday, **job_fields)

    with refused(Invalid, TOUCHED, field="contractorId"):
        assign_job(
            job_id=job.pk, contractor_id=contractor.pk, start=ny(monday, 10), end=ny(monday, 12)
        )


@pytest.mark.parametrize("job_type", ["flooring", "tile", "carpet"])
def test_a_multi_trade_contractor_matches_every_job_type(monday, job_type):
    contractor = ContractorFactory(type="multi", skills=["carpet", "hardwood", "tile"])
    job = open_job(monday, type=job_type, required_skills=["hardwood", "carpet"])

    assign_job(job_id=job.pk, contractor_id=contractor.pk, start=ny(monday, 10), end=ny(monday, 12))

    assert_booked(job, contractor, ny(monday, 10), ny(monday, 12))


@pytest.mark.parametrize("state", ["assigned", "in_progress", "completed", "cancelled"])
def test_assign_job_that_is_not_open_is_a_conflict(contractor, monday, state):
    job = job_in_state(state, contractor, monday)
    other = ContractorFactory()

    with refused(Conflict, TOUCHED, code="job_not_open"):
        assign_job(job_id=job.pk, contractor_id=other.pk, start=ny(monday, 14), end=ny(monday, 16))


def test_assign_unknown_job_is_not_found(contractor, monday):
    with refused(NotFound, TOUCHED):
        assign_job(
            job_id=MISSING_ID, contractor_id=contractor.pk, start=ny(monday, 10), end=ny(monday, 12)
        )


@pytest.mark.parametrize("deleted", [False, True], ids=["unknown", "deleted"])
def test_assign_job_to_an_unknown_or_deleted_contractor_is_invalid(monday, deleted):
    contractor_id = ContractorFactory(deleted_at=datetime.now(UTC)).pk if deleted else MISSING_ID
    job = open_job(monday)

    with refused(Invalid, TOUCHED, field="contractorId"):
        assign_job(
            job_id=job.pk, contractor_id=contractor_id, start=ny(monday, 10), end=ny(monday, 12)
        )


# --- reschedule_job ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day_offset", "start_hm", "score"),
    [
        # A day late: availability 0.9. 0.36 + 0.35 x 0.5 + 0.25.
        pytest.param(1, (13, 0), 0.785, id="next-day"),
        # Overlapping its own old slot is fine: the booking does not block itself.
        pytest.param(0, (11, 0), 0.825, id="an-hour-later"),
        # So is landing within the buffer of where it was.
        pytest.param(0, (8, 0), 0.825, id="right-before-the-old-slot"),
    ],
)
def test_reschedule_job_with_the_same_contractor(contractor, monday, day_offset, start_hm, score):
    assignment = booking(contractor, ny(monday, 10))
    job = assignment.job
    old_start, old_end = assignment.start, assignment.end
    start = ny(monday + timedelta(days=day_offset), *start_hm)
    end = start + timedelta(hours=2)

    rescheduled = reschedule_job(job_id=job.pk, start=start, end=end)

    saved = assert_scheduled(job, contractor, start, end, score)
    assert saved.pk == rescheduled.pk == assignment.pk
    assert Assignment.objects.count() == 1
    assert_booking_event(
        "JobRescheduled",
        job,
        contractor,
        assignment.pk,
        previousContractorId=contractor.pk,
        previousTimeSlot=slot(old_start, old_end),
        scheduledTimeSlot=slot(start, end),
    )


def test_reschedule_job_to_another_contractor(contractor, monday):
    assignment = booking(contractor, ny(monday, 10))
    job = assignment.job
    other = ContractorFactory(type="multi", average_rating=5.0, rating_count=1)
    start, end = ny(monday, 10), ny(monday, 12)  # the same slot, with someone else

    reschedule_job(job_id=job.pk, start=start, end=end, contractor_id=other.pk)

    # Rescored for the new contractor, rated 5.0.
    assert assert_scheduled(job, other, start, end, score=1.0).pk == assignment.pk
    assert_booking_event(
        "JobRescheduled",
        job,
        other,
        assignment.pk,
        contractor,
        previousContractorId=contractor.pk,
        previousTimeSlot=slot(start, end),
        scheduledTimeSlot=slot(start, end),
    )

    # The first contractor's slot is free again.
    freed_job = open_job(monday)
    freed = assign_job(job_id=freed_job.pk, contractor_id=contractor.pk, start=start, end=end)
    assert Assignment.objects.get(pk=freed.pk).contractor_id == contractor.pk


@pytest.mark.parametrize("state", ["open", "in_progress", "completed", "cancelled"])
def test_reschedule_job_needs_an_assigned_job(contractor, monday, state):
    job = job_in_state(state, contractor, monday)

    with refused(Conflict, TOUCHED, code="job_not_assigned"):
        reschedule_job(job_id=job.pk, start=ny(monday, 14), end=ny(monday, 16))


def test_reschedule_job_into_the_same_slot_is_a_conflict(contractor, monday):
    job = booking(contractor, ny(monday, 10)).job

    with refused(Conflict, TOUCHED, code="no_change"):
        reschedule_job(
            job_id=job.pk, start=ny(monday, 10), end=ny(monday, 12), contractor_id=contractor.pk
        )


@pytest.mark.parametrize(
    ("to_other", "start_hm"),
    [
        # Around a 13:00-15:00 Tuesday booking of the target contractor; the job lasts an hour.
        pytest.param(False, (13, 30), id="onto-own-other-booking"),
        pytest.param(False, (15, 15), id="within-buffer-after-own-other-booking"),
        pytest.param(True, (14, 0), id="onto-the-other-contractors-booking"),
        pytest.param(True, (11, 45), id="within-buffer-before-the-other-contractors-booking"),
    ],
)
def test_reschedule_job_into_a_taken_slot_is_a_conflict(contractor, monday, to_other, start_hm):
    tuesday = monday + timedelta(days=1)
    job = booking(contractor, ny(monday, 10), duration_minutes=60).job
    target = ContractorFactory() if to_other else contractor
    booking(target, ny(tuesday, 13))
    start = ny(tuesday, *start_hm)

    with refused(Conflict, TOUCHED, code="slot_taken"):
        reschedule_job(
            job_id=job.pk,
            start=start,
            end=start + timedelta(minutes=60),
            contractor_id=target.pk if to_other else None,
        )


@pytest.mark.parametrize(
    ("start_hm", "minutes", "field", "day"),
    [
        pytest.param((7, 0), 120, "start", "monday", id="before-working-hours"),
        pytest.param((10, 0), 120, "start", "saturday", id="weekend"),
        pytest.param((10, 0), 120, "start", "time-off", id="time-off"),
        pytest.param((10, 0), 119, "end", "monday", id="wrong-duration"),
        pytest.param((10, 0), 120, "start", "past", id="past"),
    ],
)
def test_reschedule_job_to_an_invalid_slot(contractor, monday, start_hm, minutes, field, day):
    job = booking(contractor, ny(monday, 13)).job
    tuesday = monday + timedelta(days=1)
    contractor.time_off.create(start=ny(tuesday, 8), end=ny(tuesday, 17))
    target_day = {
        "monday": monday,
        "saturday": monday + timedelta(days=5),
        "time-off": tuesday,
        "past": monday - timedelta(weeks=2),
    }[day]
    start = ny(target_day, *start_hm)

    with refused(Invalid, TOUCHED, field=field):
        reschedule_job(job_id=job.pk, start=start, end=start + timedelta(minutes=minutes))


@pytest.mark.parametrize(
    "other_fields",
    [
        pytest.param({"status": "inactive"}, id="inactive"),
        pytest.param({"type": "carpet"}, id="wrong-type"),
        pytest.param({"skills": ["grout"]}, id="missing-skill"),
        pytest.param({"deleted_at": datetime(2020, 1, 1, tzinfo=UTC)}, id="deleted"),
    ],
)
def test_reschedule_job_to_an_ineligible_contractor_is_invalid(contractor, monday, other_fields):
    job = booking(contractor, ny(monday, 10)).job
    other = ContractorFactory(**other_fields)

    with refused(Invalid, TOUCHED, field="contractorId"):
        reschedule_job(
            job_id=job.pk, start=ny(monday, 13), end=ny(monday, 15), contractor_id=other.pk
        )


def test_reschedule_to_an_unknown_contractor_or_of_an_unknown_job(contractor, monday):
    job = booking(contractor, ny(monday, 10)).job

    with refused(Invalid, TOUCHED, field="contractorId"):
        reschedule_job(
            job_id=job.pk, start=ny(monday, 13), end=ny(monday, 15), contractor_id=MISSING_ID
        )
    with refused(NotFound, TOUCHED):
        reschedule_job(job_id=MISSING_ID, start=ny(monday, 13), end=ny(monday, 15))


# --- start_job and complete_job -------------------------------------------------------------


def clock(monkeypatch, moment: datetime) -> None:
    monkeypatch.setattr(timezone, "now", lambda: moment)


@pytest.mark.parametrize("acting", ["dispatcher", "own contractor"])
def test_start_job_puts_the_job_in_progress(contractor, monday, monkeypatch, acting):
    assignment = booking(contractor, ny(monday, 10))
    job = assignment.job
    clock(monkeypatch, ny(monday, 9, 50))

    started = start_job(
        job_id=job.pk, acting_contractor_id=contractor.pk if acting != "dispatcher" else None
    )

    assert started.pk == assignment.pk
    saved = Assignment.objects.get(pk=assignment.pk)
    assert (saved.status, saved.started_at, saved.completed_at) == (
        "in_progress",
        ny(monday, 9, 50),
        None,
    )
    assert (saved.start, saved.end) == (ny(monday, 10), ny(monday, 12))  # the booking stays
    assert Job.objects.get(pk=job.pk).status == "in_progress"
    assert Contractor.objects.get(pk=contractor.pk).schedule_version == (
        contractor.schedule_version + 1
    )
    assert_booking_event(
        "JobStarted", job, contractor, assignment.pk, startedAt=z(ny(monday, 9, 50))
    )


@pytest.mark.parametrize("notes", ["", "Replaced two cracked tiles as well."])
def test_complete_job_closes_the_job_and_its_assignment(contractor, monday, monkeypatch, notes):
    assignment = booking(contractor, ny(monday, 10), status="in_progress")
    Assignment.objects.filter(pk=assignment.pk).update(started_at=ny(monday, 10))
    job = assignment.job
    clock(monkeypatch, ny(monday, 11, 40))

    complete_job(job_id=job.pk, notes=notes, acting_contractor_id=contractor.pk)

    saved = Assignment.objects.get(pk=assignment.pk)
    assert (saved.status, saved.started_at, saved.completed_at, saved.notes) == (
        "completed",
        ny(monday, 10),
        ny(monday, 11, 40),
        notes,
    )
    assert Job.objects.get(pk=job.pk).status == "completed"
    assert Contractor.objects.get(pk=contractor.pk).schedule_version == (
        contractor.schedule_version + 1
    )
    assert_booking_event(
        "JobCompleted",
        job,
        contractor,
        assignment.pk,
        completedAt=z(ny(monday, 11, 40)),
        notes=notes,
    )


def test_a_job_completed_early_frees_the_rest_of_its_slot(contractor, monday, monkeypatch):
    """Booked 10:00-14:00; done at 11:00: from 11:30 (completion plus the 30-minute buffer)
    the contractor is free again, for availability and for booking."""
    assignment = booking(contractor, ny(monday, 10), duration_minutes=240)
    later = open_job(monday, duration_minutes=60)
    clock(monkeypatch, ny(monday, 10))
    start_job(job_id=assignment.job_id)
    with pytest.raises(Conflict):
        assign_job(job_id=later.pk, contractor_id=contractor.pk, start=ny(monday, 11, 30))
    clock(monkeypatch, ny(monday, 11))

    complete_job(job_id=assignment.job_id)

    free = availability(contractor, monday, monday, timedelta(minutes=60))
    assert free.windows == [(ny(monday, 11, 30), ny(monday, 17))]
    with pytest.raises(Conflict):  # inside the buffer after the completion
        assign_job(job_id=later.pk, contractor_id=contractor.pk, start=ny(monday, 11, 15))
    booked = assign_job(job_id=later.pk, contractor_id=contractor.pk, start=ny(monday, 11, 30))
    assert (booked.start, booked.end) == (ny(monday, 11, 30), ny(monday, 12, 30))
    assert [e.type for e in events_of()] == ["JobStarted", "JobCompleted", "JobAssigned"]


def test_work_started_ahead_of_the_slot_keeps_the_contractor(contractor, monday, monkeypatch):
    assignment = booking(contractor, ny(monday, 14))
    clock(monkeypatch, ny(monday, 9))

    start_job(job_id=assignment.job_id)

    free = availability(contractor, monday, monday, timedelta(minutes=60))
    assert free.windows == [(ny(monday, 16, 30), ny(monday, 17))]


@pytest.mark.parametrize(
    ("action", "state", "code", "acting"),
    [
        (*case, acting)
        for case in WRONG_STATES
        for acting in ("dispatcher", "own contractor")
        # An open job has no contractor of its own (another contractor's job: Forbidden).
        if not (case[1] == "open" and acting == "own contractor")
    ],
)
def test_start_and_complete_from_any_other_state_is_a_conflict(
    contractor, monday, action, state, code, acting
):
    job = job_in_state(state, contractor, monday)
    acting_id = contractor.pk if acting != "dispatcher" else None

    with refused(Conflict, TOUCHED, code=code):
        if action == "start":
            start_job(job_id=job.pk, acting_contractor_id=acting_id)
        else:
            complete_job(job_id=job.pk, acting_contractor_id=acting_id)


@pytest.mark.parametrize("state", ["open", "assigned", "in_progress", "completed"])
@pytest.mark.parametrize("action", ["start", "complete"])
def test_a_contractor_cannot_start_or_complete_another_contractors_job(
    contractor, monday, state, action
):
    job = job_in_state(state, contractor, monday)
    intruder = ContractorFactory()

    with refused(Forbidden, TOUCHED):
        if action == "start":
            start_job(job_id=job.pk, acting_contractor_id=intruder.pk)
        else:
            complete_job(job_id=job.pk, acting_contractor_id=intruder.pk)


def test_a_job_moved_to_another_contractor_is_no_longer_the_first_ones(contractor, monday):
    other = ContractorFactory()
    job = booking(contractor, ny(monday, 10)).job
    reschedule_job(job_id=job.pk, start=ny(monday, 10), contractor_id=other.pk)
    before = db_state(*TOUCHED)

    with pytest.raises(Forbidden):
        start_job(job_id=job.pk, acting_contractor_id=contractor.pk)

    assert db_state(*TOUCHED) == before
    start_job(job_id=job.pk, acting_contractor_id=other.pk)
    assert Job.objects.get(pk=job.pk).status == "in_progress"


def test_complete_job_notes_too_long_is_invalid(contractor, monday):
    job = job_in_state("in_progress", contractor, monday)

    with refused(Invalid, TOUCHED, field="notes"):
        complete_job(job_id=job.pk, notes="x" * 2001)


@pytest.mark.parametrize("action", [start_job, complete_job])
def test_start_or_complete_unknown_job_is_not_found(action):
    with refused(NotFound, TOUCHED):
        action(job_id=MISSING_ID)


def test_assign_and_reschedule_default_the_end_to_the_jobs_duration(contractor, monday):
    job = open_job(monday, duration_minutes=90)

    booked = assign_job(job_id=job.pk, contractor_id=contractor.pk, start=ny(monday, 10))
    assert (booked.start, booked.end) == (ny(monday, 10), ny(monday, 11, 30))
    moved = reschedule_job(job_id=job.pk, start=ny(monday, 13))

    assert (moved.start, moved.end) == (ny(monday, 13), ny(monday, 14, 30))
    saved = Assignment.objects.get(pk=booked.pk)
    assert (saved.start, saved.end) == (ny(monday, 13), ny(monday, 14, 30))
    events = events_of()
    assert [e.type for e in events] == ["JobAssigned", "JobRescheduled"]
    assert events[0].payload["scheduledTimeSlot"] == slot(ny(monday, 10), ny(monday, 11, 30))
    assert events[1].payload["scheduledTimeSlot"] == slot(ny(monday, 13), ny(monday, 14, 30))


# --- cancel_job -------------------------------------------------------------------------------


def test_cancel_an_open_job(monday):
    job = open_job(monday)

    cancel_job(job_id=job.pk, reason="customer changed their mind")

    saved = Job.objects.get(pk=job.pk)
    assert (saved.status, saved.cancel_reason) == ("cancelled", "customer changed their mind")
    assert_job_event(
        "JobCancelled",
        job,
        assignmentId=None,
        contractorId=None,
        reason="customer changed their mind",
    )


def test_cancel_a_booked_job_frees_the_slot(contractor, monday):
    assignment = booking(contractor, ny(monday, 10))
    job = assignment.job

    cancel_job(job_id=job.pk)

    assert Job.objects.get(pk=job.pk).status == "cancelled"
    assert Job.objects.get(pk=job.pk).cancel_reason == ""
    assert Assignment.objects.get(pk=assignment.pk).status == "cancelled"
    assert_booking_event("JobCancelled", job, contractor, assignment.pk, reason="")

    # The slot is free for another job now.
    other_job = open_job(monday)
    rebooked = assign_job(
        job_id=other_job.pk, contractor_id=contractor.pk, start=ny(monday, 10), end=ny(monday, 12)
    )
    assert Assignment.objects.get(pk=rebooked.pk).status == "scheduled"


@pytest.mark.parametrize(
    ("state", "code"),
    [("in_progress", "job_started"), ("completed", "job_closed"), ("cancelled", "job_closed")],
)
def test_cancel_a_started_or_closed_job_is_a_conflict(contractor, monday, state, code):
    job = job_in_state(state, contractor, monday)

    with refused(Conflict, TOUCHED, code=code):
        cancel_job(job_id=job.pk, reason="again")


def test_cancel_unknown_job_is_not_found():
    with refused(NotFound, TOUCHED):
        cancel_job(job_id=MISSING_ID)


# --- rate_job ---------------------------------------------------------------------------------


def test_rate_job_rates_its_contractor(contractor, monday):
    job = job_in_state("completed", contractor, monday)

    result = rate_job(job_id=job.pk, stars=4)

    assert (result.job.pk, result.result.created, result.result.changed) == (job.pk, True, True)
    saved = Rating.objects.get(job_id=job.pk)
    assert (saved.contractor_id, saved.stars) == (contractor.pk, 4)
    assert Job.objects.get(pk=job.pk).status == "completed"
    # The average is current in the rating's own transaction, before any handler runs.
    fresh = Contractor.objects.get(pk=contractor.pk)
    assert (fresh.average_rating, fresh.rating_count) == (4.0, 1)
    assert_contractor_rated(contractor, job, 4, None)


def test_rating_a_job_again_with_the_same_value_changes_nothing(contractor, monday):
    job = job_in_state("completed", contractor, monday)
    RatingFactory(contractor=contractor, job_id=job.pk, stars=4)
    refresh_rating_summaries(contractor_ids=[contractor.pk])
    before = db_state(*TOUCHED)

    result = rate_job(job_id=job.pk, stars=4)

    assert (result.result.created, result.result.changed) == (False, False)
    assert db_state(*TOUCHED) == before  # not even the rating's updated_at
    assert events_of() == []


@pytest.mark.parametrize(
    ("other_stars", "old", "new", "previous_rating"),
    [
        # Before this change the contractor's ratings are 5 (this job) and 3: average 4.0.
        ([3], 5, 1, 4.0),
        # This job's 2 and the others' 4 and 5: 11 / 3.
        ([4, 5], 2, 5, 3.667),
        # This job's rating was the only one.
        ([], 3, 4, 3.0),
    ],
)
def test_replacing_a_rating_reports_the_average_before_it(
    contractor, monday, other_stars, old, new, previous_rating
):
    job = job_in_state("completed", contractor, monday)
    rating = RatingFactory(contractor=contractor, job_id=job.pk, stars=old)
    for stars in other_stars:
        RatingFactory(contractor=contractor, stars=stars)

    result = rate_job(job_id=job.pk, stars=new)

    assert (result.result.created, result.result.changed) == (False, True)
    saved = Rating.objects.get(job_id=job.pk)
    assert (saved.pk, saved.contractor_id, saved.stars) == (rating.pk, contractor.pk, new)
    assert Rating.objects.filter(contractor=contractor).count() == len(other_stars) + 1
    fresh = Contractor.objects.get(pk=contractor.pk)
    expected = round((sum(other_stars) + new) / (len(other_stars) + 1), 3)
    assert (fresh.average_rating, fresh.rating_count) == (expected, len(other_stars) + 1)
    assert_contractor_rated(contractor, job, new, previous_rating)


@pytest.mark.parametrize("state", ["open", "assigned", "in_progress", "cancelled"])
def test_only_completed_jobs_can_be_rated(contractor, monday, state):
    job = job_in_state(state, contractor, monday)

    with refused(Conflict, TOUCHED, code="job_not_rateable"):
        rate_job(job_id=job.pk, stars=5)

    assert not Rating.objects.filter(job_id=job.pk).exists()


@pytest.mark.parametrize("change", ["cancel", "reschedule", "reschedule to another"])
def test_a_rated_job_never_moves_nor_vanishes_from_the_average(contractor, monday, change):
    """A rating exists only on a completed job, and a completed job can be neither cancelled
    nor rescheduled: the rating stays with the contractor who did the work."""
    other = ContractorFactory()
    job = job_in_state("completed", contractor, monday)
    rate_job(job_id=job.pk, stars=5)
    before = db_state(*TOUCHED)

    with pytest.raises(Conflict) as raised:
        if change == "cancel":
            cancel_job(job_id=job.pk, reason="no show")
        else:
            reschedule_job(
                job_id=job.pk,
                start=ny(monday + timedelta(days=1), 10),
                contractor_id=other.pk if change == "reschedule to another" else None,
            )

    assert type(raised.value) is Conflict
    assert raised.value.code == ("job_closed" if change == "cancel" else "job_not_assigned")
    assert db_state(*TOUCHED) == before
    assert Rating.objects.get(job_id=job.pk).contractor_id == contractor.pk
    for who, summary in ((contractor, (5.0, 1)), (other, (None, 0))):
        saved = Contractor.objects.get(pk=who.pk)
        assert (saved.average_rating, saved.rating_count) == summary == rating_summary(who.pk)
    assert [e.type for e in events_of()] == ["ContractorRated"]


def test_rate_unknown_job_is_not_found():
    with refused(NotFound, TOUCHED):
        rate_job(job_id=MISSING_ID, stars=3)

    assert Rating.objects.count() == 0
