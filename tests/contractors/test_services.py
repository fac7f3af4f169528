"""Contractor services: each test checks the rows the service leaves behind (re-read from the
database) and the exact events it records; a rejected call leaves the database as it found it."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from contractors.models import Contractor, Rating, Region, TimeOff, WorkingHours
from contractors.services import (
    Location,
    Window,
    add_time_off,
    create_contractor,
    create_region,
    delete_contractor,
    refresh_rating_summaries,
    remove_time_off,
    set_working_hours,
    update_contractor,
)
from events.errors import Conflict, Invalid, NotFound
from scheduling.services import rate_job
from tests.conftest import (
    at,
    db_state,
    events_of,
    make_user,
    next_weekday,
    place,
    refused,
)
from tests.contractors.factories import (
    ContractorFactory,
    RatingFactory,
    RegionFactory,
    TimeOffFactory,
)
from tests.contractors.support import assert_contractor_rated, assert_schedule_updated
from tests.scheduling.factories import AssignmentFactory

pytestmark = pytest.mark.django_db

NY = ZoneInfo("America/New_York")
MISSING_ID = 987_654_321
MAIN_ST = {"lat": 40.71, "lng": -74.0, "address": "1 Main St, New York"}
DEFAULT_HOURS_JSON = [{"weekday": d, "start": "08:00", "end": "17:00"} for d in range(5)]


# --- helpers ----------------------------------------------------------------------------------


def z(moment: datetime) -> str:
    """The payload spelling of a timestamp, written out independently of events.timefmt."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def completed_job(contractor: Contractor):
    """Set-up: a completed job of `contractor` (rows written directly), the only kind that
    can be rated."""
    return AssignmentFactory(
        contractor=contractor,
        start=at(next_weekday(0), 9, tz=NY),
        status="completed",
        job__status="completed",
    ).job


# Every row the contractor services may touch (db_state: a rejected call wrote nothing).
TOUCHED = (Contractor, WorkingHours, TimeOff, Rating, Region)


def hours_of(contractor: Contractor) -> list[tuple[int, time, time]]:
    return list(
        WorkingHours.objects.filter(contractor=contractor)
        .order_by("weekday", "start")
        .values_list("weekday", "start", "end")
    )


# --- create_contractor ------------------------------------------------------------------------


def test_create_contractor_saves_it_and_announces_its_schedule():
    contractor = create_contractor(
        name="Ana Ruiz",
        type="tile",
        location=Location(**MAIN_ST),
        timezone_name="America/New_York",
        skills=["Tile", " grout ", "tile", ""],
        working_hours=[
            Window(2, time(9), time(12)),
            Window(0, time(13), time(17)),
            Window(0, time(8), time(12)),
        ],
    )

    saved = Contractor.objects.get(pk=contractor.pk)
    assert (saved.name, saved.type, saved.status) == ("Ana Ruiz", "tile", "active")
    assert saved.skills == ["grout", "tile"]
    assert place(saved) == MAIN_ST
    assert saved.timezone == "America/New_York"
    assert saved.region == "default"
    assert (saved.average_rating, saved.rating_count, saved.deleted_at) == (None, 0, None)
    assert hours_of(saved) == [
        (0, time(8), time(12)),
        (0, time(13), time(17)),
        (2, time(9), time(12)),
    ]
    assert_schedule_updated(
        saved,
        previous={"status": None, "workingHours": None},
        new={
            "status": "active",
            "workingHours": [
                {"weekday": 0, "start": "08:00", "end": "12:00"},
                {"weekday": 0, "start": "13:00", "end": "17:00"},
                {"weekday": 2, "start": "09:00", "end": "12:00"},
            ],
        },
    )


@pytest.mark.parametrize("name", ["localtime", "EST5EDT", "UTC+3", "Etc/GMT-3", "US/Eastern"])
def test_create_contractor_refuses_zone_names_that_are_not_places(name):
    with refused(Invalid, TOUCHED, field="timezone"):
        create_contractor(
            name="Bo", type="carpet", location=Location(**MAIN_ST), timezone_name=name
        )


