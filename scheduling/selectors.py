"""Reads worth naming: schedules for the availability engine, and job lists."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.utils import timezone

from contractors.models import Contractor
from scheduling.availability import (
    Booking,
    Interval,
    Rules,
    Schedule,
    Site,
    free_windows,
    slot_starts,
)
from scheduling.models import OCCUPYING_ASSIGNMENT, Assignment, Job, occupying_between

# The widest padding a booking can need: a day covers any buffer plus travel we would accept.
BOOKING_LOOKAROUND = timedelta(days=1)


def job_site(job: Job) -> Site:
    return Site(job.lat, job.lng)


def load_schedule(
    contractor: Contractor,
    start: datetime,
    end: datetime,
    *,
    exclude_assignment_id: int | None = None,
) -> Schedule:
    """The contractor's hours, time off and bookings around [start, end): live ones, and
    completed ones up to their completion (`Assignment.occupied`)."""
    bookings = (
        Assignment.objects.filter(
            occupying_between(start - BOOKING_LOOKAROUND, end + BOOKING_LOOKAROUND),
            contractor=contractor,
            status__in=OCCUPYING_ASSIGNMENT,
        )
        .exclude(pk=exclude_assignment_id)
        .select_related("job")
        .only("start", "end", "started_at", "completed_at", "job__lat", "job__lng")
    )
    time_off = contractor.time_off.filter(start__lt=end, end__gt=start).only("start", "end")
    return Schedule(
        tz=contractor.tz,
        hours=tuple(contractor.hours.values_list("weekday", "start", "end")),
        time_off=tuple((t.start, t.end) for t in time_off),
        bookings=tuple(Booking(*b.occupied, Site(b.job.lat, b.job.lng)) for b in bookings),
    )


@dataclass(frozen=True)
class Availability:
    windows: list[Interval]
    slots: list[Interval]


def local_period(contractor: Contractor, first: date, last: date) -> Interval:
    """[first 00:00, last + 1 day 00:00) in the contractor's timezone, as UTC."""
    tz = contractor.tz
    start = datetime.combine(first, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def availability(
    contractor: Contractor, first: date, last: date, duration: timedelta, site: Site | None = None
) -> Availability:
    """Free windows and slot starts over local days `first`..`last`, never in the past."""
    # Days long gone have nothing to offer (and may not even be representable in UTC).
    first = max(first, timezone.now().date() - timedelta(days=1))
    if first > last:
        return Availability(windows=[], slots=[])
    start, end = local_period(contractor, first, last)
    start = max(start, timezone.now())
    if start >= end:
        return Availability(windows=[], slots=[])
    rules = Rules.from_settings()
    windows = free_windows(load_schedule(contractor, start, end), start, end, site, rules)
    return Availability(windows=windows, slots=slot_starts(windows, duration, rules.grid))
