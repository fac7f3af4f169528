"""Free windows per contractor and local day, cached in Redis (django-redis).

Key `avail:{contractor}:{schedule_version}:{day}`. Every change to a contractor's hours, time
off, status or bookings bumps `schedule_version` in the changing transaction, so an entry can
never be stale: a reader with the current version finds the entry computed for that version or
computes it from the database. Event handlers warm the new version's days so readers find them.

A completed assignment keeps its contractor only up to its completion (plus the padding), so
an early completion frees the rest of its slot. An entry holds the day's free windows with
bookings padded by the buffer only (travel depends
on the job's site), plus the live bookings near the day with their sites, so a reader can add
the travel time to its own job site without touching the database.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import redis
from django.core.cache import cache
from django_redis.exceptions import ConnectionInterrupted

from contractors.models import Contractor, TimeOff, WorkingHours
from scheduling.availability import (
    Booking,
    Interval,
    Rules,
    Site,
    padded,
    slot_starts,
    subtract,
    working_windows,
)
from scheduling.models import OCCUPYING_ASSIGNMENT, Assignment, occupied, occupying_between

TTL_SECONDS = 6 * 60 * 60


@dataclass(frozen=True)
class DayEntry:
    windows: tuple[Interval, ...]
    bookings: tuple[Booking, ...]

    def encode(self) -> dict:
        return {
            "w": [[int(s.timestamp()), int(e.timestamp())] for s, e in self.windows],
            "b": [
                [int(b.start.timestamp()), int(b.end.timestamp()), b.site.lat, b.site.lng]
                for b in self.bookings
            ],
        }

    @classmethod
    def decode(cls, data: dict) -> "DayEntry":
        def at(ts: int) -> datetime:
            return datetime.fromtimestamp(ts, tz=UTC)

        return cls(
            windows=tuple((at(s), at(e)) for s, e in data["w"]),
            bookings=tuple(Booking(at(s), at(e), Site(lat, lng)) for s, e, lat, lng in data["b"]),
        )

    def slots(
        self, site: Site, duration: timedelta, rules: Rules, not_before: datetime
    ) -> list[Interval]:
        """Slot starts for a job at `site`: travel to and from each booking taken off too."""
        blocks = [padded(b, site, rules) for b in self.bookings]
        blocks.append((datetime.min.replace(tzinfo=UTC), not_before))
        return slot_starts(subtract(self.windows, blocks), duration, rules.grid)


def day_key(contractor_id: int, version: int, day: date) -> str:
    return f"avail:{contractor_id}:{version}:{day.isoformat()}"


def local_day_bounds(tz, day: date) -> Interval:
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


# Redis is unreachable (down, restarting): what django-redis and redis-py raise.
CACHE_OUTAGE = (
    ConnectionInterrupted,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def day_entries(
    contractors: list[Contractor],
    days: dict[int, list[date]],
    *,
    cache_optional: bool = False,
) -> dict[tuple[int, date], DayEntry]:
    """Entries for each contractor's requested local days: cache first, then the database
    in bulk (three queries whatever the number of contractors) for what was missing.

    With `cache_optional` (readers), an unreachable Redis counts as a miss: the database is
    the source of truth, so a read answers from it instead of failing. The relay's warming
    handler keeps the default, so a Redis outage stops it and its batch is retried."""
    wanted = {
        day_key(c.pk, c.schedule_version, day): (c, day) for c in contractors for day in days[c.pk]
    }
    reachable = True
    try:
        found = cache.get_many(list(wanted))
    except CACHE_OUTAGE:
        if not cache_optional:
            raise
        found, reachable = {}, False
    result = {(wanted[key][0].pk, wanted[key][1]): DayEntry.decode(v) for key, v in found.items()}
    missing = [pair for key, pair in wanted.items() if key not in found]
    if missing:
        computed = compute_entries(missing)
        result.update(computed)
        if not reachable:
            return result
        try:
            cache.set_many(
                {
                    day_key(c.pk, c.schedule_version, day): computed[(c.pk, day)].encode()
                    for c, day in missing
                },
                timeout=TTL_SECONDS,
            )
        except CACHE_OUTAGE:
            if not cache_optional:
                raise
    return result


class DayMemo:
    """Day entries read once for a run of rankings that share candidates and days (the lists
    of one re-ranking step): each ranking would otherwise read the same entries from the cache
    again, a round trip and a decode per entry. Keyed by schedule version, as the cache is, so
    a contractor whose schedule moved on since is read afresh. Meant for one run: it holds
    what it read until it is dropped."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int, date], DayEntry] = {}

    def read(
        self, contractors: list[Contractor], days: dict[int, list[date]]
    ) -> dict[tuple[int, date], DayEntry]:
        """`day_entries(contractors, days, cache_optional=True)`, from what this memo holds
        where it can."""
        keys = {(c.pk, d): (c.pk, c.schedule_version, d) for c in contractors for d in days[c.pk]}
        missing = {
            c.pk: c
            for c in contractors
            if any(keys[(c.pk, d)] not in self._entries for d in days[c.pk])
        }
        if missing:
            read = day_entries(
                list(missing.values()), {pk: days[pk] for pk in missing}, cache_optional=True
            )
            for (pk, day), entry in read.items():
                self._entries[(pk, missing[pk].schedule_version, day)] = entry
        return {pair: self._entries[key] for pair, key in keys.items()}


def compute_entries(pairs: list[tuple[Contractor, date]]) -> dict[tuple[int, date], DayEntry]:
    rules = Rules.from_settings()
    bounds = {(c.pk, day): local_day_bounds(c.tz, day) for c, day in pairs}
    ids = sorted({c.pk for c, _ in pairs})
    earliest = min(start for start, _ in bounds.values()) - timedelta(days=1)
    latest = max(end for _, end in bounds.values()) + timedelta(days=1)

    hours: dict[int, list] = defaultdict(list)
    for row in WorkingHours.objects.filter(contractor_id__in=ids).values_list(
        "contractor_id", "weekday", "start", "end"
    ):
        hours[row[0]].append(row[1:])
    time_off: dict[int, list[Interval]] = defaultdict(list)
    for cid, start, end in TimeOff.objects.filter(
        contractor_id__in=ids, start__lt=latest, end__gt=earliest
    ).values_list("contractor_id", "start", "end"):
        time_off[cid].append((start, end))
    bookings: dict[int, list[Booking]] = defaultdict(list)
    for cid, start, end, started_at, completed_at, lat, lng in Assignment.objects.filter(
        occupying_between(earliest, latest), contractor_id__in=ids, status__in=OCCUPYING_ASSIGNMENT
    ).values_list(
        "contractor_id", "start", "end", "started_at", "completed_at", "job__lat", "job__lng"
    ):
        kept = occupied(start, end, started_at, completed_at)
        bookings[cid].append(Booking(*kept, Site(lat, lng)))

    entries = {}
    for contractor, day in pairs:
        start, end = bounds[(contractor.pk, day)]
        near = tuple(
            b
            for b in bookings[contractor.pk]
            if b.start < end + timedelta(days=1) and b.end > start - timedelta(days=1)
        )
        blocks = time_off[contractor.pk] + [padded(b, None, rules) for b in near]
        windows = subtract(working_windows(hours[contractor.pk], contractor.tz, start, end), blocks)
        entries[(contractor.pk, day)] = DayEntry(tuple(windows), near)
    return entries