def test_create_contractor_defaults_to_monday_to_friday_8_to_17():
    contractor = create_contractor(
        name="Bo", type="carpet", location=Location(**MAIN_ST), status="on_leave"
    )

    saved = Contractor.objects.get(pk=contractor.pk)
    assert saved.status == "on_leave"
    assert saved.skills == []
    # No timezone given: the zone of the base location (Manhattan), not UTC.
    assert saved.timezone == "America/New_York"
    assert hours_of(saved) == [(d, time(8), time(17)) for d in range(5)]
    assert_schedule_updated(
        saved,
        previous={"status": None, "workingHours": None},
        new={"status": "on_leave", "workingHours": DEFAULT_HOURS_JSON},
    )


def test_create_contractor_links_a_user_account():
    user = make_user("ana")

    contractor = create_contractor(name="Ana", type="tile", location=Location(**MAIN_ST), user=user)

    assert Contractor.objects.get(pk=contractor.pk).user_id == user.pk
    assert_schedule_updated(
        contractor,
        previous={"status": None, "workingHours": None},
        new={"status": "active", "workingHours": DEFAULT_HOURS_JSON},
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"type": "plumbing"}, "type"),
        ({"status": "retired"}, "status"),
        ({"timezone_name": "Mars/Olympus_Mons"}, "timezone"),
        (
            {"working_hours": [Window(0, time(8), time(12)), Window(0, time(11), time(15))]},
            "workingHours",
        ),
        ({"working_hours": [Window(1, time(9), time(9))]}, "workingHours"),
        ({"working_hours": [Window(1, time(17), time(8))]}, "workingHours"),
        ({"working_hours": [Window(7, time(8), time(17))]}, "workingHours"),
    ],
)
def test_create_contractor_rejects_invalid_input_and_writes_nothing(overrides, field):
    arguments = {"name": "Ana", "type": "tile", "location": Location(**MAIN_ST), **overrides}

    with refused(Invalid, TOUCHED, field=field):
        create_contractor(**arguments)


def test_create_contractor_refuses_a_user_already_linked_to_another_contractor():
    user = make_user("worker", role="contractor", contractor=ContractorFactory())

    with refused(Conflict, TOUCHED, code="user_linked"):
        create_contractor(name="Twin", type="tile", location=Location(**MAIN_ST), user=user)


# --- regions ----------------------------------------------------------------------------------


def test_create_region_saves_it_without_an_event():
    region = create_region(
        slug="north", name="North", center_lat=40.9, center_lng=-73.9, radius_miles=25
    )

    saved = Region.objects.get(pk=region.pk)
    assert (saved.slug, saved.name) == ("north", "North")
    assert (saved.center_lat, saved.center_lng, saved.radius_miles) == (40.9, -73.9, 25)
    # Regions are reference data, not part of the event catalog.
    assert events_of() == []


@pytest.mark.parametrize(
    ("arguments", "error", "detail"),
    [
        ({"slug": "default"}, Invalid, "slug"),
        ({"slug": "north"}, Conflict, "region_exists"),
        ({"radius_miles": 0}, Invalid, "radiusMiles"),
        ({"radius_miles": -3}, Invalid, "radiusMiles"),
    ],
)
def test_create_region_rejects_reserved_duplicate_or_empty_regions(arguments, error, detail):
    RegionFactory(slug="north")
    base = {
        "slug": "south",
        "name": "South",
        "center_lat": 40.5,
        "center_lng": -74.2,
        "radius_miles": 10,
    }

    with refused(error, TOUCHED, **{"field" if error is Invalid else "code": detail}):
        create_region(**{**base, **arguments})


