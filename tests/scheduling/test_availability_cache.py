"""Free windows per contractor and local day, cached in Redis under
`avail:{contractor}:{schedule_version}:{day}` (docs/scheduling.md).

The ranking fills the cache and reads it back; every schedule change bumps the version in its
own transaction, so old entries are never read again; the relay's handler then computes the new
version's days, which no longer offer what the change took away. The contractor is the factory
one (Mon-Fri 08:00-17:00 New York time) and every job is the factory job site, so travel between
jobs is zero and a booking keeps only the 30-minute buffer around it.
"""

import math
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_redis import get_redis_connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contractors.geo import EARTH_RADIUS_MILES
from contractors.models import Contractor, TimeOff
from contractors.services import Window, add_time_off, set_working_hours
from events.errors import Conflict
from events.models import Event
from events.relay import Relay
from scheduling.availability import Rules, Site, check_slot, free_windows, slot_starts
from scheduling.availability_cache import (
    DayEntry,
    DayMemo,
    compute_entries,
    day_entries,
    day_key,
    local_day_bounds,
)
from scheduling.handlers import cold_days, warm_availability
from scheduling.models import Assignment, Job
from scheduling.recommendations import DAYS_PER_READ, recommend
from scheduling.selectors import load_schedule
from scheduling.services import assign_job, cancel_job, complete_job, start_job
from tests.conftest import at, events_of, next_weekday
from tests.contractors.factories import ContractorFactory, TimeOffFactory
from tests.scheduling.factories import AssignmentFactory, JobFactory

pytestmark = pytest.mark.django_db

NY = ZoneInfo("America/New_York")
TWO_HOURS = timedelta(hours=2)
JOB_SITE = Site(40.72, -73.99)  # JobFactory's


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return at(day, hour, minute, tz=NY).astimezone(UTC)


def cached_keys(prefix: str) -> set[str]:
    """The `avail:` keys in Redis, without the cache's own `{prefix}:{version}:` in front."""
    raw = get_redis_connection("default").keys(f"{prefix}:*avail:*")
    return {key.decode().split(":", 2)[2] for key in raw}


def cached_entry(who: Contractor, day: date) -> DayEntry | None:
    who.refresh_from_db()
    data = cache.get(day_key(who.pk, who.schedule_version, day))
    return None if data is None else DayEntry.decode(data)


def first_slots(job: Job) -> list[tuple[datetime, datetime]]:
    (rec,) = recommend(job)
    return rec.slots


def reads_hours(job: Job) -> bool:
    """Whether ranking `job` had to read working hours from the database (a cache miss)."""
    with CaptureQueriesContext(connection) as captured:
        recommend(job)
    return any("contractors_workinghours" in q["sql"] for q in captured.captured_queries)


@pytest.fixture
def monday() -> date:
    return next_weekday(0)


@pytest.fixture
def who() -> Contractor:
    return ContractorFactory(lat=JOB_SITE.lat, lng=JOB_SITE.lng)


def test_the_first_ranking_fills_the_cache_and_the_next_reads_it(private_cache, who, monday):
    first, second = JobFactory(desired_date=monday), JobFactory(desired_date=monday)
    assert cached_keys(private_cache) == set()

    assert reads_hours(first)
    keys = cached_keys(private_cache)
    assert reads_hours(second) is False

    # the ranking reads DAYS_PER_READ days at a time; Monday alone already gives three slots
    assert keys == {day_key(who.pk, 0, monday + timedelta(days=n)) for n in range(DAYS_PER_READ)}
    assert cached_entry(who, monday) == DayEntry(
        windows=((ny(monday, 8), ny(monday, 17)),), bookings=()
    )


def test_a_memo_reads_an_entry_once_and_afresh_for_a_new_schedule_version(
    private_cache, who, monday, django_assert_num_queries
):
    memo = DayMemo()
    days = {who.pk: [monday]}
    first = memo.read([who], days)
    assert first == day_entries([who], days)
    cache.clear()

    with django_assert_num_queries(0):  # not from the cache, nor computed again
        assert memo.read([who], days) == first

    set_working_hours(
        contractor_id=who.pk, windows=[Window(weekday=0, start=time(10), end=time(12))]
    )
    who.refresh_from_db()
    assert memo.read([who], days) == {
        (who.pk, monday): DayEntry(windows=((ny(monday, 10), ny(monday, 12)),), bookings=())
    }


