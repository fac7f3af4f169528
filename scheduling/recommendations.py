"""Ranked contractors for a job.

Candidates are active, do the job's type (`multi` does every type), have every required skill,
and have at least one feasible slot within the horizon (14 days from the desired date). Score and
tie-breaks are those of docs/scheduling.md (`scheduling.scoring`). The suggested slots are the first
three that do not overlap each other, so a dispatcher sees distinct options. Cached day entries
are read in bulk a couple of days at a time, and a contractor stops being looked at once it has
three slots, so the work is proportional to the candidates, not to candidates x horizon.
Availability is only worked out for candidates whose best possible score (free on the desired
day) could still reach the list: the ranking is the one ranking every candidate would give.
"""

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import chain

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from contractors.geo import EARTH_RADIUS_MILES, haversine_miles
from contractors.models import LIVE, RATING_KEY, Contractor, ContractorType
from scheduling.availability import Interval, Rules
from scheduling.availability_cache import DayMemo, day_entries
from scheduling.models import Job
from scheduling.scoring import (
    DISTANCE_ZERO_MILES,
    Score,
    best_total,
    best_total_sql,
    rating_bound_sql,
    rating_key_at_least,
    score,
    weights,
)
from scheduling.selectors import job_site

SLOTS_SHOWN = 3
DAYS_PER_READ = 2
# SQL's bound is within 1e-12 of Python's; rounded to four places that can become 0.0001.
SQL_MARGIN = 0.001


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


# What ranking and explaining need (skills are matched in SQL: decoding them is costly), in
# the model's field order, as `Model.from_db` wants them.
_NEEDED = {
    "id", "name", "type", "lat", "lng", "timezone", "average_rating", "rating_count",
    "schedule_version",
}  # fmt: skip
CANDIDATE_FIELDS = tuple(
    field.attname for field in Contractor._meta.concrete_fields if field.attname in _NEEDED
)
_ID, _LAT, _LNG, _RATING = (
    CANDIDATE_FIELDS.index(f) for f in ("id", "lat", "lng", "average_rating")
)


def _eligible(job: Job):
    # LIVE is also the two ranking indexes' condition, so both reads can use them.
    eligible = Contractor.objects.filter(LIVE, type__in=[job.type, ContractorType.MULTI]).order_by()
    if job.required_skills:
        # Every required skill is in the contractor's list: jsonb @> on PostgreSQL, a json_each
        # anti-join on SQLite (contractors/lookups.py).
        eligible = eligible.filter(skills__contains_all=list(job.required_skills))
    return eligible


def first_look(limit: int) -> int:
    """How many of the best-placed candidates are looked at before the bound is checked: a
    few per place, so the first look usually settles the list."""
    return max(4 * limit, 20)


def horizon_days() -> int:
    return settings.SCHEDULING["HORIZON_DAYS"]


def recommend(
    job: Job, *, limit: int = 5, now: datetime | None = None, memo: DayMemo | None = None
) -> list[Recommendation]:
    """The best `limit` contractors, in the order of `Recommendation.sort_key`.

    A contractor's score is at most its score for a slot on the desired day (`best_total`),
    which needs no availability. Candidates are looked at best first: the `first_look` best,
    then, if the list is not settled, every other one whose best could still reach the list.
    A contractor whose best is below the `limit`-th score found cannot reach it, not even by a
    tie, so skipping it leaves the ranking exactly what ranking everyone would give.

    The database reads the candidates in bound order in two parts, so that neither computes
    the bound of every candidate: those near the job (`near`, a box around the circle where
    distance still scores) ordered by the bound computed per row (`best_total_sql`), and the
    others, whose bound is their rating's alone, in rating order (an index); the two are
    merged. Database floats may differ from Python's in the last bits, so SQL filters with a
    margin and the bound is then checked in Python. Day entries are read through `memo` when
    one is given (see `rank`)."""
    now = now or timezone.now()
    w = weights()
    eligible = _eligible(job)
    place = near(job)
    # rows: the candidate's fields, then the database's bound
    by_bound = (
        eligible.filter(place)
        .annotate(best=best_total_sql(lat=job.lat, lng=job.lng, w=w))
        .order_by("-best", "id")
        .values_list(*CANDIDATE_FIELDS, "best")
    )
    by_rating = (
        eligible.exclude(place)
        .annotate(key=RATING_KEY, best=rating_bound_sql(w))
        .order_by("-key", "id")
        .values_list(*CANDIDATE_FIELDS, "best")
    )

    def look(rows: list[tuple]) -> list[Recommendation]:
        contractors = [Contractor.from_db(eligible.db, CANDIDATE_FIELDS, row[:-1]) for row in rows]
        return rank(job, contractors, now=now, w=w, memo=memo)

    size = first_look(limit)
    first = _best_first([*by_bound[:size], *by_rating[:size]])[:size]
    ranked = look(first)
    if len(first) == size:
        ranked.sort(key=Recommendation.sort_key)
        seen = {row[_ID] for row in first}
        if len(ranked) < limit:
            rest = [row for row in chain(by_bound, by_rating) if row[_ID] not in seen]
        else:
            bar = ranked[limit - 1].score.total
            floor = bar - SQL_MARGIN
            # Nobody outside the first look has a higher bound than its last: if that is
            # below the floor, so is everyone's after it.
            more = _reaching(by_bound, by_rating, floor, w) if first[-1][-1] >= floor else []
            rest = [row for row in more if row[_ID] not in seen and _best(row, job, w) >= bar]
        ranked += look(rest)
    ranked.sort(key=Recommendation.sort_key)
    return ranked[:limit]