@pytest.mark.parametrize(
    ("lat", "lng", "region"),
    [
        # 3.8 miles from midtown's centre, 7.4 from north's: both cover it, midtown is nearer.
        (40.80, -73.95, "midtown"),
        # 8.7 miles from north's centre, 19.7 from midtown's (radius 10): only north covers it.
        (41.00, -73.80, "north"),
        # The nearest centre is battery's (7.6 miles, radius 1), then midtown's (10.4 miles,
        # radius 10); neither covers it. North's is 21.4 miles away and covers it.
        (40.60, -74.00, "north"),
        # Boston: about 178 miles from anything.
        (42.36, -71.06, "default"),
    ],
)
def test_region_is_the_nearest_covering_region_else_default(lat, lng, region):
    create_region(slug="north", name="North", center_lat=40.9, center_lng=-73.9, radius_miles=25)
    create_region(
        slug="midtown", name="Midtown", center_lat=40.75, center_lng=-73.98, radius_miles=10
    )
    create_region(
        slug="battery", name="Battery", center_lat=40.71, center_lng=-74.0, radius_miles=1
    )

    contractor = create_contractor(
        name="Ana", type="tile", location=Location(lat=lat, lng=lng, address="somewhere")
    )

    assert Contractor.objects.get(pk=contractor.pk).region == region
    event = assert_schedule_updated(
        contractor,
        previous={"status": None, "workingHours": None},
        new={"status": "active", "workingHours": DEFAULT_HOURS_JSON},
        region=region,
    )
    assert event.payload["region"] == region


# --- update_contractor ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "previous", "new"),
    [
        ({"name": "Ana Ruiz-Lopez"}, {"name": "Ana Ruiz"}, {"name": "Ana Ruiz-Lopez"}),
        ({"status": "on_leave"}, {"status": "active"}, {"status": "on_leave"}),
        ({"type": "multi"}, {"type": "tile"}, {"type": "multi"}),
        (
            {"skills": [" Carpet", "tile", "TILE", "grout", ""]},
            {"skills": ["grout", "tile"]},
            {"skills": ["carpet", "grout", "tile"]},
        ),
        (
            {"timezone_name": "America/Chicago"},
            {"timezone": "America/New_York"},
            {"timezone": "America/Chicago"},
        ),
        # Only what actually changes is reported: the name is the same.
        ({"name": "Ana Ruiz", "status": "inactive"}, {"status": "active"}, {"status": "inactive"}),
        (
            {"name": "Ana R.", "skills": ["tile", "grout"], "status": "on_leave"},
            {"name": "Ana Ruiz", "status": "active"},
            {"name": "Ana R.", "status": "on_leave"},
        ),
    ],
)
def test_update_contractor_saves_and_reports_only_what_changed(arguments, previous, new):
    contractor = ContractorFactory(name="Ana Ruiz")

    update_contractor(contractor_id=contractor.pk, **arguments)

    saved = Contractor.objects.get(pk=contractor.pk)
    for field, value in new.items():
        assert getattr(saved, field) == value
    assert saved.region == "default"
    assert_schedule_updated(contractor, previous=previous, new=new)


def test_moving_a_contractor_re_derives_its_region():
    RegionFactory(slug="north")  # centre 40.9, -73.9, radius 25 miles
    contractor = ContractorFactory()
    far = {"lat": 40.85, "lng": -73.92, "address": "9 Hill Rd, Yonkers"}

    update_contractor(contractor_id=contractor.pk, location=Location(**far))

    saved = Contractor.objects.get(pk=contractor.pk)
    assert place(saved) == far
    assert saved.region == "north"
    assert_schedule_updated(
        contractor,
        previous={"location": MAIN_ST, "region": "default"},
        new={"location": far, "region": "north"},
        region="north",
        left="default",  # the dispatchers of the region it left hear about it too
    )


def test_moving_a_contractor_within_its_region_reports_only_the_location():
    contractor = ContractorFactory()
    nearby = {"lat": 40.72, "lng": -74.01, "address": "3 Side St"}

    update_contractor(contractor_id=contractor.pk, location=Location(**nearby))

    saved = Contractor.objects.get(pk=contractor.pk)
    assert (place(saved), saved.region) == (nearby, "default")
    assert_schedule_updated(contractor, previous={"location": MAIN_ST}, new={"location": nearby})


