"""Recommendation lists that dispatchers are looking at, and their live re-ranking."""

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from contractors.geo import haversine_miles
from contractors.models import Contractor, ContractorStatus, ContractorType
from events.catalog import (
    RecommendationsUpdated,
)
from events.errors import NotFound
from events.recorder import record_event
from scheduling.availability_cache import DayMemo
from scheduling.models import (
    ActiveRecommendationList,
    Job,
    JobStatus,
)
from scheduling.recommendations import Recommendation, horizon_days, rank, recommend
from scheduling.scoring import best_total, weights


def ranking_of(recommendations: list[Recommendation]) -> list[dict[str, Any]]:
    return [
        {"rank": rank, "contractorId": rec.contractor.pk, "score": rec.score.total}
        for rank, rec in enumerate(recommendations, start=1)
    ]


def end_recommendations(job: Job) -> None:
    """The job is assigned or cancelled: its recommendation list stops being live."""
    ActiveRecommendationList.objects.filter(job=job).delete()


def recommend_for_job(*, job_id: int, limit: int = 5) -> list[Recommendation]:
    """Rank contractors for an open job and make the list active for 30 minutes.

    The ranking is computed outside any transaction (it reads the Redis cache); only the
    upsert of the active list is a (short) write. A job that is not open gets its ranking
    without activating anything.
    """
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    recommendations = recommend(job, limit=limit)
    if job.status == JobStatus.OPEN:
        now = timezone.now()
        ttl = timedelta(minutes=settings.SCHEDULING["RECOMMENDATIONS_TTL_MINUTES"])
        with transaction.atomic():
            ActiveRecommendationList.objects.update_or_create(
                job=job,
                defaults={
                    "limit": limit,
                    "ranking": ranking_of(recommendations),
                    "activated_at": now,
                    "expires_at": now + ttl,
                },
            )
    return recommendations


@dataclass(frozen=True)
class Reranked:
    recomputed: int  # lists ranked afresh
    changed: int  # of those, lists whose ranking changed (one RecommendationsUpdated each)
    # Lists a change could reach that scoring the changed contractors alone showed unchanged.
    confirmed: int


# A list reached by more changed contractors than this is ranked afresh without checking them
# one by one: a check scores one contractor, a ranking afresh twenty or more (`first_look`), and
# the checks of a list stop at the first that fails.
CHECK_AT_MOST = 4


# The local days whose availability a change may have altered, first and last (inclusive);
# None: the change can alter any day (a rating, a move, new hours, eligibility).
DaySpan = tuple[date, date] | None


def rerank_active_lists(
    *, changes: Mapping[int, DaySpan], reason: str, job_ids: Collection[int] = frozenset()
) -> Reranked:
    """Re-rank the live lists that these contractor changes (contractor id -> the days
    changed) can affect, and those of `job_ids` (jobs that were edited); record
    RecommendationsUpdated for each whose order or scores changed. Idempotent: a list that
    already shows the current ranking records nothing.

    A list is ranked from its job's candidates' scores and their slots on the horizon's local
    days (the desired date and the 13 after it, never before now). A change to contractor C
    can therefore alter a list only if the days changed meet the horizon and C is listed in
    it, or C is (now) a candidate for the job that could enter it: a full list admits no one
    whose best possible score (a slot on the desired day, `best_total`) is below its last
    score. Every other list ranks as before, so it is not recomputed: the outcome is the one
    re-ranking every active list would give, for the work of the lists that can change.

    Of those, a list is ranked afresh only if scoring the changed contractors alone does not
    show it unchanged (`_keeps_its_order`): nobody else's score moved, so a contractor that
    keeps its score, and is tied with no one, keeps its place, and one that stays below a full
    list's last score stays out."""
    now = timezone.now()
    ActiveRecommendationList.objects.filter(expires_at__lte=now).delete()
    touched = {c.pk: c for c in Contractor.objects.filter(pk__in=list(changes))}
    spans = {pk: _clamped(changes[pk], now) for pk in touched}
    spans = {pk: span for pk, span in spans.items() if span is not None}
    if not spans and not job_ids:
        return Reranked(recomputed=0, changed=0, confirmed=0)
    lists = (
        ActiveRecommendationList.objects.filter(expires_at__gt=now, job__status=JobStatus.OPEN)
        .filter(_may_be_affected(touched, spans, job_ids))
        .select_related("job")
    )
    w = weights()
    due: list[tuple[ActiveRecommendationList, list[Contractor]]] = []
    for active in lists:
        reaching = [
            touched[pk] for pk, span in spans.items() if _can_alter(touched[pk], span, active, w)
        ]
        if reaching or active.job.pk in job_ids:
            due.append((active, reaching))
    memo = _warm([c for c in touched.values() if _is_available(c)], [a for a, _ in due])
    recomputed = changed = 0
    for active, reaching in due:
        job = active.job
        checked = job.pk not in job_ids and len(reaching) <= CHECK_AT_MOST
        if checked and all(_keeps_its_order(c, active, now, w, memo) for c in reaching):
            continue
        recomputed += 1
        ranking = ranking_of(recommend(job, limit=active.limit, now=now, memo=memo))
        if ranking == active.ranking:
            continue
        with transaction.atomic():
            current = (
                ActiveRecommendationList.objects.select_for_update()
                .filter(pk=active.pk, expires_at__gt=now)
                .first()
            )
            if current is None or current.ranking == ranking:
                continue
            current.ranking = ranking
            current.save(update_fields=["ranking"])
            record_event(
                RecommendationsUpdated(
                    job_id=job.pk, region=job.region, reason=reason, recommendations=ranking
                )
            )
            changed += 1
    return Reranked(recomputed=recomputed, changed=changed, confirmed=len(due) - recomputed)


