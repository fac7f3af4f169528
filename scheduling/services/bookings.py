"""Booking, moving and cancelling jobs: the slot is re-validated against the database under
the contractor's row lock, and the exclusion constraint backs that up."""

from datetime import datetime, timedelta

from django.db import transaction

from contractors.services import touch_schedules
from events.catalog import (
    JobAssigned,
    JobCancelled,
    JobRescheduled,
)
from events.errors import Conflict
from events.recorder import record_event
from events.timefmt import time_slot
from scheduling.models import (
    LIVE_ASSIGNMENT,
    Assignment,
    AssignmentStatus,
    Job,
    JobStatus,
)
from scheduling.services.active_lists import end_recommendations
from scheduling.services.checks import (
    check_bookable,
    check_eligible,
    check_slot_shape,
    lock_contractors,
    lock_job,
    save_slot,
    score_booking,
)


def slot_end(job: Job, start: datetime, end: datetime | None) -> datetime:
    """The slot's end: as given, or the start plus the job's duration."""
    return end if end is not None else start + timedelta(minutes=job.duration_minutes)


@transaction.atomic
def assign_job(
    *, job_id: int, contractor_id: int, start: datetime, end: datetime | None = None
) -> Assignment:
    job = lock_job(job_id)
    if job.status != JobStatus.OPEN:
        raise Conflict(f"Job {job_id} is {job.status}, not open.", code="job_not_open")
    end = slot_end(job, start, end)
    contractor = lock_contractors(contractor_id)[contractor_id]
    check_eligible(contractor, job)
    check_slot_shape(job, start, end)
    check_bookable(contractor, job, start, end)
    booked = score_booking(contractor, job, start)
    assignment = Assignment(
        job=job,
        contractor=contractor,
        start=start,
        end=end,
        score=booked.total,
        score_breakdown=booked.breakdown(),
    )
    save_slot(assignment)
    touch_schedules(contractor.pk)
    end_recommendations(job)
    job.status = JobStatus.ASSIGNED
    job.save(update_fields=["status", "updated_at"])
    record_event(
        JobAssigned(
            job_id=job.pk,
            region=job.region,
            contractor_id=contractor.pk,
            assignment_id=assignment.pk,
            scheduled_time_slot=time_slot(start, end),
            score=assignment.score,
        )
    )
    return assignment


@transaction.atomic
def reschedule_job(
    *, job_id: int, start: datetime, end: datetime | None = None, contractor_id: int | None = None
) -> Assignment:
    """Move a booked job that has not started (a started or completed job stays put, so its
    rating, which only a completed job can have, never moves)."""
    job = lock_job(job_id)
    assignment = (
        Assignment.objects.select_for_update().filter(job=job, status__in=LIVE_ASSIGNMENT).first()
    )
    if job.status != JobStatus.ASSIGNED or assignment is None:
        raise Conflict(
            f"Job {job_id} is {job.status}; only assigned jobs can be rescheduled.",
            code="job_not_assigned",
        )
    if assignment.status != AssignmentStatus.SCHEDULED:
        raise Conflict(f"Job {job_id} is already {assignment.status}.", code="job_started")
    end = slot_end(job, start, end)
    previous_contractor_id = assignment.contractor_id
    target_id = contractor_id if contractor_id is not None else previous_contractor_id
    contractor = lock_contractors(*sorted({previous_contractor_id, target_id}))[target_id]
    if target_id != previous_contractor_id:
        check_eligible(contractor, job)
    check_slot_shape(job, start, end)
    if target_id == previous_contractor_id and (start, end) == (assignment.start, assignment.end):
        raise Conflict("The job is already booked in that slot.", code="no_change")
    check_bookable(contractor, job, start, end, exclude_assignment_id=assignment.pk)
    previous_slot = time_slot(assignment.start, assignment.end)
    booked = score_booking(contractor, job, start)
    assignment.contractor = contractor
    assignment.start, assignment.end = start, end
    assignment.score, assignment.score_breakdown = booked.total, booked.breakdown()
    save_slot(assignment)
    touch_schedules(previous_contractor_id, contractor.pk)
    record_event(
        JobRescheduled(
            job_id=job.pk,
            region=job.region,
            assignment_id=assignment.pk,
            contractor_id=contractor.pk,
            previous_contractor_id=previous_contractor_id,
            previous_time_slot=previous_slot,
            scheduled_time_slot=time_slot(start, end),
        )
    )
    return assignment


@transaction.atomic
def cancel_job(*, job_id: int, reason: str = "") -> Job:
    """open/assigned -> cancelled. A job in progress or completed stays (its work happened;
    a completed job's rating never vanishes)."""
    job = lock_job(job_id)
    if job.status in (JobStatus.CANCELLED, JobStatus.COMPLETED):
        raise Conflict(f"Job {job_id} is already {job.status}.", code="job_closed")
    if job.status == JobStatus.IN_PROGRESS:
        raise Conflict(
            f"Job {job_id} is in progress; only open or assigned jobs can be cancelled.",
            code="job_started",
        )
    assignment = (
        Assignment.objects.select_for_update().filter(job=job, status__in=LIVE_ASSIGNMENT).first()
    )
    if assignment is not None:
        assignment.status = AssignmentStatus.CANCELLED
        assignment.save(update_fields=["status", "updated_at"])
        touch_schedules(assignment.contractor_id)
    end_recommendations(job)
    job.status = JobStatus.CANCELLED
    job.cancel_reason = reason
    job.save(update_fields=["status", "cancel_reason", "updated_at"])
    record_event(
        JobCancelled(
            job_id=job.pk,
            region=job.region,
            assignment_id=assignment.pk if assignment else None,
            contractor_id=assignment.contractor_id if assignment else None,
            reason=reason,
        )
    )
    return job
