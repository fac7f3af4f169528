"""Creating, editing, soft-deleting contractors and linking their logins."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from contractors import timezones
from contractors.models import (
    DEFAULT_WORKING_HOURS,
    Contractor,
    ContractorStatus,
    WorkingHours,
)
from contractors.selectors import region_for
from contractors.services.common import (
    LIVE_ASSIGNMENT_STATUSES,
    Location,
    Window,
    location_json,
    lock_contractor,
    normalise_skills,
    record_schedule_updated,
    validate_status,
    validate_timezone,
    validate_type,
    validate_windows,
)
from events.errors import Conflict, Invalid


@transaction.atomic
def create_contractor(
    *,
    name: str,
    type: str,
    location: Location,
    timezone_name: str | None = None,
    skills: list[str] | None = None,
    status: str = ContractorStatus.ACTIVE,
    working_hours: list[Window] | None = None,
    user: AbstractBaseUser | None = None,
) -> Contractor:
    validate_type(type)
    validate_status(status)
    if timezone_name is None:
        # Working hours are local time: a contractor without a zone works where it is based.
        timezone_name = timezones.timezone_at(location.lat, location.lng)
    validate_timezone(timezone_name)
    windows = validate_windows(
        working_hours
        if working_hours is not None
        else [Window(d, s, e) for d, s, e in DEFAULT_WORKING_HOURS]
    )
    if user is not None and (user.is_staff or user.is_superuser):
        raise Invalid({"user": ["staff accounts cannot be a contractor's login."]})
    if user is not None and Contractor.objects.filter(user=user).exists():
        raise Conflict(f"User {user.pk} is already linked to a contractor.", code="user_linked")
    contractor = Contractor.objects.create(
        name=name,
        type=type,
        skills=normalise_skills(skills or []),
        **location.columns(),
        timezone=timezone_name,
        status=status,
        user=user,
    )
    WorkingHours.objects.bulk_create(
        [
            WorkingHours(contractor=contractor, weekday=w.weekday, start=w.start, end=w.end)
            for w in windows
        ]
    )
    # A new contractor is a new schedule: availability caches and active recommendation lists
    # react to ScheduleUpdated, so creation is announced as one.
    record_schedule_updated(
        contractor,
        previous={"status": None, "workingHours": None},
        new={"status": contractor.status, "workingHours": [w.as_json() for w in windows]},
    )
    return contractor


@transaction.atomic
def update_contractor(
    *,
    contractor_id: int,
    name: str | None = None,
    type: str | None = None,
    skills: list[str] | None = None,
    location: Location | None = None,
    timezone_name: str | None = None,
    status: str | None = None,
) -> Contractor:
    contractor = lock_contractor(contractor_id)
    previous: dict[str, Any] = {}
    new: dict[str, Any] = {}

    def change(field: str, old: Any, value: Any) -> None:
        if old != value:
            previous[field], new[field] = old, value

    def assign(field: str, value: Any) -> None:
        change(field, getattr(contractor, field), value)
        setattr(contractor, field, value)

    if name is not None:
        assign("name", name)
    if type is not None:
        validate_type(type)
        assign("type", type)
    if skills is not None:
        assign("skills", normalise_skills(skills))
    if location is not None:
        change("location", location_json(contractor), location.as_json())
        contractor.lat, contractor.lng, contractor.address = (
            location.lat,
            location.lng,
            location.address,
        )
        assign("region", region_for(location.lat, location.lng))
    if timezone_name is not None:
        validate_timezone(timezone_name)
        assign("timezone", timezone_name)
    if status is not None:
        validate_status(status)
        assign("status", status)
    if not new:
        return contractor
    contractor.save()
    record_schedule_updated(contractor, previous, new)
    return contractor


@transaction.atomic
def delete_contractor(*, contractor_id: int) -> Contractor:
    """Soft delete: the row stays (ratings and past assignments point at it), hidden from lists."""
    contractor = lock_contractor(contractor_id)
    # Booking locks the contractor row too, so no assignment can appear between check and save.
    # `assignments` is scheduling's reverse relation; contractors does not import scheduling.
    live = contractor.assignments.filter(status__in=LIVE_ASSIGNMENT_STATUSES).count()
    if live:
        raise Conflict(
            f"Contractor {contractor_id} has {live} live assignment(s); reassign or cancel "
            "them first.",
            code="contractor_busy",
        )
    previous_status = contractor.status
    contractor.status = ContractorStatus.INACTIVE
    contractor.deleted_at = timezone.now()
    contractor.save(update_fields=["status", "deleted_at", "updated_at"])
    record_schedule_updated(
        contractor,
        previous={"status": previous_status, "deleted": False},
        new={"status": contractor.status, "deleted": True},
    )
    return contractor


# --- logins ---------------------------------------------------------------------------------


@transaction.atomic
def link_user(*, contractor_id: int, user: AbstractBaseUser) -> Contractor:
    """Give contractor `contractor_id` its own login. Linking the same user again changes nothing;
    a contractor has at most one login and a login belongs to at most one contractor."""
    contractor = lock_contractor(contractor_id)
    if contractor.user_id == user.pk:
        return contractor
    if user.is_staff or user.is_superuser:
        # A contractor login is its own role; a dispatcher or admin account is never one.
        raise Invalid({"user": ["staff accounts cannot be a contractor's login."]})
    if contractor.user_id is not None:
        raise Conflict(
            f"Contractor {contractor_id} is already linked to another user.",
            code="contractor_linked",
        )
    if Contractor.objects.filter(user=user).exists():
        raise Conflict(f"User {user.pk} is already linked to a contractor.", code="user_linked")
    contractor.user = user
    contractor.save(update_fields=["user", "updated_at"])
    record_schedule_updated(contractor, {"user": None}, {"user": user.pk})
    return contractor
