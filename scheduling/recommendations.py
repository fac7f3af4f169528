"""Ranked contractors for a job.

Candidates are active, do the job's type (`multi` does every type), have every required skill,
and have at least one feasible slot within the horizon (14 days from the desired date). Score and
tie-breaks follow SPEC section 3 (`scheduling.scoring`). The suggested slots are the first
three that do not overlap each other, so a dispatcher sees distinct options. Cached day entries
are read in bulk a couple of days at a time, and a contractor stops being looked at once it has
three slots, so the work is proportional to the candidates, not to candidates x horizon.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from contractors.geo import haversine_miles
from contractors.models import Contractor, ContractorStatus, ContractorType
from scheduling.availability import Interval, Rules
from scheduling.availability_cache import day_entries
from scheduling.models import Job
from scheduling.scoring import Score, score
from scheduling.selectors import job_site

SLOTS_SHOWN = 3
DAYS_PER_READ = 2


@dataclass(frozen=True)
class Recommendation:
    contractor: Contractor
    score: Score
    miles: float
    slots: list[Interval]
    days_late: int

    @property
    def first_slot(self) -> Interval:
        return self.slots[0]

    def sort_key(self) -> tuple:
        return (-self.score.total, self.first_slot[0], self.miles, self.contractor.pk)

    def explanation(self) -> str:
        when = self.first_slot[0].astimezone(self.contractor.tz)
        if self.days_late == 0:
            free = f"free on the desired day from {when:%H:%M %Z}"
        else:
            plural = "s" if self.days_late != 1 else ""
            free = (
                f"first free {self.days_late} day{plural} after the desired day "
                f"({when:%a %d %b %H:%M %Z})"
            )
        count = self.contractor.rating_count
        if self.contractor.average_rating is None:
            rated = "not rated yet"
        else:
            jobs = "job" if count == 1 else "jobs"
            rated = f"rated {self.contractor.average_rating:.1f}/5 from {count} {jobs}"
        # Not str.capitalize(): it would lower-case the day and month names too.
        return f"{free[0].upper()}{free[1:]}; {rated}; {self.miles:.1f} miles away."


def candidates(job: Job) -> list[Contractor]:
    eligible = Contractor.objects.filter(
        status=ContractorStatus.ACTIVE,
        deleted_at__isnull=True,
        type__in=[job.type, ContractorType.MULTI],
    ).only(
        "id", "name", "type", "skills", "lat", "lng", "timezone", "average_rating",
        "rating_count", "schedule_version",
    )  # fmt: skip
    required = set(job.required_skills)
    return [c for c in eligible if required <= set(c.skills)]


def horizon_days() -> int:
    return settings.SCHEDULING["HORIZON_DAYS"]


def recommend(job: Job, *, limit: int = 5, now: datetime | None = None) -> list[Recommendation]:
    now = now or timezone.now()
    rules = Rules.from_settings()
    site = job_site(job)
    duration = timedelta(minutes=job.duration_minutes)
    found: dict[int, list[Interval]] = {}
    pool = candidates(job)
    by_id = {c.pk: c for c in pool}
    looking = pool
    horizon = [job.desired_date + timedelta(days=n) for n in range(horizon_days())]
    for offset in range(0, len(horizon), DAYS_PER_READ):
        if not looking:
            break
        days: list[date] = horizon[offset : offset + DAYS_PER_READ]
        entries = day_entries(looking, {c.pk: days for c in looking}, cache_optional=True)
        still = []
        for contractor in looking:
            slots = found.setdefault(contractor.pk, [])
            for day in days:
                for slot in entries[(contractor.pk, day)].slots(site, duration, rules, now):
                    # Suggest distinct options: each starts after the previous one ends.
                    if not slots or slot[0] >= slots[-1][1]:
                        slots.append(slot)
                if len(slots) >= SLOTS_SHOWN:
                    break
            if len(slots) < SLOTS_SHOWN:
                still.append(contractor)
        looking = still
    ranked = []
    for contractor_id, slots in found.items():
        if not slots:
            continue
        contractor = by_id[contractor_id]
        first_day = slots[0][0].astimezone(contractor.tz).date()
        days_late = max(0, (first_day - job.desired_date).days)
        miles = haversine_miles(contractor.lat, contractor.lng, job.lat, job.lng)
        ranked.append(
            Recommendation(
                contractor=contractor,
                score=score(
                    days_late=days_late, average_rating=contractor.average_rating, miles=miles
                ),
                miles=miles,
                slots=slots[:SLOTS_SHOWN],
                days_late=days_late,
            )
        )
    ranked.sort(key=Recommendation.sort_key)
    return ranked[:limit]
