"""The availability engine: pure arithmetic over half-open UTC intervals.

free windows = working windows (contractor's local time, converted to UTC day by day, so
daylight-saving changes land where they should) - time off - live bookings padded by the buffer
plus the travel time between the booking's site and the job's site. A slot is a start on the
15-minute grid whose whole duration fits inside one free window. Nothing here touches the
database; `scheduling.selectors.load_schedule` builds the inputs.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings

from contractors.geo import haversine_miles

Interval = tuple[datetime, datetime]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Rules:
    buffer: timedelta
    speed_mph: float
    grid: timedelta

    @classmethod
    def from_settings(cls) -> "Rules":
        config = settings.SCHEDULING
        return cls(
            buffer=timedelta(minutes=config["BUFFER_MINUTES"]),
            speed_mph=config["AVERAGE_SPEED_MPH"],
            grid=timedelta(minutes=config["SLOT_GRID_MINUTES"]),
        )

    def travel(self, miles: float) -> timedelta:
        return timedelta(hours=miles / self.speed_mph)


@dataclass(frozen=True)
class Site:
    lat: float
    lng: float


@dataclass(frozen=True)
class Booking:
    start: datetime
    end: datetime
    site: Site


@dataclass(frozen=True)
class Schedule:
    """Everything the engine needs to know about one contractor over a period."""

    tz: ZoneInfo
    hours: tuple[tuple[int, time, time], ...]  # (weekday, local start, local end)
    time_off: tuple[Interval, ...]
    bookings: tuple[Booking, ...]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping or touching intervals joined."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def subtract(base: Iterable[Interval], blocks: Iterable[Interval]) -> list[Interval]:
    """`base` minus `blocks`; both half-open, so touching is not overlapping."""
    blocks = merge(blocks)
    result: list[Interval] = []
    for start, end in merge(base):
        cursor = start
        for b_start, b_end in blocks:
            if b_end <= cursor or b_start >= end:
                continue
            if b_start > cursor:
                result.append((cursor, b_start))
            cursor = max(cursor, b_end)
            if cursor >= end:
                break
        if cursor < end:
            result.append((cursor, end))
    return result


def working_windows(
    hours: Iterable[tuple[int, time, time]], tz: ZoneInfo, start: datetime, end: datetime
) -> list[Interval]:
    """Weekly local windows laid on the calendar between `start` and `end`, in UTC."""
    hours = list(hours)
    windows: list[Interval] = []
    day: date = start.astimezone(tz).date() - timedelta(days=1)
    last: date = end.astimezone(tz).date() + timedelta(days=1)
    while day <= last:
        for weekday, local_start, local_end in hours:
            if weekday != day.weekday():
                continue
            w_start = datetime.combine(day, local_start, tzinfo=tz).astimezone(UTC)
            w_end = datetime.combine(day, local_end, tzinfo=tz).astimezone(UTC)
            w_start, w_end = max(w_start, start), min(w_end, end)
            if w_end > w_start:
                windows.append((w_start, w_end))
        day += timedelta(days=1)
    return merge(windows)


def padded(booking: Booking, site: Site | None, rules: Rules) -> Interval:
    """The time a booking keeps from a job at `site`: buffer plus travel on both sides.

    With no site (availability asked without a job in mind) only the buffer applies."""
    miles = (
        0.0
        if site is None
        else haversine_miles(booking.site.lat, booking.site.lng, site.lat, site.lng)
    )
    pad = rules.buffer + rules.travel(miles)
    return (booking.start - pad, booking.end + pad)


def free_windows(
    schedule: Schedule, start: datetime, end: datetime, site: Site | None, rules: Rules
) -> list[Interval]:
    base = working_windows(schedule.hours, schedule.tz, start, end)
    blocks = list(schedule.time_off) + [padded(b, site, rules) for b in schedule.bookings]
    return subtract(base, blocks)


def _ceil_to_grid(moment: datetime, grid: timedelta) -> datetime:
    remainder = (moment - EPOCH) % grid
    return moment if not remainder else moment + (grid - remainder)


def slot_starts(
    windows: Iterable[Interval], duration: timedelta, grid: timedelta
) -> list[Interval]:
    """Every grid-aligned [start, start + duration) that fits inside one window."""
    slots: list[Interval] = []
    for w_start, w_end in windows:
        start = _ceil_to_grid(w_start, grid)
        while start + duration <= w_end:
            slots.append((start, start + duration))
            start += grid
    return slots


OUTSIDE_HOURS = "outside_hours"
IN_TIME_OFF = "time_off"
CONFLICT = "conflict"


def check_slot(
    schedule: Schedule, slot: Interval, site: Site, rules: Rules
) -> tuple[str, str] | None:
    """None if `slot` is bookable, else (problem, message)."""
    start, end = slot
    hours = working_windows(schedule.hours, schedule.tz, start - timedelta(days=1), end)
    if not any(w_start <= start and end <= w_end for w_start, w_end in hours):
        return OUTSIDE_HOURS, "is outside the contractor's working hours."
    for off_start, off_end in schedule.time_off:
        if off_start < end and start < off_end:
            return IN_TIME_OFF, "overlaps the contractor's time off."
    for booking in schedule.bookings:
        b_start, b_end = padded(booking, site, rules)
        if b_start < end and start < b_end:
            if booking.start < end and start < booking.end:
                return CONFLICT, "overlaps another live assignment of this contractor."
            return CONFLICT, (
                "is too close to another assignment of this contractor "
                "(buffer plus travel time between the job sites)."
            )
    return None
