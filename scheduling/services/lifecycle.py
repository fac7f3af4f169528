"""Starting and completing booked jobs: the assigned contractor (from its own login) or a
dispatcher moves a job assigned -> in_progress -> completed, and its assignment
scheduled -> in_progress -> completed. Any other state is a Conflict.

A completion bumps the contractor's schedule version: the assignment now keeps its contractor
only up to the completion (plus the buffer and travel), so an early completion frees the rest
of the slot (`scheduling.models.occupied`).
"""

from typing import NamedTuple

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


class Step(NamedTuple):
    """One step of a booked job: from which states, refused how, recorded as what."""

    job_from: JobStatus
    assignment_from: AssignmentStatus
    refusal: str
    code: str
    event: type[JobStarted | JobCompleted]
    stamp: str  # the assignment's (and the event's) moment of the step


STEPS = {
    JobStatus.IN_PROGRESS: Step(
        JobStatus.ASSIGNED, AssignmentStatus.SCHEDULED, "only assigned jobs can be started",
        "job_not_assigned", JobStarted, "started_at",
    ),
    JobStatus.COMPLETED: Step(
        JobStatus.IN_PROGRESS, AssignmentStatus.IN_PROGRESS,
        "only jobs in progress can be completed", "job_not_in_progress", JobCompleted,
        "completed_at",
    ),
}  # fmt: skip


def _advance(job_id: int, to: JobStatus, acting_contractor_id: int | None, **fields) -> Assignment:
    """Moves the job and its assignment to `to` (STEPS), stamps the moment, sets `fields` on
    the assignment and records the step's event with the same values. Either way the
    contractor's schedule changes: work started ahead of the slot keeps the contractor from
    now on, a completion frees the rest of the slot."""
    step = STEPS[to]
    job = lock_job(job_id)
    assignment = _lock_assignment(
        job, wanted=step.assignment_from, acting_contractor_id=acting_contractor_id
    )
    if job.status != step.job_from or assignment is None:
        raise Conflict(f"Job {job_id} is {job.status}; {step.refusal}.", code=step.code)
    now = timezone.now()
    assignment.status = to
    setattr(assignment, step.stamp, now)
    for name, value in fields.items():
        setattr(assignment, name, value)
    assignment.save(update_fields=["status", step.stamp, *fields, "updated_at"])
    touch_schedules(assignment.contractor_id)
    job.status = to
    job.save(update_fields=["status", "updated_at"])
    record_event(
        step.event(
            job_id=job.pk,
            region=job.region,
            assignment_id=assignment.pk,
            contractor_id=assignment.contractor_id,
            **{step.stamp: iso_utc(now)},
            **fields,
        )
    )
    return assignment


@transaction.atomic
def start_job(*, job_id: int, acting_contractor_id: int | None = None) -> Assignment:
    """assigned -> in_progress. `acting_contractor_id`: a contractor's own login, which may
    start only its own job (None: a dispatcher)."""
    return _advance(job_id, JobStatus.IN_PROGRESS, acting_contractor_id)


@transaction.atomic
def complete_job(
    *, job_id: int, notes: str = "", acting_contractor_id: int | None = None
) -> Assignment:
    """in_progress -> completed, with optional notes. The rest of the slot becomes free."""
    if len(notes) > MAX_NOTES_LENGTH:
        raise Invalid({"notes": f"at most {MAX_NOTES_LENGTH} characters."})
    return _advance(job_id, JobStatus.COMPLETED, acting_contractor_id, notes=notes)
