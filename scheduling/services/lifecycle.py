"""Starting and completing booked jobs: the assigned contractor (from its own login) or a
dispatcher moves a job assigned -> in_progress -> completed, and its assignment
scheduled -> in_progress -> completed. Any other state is a Conflict.

A completion bumps the contractor's schedule version: the assignment now keeps its contractor
only up to the completion (plus the buffer and travel), so an early completion frees the rest
of the slot (`scheduling.models.occupied`).
"""

from django.db import transaction
from django.utils import timezone

from contractors.services import touch_schedules
from events.catalog import JobCompleted, JobStarted
from events.errors import Conflict, Forbidden, Invalid
from events.recorder import record_event
from events.timefmt import iso_utc
from scheduling.models import Assignment, AssignmentStatus, Job, JobStatus
from scheduling.services.checks import lock_job

MAX_NOTES_LENGTH = 2000


def _lock_assignment(job: Job, *, wanted: AssignmentStatus, acting_contractor_id: int | None):
    assignment = (
        Assignment.objects.select_for_update().filter(job=job, status=wanted).first()
        if job.status in (JobStatus.ASSIGNED, JobStatus.IN_PROGRESS)
        else None
    )
    if acting_contractor_id is not None and (
        assignment is None or assignment.contractor_id != acting_contractor_id
    ):
        # Checked under the job's lock: a job rescheduled to someone else a moment ago is no
        # longer this contractor's to start or complete. Its own job in the wrong state is a
        # Conflict, as for a dispatcher.
        latest = job.assignments.order_by("-created_at").first()
        if latest is None or latest.contractor_id != acting_contractor_id:
            raise Forbidden(f"Job {job.pk} is not assigned to contractor {acting_contractor_id}.")
    return assignment


@transaction.atomic
def start_job(*, job_id: int, acting_contractor_id: int | None = None) -> Assignment:
    """assigned -> in_progress. `acting_contractor_id`: a contractor's own login, which may
    start only its own job (None: a dispatcher)."""
    job = lock_job(job_id)
    assignment = _lock_assignment(
        job, wanted=AssignmentStatus.SCHEDULED, acting_contractor_id=acting_contractor_id
    )
    if job.status != JobStatus.ASSIGNED or assignment is None:
        raise Conflict(
            f"Job {job_id} is {job.status}; only assigned jobs can be started.",
            code="job_not_assigned",
        )
    now = timezone.now()
    assignment.status = AssignmentStatus.IN_PROGRESS
    assignment.started_at = now
    assignment.save(update_fields=["status", "started_at", "updated_at"])
    # Work started ahead of the slot keeps the contractor from now on.
    touch_schedules(assignment.contractor_id)
    job.status = JobStatus.IN_PROGRESS
    job.save(update_fields=["status", "updated_at"])
    record_event(
        JobStarted(
            job_id=job.pk,
            region=job.region,
            assignment_id=assignment.pk,
            contractor_id=assignment.contractor_id,
            started_at=iso_utc(now),
        )
    )
    return assignment


@transaction.atomic
def complete_job(
    *, job_id: int, notes: str = "", acting_contractor_id: int | None = None
) -> Assignment:
    """in_progress -> completed, with optional notes. The rest of the slot becomes free."""
    if len(notes) > MAX_NOTES_LENGTH:
        raise Invalid({"notes": f"at most {MAX_NOTES_LENGTH} characters."})
    job = lock_job(job_id)
    assignment = _lock_assignment(
        job, wanted=AssignmentStatus.IN_PROGRESS, acting_contractor_id=acting_contractor_id
    )
    if job.status != JobStatus.IN_PROGRESS or assignment is None:
        raise Conflict(
            f"Job {job_id} is {job.status}; only jobs in progress can be completed.",
            code="job_not_in_progress",
        )
    now = timezone.now()
    assignment.status = AssignmentStatus.COMPLETED
    assignment.completed_at = now
    assignment.notes = notes
    assignment.save(update_fields=["status", "completed_at", "notes", "updated_at"])
    touch_schedules(assignment.contractor_id)
    job.status = JobStatus.COMPLETED
    job.save(update_fields=["status", "updated_at"])
    record_event(
        JobCompleted(
            job_id=job.pk,
            region=job.region,
            assignment_id=assignment.pk,
            contractor_id=assignment.contractor_id,
            completed_at=iso_utc(now),
            notes=notes,
        )
    )
    return assignment