def test_update_contractor_without_a_change_writes_nothing():
    contractor = ContractorFactory(name="Ana")
    before = db_state(*TOUCHED)

    update_contractor(
        contractor_id=contractor.pk,
        name="Ana",
        status="active",
        skills=["TILE", "grout"],
        location=Location(**MAIN_ST),
        timezone_name="America/New_York",
    )

    assert db_state(*TOUCHED) == before
    assert events_of() == []


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"type": "plumbing"}, "type"),
        ({"status": "retired"}, "status"),
        ({"timezone_name": "Europe/Atlantis"}, "timezone"),
    ],
)
def test_update_contractor_rejects_invalid_values_and_writes_nothing(arguments, field):
    contractor = ContractorFactory(name="Ana")

    with refused(Invalid, TOUCHED, field=field):
        # The valid name change in the same call must not be saved either.
        update_contractor(contractor_id=contractor.pk, name="Renamed", **arguments)

    assert Contractor.objects.get(pk=contractor.pk).name == "Ana"


def test_update_contractor_of_an_unknown_or_deleted_contractor_is_not_found():
    deleted = ContractorFactory(status="inactive", deleted_at=datetime.now(UTC))

    for contractor_id in (MISSING_ID, deleted.pk):
        with refused(NotFound, TOUCHED):
            update_contractor(contractor_id=contractor_id, name="Ghost")


# --- delete_contractor ------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["active", "on_leave", "inactive"])
def test_delete_contractor_is_a_soft_delete(status):
    contractor = ContractorFactory(status=status)
    # Finished and cancelled work does not hold the contractor.
    monday = next_weekday(0)
    AssignmentFactory(
        contractor=contractor,
        start=at(monday, 9, tz=NY),
        status="completed",
        job__status="completed",
    )
    AssignmentFactory(
        contractor=contractor,
        start=at(monday, 13, tz=NY),
        status="cancelled",
        job__status="cancelled",
    )

    delete_contractor(contractor_id=contractor.pk)

    saved = Contractor.objects.get(pk=contractor.pk)
    assert saved.deleted_at is not None
    assert saved.status == "inactive"
    assert saved.hours.count() == 5  # the row and its history stay
    assert_schedule_updated(
        contractor,
        previous={"status": status, "deleted": False},
        new={"status": "inactive", "deleted": True},
    )


@pytest.mark.parametrize("assignment_status", ["scheduled", "in_progress"])
def test_delete_contractor_with_live_assignments_is_a_conflict(assignment_status):
    contractor = ContractorFactory()
    AssignmentFactory(
        contractor=contractor,
        start=at(next_weekday(0), 9, tz=NY),
        status=assignment_status,
        job__status="assigned" if assignment_status == "scheduled" else "in_progress",
    )

    with refused(Conflict, TOUCHED, code="contractor_busy"):
        delete_contractor(contractor_id=contractor.pk)

    assert Contractor.objects.get(pk=contractor.pk).deleted_at is None


def test_delete_contractor_twice_or_unknown_is_not_found():
    contractor = ContractorFactory()
    delete_contractor(contractor_id=contractor.pk)
    before = db_state(*TOUCHED)

    for contractor_id in (contractor.pk, MISSING_ID):
        with pytest.raises(NotFound):
            delete_contractor(contractor_id=contractor_id)

    assert db_state(*TOUCHED) == before
    assert [event.type for event in events_of()] == ["ScheduleUpdated"]


# --- set_working_hours ------------------------------------------------------------------------


def test_set_working_hours_replaces_the_week():
    contractor = ContractorFactory()

    set_working_hours(
        contractor_id=contractor.pk,
        windows=[
            Window(5, time(9), time(13)),
            Window(0, time(12), time(16)),
            # Touching windows are not overlapping: [07:00, 12:00) and [12:00, 16:00).
            Window(0, time(7), time(12)),
        ],
    )

    saved = Contractor.objects.get(pk=contractor.pk)
    assert hours_of(saved) == [
        (0, time(7), time(12)),
        (0, time(12), time(16)),
        (5, time(9), time(13)),
    ]
    assert saved.updated_at > contractor.updated_at
    assert_schedule_updated(
        contractor,
        previous={"workingHours": DEFAULT_HOURS_JSON},
        new={
            "workingHours": [
                {"weekday": 0, "start": "07:00", "end": "12:00"},
                {"weekday": 0, "start": "12:00", "end": "16:00"},
                {"weekday": 5, "start": "09:00", "end": "13:00"},
            ]
        },
    )