def near(job: Job) -> Q:
    """Contractors that may be within DISTANCE_ZERO_MILES of the job: the latitude band and
    longitude span of that circle on the sphere (widened a hair for rounding), or the whole
    band when the circle holds a pole or crosses the antimeridian. Everyone else is farther:
    their distance scores nothing."""
    reach = DISTANCE_ZERO_MILES / EARTH_RADIUS_MILES * 1.001  # radians
    phi = math.radians(job.lat)
    band = Q(lat__gte=math.degrees(phi - reach), lat__lte=math.degrees(phi + reach))
    if abs(phi) + reach >= math.pi / 2:
        return band
    span = math.degrees(math.asin(math.sin(reach) / math.cos(phi)))
    if job.lng - span < -180 or job.lng + span > 180:
        return band
    return band & Q(lng__gte=job.lng - span, lng__lte=job.lng + span)


def _best_first(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda row: (-row[-1], row[_ID]))


def _reaching(by_bound, by_rating, floor: float, w: dict[str, float]) -> list[tuple]:
    """The rows of both reads whose database bound reaches `floor` (by rating: from the
    least rating that can, so the index range stops there)."""
    near_ones = list(by_bound.filter(best__gte=floor))
    key = rating_key_at_least(floor, w)
    if key is None:
        return [*near_ones, *by_rating]
    if key == math.inf:
        return near_ones
    return [*near_ones, *by_rating.filter(key__gte=key)]


def _best(row: tuple, job: Job, w: dict[str, float]) -> float:
    miles = haversine_miles(row[_LAT], row[_LNG], job.lat, job.lng)
    return best_total(average_rating=row[_RATING], miles=miles, w=w)


def rank(
    job: Job,
    pool: list[Contractor],
    *,
    now: datetime,
    w: dict[str, float],
    memo: DayMemo | None = None,
) -> list[Recommendation]:
    """Every contractor of `pool` with a feasible slot in the horizon, scored, unsorted.
    Day entries come from the cache, through `memo` when rankings of a run share it."""
    rules = Rules.from_settings()
    site = job_site(job)
    duration = timedelta(minutes=job.duration_minutes)
    found: dict[int, list[Interval]] = {}
    by_id = {c.pk: c for c in pool}
    looking = pool
    horizon = [job.desired_date + timedelta(days=n) for n in range(horizon_days())]
    for offset in range(0, len(horizon), DAYS_PER_READ):
        if not looking:
            break
        days: list[date] = horizon[offset : offset + DAYS_PER_READ]
        per_contractor = {c.pk: days for c in looking}
        if memo is not None:
            entries = memo.read(looking, per_contractor)
        else:
            entries = day_entries(looking, per_contractor, cache_optional=True)
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
                    days_late=days_late,
                    average_rating=contractor.average_rating,
                    miles=miles,
                    w=w,
                ),
                miles=miles,
                slots=slots[:SLOTS_SHOWN],
                days_late=days_late,
            )
        )
    return ranked