def _warm(contractors: list[Contractor], due: list[ActiveRecommendationList]) -> DayMemo:
    """The step's memo of day entries (the lists due share most of their candidates and days),
    first holding the changed contractors' new days that the lists due read, read (and cached)
    in bulk: their schedule version moved on, so their entries are cold, and each list would
    otherwise compute its own few days of them (three queries each time). The warming
    subscriber caches them too, but it progresses on its own and may not have run yet."""
    memo = DayMemo()
    if not contractors or not due:
        return memo
    days = sorted(
        {
            active.job.desired_date + timedelta(days=n)
            for active in due
            for n in range(horizon_days())
        }
    )
    memo.read(contractors, {c.pk: days for c in contractors})
    return memo


def _clamped(span: DaySpan, now) -> tuple[date, date | None] | None:
    """The span's days that can still hold a slot (a local day ends at most a day after the
    UTC date it bears), as (first, last or None for unbounded); None if none can."""
    earliest = now.date() - timedelta(days=1)
    if span is None:
        return (earliest, None)
    first, last = span
    if last < earliest:
        return None
    return (max(first, earliest), last)


def _horizon_meets(first: date, last: date | None) -> Q:
    """Jobs whose horizon (desired date .. + HORIZON_DAYS - 1) meets the days first..last."""
    q = Q(job__desired_date__gte=first - timedelta(days=horizon_days() - 1))
    return q & Q(job__desired_date__lte=last) if last is not None else q


def _may_be_affected(
    touched: dict[int, Contractor], spans: dict[int, tuple[date, date | None]], job_ids
) -> Q:
    """SQL's part of the test: horizon, listed, or a candidate by type and skills (the bound
    is checked in Python). The JSON lookups are PostgreSQL's; elsewhere (the embedded default)
    only the horizon is filtered in SQL."""
    postgres = connection.vendor == "postgresql"
    q = Q(job_id__in=list(job_ids))
    for pk, (first, last) in spans.items():
        contractor = touched[pk]
        who = Q()
        if postgres:
            who = Q(ranking__contains=[{"contractorId": pk}])
            if _is_available(contractor):
                multi = contractor.type == ContractorType.MULTI
                kind = Q() if multi else Q(job__type=contractor.type)
                who |= kind & Q(job__required_skills__contained_by=list(contractor.skills))
        q |= _horizon_meets(first, last) & who
    return q


def _is_available(contractor: Contractor) -> bool:
    return contractor.status == ContractorStatus.ACTIVE and not contractor.is_deleted


def _can_alter(
    contractor: Contractor, span: tuple[date, date | None], active: ActiveRecommendationList, w
) -> bool:
    job = active.job
    first, last = span
    horizon_end = job.desired_date + timedelta(days=horizon_days() - 1)
    if horizon_end < first or (last is not None and job.desired_date > last):
        return False
    if any(row["contractorId"] == contractor.pk for row in active.ranking):
        return True
    if not (
        _is_available(contractor)
        and contractor.matches_type(job.type)
        and contractor.has_skills(job.required_skills)
    ):
        return False
    if len(active.ranking) < active.limit:
        return True
    miles = haversine_miles(contractor.lat, contractor.lng, job.lat, job.lng)
    best = best_total(average_rating=contractor.average_rating, miles=miles, w=w)
    return best >= active.ranking[-1]["score"]


def _keeps_its_order(
    contractor: Contractor,
    active: ActiveRecommendationList,
    now,
    w,
    memo: DayMemo,
) -> bool:
    """Whether the list stays as it is for all that changed about `contractor`, judged from
    the contractor's own score (no one else's moved). Listed, it keeps its place if its score
    is the same and no other listed score equals it (ties go by first slot, which may have
    moved), unless it is the last of a full list (a candidate left out may tie with it); not
    listed, it stays out if it has no slot or a full list's last score beats its own."""
    job = active.job
    eligible = (
        _is_available(contractor)
        and contractor.matches_type(job.type)
        and contractor.has_skills(job.required_skills)
    )
    found = rank(job, [contractor], now=now, w=w, memo=memo) if eligible else []
    new = found[0].score.total if found else None
    scores = {row["contractorId"]: row["score"] for row in active.ranking}
    full = len(active.ranking) >= active.limit
    if contractor.pk not in scores:
        return new is None or (full and new < active.ranking[-1]["score"])
    old = scores.pop(contractor.pk)
    last = active.ranking[-1]["contractorId"] == contractor.pk
    return new == old and old not in scores.values() and not (full and last)