def test_set_working_hours_to_none_at_all():
    contractor = ContractorFactory()

    set_working_hours(contractor_id=contractor.pk, windows=[])

    assert hours_of(contractor) == []
    assert_schedule_updated(
        contractor, previous={"workingHours": DEFAULT_HOURS_JSON}, new={"workingHours": []}
    )


def test_set_working_hours_to_the_same_week_writes_nothing():
    contractor = ContractorFactory()
    before = db_state(*TOUCHED)

    set_working_hours(
        contractor_id=contractor.pk,
        windows=[Window(d, time(8), time(17)) for d in reversed(range(5))],
    )

    assert db_state(*TOUCHED) == before
    assert events_of() == []


@pytest.mark.parametrize(
    "windows",
    [
        pytest.param(
            [Window(0, time(8), time(12)), Window(0, time(11, 59), time(17))], id="overlapping"
        ),
        pytest.param(
            [Window(2, time(8), time(17)), Window(2, time(10), time(11))], id="one-inside-another"
        ),
        pytest.param([Window(3, time(9), time(9))], id="empty"),
        pytest.param([Window(3, time(17), time(8))], id="backwards"),
        pytest.param([Window(-1, time(8), time(17))], id="weekday-below-range"),
        pytest.param([Window(7, time(8), time(17))], id="weekday-above-range"),
    ],
)
def test_set_working_hours_rejects_overlapping_or_empty_windows(windows):
    contractor = ContractorFactory()

    with refused(Invalid, TOUCHED, field="workingHours"):
        set_working_hours(contractor_id=contractor.pk, windows=windows)

    assert hours_of(contractor) == [(d, time(8), time(17)) for d in range(5)]


def test_set_working_hours_of_an_unknown_contractor_is_not_found():
    with refused(NotFound, TOUCHED):
        set_working_hours(contractor_id=MISSING_ID, windows=[Window(0, time(8), time(9))])

    assert WorkingHours.objects.count() == 0


# --- time off ---------------------------------------------------------------------------------


def test_add_time_off():
    contractor = ContractorFactory()
    monday = next_weekday(0)
    start, end = at(monday, 8, tz=NY), at(monday, 12, 30, tz=NY)

    entry = add_time_off(contractor_id=contractor.pk, start=start, end=end, reason="dentist")

    saved = TimeOff.objects.get(pk=entry.pk)
    assert (saved.contractor_id, saved.start, saved.end, saved.reason) == (
        contractor.pk,
        start,
        end,
        "dentist",
    )
    assert_schedule_updated(
        contractor,
        previous={"timeOff": None},
        new={"timeOff": {"id": entry.pk, "start": z(start), "end": z(end), "reason": "dentist"}},
    )


@pytest.mark.parametrize("hours", [0, -1], ids=["empty", "backwards"])
def test_add_time_off_must_end_after_it_starts(hours):
    contractor = ContractorFactory()
    start = at(next_weekday(0), 12, tz=NY)

    with refused(Invalid, TOUCHED, field="end"):
        add_time_off(contractor_id=contractor.pk, start=start, end=start.replace(hour=12 + hours))


def test_add_time_off_for_an_unknown_contractor_is_not_found():
    start = at(next_weekday(0), 8, tz=NY)

    with refused(NotFound, TOUCHED):
        add_time_off(contractor_id=MISSING_ID, start=start, end=start.replace(hour=12))

    assert TimeOff.objects.count() == 0


