"""What several scheduling test modules share: New York wall-clock time, and the states from
which starting or completing a job is refused (with the Conflict's code)."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from tests.conftest import at

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
