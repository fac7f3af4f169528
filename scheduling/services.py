"""Every write to jobs, assignments and their ratings.

One use case per function, one transaction each: lock (always the job first, then contractors
in id order, so two services never wait on each other in a cycle), validate against the
database, save, record the event, return. Booking re-validates the slot against the database
under the contractor's row lock; the exclusion constraint backs that up.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from contractors.geo import haversine_miles
from contractors.models import Contractor, ContractorStatus, Rating
from contractors.selectors import region_for
from contractors.services import Location, RatingResult, record_rating, touch_schedules
from events.catalog import (
    JobAssigned,
    JobCancelled,
    JobCreated,
    JobRescheduled,
    JobUpdated,
    RecommendationsUpdated,
)
from events.errors import Conflict, Invalid, NotFound
from events.recorder import record_event
from events.timefmt import time_slot
from scheduling.availability import Rules, check_slot
from scheduling.models import (
    LIVE_ASSIGNMENT,
    MAX_DAYS_AHEAD,
    MAX_DURATION_MINUTES,
    MIN_DURATION_MINUTES,
    ActiveRecommendationList,
    Assignment,
    AssignmentStatus,
    Job,
    JobStatus,
    JobType,
    Priority,
)
from scheduling.recommendations import Recommendation, recommend
from scheduling.scoring import Score, score
from scheduling.selectors import job_site, load_schedule

# --- validation helpers -----------------------------------------------------------------------


def _lock_job(job_id: int) -> Job:
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    return job


def _lock_contractors(*contractor_ids: int) -> dict[int, Contractor]:
    found = {
        c.pk: c
        for c in Contractor.objects.select_for_update()
        .filter(pk__in=contractor_ids, deleted_at__isnull=True)
        .order_by("pk")
    }
    for contractor_id in contractor_ids:
        if contractor_id not in found:
            raise Invalid({"contractorId": f"Contractor {contractor_id} does not exist."})
    return found


def _validate_job_fields(
    *,
    type: str | None = None,
    duration_minutes: int | None = None,
    priority: str | None = None,
) -> None:
    errors: dict[str, str] = {}
    if type is not None and type not in JobType.values:
        errors["type"] = f"'{type}' is not one of {', '.join(JobType.values)}."
    if duration_minutes is not None and not (
        MIN_DURATION_MINUTES <= duration_minutes <= MAX_DURATION_MINUTES
    ):
        errors["durationMinutes"] = (
            f"must be from {MIN_DURATION_MINUTES} to {MAX_DURATION_MINUTES} minutes."
        )
    if priority is not None and priority not in Priority.values:
        errors["priority"] = f"'{priority}' is not one of {', '.join(Priority.values)}."
    if errors:
        raise Invalid(errors)


def _normalise_skills(skills: list[str]) -> list[str]:
    return sorted({skill.strip().lower() for skill in skills if skill.strip()})


def _check_eligible(contractor: Contractor, job: Job) -> None:
    if contractor.status != ContractorStatus.ACTIVE:
        raise Invalid({"contractorId": f"Contractor {contractor.pk} is {contractor.status}."})
    if not contractor.matches_type(job.type):
        raise Invalid(
            {"contractorId": f"Contractor {contractor.pk} does {contractor.type}, not {job.type}."}
        )
    missing = sorted(set(job.required_skills) - set(contractor.skills))
    if missing:
        raise Invalid(
            {"contractorId": f"Contractor {contractor.pk} lacks skills: {', '.join(missing)}."}
        )


def _check_slot_shape(job: Job, start: datetime, end: datetime) -> None:
    if end <= start:
        raise Invalid({"end": "must be after start."})
    if end - start != timedelta(minutes=job.duration_minutes):
        raise Invalid(
            {"end": f"must be start + {job.duration_minutes} minutes (the job's duration)."}
        )
    now = timezone.now()
    if start < now:
        raise Invalid({"start": "is in the past."})
    if start > now + timedelta(days=MAX_DAYS_AHEAD):
        raise Invalid({"start": f"is more than {MAX_DAYS_AHEAD} days ahead."})


def _check_bookable(
    contractor: Contractor,
    job: Job,
    start: datetime,
    end: datetime,
    *,
    exclude_assignment_id: int | None = None,
) -> None:
    """Re-validate the slot against the database; the caller holds the contractor's lock."""
    schedule = load_schedule(contractor, start, end, exclude_assignment_id=exclude_assignment_id)
    problem = check_slot(schedule, (start, end), job_site(job), Rules.from_settings())
    if problem is None:
        return
    kind, message = problem
    if kind == "conflict":
        raise Conflict(f"The slot {message}", code="slot_taken")
    raise Invalid({"start": f"The slot {message}"})


