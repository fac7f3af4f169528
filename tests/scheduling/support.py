"""What several scheduling test modules share: New York wall-clock time, a job completed in the
past, the states from which starting or completing a job is refused (with the Conflict's code),
and the one event a job write records."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from contractors.models import Contractor
from scheduling.models import Job
from tests.conftest import assert_one_event, at
from tests.scheduling.factories import AssignmentFactory, JobFactory

NY = ZoneInfo("America/New_York")

WRONG_STATES = [
    ("start", "open", "job_not_assigned"),
    ("start", "in_progress", "job_not_assigned"),
    ("start", "completed", "job_not_assigned"),
    ("start", "cancelled", "job_not_assigned"),
    ("complete", "open", "job_not_in_progress"),
    ("complete", "assigned", "job_not_in_progress"),
    ("complete", "completed", "job_not_in_progress"),
    ("complete", "cancelled", "job_not_in_progress"),
]


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return at(day, hour, minute, tz=NY)


def completed_job(who: Contractor, hour: int = 9) -> Job:
    """Set-up: a job `who` completed two weeks ago, from `hour` New York time (rows written
    directly, no events): one to rate."""
    past = datetime.now(UTC).date() - timedelta(days=14)
    return AssignmentFactory(
        job=JobFactory(desired_date=past, status="completed"),
        contractor=who,
        start=ny(past, hour),
        status="completed",
    ).job


def assert_job_event(type_: str, job, *contractors, region="default", **payload) -> None:
    """The one event recorded: `type_` of `job`, to `region`'s dispatchers and the streams of
    `contractors`, its payload `payload` with the job's id and region."""
    assert_one_event(
        type_,
        aggregate=f"job:{job.pk}",
        groups=[f"dispatch/{region}", *(f"contractor/{c.pk}" for c in contractors)],
        payload={"jobId": job.pk, **payload, "region": region},
    )


def assert_booking_event(type_: str, job, contractor, assignment_id: int, *also, **payload):
    """The one event recorded about a booking of `job`: it names the assignment and
    `contractor`, and travels to that contractor's stream (and to those of `also`)."""
    assert_job_event(
        type_,
        job,
        contractor,
        *also,
        assignmentId=assignment_id,
        contractorId=contractor.pk,
        **payload,
    )