def test_remove_time_off():
    contractor = ContractorFactory()
    monday = next_weekday(0)
    entry = TimeOffFactory(
        contractor=contractor, start=at(monday, 8, tz=NY), end=at(monday, 17, tz=NY)
    )
    tuesday = monday + timedelta(days=1)
    kept = TimeOffFactory(
        contractor=contractor, start=at(tuesday, 8, tz=NY), end=at(tuesday, 17, tz=NY)
    )

    remove_time_off(contractor_id=contractor.pk, time_off_id=entry.pk)

    assert list(TimeOff.objects.values_list("pk", flat=True)) == [kept.pk]
    assert_schedule_updated(
        contractor,
        previous={
            "timeOff": {
                "id": entry.pk,
                "start": z(entry.start),
                "end": z(entry.end),
                "reason": "vacation",
            }
        },
        new={"timeOff": None},
    )


def test_remove_time_off_of_another_contractor_or_unknown_is_not_found():
    contractor, other = ContractorFactory(), ContractorFactory()
    monday = next_weekday(0)
    others_entry = TimeOffFactory(
        contractor=other, start=at(monday, 8, tz=NY), end=at(monday, 17, tz=NY)
    )

    for contractor_id, time_off_id in [
        (contractor.pk, others_entry.pk),
        (contractor.pk, MISSING_ID),
        (MISSING_ID, others_entry.pk),
    ]:
        with refused(NotFound, TOUCHED):
            remove_time_off(contractor_id=contractor_id, time_off_id=time_off_id)


# --- ratings (recorded through scheduling's rate_job) -----------------------------------------


@pytest.mark.parametrize(
    ("earlier_stars", "previous_rating"),
    [
        ([], None),
        ([5], 5.0),
        ([5, 4], 4.5),
        ([5, 4, 4], 4.333),  # 13 / 3, to three places
    ],
)
def test_record_rating_reports_the_average_before_this_rating(earlier_stars, previous_rating):
    contractor = ContractorFactory()
    for stars in earlier_stars:
        RatingFactory(contractor=contractor, stars=stars)
    RatingFactory(stars=1)  # another contractor's rating does not count
    job = completed_job(contractor)

    result = rate_job(job_id=job.pk, stars=3).result

    assert (result.created, result.changed) == (True, True)
    saved = Rating.objects.get(job_id=job.pk)
    assert (saved.contractor_id, saved.stars) == (contractor.pk, 3)
    assert Rating.objects.filter(contractor=contractor).count() == len(earlier_stars) + 1
    assert_contractor_rated(contractor, job, 3, previous_rating)


def test_contractor_rated_travels_to_the_contractors_region():
    RegionFactory(slug="north")
    contractor = ContractorFactory(region="north", lat=40.9, lng=-73.9)
    job = completed_job(contractor)

    rate_job(job_id=job.pk, stars=5)

    assert_contractor_rated(contractor, job, 5, None, region="north")


@pytest.mark.parametrize("stars", [0, 6, -1, 10])
def test_record_rating_accepts_only_one_to_five_stars(stars):
    contractor = ContractorFactory()
    job = completed_job(contractor)

    with refused(Invalid, TOUCHED, field="rating"):
        rate_job(job_id=job.pk, stars=stars)


def test_rate_job_stores_the_new_average_in_its_own_transaction():
    """The average is current the moment ContractorRated commits, before any handler runs
    (the broadcast may run first, and the board re-reads the contractor)."""
    contractor = ContractorFactory()
    RatingFactory(contractor=contractor, stars=5)
    refresh_rating_summaries(contractor_ids=[contractor.pk])
    job = completed_job(contractor)

    with transaction.atomic():
        rate_job(job_id=job.pk, stars=2)
        # Inside the rating's transaction: the same commit carries the average and the event.
        inside = Contractor.objects.get(pk=contractor.pk)
        assert (inside.average_rating, inside.rating_count) == (3.5, 2)
        assert [e.type for e in events_of()] == ["ContractorRated"]

    saved = Contractor.objects.get(pk=contractor.pk)
    assert (saved.average_rating, saved.rating_count) == (3.5, 2)
    [event] = events_of()
    assert (event.payload["rating"], event.payload["previousRating"]) == (2, 5.0)


