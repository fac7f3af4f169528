"""What several scheduling test modules share: New York wall-clock time, the states from which
starting or completing a job is refused (with the Conflict's code), and the one event a job
write records."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from tests.conftest import assert_one_event, at

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