def test_an_entry_keeps_bookings_with_their_sites_so_readers_add_travel(who, monday):
    booked = AssignmentFactory(
        job=JobFactory(desired_date=monday, status="assigned", lat=40.9, lng=-73.99),
        contractor=who,
        start=ny(monday, 10),
    )
    recommend(JobFactory(desired_date=monday))

    entry = cached_entry(who, monday)

    # the windows keep only the 30-minute buffer; travel depends on the reader's job site
    assert entry.windows == (
        (ny(monday, 8), ny(monday, 9, 30)),
        (ny(monday, 12, 30), ny(monday, 17)),
    )
    assert [(b.start, b.end, b.site.lat, b.site.lng) for b in entry.bookings] == [
        (booked.start, booked.end, 40.9, -73.99)
    ]


def test_a_booking_bumps_the_version_so_old_entries_are_not_read(private_cache, who, monday):
    job, other = JobFactory(desired_date=monday), JobFactory(desired_date=monday)
    before = first_slots(job)

    assign_job(job_id=other.pk, contractor_id=who.pk, start=ny(monday, 8), end=ny(monday, 10))
    who.refresh_from_db()
    after = first_slots(job)

    assert who.schedule_version == 1
    assert before == [(ny(monday, h), ny(monday, h + 2)) for h in (8, 10, 12)]
    # booked 08:00-10:00, then the 30-minute buffer: 10:30, 12:30, 14:30
    assert after == [
        (ny(monday, 10, 30), ny(monday, 12, 30)),
        (ny(monday, 12, 30), ny(monday, 14, 30)),
        (ny(monday, 14, 30), ny(monday, 16, 30)),
    ]
    # the version-0 entries are still in Redis (they expire), merely never asked for again
    assert {day_key(who.pk, 0, monday), day_key(who.pk, 1, monday)} <= cached_keys(private_cache)


# --- kept current through the relay -----------------------------------------------------------


def book(who: Contractor, monday: date) -> None:
    job = JobFactory(desired_date=monday)
    assign_job(job_id=job.pk, contractor_id=who.pk, start=ny(monday, 10), end=ny(monday, 12))


def time_off(who: Contractor, monday: date) -> None:
    add_time_off(contractor_id=who.pk, start=ny(monday, 10), end=ny(monday, 12), reason="dentist")


def short_monday(who: Contractor, monday: date) -> None:
    windows = [Window(0, time(13), time(17))] + [Window(d, time(8), time(17)) for d in range(1, 5)]
    set_working_hours(contractor_id=who.pk, windows=windows)


def cancel(who: Contractor, monday: date) -> None:
    cancel_job(job_id=who.assignments.get().job_id, reason="rain")


@pytest.mark.parametrize(
    ("change", "booked_before", "windows", "slots"),
    [
        # booked 10:00-12:00, kept with its 30-minute buffer: 08:00-09:30 and 12:30-17:00;
        # nothing of two hours fits before 09:30
        pytest.param(
            book, False, [(8, 0, 9, 30), (12, 30, 17, 0)], [(12, 30), (14, 30), None],
            id="assign_job",
        ),
        # time off 10:00-12:00 has no buffer: 08:00-10:00 and 12:00-17:00
        pytest.param(
            time_off, False, [(8, 0, 10, 0), (12, 0, 17, 0)], [(8, 0), (12, 0), (14, 0)],
            id="add_time_off",
        ),
        # Mondays 13:00-17:00 only (Tuesday to Friday as before); None is Tuesday 08:00
        pytest.param(
            short_monday, False, [(13, 0, 17, 0)], [(13, 0), (15, 0), None],
            id="set_working_hours",
        ),
        # the 10:00-12:00 booking is cancelled: the whole day is free again
        pytest.param(
            cancel, True, [(8, 0, 17, 0)], [(8, 0), (10, 0), (12, 0)],
            id="cancel_job",
        ),
    ],
)  # fmt: skip
def test_the_relay_handler_warms_the_new_version(
    who, monday, change, booked_before, windows, slots
):
    if booked_before:
        AssignmentFactory(
            job=JobFactory(desired_date=monday, status="assigned"),
            contractor=who,
            start=ny(monday, 10),
        )
    job = JobFactory(desired_date=monday)
    recommend(job)  # fills version 0 (and activates no list, whose re-ranking would fill more)

    change(who, monday)
    assert cached_entry(who, monday) is None  # version 1: nothing cached yet
    Relay().drain()

    entry = cached_entry(who, monday)
    assert who.schedule_version == 1
    assert entry.windows == tuple((ny(monday, a, b), ny(monday, c, d)) for a, b, c, d in windows)
    # the warmed entry serves the ranking: no hours read from the database
    assert reads_hours(job) is False
    tuesday = monday + timedelta(days=1)
    expected = [
        (ny(monday, *hm), ny(monday, *hm) + TWO_HOURS) if hm else (ny(tuesday, 8), ny(tuesday, 10))
        for hm in slots
    ]
    assert first_slots(job) == expected


