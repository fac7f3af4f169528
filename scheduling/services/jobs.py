"""Creating and editing jobs."""

from datetime import date
from typing import Any

from django.db import transaction

from contractors.selectors import region_for
from contractors.services import Location
from contractors.services.common import normalise_skills
from events.catalog import (
    JobCreated,
    JobUpdated,
)
from events.errors import Conflict
from events.recorder import record_event
from scheduling.models import (
    Job,
    JobStatus,
    Priority,
)
from scheduling.services.checks import (
    lock_job,
    validate_job_fields,
)


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
    validate_job_fields(
        type=type, duration_minutes=duration_minutes, priority=priority, desired_date=desired_date
    )
    job = Job.objects.create(
        type=type,
        required_skills=normalise_skills(required_skills or []),
        **location.columns(),
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
    job = lock_job(job_id)
    if job.status != JobStatus.OPEN:
        raise Conflict(
            f"Job {job_id} is {job.status}; only open jobs can be edited.", code="job_not_open"
        )
    validate_job_fields(
        type=type, duration_minutes=duration_minutes, priority=priority, desired_date=desired_date
    )
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
        skills = normalise_skills(required_skills)
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