def score_booking(contractor: Contractor, job: Job, start: datetime) -> Score:
    local_day = start.astimezone(contractor.tz).date()
    return score(
        days_late=(local_day - job.desired_date).days,
        average_rating=contractor.average_rating,
        miles=haversine_miles(contractor.lat, contractor.lng, job.lat, job.lng),
    )


def _save_slot(assignment: Assignment) -> None:
    """Save inside a savepoint: the exclusion constraint answers 409, not a broken transaction."""
    try:
        with transaction.atomic():
            assignment.save()
    except IntegrityError as exc:
        if "one_live_assignment_per_job" in str(exc):
            raise Conflict("The job already has a live assignment.", code="job_not_open") from exc
        raise Conflict(
            "The slot overlaps another live assignment of this contractor.", code="slot_taken"
        ) from exc


# --- jobs -------------------------------------------------------------------------------------


@transaction.atomic
def create_job(
    *,
    type: str,
    location: Location,
    desired_date: date,
    duration_minutes: int,
    required_skills: list[str] | None = None,
    priority: str = Priority.NORMAL,
) -> Job:
    _validate_job_fields(type=type, duration_minutes=duration_minutes, priority=priority)
    job = Job.objects.create(
        type=type,
        required_skills=_normalise_skills(required_skills or []),
        lat=location.lat,
        lng=location.lng,
        address=location.address,
        region=region_for(location.lat, location.lng),
        desired_date=desired_date,
        duration_minutes=duration_minutes,
        priority=priority,
    )
    record_event(
        JobCreated(
            job_id=job.pk,
            region=job.region,
            job_type=job.type,
            desired_date=job.desired_date.isoformat(),
            duration_minutes=job.duration_minutes,
            priority=job.priority,
        )
    )
    return job


@transaction.atomic
def update_job(
    *,
    job_id: int,
    type: str | None = None,
    required_skills: list[str] | None = None,
    location: Location | None = None,
    desired_date: date | None = None,
    duration_minutes: int | None = None,
    priority: str | None = None,
) -> Job:
    job = _lock_job(job_id)
    if job.status != JobStatus.OPEN:
        raise Conflict(
            f"Job {job_id} is {job.status}; only open jobs can be edited.", code="job_not_open"
        )
    _validate_job_fields(type=type, duration_minutes=duration_minutes, priority=priority)
    previous: dict[str, Any] = {}
    new: dict[str, Any] = {}
    previous_region = job.region

    def change(field: str, old: Any, value: Any) -> None:
        if old != value:
            previous[field], new[field] = old, value

    if type is not None:
        change("type", job.type, type)
        job.type = type
    if required_skills is not None:
        skills = _normalise_skills(required_skills)
        change("requiredSkills", job.required_skills, skills)
        job.required_skills = skills
    if location is not None:
        change(
            "location", {"lat": job.lat, "lng": job.lng, "address": job.address}, location.as_json()
        )
        job.lat, job.lng, job.address = location.lat, location.lng, location.address
        region = region_for(location.lat, location.lng)
        change("region", job.region, region)
        job.region = region
    if desired_date is not None:
        change("desiredDate", job.desired_date.isoformat(), desired_date.isoformat())
        job.desired_date = desired_date
    if duration_minutes is not None:
        change("durationMinutes", job.duration_minutes, duration_minutes)
        job.duration_minutes = duration_minutes
    if priority is not None:
        change("priority", job.priority, priority)
        job.priority = priority
    if not new:
        return job
    job.save()
    record_event(
        JobUpdated(
            job_id=job.pk,
            region=job.region,
            previous_region=previous_region,
            updated_fields=list(new),
            previous_values=previous,
            new_values=new,
        )
    )
    return job


# --- bookings ---------------------------------------------------------------------------------


@transaction.atomic
def assign_job(*, job_id: int, contractor_id: int, start: datetime, end: datetime) -> Assignment:
    job = _lock_job(job_id)
    if job.status != JobStatus.OPEN:
        raise Conflict(f"Job {job_id} is {job.status}, not open.", code="job_not_open")
    contractor = _lock_contractors(contractor_id)[contractor_id]
    _check_eligible(contractor, job)
    _check_slot_shape(job, start, end)
    _check_bookable(contractor, job, start, end)
    booked = score_booking(contractor, job, start)
    assignment = Assignment(
        job=job,
        contractor=contractor,
        start=start,
        end=end,
        score=booked.total,
        score_breakdown=booked.breakdown(),
    )
    _save_slot(assignment)
    touch_schedules(contractor.pk)
    end_recommendations(job)
    job.status = JobStatus.ASSIGNED
    job.save(update_fields=["status", "updated_at"])
    record_event(
        JobAssigned(
            job_id=job.pk,
            region=job.region,
            contractor_id=contractor.pk,
            assignment_id=assignment.pk,
            scheduled_time_slot=time_slot(start, end),
            score=assignment.score,
        )
    )
    return assignment


