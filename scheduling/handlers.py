"""Scheduling's reactions to events. Both read the database, so a late or repeated event
converges to the truth; neither holds a transaction across its Redis calls."""

from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.cache import caches
from django.utils import timezone
from django_redis import get_redis_connection
from django_redis.cache import RedisCache

from contractors.models import Contractor
from contractors.services import refresh_rating_summaries
from events.models import Event
from events.timefmt import time_slot
from scheduling.availability_cache import day_entries, day_key
from scheduling.models import Assignment
from scheduling.services import rerank_active_lists
from scheduling.services.active_lists import DaySpan

# JobStarted and JobCompleted too: work started early keeps the contractor from then on, and a
# job completed early frees the rest of its slot (from its completion plus the buffer).
SCHEDULE_EVENTS = [
    "ScheduleUpdated",
    "JobAssigned",
    "JobRescheduled",
    "JobCancelled",
    "JobStarted",
    "JobCompleted",
]
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
    cold = cold_days(contractors, {c.pk: days for c in contractors})
    if cold:
        day_entries([c for c in contractors if c.pk in cold], cold)


def cold_days(contractors: list[Contractor], days: dict[int, list[date]]) -> dict[int, list[date]]:
    """The requested days not cached for the contractor's current schedule version.

    A batch touches a few hundred contractors, most of them already warm: asking `day_entries`
    would fetch, unpickle and decode thousands of entries only to throw them away (the
    relay's profile, docs/profiles/relay.md). With django-redis one MGET of the raw values
    answers instead; with another cache every day counts as cold and `day_entries` sorts it
    out."""
    store = caches["default"]
    if not isinstance(store, RedisCache):
        return days
    wanted = [(c.pk, day) for c in contractors for day in days[c.pk]]
    version = {c.pk: c.schedule_version for c in contractors}
    keys = [store.make_key(day_key(pk, version[pk], day)) for pk, day in wanted]
    cold: dict[int, list[date]] = {}
    for (pk, day), value in zip(wanted, get_redis_connection().mget(keys), strict=True):
        if value is None:
            cold.setdefault(pk, []).append(day)
    return cold


# ScheduleUpdated fields that no ranking reads (the ranking shows ids and scores, and the
# region is the dispatchers' grouping, not a criterion).
UNRANKED_FIELDS = {"name", "user", "region"}
# JobUpdated fields that no ranking reads: a job's priority orders the dispatchers' work, not
# its candidates, and its region follows its location (which is read).
UNRANKED_JOB_FIELDS = {"priority", "region"}
# A booking or time off reaches the cached entries of the local days within a day of it
# (entries carry the bookings a day either side, for travel), and a local day lies within 14
# hours of the UTC date it bears: two UTC days either side cover every affected local day.
DAY_MARGIN = timedelta(days=2)


def _days_of(*slots: dict | None) -> DaySpan:
    """The local days around these {start, end} slots (UTC ISO strings); None (any day) if
    one is missing."""
    if not slots or any(not slot for slot in slots):
        return None
    starts = [datetime.fromisoformat(slot["start"]) for slot in slots]
    ends = [datetime.fromisoformat(slot["end"]) for slot in slots]
    return ((min(starts) - DAY_MARGIN).date(), (max(ends) + DAY_MARGIN).date())


def _cancelled_slot(assignment_id: int | None) -> dict | None:
    found = Assignment.objects.filter(pk=assignment_id).values("start", "end").first()
    return time_slot(found["start"], found["end"]) if found else None


def _merge(first: DaySpan, second: DaySpan) -> DaySpan:
    if first is None or second is None:
        return None
    return (min(first[0], second[0]), max(first[1], second[1]))


def ranking_changes(events: list[Event]) -> dict[int, DaySpan]:
    """Per contractor, the days these events may have changed for its rankings (None: any
    day). Events that cannot change a ranking add nothing."""
    changes: dict[int, DaySpan] = {}

    def add(contractor_id, days: DaySpan) -> None:
        if contractor_id is not None:
            key = int(contractor_id)
            changes[key] = _merge(changes[key], days) if key in changes else days

    for event in events:
        payload = event.payload
        if event.type == "ContractorRated":
            add(payload["contractorId"], None)
        elif event.type == "ScheduleUpdated":
            fields = set(payload["updatedFields"]) - UNRANKED_FIELDS
            if fields == {"timeOff"}:
                periods = [payload["previousValues"]["timeOff"], payload["newValues"]["timeOff"]]
                add(payload["contractorId"], _days_of(*(p for p in periods if p)))
            elif fields:
                add(payload["contractorId"], None)
        elif event.type == "JobAssigned":
            add(payload["contractorId"], _days_of(payload["scheduledTimeSlot"]))
        elif event.type == "JobRescheduled":
            days = _days_of(payload["previousTimeSlot"], payload["scheduledTimeSlot"])
            add(payload["contractorId"], days)
            add(payload["previousContractorId"], days)
        elif event.type == "JobCancelled":
            add(payload.get("contractorId"), _days_of(_cancelled_slot(payload["assignmentId"])))
    return changes


def rerank(events: list[Event]) -> None:
    changes = ranking_changes(events)
    edited_jobs = {
        int(e.payload["jobId"])
        for e in events
        if e.type == "JobUpdated" and set(e.payload["updatedFields"]) - UNRANKED_JOB_FIELDS
    }
    if not changes and not edited_jobs:
        return
    # The rating summary handler may not have run yet (or may be retrying): the ranking must
    # see the new average either way, and the recomputation is idempotent.
    refresh_rating_summaries(
        contractor_ids={
            int(e.payload["contractorId"]) for e in events if e.type == "ContractorRated"
        }
    )
    reason = ", ".join(sorted({e.type for e in events}))
    rerank_active_lists(changes=changes, job_ids=edited_jobs, reason=reason)
