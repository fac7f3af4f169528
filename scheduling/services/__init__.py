"""Every write to jobs, assignments and their ratings.

One use case per function, one transaction each: lock (always the job first, then contractors
in id order, so two services never wait on each other in a cycle), validate against the
database, save, record the event, return. Booking re-validates the slot against the database
under the contractor's row lock; the exclusion constraint backs that up.
"""

from scheduling.services.active_lists import (
    end_recommendations,
    ranking_of,
    recommend_for_job,
    rerank_active_lists,
)
from scheduling.services.bookings import assign_job, cancel_job, reschedule_job
from scheduling.services.checks import score_booking
from scheduling.services.jobs import create_job, update_job
from scheduling.services.lifecycle import complete_job, start_job
from scheduling.services.ratings import JobRating, rate_job

__all__ = [
    "JobRating",
    "assign_job",
    "cancel_job",
    "complete_job",
    "create_job",
    "end_recommendations",
    "ranking_of",
    "rate_job",
    "recommend_for_job",
    "rerank_active_lists",
    "reschedule_job",
    "score_booking",
    "start_job",
    "update_job",
]