@transaction.atomic
def reschedule_job(
    *, job_id: int, start: datetime, end: datetime, contractor_id: int | None = None
) -> Assignment:
    job = _lock_job(job_id)
    assignment = (
        Assignment.objects.select_for_update().filter(job=job, status__in=LIVE_ASSIGNMENT).first()
    )
    if job.status != JobStatus.ASSIGNED or assignment is None:
        raise Conflict(
            f"Job {job_id} is {job.status}; only assigned jobs can be rescheduled.",
            code="job_not_assigned",
        )
    if assignment.status != AssignmentStatus.SCHEDULED:
        raise Conflict(f"Job {job_id} is already {assignment.status}.", code="job_started")
    previous_contractor_id = assignment.contractor_id
    target_id = contractor_id if contractor_id is not None else previous_contractor_id
    contractor = _lock_contractors(*sorted({previous_contractor_id, target_id}))[target_id]
    if target_id != previous_contractor_id:
        _check_eligible(contractor, job)
    _check_slot_shape(job, start, end)
    if target_id == previous_contractor_id and (start, end) == (assignment.start, assignment.end):
        raise Conflict("The job is already booked in that slot.", code="no_change")
    _check_bookable(contractor, job, start, end, exclude_assignment_id=assignment.pk)
    previous_slot = time_slot(assignment.start, assignment.end)
    booked = score_booking(contractor, job, start)
    assignment.contractor = contractor
    assignment.start, assignment.end = start, end
    assignment.score, assignment.score_breakdown = booked.total, booked.breakdown()
    _save_slot(assignment)
    touch_schedules(previous_contractor_id, contractor.pk)
    rating = Rating.objects.filter(job_id=job.pk).first()
    if rating is not None and rating.contractor_id != contractor.pk:
        # The job's rating rates whoever does the job: it follows the job to its new contractor.
        record_rating(contractor=contractor, job_id=job.pk, stars=rating.stars)
    record_event(
        JobRescheduled(
            job_id=job.pk,
            region=job.region,
            assignment_id=assignment.pk,
            contractor_id=contractor.pk,
            previous_contractor_id=previous_contractor_id,
            previous_time_slot=previous_slot,
            scheduled_time_slot=time_slot(start, end),
        )
    )
    return assignment


@transaction.atomic
def cancel_job(*, job_id: int, reason: str = "") -> Job:
    job = _lock_job(job_id)
    if job.status in (JobStatus.CANCELLED, JobStatus.COMPLETED):
        raise Conflict(f"Job {job_id} is already {job.status}.", code="job_closed")
    assignment = (
        Assignment.objects.select_for_update().filter(job=job, status__in=LIVE_ASSIGNMENT).first()
    )
    if assignment is not None:
        assignment.status = AssignmentStatus.CANCELLED
        assignment.save(update_fields=["status", "updated_at"])
        touch_schedules(assignment.contractor_id)
    end_recommendations(job)
    job.status = JobStatus.CANCELLED
    job.cancel_reason = reason
    job.save(update_fields=["status", "cancel_reason", "updated_at"])
    record_event(
        JobCancelled(
            job_id=job.pk,
            region=job.region,
            assignment_id=assignment.pk if assignment else None,
            contractor_id=assignment.contractor_id if assignment else None,
            reason=reason,
        )
    )
    return job


# --- ratings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRating:
    job: Job
    result: RatingResult


@transaction.atomic
def rate_job(*, job_id: int, stars: int) -> JobRating:
    job = _lock_job(job_id)
    assignment = (
        job.assignments.filter(status__in=[*LIVE_ASSIGNMENT, AssignmentStatus.COMPLETED])
        .select_related("contractor")
        .first()
    )
    if job.status in (JobStatus.OPEN, JobStatus.CANCELLED) or assignment is None:
        raise Conflict(
            f"Job {job_id} is {job.status}; only booked or completed jobs can be rated.",
            code="job_not_rateable",
        )
    result = record_rating(contractor=assignment.contractor, job_id=job.pk, stars=stars)
    return JobRating(job=job, result=result)


# --- recommendations --------------------------------------------------------------------------


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