def test_an_early_completion_reaches_the_cache_through_the_relay(who, monday):
    """Booked 10:00-12:00 next week, started and completed today (the real clock: the relay
    claims by it): JobStarted and JobCompleted warm the new versions, and the completed job
    no longer keeps any of Monday."""
    job = JobFactory(desired_date=monday)
    assign_job(job_id=job.pk, contractor_id=who.pk, start=ny(monday, 10))
    Relay().drain()
    assert cached_entry(who, monday).windows == (
        (ny(monday, 8), ny(monday, 9, 30)),
        (ny(monday, 12, 30), ny(monday, 17)),
    )
    start_job(job_id=job.pk)
    Relay().drain()
    # Work started ahead of the slot keeps the contractor from now until the slot's end.
    assert cached_entry(who, monday).windows == ((ny(monday, 12, 30), ny(monday, 17)),)

    complete_job(job_id=job.pk)
    Relay().drain()

    assert cached_entry(who, monday).windows == ((ny(monday, 8), ny(monday, 17)),)
    assert who.schedule_version == 3  # (re-read by cached_entry)
    assert [e.type for e in events_of()] == ["JobAssigned", "JobStarted", "JobCompleted"]


def test_the_warmed_entry_offers_nothing_inside_the_booking_or_its_buffer(who, monday):
    book(who, monday)
    Relay().drain()

    entry = cached_entry(who, monday)
    slots = entry.slots(JOB_SITE, TWO_HOURS, Rules.from_settings(), timezone.now())

    # booked 10:00-12:00 and kept clear 09:30-12:30; two hours do not fit in 08:00-09:30, so
    # every quarter hour from 12:30 to 15:00 (ending 17:00)
    assert [start for start, _ in slots] == [
        ny(monday, 12, 30) + timedelta(minutes=15 * n) for n in range(11)
    ]


def test_a_rejected_booking_keeps_the_version_and_the_cache(who, monday):
    job = JobFactory(desired_date=monday)
    recommend(job)
    book(who, monday)
    Relay().drain()

    # 11:00-13:00 overlaps the 10:00-12:00 booking: rolled back, version bump included
    with pytest.raises(Conflict):
        assign_job(job_id=job.pk, contractor_id=who.pk, start=ny(monday, 11), end=ny(monday, 13))

    who.refresh_from_db()
    assert who.schedule_version == 1
    assert reads_hours(job) is False


# --- the cache agrees with the database -------------------------------------------------------

