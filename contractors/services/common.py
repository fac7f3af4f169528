"""Value types and helpers shared by the contractor services: locking, validation, and the
ScheduleUpdated every change to a contractor records (which also bumps its schedule version)."""

from dataclasses import dataclass
from datetime import time
from itertools import pairwise
from typing import Any

from django.db.models import F

from contractors import timezones
from contractors.models import (
    Contractor,
    ContractorStatus,
    ContractorType,
    TimeOff,
)
from contractors.selectors import region_for
from events.catalog import ScheduleUpdated
from events.errors import Invalid, NotFound
from events.recorder import record_event
from events.timefmt import iso_utc

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

    def columns(self) -> dict[str, Any]:
        """A contractor's or a job's columns for this place: as_json() and the region that
        covers it."""
        return {**self.as_json(), "region": region_for(self.lat, self.lng)}


# --- helpers ----------------------------------------------------------------------------------


def lock_contractor(contractor_id: int) -> Contractor:
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


def validate_timezone(name: str) -> None:
    problem = timezones.problem_with(name)
    if problem:
        raise Invalid({"timezone": problem})


def validate_type(value: str) -> None:
    if value not in ContractorType.values:
        raise Invalid({"type": f"'{value}' is not one of {', '.join(ContractorType.values)}."})


def validate_status(value: str) -> None:
    if value not in ContractorStatus.values:
        raise Invalid({"status": f"'{value}' is not one of {', '.join(ContractorStatus.values)}."})


def normalise_skills(skills: list[str]) -> list[str]:
    return sorted({skill.strip().lower() for skill in skills if skill.strip()})


def hours_json(contractor: Contractor) -> list[dict[str, Any]]:
    return [
        Window(h.weekday, h.start, h.end).as_json()
        for h in contractor.hours.order_by("weekday", "start")
    ]


def location_json(contractor: Contractor) -> dict[str, Any]:
    return Location(contractor.lat, contractor.lng, contractor.address).as_json()


def time_off_json(entry: TimeOff) -> dict[str, Any]:
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


def record_schedule_updated(
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
