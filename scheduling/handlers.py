"""Scheduling's reactions to events. Both read the database, so a late or repeated event
converges to the truth; neither holds a transaction across its Redis calls."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from contractors.models import Contractor
from contractors.services import refresh_rating_summary
from events.models import Event
from scheduling.availability_cache import day_entries
from scheduling.services import rerank_active_lists

SCHEDULE_EVENTS = ["ScheduleUpdated", "JobAssigned", "JobRescheduled", "JobCancelled"]
RANKING_EVENTS = [*SCHEDULE_EVENTS, "ContractorRated", "JobUpdated"]


def contractors_in(events: list[Event]) -> set[int]:
    ids: set[int] = set()
    for event in events:
        for key in ("contractorId", "previousContractorId"):
            if event.payload.get(key) is not None:
                ids.add(int(event.payload[key]))
    return ids


def warm_availability(events: list[Event]) -> None:
    """Compute the touched contractors' cached days (today plus the horizon) for their
    current schedule version, so the next reader finds them."""
    contractors = list(Contractor.objects.filter(pk__in=contractors_in(events)))
    if not contractors:
        return
    today = timezone.now().date()
    days = [today + timedelta(days=n) for n in range(settings.SCHEDULING["HORIZON_DAYS"] + 1)]
    day_entries(contractors, {c.pk: days for c in contractors})


def rerank(events: list[Event]) -> None:
    touched = contractors_in(events)
    edited_jobs = {int(e.payload["jobId"]) for e in events if e.type == "JobUpdated"}
    if not touched and not edited_jobs:
        return
    for contractor_id in sorted(
        {int(e.payload["contractorId"]) for e in events if e.type == "ContractorRated"}
    ):
        # The rating summary handler may not have run yet (or may be retrying): the ranking
        # must see the new average either way, and the recomputation is idempotent.
        refresh_rating_summary(contractor_id=contractor_id)
    reason = ", ".join(sorted({e.type for e in events}))
    rerank_active_lists(contractor_ids=touched, job_ids=edited_jobs, reason=reason)