# --- refresh_rating_summaries -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stars", "average", "count"),
    [
        ([], None, 0),
        ([4], 4.0, 1),
        ([5, 4], 4.5, 2),
        ([5, 4, 4], 4.333, 3),
        ([1, 2, 2, 5], 2.5, 4),
    ],
)
def test_refresh_rating_summaries_recomputes_from_the_ratings_table(stars, average, count):
    # The stored summary is stale on purpose: the refresh must recompute, not increment.
    contractor = ContractorFactory(average_rating=1.5, rating_count=9)
    for value in stars:
        RatingFactory(contractor=contractor, stars=value)
    RatingFactory(stars=1)  # another contractor's

    changed = refresh_rating_summaries(contractor_ids=[contractor.pk])

    saved = Contractor.objects.get(pk=contractor.pk)
    assert (saved.average_rating, saved.rating_count) == (average, count)
    assert changed == 1
    # A derived-data refresh is a reaction to an event, not a new domain event.
    assert events_of() == []


def test_refresh_rating_summaries_is_idempotent():
    contractor = ContractorFactory()
    RatingFactory(contractor=contractor, stars=5)
    RatingFactory(contractor=contractor, stars=2)
    refresh_rating_summaries(contractor_ids=[contractor.pk])
    after_first = db_state(*TOUCHED)

    assert refresh_rating_summaries(contractor_ids=[contractor.pk]) == 0

    assert db_state(*TOUCHED) == after_first  # not even updated_at moves
    saved = Contractor.objects.get(pk=contractor.pk)
    assert (saved.average_rating, saved.rating_count) == (3.5, 2)


def test_refresh_rating_summaries_after_rate_job_counts_the_new_rating():
    contractor = ContractorFactory()
    RatingFactory(contractor=contractor, stars=5)
    job = completed_job(contractor)
    rate_job(job_id=job.pk, stars=2)

    refresh_rating_summaries(contractor_ids=[contractor.pk])

    saved = Contractor.objects.get(pk=contractor.pk)
    assert (saved.average_rating, saved.rating_count) == (3.5, 2)
    assert [event.type for event in events_of()] == ["ContractorRated"]


def test_refresh_rating_summaries_of_an_unknown_contractor_does_nothing():
    before = db_state(*TOUCHED)

    assert refresh_rating_summaries(contractor_ids=[MISSING_ID]) == 0

    assert db_state(*TOUCHED) == before


def test_refresh_rating_summaries_recomputes_a_batch_in_a_fixed_number_of_queries():
    """The relay's handlers refresh a whole batch of contractors at once: same results as one
    at a time, unknown ids ignored, and the query count does not grow with the batch."""
    rated = [ContractorFactory(average_rating=1.5, rating_count=9) for _ in range(4)]
    for contractor, stars in zip(rated, ([5, 4], [4, 4, 5], [1], []), strict=True):
        for value in stars:
            RatingFactory(contractor=contractor, stars=value)
    fresh = ContractorFactory()  # no ratings, and a summary that already says so

    with CaptureQueriesContext(connection) as captured:
        changed = refresh_rating_summaries(
            contractor_ids={*(c.pk for c in rated), fresh.pk, MISSING_ID}
        )

    assert changed == 4
    saved = Contractor.objects.in_bulk([c.pk for c in rated])
    assert [(saved[c.pk].average_rating, saved[c.pk].rating_count) for c in rated] == [
        (4.5, 2),
        (4.333, 3),
        (1.0, 1),
        (None, 0),
    ]
    assert all(saved[c.pk].updated_at > c.updated_at for c in rated)
    # lock, aggregate, one UPDATE (besides the transaction's own statements)
    assert len([q for q in captured.captured_queries if "contractors_" in q["sql"]]) == 3
    assert events_of() == []
    after_first = db_state(*TOUCHED)

    assert refresh_rating_summaries(contractor_ids={c.pk for c in rated}) == 0
    assert db_state(*TOUCHED) == after_first  # idempotent: not even updated_at moves
