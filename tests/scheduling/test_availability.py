"""The availability engine (scheduling.availability) and the schedule it is fed from the database.

Every expected value below is worked out by hand (docs/scheduling.md): working windows in the
contractor's timezone, minus time off, minus live bookings padded by 30 min buffer plus travel at
30 mph, cut into starts on the 15-minute grid where the whole duration fits inside one window.
Intervals are half-open, so touching is never overlapping.
"""

import math
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from contractors.geo import EARTH_RADIUS_MILES, haversine_miles
from scheduling.availability import (
    Booking,
    Rules,
    Schedule,
    Site,
    check_slot,
    free_windows,
    merge,
    slot_starts,
    subtract,
    working_windows,
)
from scheduling.models import occupied
from scheduling.selectors import load_schedule
from tests.contractors.factories import ContractorFactory, TimeOffFactory
from tests.scheduling.factories import AssignmentFactory

RULES = Rules(buffer=timedelta(minutes=30), speed_mph=30.0, grid=timedelta(minutes=15))
GRID = timedelta(minutes=15)

HERE = Site(40.0, -74.0)  # the job's site in the pure-engine tests
# Due north of HERE along the meridian, so the great-circle distance is exactly R x dlat.
MILES_15 = Site(40.0 + math.degrees(15 / EARTH_RADIUS_MILES), -74.0)
MILES_2_3 = Site(40.0 + math.degrees(2.3 / EARTH_RADIUS_MILES), -74.0)
FACTORY_JOB_SITE = Site(40.72, -73.99)  # where JobFactory puts every job

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
KOLKATA = ZoneInfo("Asia/Kolkata")
KATHMANDU = ZoneInfo("Asia/Kathmandu")

WED = "2027-06-02"  # a Wednesday; the single-day tables below happen on it, in UTC


