"""Every write to contractors, their schedules, ratings and regions.

Each service is one use case in one `transaction.atomic` block: lock what it reads-then-writes,
validate, save, `record_event(...)`, return. Domain rules live here, not in serializers or forms,
so the API, the admin and the commands all enforce the same ones.
"""

from dataclasses import dataclass
from datetime import datetime, time
from itertools import pairwise
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from contractors.models import (
    DEFAULT_REGION,
    DEFAULT_WORKING_HOURS,
    Contractor,
    ContractorStatus,
    ContractorType,
    Rating,
    Region,
    TimeOff,
    WorkingHours,
)
from contractors.selectors import known_timezones, rating_summary, region_for
from events.catalog import ContractorRated, ScheduleUpdated
from events.errors import Conflict, Invalid, NotFound
from events.recorder import record_event
from events.timefmt import iso_utc

# Assignment statuses (owned by scheduling) that hold a contractor's time.
LIVE_ASSIGNMENT_STATUSES = ("scheduled", "in_progress")


@dataclass(frozen=True)
class Window:
    """A weekly working window in the contractor's local time, half-open [start, end)."""

    weekday: int
    start: time
    end: time

    def as_json(self) -> dict[str, Any]:
        return {"weekday": self.weekday, "start": f"{self.start:%H:%M}", "end": f"{self.end:%H:%M}"}


@dataclass(frozen=True)
class Location:
    lat: float
    lng: float
    address: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"lat": self.lat, "lng": self.lng, "address": self.address}


# --- helpers ----------------------------------------------------------------------------------


def _lock_contractor(contractor_id: int) -> Contractor:
    contractor = (
        Contractor.objects.select_for_update()
        .filter(pk=contractor_id, deleted_at__isnull=True)
        .first()
    )
    if contractor is None:
        raise NotFound(f"Contractor {contractor_id} does not exist.")
    return contractor


def validate_windows(windows: list[Window]) -> list[Window]:
    errors: list[str] = []
    ordered = sorted(windows, key=lambda w: (w.weekday, w.start))
    for window in ordered:
        if not 0 <= window.weekday <= 6:
            errors.append(f"weekday {window.weekday} is not 0 (Monday) to 6 (Sunday).")
        if (
            window.start.second
            or window.end.second
            or window.start.microsecond
            or (window.end.microsecond)
        ):
            errors.append(f"weekday {window.weekday}: times are whole minutes (HH:MM).")
        if window.end <= window.start:
            errors.append(
                f"weekday {window.weekday}: window {window.start:%H:%M}-{window.end:%H:%M} "
                "is empty; end must be after start."
            )
    for before, after in pairwise(ordered):
        if before.weekday == after.weekday and after.start < before.end:
            errors.append(
                f"weekday {before.weekday}: windows {before.start:%H:%M}-{before.end:%H:%M} and "
                f"{after.start:%H:%M}-{after.end:%H:%M} overlap."
            )
    if errors:
        raise Invalid({"workingHours": errors})
    return ordered


def _validate_timezone(name: str) -> None:
    if name not in known_timezones():
        raise Invalid({"timezone": f"'{name}' is not an IANA timezone name."})


def _validate_type(value: str) -> None:
    if value not in ContractorType.values:
        raise Invalid({"type": f"'{value}' is not one of {', '.join(ContractorType.values)}."})


def _validate_status(value: str) -> None:
    if value not in ContractorStatus.values:
        raise Invalid({"status": f"'{value}' is not one of {', '.join(ContractorStatus.values)}."})


def _normalise_skills(skills: list[str]) -> list[str]:
    return sorted({skill.strip().lower() for skill in skills if skill.strip()})


def _hours_json(contractor: Contractor) -> list[dict[str, Any]]:
    return [
        Window(h.weekday, h.start, h.end).as_json()
        for h in contractor.hours.order_by("weekday", "start")
    ]


def _location_json(contractor: Contractor) -> dict[str, Any]:
    return Location(contractor.lat, contractor.lng, contractor.address).as_json()


def _time_off_json(entry: TimeOff) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "start": iso_utc(entry.start),
        "end": iso_utc(entry.end),
        "reason": entry.reason,
    }


def touch_schedules(*contractor_ids: int) -> None:
    """Bump the schedule version of contractors whose availability may have changed; called
    inside the changing transaction (cached availability is keyed by the version)."""
    Contractor.objects.filter(pk__in=contractor_ids).update(
        schedule_version=F("schedule_version") + 1
    )


def _record_schedule_updated(
    contractor: Contractor, previous: dict[str, Any], new: dict[str, Any]
) -> None:
    touch_schedules(contractor.pk)
    record_event(
        ScheduleUpdated(
            contractor_id=contractor.pk,
            region=contractor.region,
            updated_fields=list(new),
            previous_values=previous,
            new_values=new,
        )
    )


