"""Weekly working hours and time off."""

from datetime import datetime

from django.db import transaction

from contractors.models import (
    Contractor,
    TimeOff,
    WorkingHours,
)
from contractors.services.common import (
    Window,
    hours_json,
    lock_contractor,
    record_schedule_updated,
    time_off_json,
    validate_windows,
)
from events.errors import Invalid, NotFound


@transaction.atomic
def set_working_hours(*, contractor_id: int, windows: list[Window]) -> Contractor:
    contractor = lock_contractor(contractor_id)
    ordered = validate_windows(windows)
    previous = hours_json(contractor)
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
    record_schedule_updated(contractor, {"workingHours": previous}, {"workingHours": new})
    return contractor


@transaction.atomic
def add_time_off(
    *, contractor_id: int, start: datetime, end: datetime, reason: str = ""
) -> TimeOff:
    contractor = lock_contractor(contractor_id)
    if end <= start:
        raise Invalid({"end": "must be after start."})
    entry = TimeOff.objects.create(contractor=contractor, start=start, end=end, reason=reason)
    record_schedule_updated(contractor, {"timeOff": None}, {"timeOff": time_off_json(entry)})
    return entry


@transaction.atomic
def remove_time_off(*, contractor_id: int, time_off_id: int) -> None:
    contractor = lock_contractor(contractor_id)
    entry = TimeOff.objects.filter(pk=time_off_id, contractor=contractor).first()
    if entry is None:
        raise NotFound(f"Time off {time_off_id} does not exist for contractor {contractor_id}.")
    previous = time_off_json(entry)
    entry.delete()
    record_schedule_updated(contractor, {"timeOff": previous}, {"timeOff": None})
