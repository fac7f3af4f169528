"""Rating a job's contractor; the rule about which jobs may be rated lives here.

Only a completed job can be rated, and a completed job can be neither cancelled nor
rescheduled: a rating never has to move to another contractor or vanish from an average.
"""

from dataclasses import dataclass

from django.db import transaction

from contractors.services import RatingResult, record_rating
from events.errors import Conflict
from scheduling.models import (
    AssignmentStatus,
    Job,
    JobStatus,
)
from scheduling.services.checks import (
    lock_job,
)


@dataclass(frozen=True)
class JobRating:
    job: Job
    result: RatingResult


@transaction.atomic
def rate_job(*, job_id: int, stars: int) -> JobRating:
    job = lock_job(job_id)
    assignment = (
        job.assignments.filter(status=AssignmentStatus.COMPLETED)
        .select_related("contractor")
        .first()
    )
    if job.status != JobStatus.COMPLETED or assignment is None:
        raise Conflict(
            f"Job {job_id} is {job.status}; only completed jobs can be rated.",
            code="job_not_rateable",
        )
    result = record_rating(contractor=assignment.contractor, job_id=job.pk, stars=stars)
    return JobRating(job=job, result=result)
