"""Scheduling's reactions to events. Both read the database, so a late or repeated event
converges to the truth; neither holds a transaction across its Redis calls."""

from datetime import date, timedelta

from django.conf import settings
from django.core.cache import caches
from django.utils import timezone
from django_redis import get_redis_connection
from django_redis.cache import RedisCache

from contractors.models import Contractor
from contractors.services import refresh_rating_summaries
from events.models import Event
from scheduling.availability_cache import day_entries, day_key
from scheduling.services import rerank_active_lists

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


def rerank(events: list[Event]) -> None:
    touched = contractors_in(events)
    edited_jobs = {int(e.payload["jobId"]) for e in events if e.type == "JobUpdated"}
    if not touched and not edited_jobs:
        return
    # The rating summary handler may not have run yet (or may be retrying): the ranking must
    # see the new average either way, and the recomputation is idempotent.
    refresh_rating_summaries(
        contractor_ids={
            int(e.payload["contractorId"]) for e in events if e.type == "ContractorRated"
        }
    )
    reason = ", ".join(sorted({e.type for e in events}))
    rerank_active_lists(contractor_ids=touched, job_ids=edited_jobs, reason=reason)
