"""Recommendation lists that dispatchers are looking at, and their live re-ranking."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from contractors.models import Contractor
from events.catalog import (
    RecommendationsUpdated,
)
from events.errors import NotFound
from events.recorder import record_event
from scheduling.models import (
    ActiveRecommendationList,
    Job,
    JobStatus,
)
from scheduling.recommendations import Recommendation, recommend


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


def rerank_active_lists(
    *, contractor_ids: set[int], reason: str, job_ids: set[int] = frozenset()
) -> int:
    """Re-rank the live lists these contractors may figure in (and those of `job_ids`, jobs
    that were edited); record RecommendationsUpdated for each whose order or scores changed.
    Returns how many changed. Idempotent: a list that already shows the current ranking
    records nothing."""
    now = timezone.now()
    ActiveRecommendationList.objects.filter(expires_at__lte=now).delete()
    touched = list(Contractor.objects.filter(pk__in=contractor_ids))
    changed = 0
    lists = ActiveRecommendationList.objects.filter(
        expires_at__gt=now, job__status=JobStatus.OPEN
    ).select_related("job")
    for active in lists:
        job = active.job
        listed = {row["contractorId"] for row in active.ranking}
        eligible = any(
            c.matches_type(job.type) and c.has_skills(job.required_skills) for c in touched
        )
        if not (listed & contractor_ids) and not eligible and job.pk not in job_ids:
            continue
        ranking = ranking_of(recommend(job, limit=active.limit, now=now))
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
    return changed