quarters = st.integers(min_value=0, max_value=24)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    # laid one after another from 06:00: (quarters of gap before, quarters long, miles away)
    bookings=st.lists(
        st.tuples(quarters, st.integers(min_value=2, max_value=16), st.floats(0, 40)),
        max_size=3,
    ),
    # (start, length) in quarters from Monday 00:00, overlapping as they please
    offs=st.lists(
        st.tuples(st.integers(min_value=0, max_value=95), st.integers(1, 24)), max_size=2
    ),
    minutes=st.sampled_from([30, 45, 60, 120, 240, 480]),
)
def test_cached_slots_are_the_slots_the_database_allows(who, monday, bookings, offs, minutes):
    """Ranking from a cached day (fresh, then read back from Redis) offers exactly the slot
    starts the engine finds from the database rows, and each passes the booking check."""
    cache.delete_pattern("avail:*")  # only this run's keys (private_cache)
    try:
        day_start, day_end = local_day_bounds(NY, monday)
        cursor = ny(monday, 6)
        for gap, length, miles in bookings:
            cursor += timedelta(minutes=15 * gap)
            AssignmentFactory(
                job=JobFactory(
                    desired_date=monday,
                    status="assigned",
                    duration_minutes=15 * length,
                    lat=JOB_SITE.lat + math.degrees(miles / EARTH_RADIUS_MILES),
                ),
                contractor=who,
                start=cursor,
            )
            cursor += timedelta(minutes=15 * length)
        for start, length in offs:
            TimeOffFactory(
                contractor=who,
                start=day_start + timedelta(minutes=15 * start),
                end=day_start + timedelta(minutes=15 * (start + length)),
            )
        rules, duration = Rules.from_settings(), timedelta(minutes=minutes)
        schedule = load_schedule(who, day_start, day_end)
        truth = slot_starts(
            free_windows(schedule, day_start, day_end, JOB_SITE, rules), duration, rules.grid
        )

        fresh = day_entries([who], {who.pk: [monday]})[(who.pk, monday)]
        stored = day_entries([who], {who.pk: [monday]})[(who.pk, monday)]

        for entry in (fresh, stored):
            assert entry.slots(JOB_SITE, duration, rules, day_start) == truth
        assert all(check_slot(schedule, slot, JOB_SITE, rules) is None for slot in truth)
    finally:  # each example starts from the bare contractor
        Assignment.objects.filter(contractor=who).delete()
        TimeOff.objects.filter(contractor=who).delete()


def test_cold_days_are_those_not_cached_for_the_current_version(who, monday):
    """The warming handler computes only what is missing: the rest is checked with one MGET
    of the very keys the readers use."""
    tuesday = monday + timedelta(days=1)
    both = {who.pk: [monday, tuesday]}
    assert cold_days([who], both) == both

    day_entries([who], {who.pk: [monday]})
    assert cold_days([who], both) == {who.pk: [tuesday]}

    day_entries([who], both)
    assert cold_days([who], both) == {}
    who.schedule_version += 1  # a schedule change: the next version is cold again
    assert cold_days([who], both) == both


def test_warming_contractors_already_warm_reads_no_schedule(who, monday):
    today = timezone.now().date()
    horizon = [
        today + timedelta(days=n) for n in range(django_settings.SCHEDULING["HORIZON_DAYS"] + 1)
    ]
    day_entries([who], {who.pk: horizon})
    touched = Event(type="ScheduleUpdated", payload={"contractorId": who.pk})

    with CaptureQueriesContext(connection) as captured:
        warm_availability([touched])

    assert [q["sql"] for q in captured.captured_queries if "workinghours" in q["sql"]] == []
    assert len(captured.captured_queries) == 1  # the contractors themselves


def test_a_job_started_ahead_of_its_slot_counts_on_the_day_it_keeps_whatever_days_are_read(
    who, monday
):
    """Booked for next week, started and completed today: it kept the contractor today, so
    today's entry holds it, whether today is computed alone or with the booked day (found by
    the chaos run: a day computed alone missed it, since bookings were looked up by their
    booked slot)."""
    job = JobFactory(desired_date=monday)
    assign_job(job_id=job.pk, contractor_id=who.pk, start=ny(monday, 10))
    start_job(job_id=job.pk)
    complete_job(job_id=job.pk)
    today = timezone.now().astimezone(who.tz).date()
    kept = Assignment.objects.get(job=job).occupied

    alone = compute_entries([(who, today)])[(who.pk, today)]
    together = compute_entries([(who, today), (who, monday)])[(who.pk, today)]

    assert alone == together
    assert [(b.start, b.end) for b in alone.bookings] == [kept]