# --- contractors ------------------------------------------------------------------------------


@transaction.atomic
def create_contractor(
    *,
    name: str,
    type: str,
    location: Location,
    timezone_name: str = "UTC",
    skills: list[str] | None = None,
    status: str = ContractorStatus.ACTIVE,
    working_hours: list[Window] | None = None,
    user: AbstractBaseUser | None = None,
) -> Contractor:
    _validate_type(type)
    _validate_status(status)
    _validate_timezone(timezone_name)
    windows = validate_windows(
        working_hours
        if working_hours is not None
        else [Window(d, s, e) for d, s, e in DEFAULT_WORKING_HOURS]
    )
    if user is not None and Contractor.objects.filter(user=user).exists():
        raise Conflict(f"User {user.pk} is already linked to a contractor.", code="user_linked")
    contractor = Contractor.objects.create(
        name=name,
        type=type,
        skills=_normalise_skills(skills or []),
        lat=location.lat,
        lng=location.lng,
        address=location.address,
        region=region_for(location.lat, location.lng),
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
    _record_schedule_updated(
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
    contractor = _lock_contractor(contractor_id)
    previous: dict[str, Any] = {}
    new: dict[str, Any] = {}

    def change(field: str, old: Any, value: Any) -> None:
        if old != value:
            previous[field], new[field] = old, value

    if name is not None:
        change("name", contractor.name, name)
        contractor.name = name
    if type is not None:
        _validate_type(type)
        change("type", contractor.type, type)
        contractor.type = type
    if skills is not None:
        normalised = _normalise_skills(skills)
        change("skills", contractor.skills, normalised)
        contractor.skills = normalised
    if location is not None:
        change("location", _location_json(contractor), location.as_json())
        contractor.lat, contractor.lng, contractor.address = (
            location.lat,
            location.lng,
            location.address,
        )
        region = region_for(location.lat, location.lng)
        change("region", contractor.region, region)
        contractor.region = region
    if timezone_name is not None:
        _validate_timezone(timezone_name)
        change("timezone", contractor.timezone, timezone_name)
        contractor.timezone = timezone_name
    if status is not None:
        _validate_status(status)
        change("status", contractor.status, status)
        contractor.status = status
    if not new:
        return contractor
    contractor.save()
    _record_schedule_updated(contractor, previous, new)
    return contractor


@transaction.atomic
def delete_contractor(*, contractor_id: int) -> Contractor:
    """Soft delete: the row stays (ratings and past assignments point at it), hidden from lists."""
    contractor = _lock_contractor(contractor_id)
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
    _record_schedule_updated(
        contractor,
        previous={"status": previous_status, "deleted": False},
        new={"status": contractor.status, "deleted": True},
    )
    return contractor


@transaction.atomic
def set_working_hours(*, contractor_id: int, windows: list[Window]) -> Contractor:
    contractor = _lock_contractor(contractor_id)
    ordered = validate_windows(windows)
    previous = _hours_json(contractor)
    new = [w.as_json() for w in ordered]
    if previous == new:
        return contractor
    contractor.hours.all().delete()
    WorkingHours.objects.bulk_create(
        [
            WorkingHours(contractor=contractor, weekday=w.weekday, start=w.start, end=w.end)
            for w in ordered
        ]
    )
    contractor.save(update_fields=["updated_at"])
    _record_schedule_updated(contractor, {"workingHours": previous}, {"workingHours": new})
    return contractor


@transaction.atomic
def add_time_off(
    *, contractor_id: int, start: datetime, end: datetime, reason: str = ""
) -> TimeOff:
    contractor = _lock_contractor(contractor_id)
    if end <= start:
        raise Invalid({"end": "must be after start."})
    entry = TimeOff.objects.create(contractor=contractor, start=start, end=end, reason=reason)
    _record_schedule_updated(contractor, {"timeOff": None}, {"timeOff": _time_off_json(entry)})
    return entry


@transaction.atomic
def remove_time_off(*, contractor_id: int, time_off_id: int) -> None:
    contractor = _lock_contractor(contractor_id)
    entry = TimeOff.objects.filter(pk=time_off_id, contractor=contractor).first()
    if entry is None:
        raise NotFound(f"Time off {time_off_id} does not exist for contractor {contractor_id}.")
    previous = _time_off_json(entry)
    entry.delete()
    _record_schedule_updated(contractor, {"timeOff": previous}, {"timeOff": None})


# --- ratings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RatingResult:
    rating: Rating
    created: bool
    changed: bool


def record_rating(*, contractor: Contractor, job_id: int, stars: int) -> RatingResult:
    """Create or replace the rating of `job_id`, for the contractor now doing the job.

    Called by scheduling (`rate_job`, and `reschedule_job` when a rated job changes hands),
    which owns the rule about which jobs may be rated and holds the transaction and the job's
    lock. When the rating moves from one contractor to another, the one it leaves gets a
    `ContractorRated` with `rating: null`, so its average is recomputed too.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_rating runs inside the caller's transaction")
    if not 1 <= stars <= 5:
        raise Invalid({"rating": "must be a whole number from 1 to 5."})
    rating = Rating.objects.filter(job_id=job_id).first()
    if rating is not None and rating.stars == stars and rating.contractor_id == contractor.pk:
        return RatingResult(rating=rating, created=False, changed=False)
    left = (
        rating.contractor if rating is not None and rating.contractor_id != contractor.pk else None
    )
    # Serialise ratings per contractor (in id order) so each `previousRating` is the true
    # average before this change.
    involved = sorted({contractor.pk} | ({left.pk} if left else set()))
    list(Contractor.objects.select_for_update().filter(pk__in=involved).order_by("pk"))
    previous_average, _ = rating_summary(contractor.pk)
    left_previous = rating_summary(left.pk)[0] if left else None
    created = rating is None
    if created:
        rating = Rating.objects.create(job_id=job_id, contractor=contractor, stars=stars)
    else:
        rating.stars = stars
        rating.contractor = contractor
        rating.save(update_fields=["stars", "contractor", "updated_at"])
    record_event(
        ContractorRated(
            contractor_id=contractor.pk,
            region=contractor.region,
            job_id=job_id,
            rating=stars,
            previous_rating=previous_average,
        )
    )
    if left is not None:
        record_event(
            ContractorRated(
                contractor_id=left.pk,
                region=left.region,
                job_id=job_id,
                rating=None,
                previous_rating=left_previous,
            )
        )
    return RatingResult(rating=rating, created=created, changed=True)


def refresh_rating_summary(*, contractor_id: int) -> Contractor | None:
    """Recompute the stored average and count from the ratings table (idempotent)."""
    with transaction.atomic():
        contractor = Contractor.objects.select_for_update().filter(pk=contractor_id).first()
        if contractor is None:
            return None
        average, count = rating_summary(contractor_id)
        if contractor.average_rating != average or contractor.rating_count != count:
            contractor.average_rating = average
            contractor.rating_count = count
            contractor.save(update_fields=["average_rating", "rating_count", "updated_at"])
        return contractor


# --- regions ----------------------------------------------------------------------------------


@transaction.atomic
def create_region(
    *, slug: str, name: str, center_lat: float, center_lng: float, radius_miles: float
) -> Region:
    if slug == DEFAULT_REGION:
        raise Invalid({"slug": f"'{DEFAULT_REGION}' is reserved for places no region covers."})
    if Region.objects.filter(slug=slug).exists():
        raise Conflict(f"Region '{slug}' already exists.", code="region_exists")
    if radius_miles <= 0:
        raise Invalid({"radiusMiles": "must be greater than 0."})
    return Region.objects.create(
        slug=slug,
        name=name,
        center_lat=center_lat,
        center_lng=center_lng,
        radius_miles=radius_miles,
    )


@transaction.atomic
def update_region(*, slug: str, name: str, watchers: list[AbstractBaseUser]) -> Region:
    """Rename a region and set the dispatchers who watch it.

    Its centre and radius stay: moving a region would re-derive the region of every job and
    contractor, which is not supported. Regions are not in the event catalog (no screen shows
    them live), so this records no event; open websocket streams keep the groups they joined.
    """
    region = Region.objects.select_for_update().filter(slug=slug).first()
    if region is None:
        raise NotFound(f"Region '{slug}' does not exist.")
    if region.name != name:
        region.name = name
        region.save(update_fields=["name"])
    region.watchers.set(watchers)
    return region


# --- accounts ---------------------------------------------------------------------------------


@transaction.atomic
def link_user(*, contractor_id: int, user: AbstractBaseUser) -> Contractor:
    """Give contractor `contractor_id` its own login. Linking the same user again changes nothing;
    a contractor has at most one login and a login belongs to at most one contractor."""
    contractor = _lock_contractor(contractor_id)
    if contractor.user_id == user.pk:
        return contractor
    if contractor.user_id is not None:
        raise Conflict(
            f"Contractor {contractor_id} is already linked to another user.",
            code="contractor_linked",
        )
    if Contractor.objects.filter(user=user).exists():
        raise Conflict(f"User {user.pk} is already linked to a contractor.", code="user_linked")
    contractor.user = user
    contractor.save(update_fields=["user", "updated_at"])
    _record_schedule_updated(contractor, {"user": None}, {"user": user.pk})
    return contractor
