"""Checks every booking service makes, under the locks it holds (job first, then contractors
in id order), against the database."""

from datetime import date, datetime, timedelta

from django.db import IntegrityError
from django.utils import timezone

from contractors.geo import haversine_miles
from contractors.models import Contractor, ContractorStatus
from events.errors import Conflict, Invalid, NotFound
from scheduling.availability import Rules, check_slot
from scheduling.models import (
    MAX_DAYS_AHEAD,
    MAX_DURATION_MINUTES,
    MIN_DURATION_MINUTES,
    Assignment,
    Job,
    JobType,
    Priority,
)
from scheduling.scoring import Score, score
from scheduling.selectors import job_site, load_schedule


def lock_job(job_id: int) -> Job:
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    return job


def lock_contractors(*contractor_ids: int) -> dict[int, Contractor]:
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


def desired_date_problem(value: date) -> str | None:
    """A desired date may be yesterday at the earliest (it is still today somewhere), and at
    most MAX_DAYS_AHEAD ahead."""
    today = timezone.now().date()
    if value < today - timedelta(days=1):
        return "is in the past."
    if value > today + timedelta(days=MAX_DAYS_AHEAD):
        return f"is more than {MAX_DAYS_AHEAD} days ahead."
    return None


def validate_job_fields(
    *,
    type: str | None = None,
    duration_minutes: int | None = None,
    priority: str | None = None,
    desired_date: date | None = None,
) -> None:
    errors: dict[str, str] = {}
    if desired_date is not None and (problem := desired_date_problem(desired_date)):
        errors["desiredDate"] = problem
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


def check_eligible(contractor: Contractor, job: Job) -> None:
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


def check_slot_shape(job: Job, start: datetime, end: datetime) -> None:
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


def check_bookable(
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


def save_slot(assignment: Assignment) -> None:
    """The exclusion constraints answer 409. No savepoint: every caller lets the Conflict end
    its transaction (rolled back), so the two round trips a savepoint costs buy nothing."""
    try:
        assignment.save()
    except IntegrityError as exc:
        if "one_live_assignment_per_job" in str(exc):
            raise Conflict("The job already has a live assignment.", code="job_not_open") from exc
        raise Conflict(
            "The slot overlaps another live assignment of this contractor.", code="slot_taken"
        ) from exc