def z(text: str) -> datetime:
    """'2027-06-02 08:00' (or with seconds) as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def on_wed(hhmm: str) -> datetime:
    return z(f"{WED} {hhmm}")


def hm(text: str) -> time:
    return time.fromisoformat(text)


def every_day(windows: list[tuple[str, str]]) -> tuple[tuple[int, time, time], ...]:
    return tuple((day, hm(s), hm(e)) for day in range(7) for s, e in windows)


def grid(first: str, last: str) -> list[str]:
    """'HH:MM' starts every 15 minutes from `first` to `last`, both included."""
    moment, stop, out = on_wed(first), on_wed(last), []
    while moment <= stop:
        out.append(f"{moment:%H:%M}")
        moment += GRID
    return out


def test_reference_sites_are_the_distances_the_tables_assume():
    assert haversine_miles(HERE.lat, HERE.lng, MILES_15.lat, MILES_15.lng) == pytest.approx(15)
    assert haversine_miles(HERE.lat, HERE.lng, MILES_2_3.lat, MILES_2_3.lng) == pytest.approx(2.3)
    assert RULES.travel(15) == timedelta(minutes=30)


# --- one UTC day, table-driven ------------------------------------------------------------------
# (working hours every day, time off on WED, bookings on WED, duration in minutes,
#  expected free windows on WED, expected slot starts on WED)
ONE_DAY_CASES = [
    pytest.param(
        [("08:00", "17:00")], [], [], 120,
        [("08:00", "17:00")],
        grid("08:00", "15:00"),  # 29 starts; the last, 15:00-17:00, ends exactly at closing
        id="no-bookings",
    ),
    pytest.param(
        [("08:00", "12:00"), ("13:00", "17:00")], [], [], 120,
        [("08:00", "12:00"), ("13:00", "17:00")],
        grid("08:00", "10:00") + grid("13:00", "15:00"),  # nothing from 10:15 to 12:45
        id="split-shift",
    ),
    pytest.param(
        [("08:00", "12:00"), ("13:00", "17:00")], [], [], 240,
        [("08:00", "12:00"), ("13:00", "17:00")],
        ["08:00", "13:00"],  # each 4 h window holds exactly one 4 h job
        id="split-shift-exact-fit",
    ),
    pytest.param(
        [("08:00", "12:00"), ("13:00", "17:00")], [], [], 255,
        [("08:00", "12:00"), ("13:00", "17:00")],
        [],  # 8 h of work that day, but no 4 h 15 min stretch: the job may not straddle lunch
        id="split-shift-no-straddling",
    ),
    pytest.param(
        [("08:00", "12:00"), ("12:00", "17:00")], [], [], 300,
        [("08:00", "17:00")],
        grid("08:00", "12:00"),  # touching windows are one continuous stretch of work
        id="touching-windows-join",
    ),
    pytest.param(
        [("08:00", "17:00")], [], [("08:00", "10:00", HERE)], 120,
        [("10:30", "17:00")],  # 0 miles: buffer only, blocked 07:30-10:30
        grid("10:30", "15:00"),
        id="booking-at-opening",
    ),
    pytest.param(
        [("08:00", "17:00")], [], [("15:00", "17:00", HERE)], 120,
        [("08:00", "14:30")],  # blocked 14:30-17:30
        grid("08:00", "12:30"),
        id="booking-at-closing",
    ),
    pytest.param(
        [("08:00", "17:00")], [], [("06:00", "07:30", HERE)], 120,
        [("08:00", "17:00")],  # padding ends at 08:00 exactly: touching, so nothing is lost
        grid("08:00", "15:00"),
        id="padding-touches-opening",
    ),
    pytest.param(
        [("08:00", "17:00")], [], [("17:00", "18:00", MILES_15)], 120,
        [("08:00", "16:00")],  # an evening job 15 mi away: 30 travel + 30 buffer reach into 16:00
        grid("08:00", "14:00"),
        id="padding-of-after-hours-booking-reaches-in",
    ),
    pytest.param(
        [("08:00", "17:00")], [], [("10:00", "12:00", HERE), ("12:00", "14:00", HERE)], 90,
        [("08:00", "09:30"), ("14:30", "17:00")],  # back-to-back bookings block 09:30-14:30
        ["08:00", *grid("14:30", "15:30")],  # 08:00-09:30 ends exactly where the padding begins
        id="back-to-back-bookings",
    ),
    pytest.param(
        [("08:00", "17:00")], [], [("11:00", "12:00", HERE)], 120,
        [("08:00", "10:30"), ("12:30", "17:00")],  # same site: 30 min buffer each side
        grid("08:00", "08:30") + grid("12:30", "15:00"),
        id="buffer-only-same-site",
    ),
    pytest.param(
        [("08:00", "17:00")], [], [("11:00", "12:00", MILES_15)], 120,
        [("08:00", "10:00"), ("13:00", "17:00")],  # 15 mi: 30 travel + 30 buffer = 60 each side
        ["08:00", *grid("13:00", "15:00")],
        id="buffer-and-travel-15-miles",
    ),
    pytest.param(
        [("08:00", "17:00")], [], [("11:00", "12:00", MILES_2_3)], 120,
        # 2.3 mi at 30 mph = 4 min 36 s; plus the buffer: 34 min 36 s each side
        [("08:00", "10:25:24"), ("12:34:36", "17:00")],
        ["08:00", "08:15", *grid("12:45", "15:00")],  # afternoon starts round up to the grid
        id="travel-off-the-grid",
    ),
    pytest.param(
        [("08:00", "17:00")], [("12:00", "14:00")], [], 120,
        [("08:00", "12:00"), ("14:00", "17:00")],  # time off is not padded
        grid("08:00", "10:00") + grid("14:00", "15:00"),
        id="time-off",
    ),
    pytest.param(
        [("08:00", "17:00")], [("06:00", "08:00"), ("17:00", "20:00")], [], 120,
        [("08:00", "17:00")],  # touching time off takes nothing
        grid("08:00", "15:00"),
        id="time-off-touching-the-window",
    ),
    pytest.param(
        [("08:00", "17:00")], [("07:00", "18:00")], [], 30,
        [], [],
        id="time-off-all-day",
    ),
    pytest.param(
        [("08:00", "17:00")], [("09:00", "11:00")], [("10:00", "12:00", HERE)], 60,
        [("08:00", "09:00"), ("12:30", "17:00")],  # time off 09-11 and padding 09:30-12:30 merge
        ["08:00", *grid("12:30", "16:00")],
        id="time-off-and-booking-overlap",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("hours", "time_off", "bookings", "minutes", "expected_windows", "expected_starts"),
    ONE_DAY_CASES,
)
def test_free_windows_and_slot_starts_on_one_day(
    hours, time_off, bookings, minutes, expected_windows, expected_starts
):
    schedule = Schedule(
        tz=UTC_ZONE,
        hours=every_day(hours),
        time_off=tuple((on_wed(s), on_wed(e)) for s, e in time_off),
        bookings=tuple(Booking(on_wed(s), on_wed(e), site) for s, e, site in bookings),
    )
    duration = timedelta(minutes=minutes)

    windows = free_windows(schedule, on_wed("00:00"), z("2027-06-03 00:00"), HERE, RULES)
    slots = slot_starts(windows, duration, RULES.grid)

    assert windows == [(on_wed(s), on_wed(e)) for s, e in expected_windows]
    assert slots == [(on_wed(s), on_wed(s) + duration) for s in expected_starts]


def test_windows_are_clipped_to_the_period_and_slots_round_up_to_the_grid():
    schedule = Schedule(
        tz=UTC_ZONE, hours=every_day([("08:00", "17:00")]), time_off=(), bookings=()
    )

    windows = free_windows(schedule, on_wed("10:07"), on_wed("16:00"), HERE, RULES)
    slots = slot_starts(windows, timedelta(hours=2), RULES.grid)

    assert windows == [(on_wed("10:07"), on_wed("16:00"))]
    # 10:07 rounds up to 10:15; the last 2 h job must end by 16:00, so starts at 14:00.
    assert slots == [(on_wed(s), on_wed(s) + timedelta(hours=2)) for s in grid("10:15", "14:00")]


# --- timezones and daylight saving ---------------------------------------------------------------
MON_TO_SUN_8_TO_17 = every_day([("08:00", "17:00")])


@pytest.mark.parametrize(
    ("tz", "hours", "period", "expected"),
    [
        pytest.param(
            NEW_YORK, MON_TO_SUN_8_TO_17, ("2027-03-13 00:00", "2027-03-16 00:00"),
            [
                ("2027-03-13 13:00", "2027-03-13 22:00"),  # Sat, EST (-5)
                ("2027-03-14 12:00", "2027-03-14 21:00"),  # Sun, clocks went forward at 02:00
                ("2027-03-15 12:00", "2027-03-15 21:00"),  # Mon, EDT (-4)
            ],
            id="new-york-spring-forward",
        ),
        pytest.param(
            NEW_YORK, MON_TO_SUN_8_TO_17, ("2027-11-06 00:00", "2027-11-09 00:00"),
            [
                ("2027-11-06 12:00", "2027-11-06 21:00"),  # Sat, EDT (-4)
                ("2027-11-07 13:00", "2027-11-07 22:00"),  # Sun, clocks went back at 02:00
                ("2027-11-08 13:00", "2027-11-08 22:00"),  # Mon, EST (-5)
            ],
            id="new-york-fall-back",
        ),
        pytest.param(
            NEW_YORK, ((6, time(0), time(6)),), ("2027-03-14 00:00", "2027-03-15 00:00"),
            [("2027-03-14 05:00", "2027-03-14 10:00")],  # 00:00 EST to 06:00 EDT: 5 real hours
            id="new-york-night-shift-across-spring-forward",
        ),
        pytest.param(
            NEW_YORK, ((6, time(0), time(6)),), ("2027-11-07 00:00", "2027-11-08 00:00"),
            [("2027-11-07 04:00", "2027-11-07 11:00")],  # 00:00 EDT to 06:00 EST: 7 real hours
            id="new-york-night-shift-across-fall-back",
        ),
        pytest.param(
            LOS_ANGELES, ((0, time(8), time(17)),), ("2027-06-07 00:00", "2027-06-09 00:00"),
            [("2027-06-07 15:00", "2027-06-08 00:00")],  # Mon PDT (-7): ends at UTC midnight
            id="los-angeles-summer",
        ),
        pytest.param(
            LOS_ANGELES, ((0, time(8), time(17)),), ("2027-01-11 00:00", "2027-01-13 00:00"),
            [("2027-01-11 16:00", "2027-01-12 01:00")],  # Mon PST (-8): crosses UTC midnight
            id="los-angeles-winter",
        ),
        pytest.param(
            KOLKATA, ((0, time(8), time(17)),), ("2027-06-06 00:00", "2027-06-09 00:00"),
            [("2027-06-07 02:30", "2027-06-07 11:30")],  # +05:30
            id="kolkata",
        ),
        pytest.param(
            KOLKATA, ((0, time(0), time(4)),), ("2027-06-06 00:00", "2027-06-09 00:00"),
            [("2027-06-06 18:30", "2027-06-06 22:30")],  # local Monday night is UTC Sunday
            id="kolkata-local-monday-on-utc-sunday",
        ),
        pytest.param(
            KATHMANDU, ((0, time(8), time(17)),), ("2027-06-06 00:00", "2027-06-09 00:00"),
            [("2027-06-07 02:15", "2027-06-07 11:15")],  # +05:45
            id="kathmandu",
        ),
    ],
)  # fmt: skip
def test_working_windows_follow_the_contractors_timezone(tz, hours, period, expected):
    assert working_windows(hours, tz, z(period[0]), z(period[1])) == [
        (z(s), z(e)) for s, e in expected
    ]


@pytest.mark.parametrize(
    ("day", "minutes", "expected_starts"),
    [
        pytest.param("2027-03-14", 300, ["05:00"], id="spring-5h-fits-once"),
        pytest.param("2027-03-14", 315, [], id="spring-5h15-does-not-fit"),
        # the fall-back night is 7 h long: a 6 h job starts 04:00 to 05:00
        pytest.param("2027-11-07", 360, ["04:00", "04:15", "04:30", "04:45", "05:00"], id="fall"),
    ],
)
def test_slots_use_real_elapsed_time_across_a_clock_change(day, minutes, expected_starts):
    schedule = Schedule(tz=NEW_YORK, hours=((6, time(0), time(6)),), time_off=(), bookings=())
    start = z(f"{day} 00:00")
    duration = timedelta(minutes=minutes)

    windows = free_windows(schedule, start, start + timedelta(days=1), HERE, RULES)

    assert slot_starts(windows, duration, RULES.grid) == [
        (z(f"{day} {s}"), z(f"{day} {s}") + duration) for s in expected_starts
    ]


@pytest.mark.parametrize(
    ("tz", "local_hours", "period_start", "expected_local_starts"),
    [
        # 08:10-10:00 IST is 02:40Z-04:30Z: the first 1 h start rounds up to 02:45Z = 08:15 IST
        pytest.param(
            KOLKATA, ("08:10", "10:00"), "2027-06-07 00:00", ["08:15", "08:30", "08:45", "09:00"],
            id="kolkata",
        ),
        # 08:00-10:00 NPT is 02:15Z-04:15Z: +05:45 is itself on the 15-minute grid
        pytest.param(
            KATHMANDU, ("08:00", "10:00"), "2027-06-07 00:00",
            ["08:00", "08:15", "08:30", "08:45", "09:00"],
            id="kathmandu",
        ),
        # 08:00-10:00 PDT is 15:00Z-17:00Z; the period starts at 15:05Z, so 08:05 local rounds up
        pytest.param(
            LOS_ANGELES, ("08:00", "10:00"), "2027-06-07 15:05",
            ["08:15", "08:30", "08:45", "09:00"],
            id="los-angeles-mid-window-period-start",
        ),
    ],
)  # fmt: skip
def test_slot_starts_stay_on_the_local_quarter_hour(
    tz, local_hours, period_start, expected_local_starts
):
    hours = ((0, hm(local_hours[0]), hm(local_hours[1])),)  # Monday 2027-06-07
    schedule = Schedule(tz=tz, hours=hours, time_off=(), bookings=())
    start = z(period_start)

    windows = free_windows(schedule, start, start + timedelta(days=2), HERE, RULES)
    slots = slot_starts(windows, timedelta(hours=1), RULES.grid)

    assert [f"{s.astimezone(tz):%H:%M}" for s, _ in slots] == expected_local_starts
    assert all(s.tzinfo is not None and e - s == timedelta(hours=1) for s, e in slots)


# --- check_slot -----------------------------------------------------------------------------------
# Every day 08:00-12:00 and 13:00-18:00 (UTC); time off 16:30-17:00; one booking 14:00-14:30 with a
# job 15 mi away, so it keeps 13:00-15:30 (30 travel + 30 buffer each side) from a job at HERE.
CHECK_SCHEDULE = Schedule(
    tz=UTC_ZONE,
    hours=every_day([("08:00", "12:00"), ("13:00", "18:00")]),
    time_off=((on_wed("16:30"), on_wed("17:00")),),
    bookings=(Booking(on_wed("14:00"), on_wed("14:30"), MILES_15),),
)


@pytest.mark.parametrize(
    ("slot", "expected_problem", "phrase"),
    [
        pytest.param(("08:00", "10:00"), None, None, id="free"),
        pytest.param(("10:00", "12:00"), None, None, id="ends-at-closing"),
        pytest.param(("15:30", "16:30"), None, None, id="between-padding-and-time-off"),
        pytest.param(("17:00", "18:00"), None, None, id="after-time-off-until-closing"),
        pytest.param(("07:45", "09:00"), "outside_hours", "working hours", id="before-opening"),
        pytest.param(("17:30", "18:15"), "outside_hours", "working hours", id="past-closing"),
        pytest.param(("11:30", "13:00"), "outside_hours", "working hours", id="straddles-lunch"),
        pytest.param(("12:00", "13:00"), "outside_hours", "working hours", id="during-lunch"),
        pytest.param(("16:00", "17:00"), "time_off", "time off", id="overlaps-time-off"),
        pytest.param(("16:30", "16:45"), "time_off", "time off", id="inside-time-off"),
        pytest.param(("14:00", "14:30"), "conflict", "overlaps another", id="same-slot"),
        pytest.param(("14:15", "15:15"), "conflict", "overlaps another", id="overlaps-booking"),
        # back-to-back with the booking itself, but 15 mi away needs a 60 min gap
        pytest.param(("14:30", "15:30"), "conflict", "too close", id="right-after-booking"),
        pytest.param(("13:00", "14:00"), "conflict", "too close", id="right-before-booking"),
        pytest.param(("15:15", "15:45"), "conflict", "too close", id="inside-the-padding"),
    ],
)
def test_check_slot(slot, expected_problem, phrase):
    problem = check_slot(CHECK_SCHEDULE, (on_wed(slot[0]), on_wed(slot[1])), HERE, RULES)

    if expected_problem is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem[0] == expected_problem
        assert phrase in problem[1]


@pytest.mark.parametrize(
    ("tz", "start", "end", "bookable"),
    [
        pytest.param(NEW_YORK, "2027-03-13 13:00", "2027-03-13 15:00", True, id="ny-sat-08-est"),
        pytest.param(NEW_YORK, "2027-03-13 12:00", "2027-03-13 14:00", False, id="ny-sat-07-est"),
        pytest.param(NEW_YORK, "2027-03-14 12:00", "2027-03-14 14:00", True, id="ny-sun-08-edt"),
        pytest.param(NEW_YORK, "2027-03-14 20:00", "2027-03-14 22:00", False, id="ny-sun-18-edt"),
        pytest.param(NEW_YORK, "2027-11-07 12:00", "2027-11-07 14:00", False, id="ny-nov-07-est"),
        pytest.param(NEW_YORK, "2027-11-07 20:00", "2027-11-07 22:00", True, id="ny-nov-17-est"),
        pytest.param(LOS_ANGELES, "2027-06-07 23:00", "2027-06-08 00:00", True, id="la-16-pdt"),
        pytest.param(LOS_ANGELES, "2027-06-08 00:00", "2027-06-08 01:00", False, id="la-17-pdt"),
        pytest.param(KOLKATA, "2027-06-07 02:30", "2027-06-07 04:30", True, id="kolkata-0800"),
        pytest.param(KOLKATA, "2027-06-07 02:15", "2027-06-07 04:15", False, id="kolkata-0745"),
    ],
)
def test_check_slot_reads_hours_in_the_contractors_timezone(tz, start, end, bookable):
    schedule = Schedule(tz=tz, hours=MON_TO_SUN_8_TO_17, time_off=(), bookings=())

    problem = check_slot(schedule, (z(start), z(end)), HERE, RULES)

    if bookable:
        assert problem is None
    else:
        assert problem is not None
        assert problem[0] == "outside_hours"


# --- properties -----------------------------------------------------------------------------------
TIMEZONES = [
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",  # +10:30 / +11: a half-hour daylight-saving shift
]
# Weeks with clock changes (US spring and fall, Lord Howe in April and October) and a plain one.
PERIOD_DAYS = ["2027-03-13", "2027-11-06", "2027-04-03", "2027-10-02", "2027-06-02"]
SITES = [HERE, MILES_15, MILES_2_3, Site(40.3, -74.4), Site(39.8, -73.7)]

PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=200,
    deadline=None,
    # The only function-scoped fixture is conftest's autouse cache reset; these tests are pure.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def local_time(five_minutes: int) -> time:
    return time(five_minutes * 5 // 60, five_minutes * 5 % 60)


weekly_hours = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 287), st.integers(0, 287))
    .filter(lambda h: h[1] != h[2])
    .map(lambda h: (h[0], local_time(min(h[1:])), local_time(max(h[1:])))),
    max_size=8,
).map(tuple)


@st.composite
def periods(draw):
    day = draw(st.sampled_from(PERIOD_DAYS))
    start = z(f"{day} 00:00") + timedelta(minutes=draw(st.integers(0, 24 * 60 - 1)))
    return start, start + timedelta(minutes=draw(st.integers(60, 2 * 24 * 60)))


def intervals_around(start: datetime):
    """Second-resolution intervals from a day before to three days after `start`."""
    return st.tuples(st.integers(-86_400, 3 * 86_400), st.integers(60, 12 * 3600)).map(
        lambda t: (start + timedelta(seconds=t[0]), start + timedelta(seconds=t[0] + t[1]))
    )


@st.composite
def scenarios(draw):
    """(schedule, period start, period end, job duration)."""
    start, end = draw(periods())
    time_off = draw(st.lists(intervals_around(start), max_size=4))
    bookings = [
        Booking(s, e, draw(st.sampled_from(SITES)))
        for s, e in draw(st.lists(intervals_around(start), max_size=5))
    ]
    schedule = Schedule(
        tz=ZoneInfo(draw(st.sampled_from(TIMEZONES))),
        hours=draw(weekly_hours),
        time_off=tuple(time_off),
        bookings=tuple(bookings),
    )
    duration = timedelta(minutes=5 * draw(st.integers(6, 96)))  # 30 min to 8 h
    return schedule, start, end, duration


def blocked_by(schedule: Schedule) -> list[tuple[datetime, datetime]]:
    """Time off plus each booking padded by buffer + travel to HERE, computed independently."""
    blocks = list(schedule.time_off)
    for b in schedule.bookings:
        miles = haversine_miles(b.site.lat, b.site.lng, HERE.lat, HERE.lng)
        pad = timedelta(minutes=30) + timedelta(hours=miles / 30.0)
        blocks.append((b.start - pad, b.end + pad))
    return blocks


def slots_for(schedule, start, end, duration):
    return slot_starts(free_windows(schedule, start, end, HERE, RULES), duration, RULES.grid)


@PROPERTY_SETTINGS
@given(scenarios())
def test_slots_avoid_every_block_and_fit_one_working_window(scenario):
    schedule, start, end, duration = scenario
    working = working_windows(schedule.hours, schedule.tz, start, end)
    blocks = blocked_by(schedule)

    for s, e in slots_for(schedule, start, end, duration):
        assert e - s == duration
        assert start <= s and e <= end
        assert (s.minute % 15, s.second, s.microsecond) == (0, 0, 0)
        assert not any(b_start < e and s < b_end for b_start, b_end in blocks)
        assert any(w_start <= s and e <= w_end for w_start, w_end in working)
        assert check_slot(schedule, (s, e), HERE, RULES) is None


@PROPERTY_SETTINGS
@given(scenarios())
def test_every_bookable_grid_start_is_offered(scenario):
    """The converse: each quarter-hour start in the period that check_slot accepts is a slot."""
    schedule, start, end, duration = scenario
    offered = set(slots_for(schedule, start, end, duration))

    candidate = start + (-(start - datetime(2000, 1, 1, tzinfo=UTC)) % GRID)
    while candidate + duration <= end:
        slot = (candidate, candidate + duration)
        if check_slot(schedule, slot, HERE, RULES) is None:
            assert slot in offered
        candidate += GRID


@PROPERTY_SETTINGS
@given(scenarios(), st.data())
def test_adding_a_booking_or_time_off_never_adds_a_slot(scenario, data):
    schedule, start, end, duration = scenario
    extra = data.draw(intervals_around(start))
    more_booked = Schedule(
        tz=schedule.tz,
        hours=schedule.hours,
        time_off=schedule.time_off,
        bookings=(*schedule.bookings, Booking(*extra, data.draw(st.sampled_from(SITES)))),
    )
    more_off = Schedule(
        tz=schedule.tz,
        hours=schedule.hours,
        time_off=(*schedule.time_off, extra),
        bookings=schedule.bookings,
    )

    before = set(slots_for(schedule, start, end, duration))

    assert set(slots_for(more_booked, start, end, duration)) <= before
    assert set(slots_for(more_off, start, end, duration)) <= before


# Interval arithmetic on whole minutes, so every point can be checked one minute cell at a time.
T0 = z("2027-06-02 00:00")
SPAN = 300
minute_intervals = st.lists(
    st.tuples(st.integers(0, SPAN - 1), st.integers(1, 120)).map(
        lambda t: (T0 + timedelta(minutes=t[0]), T0 + timedelta(minutes=min(SPAN, t[0] + t[1])))
    ),
    max_size=8,
)


def covers(intervals, minute: int) -> bool:
    moment = T0 + timedelta(minutes=minute)
    return any(s <= moment < e for s, e in intervals)


def assert_canonical(intervals):
    """Sorted, non-empty, and neither overlapping nor touching (else they would be one)."""
    assert all(s < e for s, e in intervals)
    assert all(a[1] < b[0] for a, b in pairwise(intervals))


@PROPERTY_SETTINGS
@given(minute_intervals, minute_intervals)
def test_subtract_never_overlaps_a_block_and_stays_inside_base(base, blocks):
    result = subtract(base, blocks)

    assert_canonical(result)
    for s, e in result:
        assert not any(b_start < e and s < b_end for b_start, b_end in blocks)
        assert any(b_start <= s and e <= b_end for b_start, b_end in merge(base))
    for minute in range(SPAN):
        assert covers(result, minute) == (covers(base, minute) and not covers(blocks, minute))


@PROPERTY_SETTINGS
@given(minute_intervals)
def test_merge_is_idempotent_and_keeps_every_point(intervals):
    merged = merge(intervals)

    assert merge(merged) == merged
    assert_canonical(merged)
    assert all(covers(merged, m) == covers(intervals, m) for m in range(SPAN))


# --- load_schedule (database) ---------------------------------------------------------------------
@pytest.mark.django_db
def test_load_schedule_reads_bookings_and_overlapping_time_off():
    contractor = ContractorFactory()  # New York, Mon-Fri 08:00-17:00
    other = ContractorFactory()
    start, end = z("2027-06-07 00:00"), z("2027-06-09 00:00")
    # Every factory assignment is a 2 h job at the factory job site.
    AssignmentFactory(contractor=contractor, start=z("2027-06-07 13:00"))
    AssignmentFactory(contractor=contractor, start=z("2027-06-08 13:00"), status="in_progress")
    # Ends the evening before the period: its padding could still reach in, so it is read.
    AssignmentFactory(contractor=contractor, start=z("2027-06-06 20:00"))
    AssignmentFactory(contractor=contractor, start=z("2027-06-09 01:00"))  # likewise, just after
    # Not live: a cancelled one may even share the slot of the scheduled one.
    AssignmentFactory(contractor=contractor, start=z("2027-06-07 13:00"), status="cancelled")
    # Completed half an hour into its two hours: it keeps its contractor until then only.
    AssignmentFactory(
        contractor=contractor,
        start=z("2027-06-07 16:00"),
        status="completed",
        started_at=z("2027-06-07 16:00"),
        completed_at=z("2027-06-07 16:30"),
    )
    AssignmentFactory(contractor=contractor, start=z("2027-06-04 13:00"))  # days before
    AssignmentFactory(contractor=contractor, start=z("2027-06-11 13:00"))  # days after
    AssignmentFactory(contractor=other, start=z("2027-06-07 13:00"))
    TimeOffFactory(contractor=contractor, start=z("2027-06-06 23:00"), end=z("2027-06-07 12:00"))
    TimeOffFactory(contractor=contractor, start=z("2027-06-08 18:00"), end=z("2027-06-08 19:00"))
    # Half-open: ending exactly at the period's start, or starting at its end, is no overlap.
    TimeOffFactory(contractor=contractor, start=z("2027-06-05 00:00"), end=z("2027-06-07 00:00"))
    TimeOffFactory(contractor=contractor, start=z("2027-06-09 00:00"), end=z("2027-06-10 00:00"))
    TimeOffFactory(contractor=other, start=z("2027-06-07 00:00"), end=z("2027-06-08 00:00"))

    schedule = load_schedule(contractor, start, end)

    assert schedule.tz == NEW_YORK
    assert sorted(schedule.hours) == [(day, time(8), time(17)) for day in range(5)]
    assert set(schedule.bookings) == {
        Booking(z("2027-06-06 20:00"), z("2027-06-06 22:00"), FACTORY_JOB_SITE),
        Booking(z("2027-06-07 13:00"), z("2027-06-07 15:00"), FACTORY_JOB_SITE),
        Booking(z("2027-06-08 13:00"), z("2027-06-08 15:00"), FACTORY_JOB_SITE),
        Booking(z("2027-06-09 01:00"), z("2027-06-09 03:00"), FACTORY_JOB_SITE),
        Booking(z("2027-06-07 16:00"), z("2027-06-07 16:30"), FACTORY_JOB_SITE),
    }
    assert len(schedule.bookings) == 5
    assert set(schedule.time_off) == {
        (z("2027-06-06 23:00"), z("2027-06-07 12:00")),
        (z("2027-06-08 18:00"), z("2027-06-08 19:00")),
    }
    assert len(schedule.time_off) == 2


@pytest.mark.django_db
def test_load_schedule_leaves_out_the_assignment_being_moved():
    contractor = ContractorFactory()
    moving = AssignmentFactory(contractor=contractor, start=z("2027-06-07 14:00"))  # 10-12 EDT
    AssignmentFactory(contractor=contractor, start=z("2027-06-07 18:00"))  # 14-16 EDT
    AssignmentFactory(contractor=contractor, start=z("2027-06-07 16:00"), status="cancelled")
    start, end = z("2027-06-07 04:00"), z("2027-06-08 04:00")  # Monday in New York (EDT)

    full = load_schedule(contractor, start, end)
    without = load_schedule(contractor, start, end, exclude_assignment_id=moving.pk)

    assert without.bookings == (
        Booking(z("2027-06-07 18:00"), z("2027-06-07 20:00"), FACTORY_JOB_SITE),
    )
    # Monday 08:00-17:00 EDT is 12:00Z-21:00Z; a job at the same site pads each booking by the
    # 30 min buffer alone; the cancelled 16:00Z booking blocks nothing.
    assert free_windows(full, start, end, FACTORY_JOB_SITE, RULES) == [
        (z("2027-06-07 12:00"), z("2027-06-07 13:30")),
        (z("2027-06-07 16:30"), z("2027-06-07 17:30")),
        (z("2027-06-07 20:30"), z("2027-06-07 21:00")),
    ]
    assert free_windows(without, start, end, FACTORY_JOB_SITE, RULES) == [
        (z("2027-06-07 12:00"), z("2027-06-07 17:30")),
        (z("2027-06-07 20:30"), z("2027-06-07 21:00")),
    ]


# --- what an assignment keeps of its contractor's time -------------------------------------

BASE = datetime(2026, 3, 2, 12, tzinfo=UTC)
minutes = st.integers(min_value=-24 * 60, max_value=24 * 60)


@given(
    start=minutes,
    length=st.integers(min_value=30, max_value=8 * 60),
    started=st.none() | minutes,
    worked=st.none() | st.integers(min_value=0, max_value=10 * 60),
)
def test_occupied_keeps_from_the_earlier_start_to_the_completion_or_the_slots_end(
    start, length, started, worked
):
    slot_start = BASE + timedelta(minutes=start)
    slot_end = slot_start + timedelta(minutes=length)
    started_at = None if started is None else BASE + timedelta(minutes=started)
    completed_at = (
        None if worked is None or started_at is None else started_at + timedelta(minutes=worked)
    )

    begin, end = occupied(slot_start, slot_end, started_at, completed_at)

    assert begin == (slot_start if started_at is None else min(slot_start, started_at))
    assert begin <= end
    if completed_at is None:
        assert end == slot_end  # scheduled or in progress: the booked end
    else:
        # Completed: free from the completion on, however early or late it came.
        assert end == completed_at
