"""The demo world and its plan: pure data and a pure function, no database.

Invariant: `plan_demo` is a function of the seed and `now` only (same inputs, same plan), and
everything it plans is valid input for the services: towns lie inside the region they are
listed under (or outside every region, for the outlying ones), weekly windows never overlap,
time off ends after it starts, durations are 30 min to 8 h. `scheduling.demo` writes the plan.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from math import cos, radians, sin, sqrt
from typing import TypeVar
from zoneinfo import ZoneInfo

from contractors.models import ContractorStatus
from contractors.services import Location, Window

T = TypeVar("T")

# --- the world ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Town:
    name: str
    state: str
    lat: float
    lng: float


@dataclass(frozen=True)
class Area:
    """Where people live and work: a region (slug set) or the outlying towns no region covers."""

    slug: str | None
    name: str
    lat: float
    lng: float
    radius_miles: float
    timezone: str
    weight: int
    towns: tuple[Town, ...]


EASTERN, CENTRAL = "America/New_York", "America/Chicago"
AREAS = (
    Area("north", "North: Bronx & Westchester", 40.95, -73.85, 25, EASTERN, 5, (
        Town("The Bronx", "NY", 40.845, -73.865), Town("Yonkers", "NY", 40.931, -73.899),
        Town("New Rochelle", "NY", 40.911, -73.782), Town("White Plains", "NY", 41.034, -73.763),
        Town("Mount Vernon", "NY", 40.913, -73.838), Town("Tarrytown", "NY", 41.076, -73.859),
    )),
    Area("south", "South: Brooklyn & Staten Island", 40.60, -74.02, 25, EASTERN, 5, (
        Town("Brooklyn", "NY", 40.650, -73.950), Town("Staten Island", "NY", 40.580, -74.150),
        Town("Bay Ridge", "NY", 40.626, -74.033), Town("Sheepshead Bay", "NY", 40.587, -73.954),
        Town("Coney Island", "NY", 40.575, -73.985),
    )),
    Area("east", "East: Queens & Long Island", 40.73, -73.62, 25, EASTERN, 5, (
        Town("Rockville Centre", "NY", 40.659, -73.641), Town("Hempstead", "NY", 40.706, -73.619),
        Town("Garden City", "NY", 40.727, -73.635), Town("Westbury", "NY", 40.756, -73.587),
        Town("Valley Stream", "NY", 40.664, -73.708), Town("Hicksville", "NY", 40.768, -73.525),
        Town("Freeport", "NY", 40.658, -73.583),
    )),
    Area("west", "West: North Jersey", 40.80, -74.20, 25, EASTERN, 4, (
        Town("Newark", "NJ", 40.736, -74.172), Town("Montclair", "NJ", 40.826, -74.209),
        Town("Paterson", "NJ", 40.917, -74.172), Town("Clifton", "NJ", 40.858, -74.164),
        Town("West Orange", "NJ", 40.799, -74.239), Town("Passaic", "NJ", 40.857, -74.128),
    )),
    Area("chicago", "Chicago", 41.88, -87.63, 25, CENTRAL, 2, (
        Town("Chicago", "IL", 41.878, -87.630), Town("Evanston", "IL", 42.045, -87.688),
        Town("Oak Park", "IL", 41.885, -87.785), Town("Cicero", "IL", 41.845, -87.754),
        Town("Skokie", "IL", 42.032, -87.733),
    )),
    # Farther out than any region reaches: these land in region `default`.
    Area(None, "Outlying", 41.0, -74.0, 0, EASTERN, 1, (
        Town("Princeton", "NJ", 40.357, -74.667), Town("Poughkeepsie", "NY", 41.700, -73.921),
        Town("Bridgeport", "CT", 41.187, -73.195),
    )),
)  # fmt: skip
# How far from a town's centre its homes and job sites spread.
TOWN_SPREAD_MILES = 3.0

FIRST_NAMES = (
    "Ana", "Luis", "Maria", "James", "Sofia", "Daniel", "Aisha", "Kevin", "Mei", "Carlos",
    "Olivia", "Marcus", "Priya", "Tomasz", "Grace", "Andre", "Fatima", "Ryan", "Elena", "Dmitri",
    "Keisha", "Brian", "Rosa", "Jamal", "Hannah", "Victor", "Lucia", "Sean", "Nadia", "Anthony",
    "Yuki", "Patrick", "Gabriela", "Omar", "Chloe", "Miguel", "Tanisha", "Samuel", "Irina", "Joe",
)  # fmt: skip
LAST_NAMES = (
    "Ruiz", "Nguyen", "Kowalski", "O'Brien", "Patel", "Rossi", "Johnson", "Chen", "Morales",
    "Williams", "Haddad", "Murphy", "Santos", "Kim", "Goldberg", "Okafor", "Ivanova", "Brown",
    "Diaz", "Russo", "Singh", "Walsh", "Lopez", "Park", "Nowak", "Cohen", "Reyes", "Thompson",
    "Ali", "Garcia", "Esposito", "Jackson", "Petrov", "Lee", "Romano", "Flores", "Baker", "Shah",
)  # fmt: skip
STREETS = (
    "Main St", "Broadway", "Oak Ave", "Maple St", "Park Ave", "Central Ave", "Elm St",
    "Washington St", "2nd Ave", "Jefferson Ave", "Church St", "Highland Ave", "Bay St",
    "Lincoln Pl", "Prospect Ave", "Grove St", "Union St", "Cedar Ln", "Ridge Rd", "Hillside Ave",
)  # fmt: skip

# (contractor type, weight) and, per job type, the core skill everyone of that trade has plus
# the specialities some of them add.
CONTRACTOR_TYPES = (("flooring", 30), ("tile", 25), ("carpet", 20), ("multi", 25))
JOB_TYPES = (("flooring", 40), ("tile", 35), ("carpet", 25))
SKILLS = {
    "flooring": ("hardwood", ("laminate", "vinyl-plank", "refinishing", "subfloor")),
    "tile": ("tile", ("grout", "backsplash", "natural-stone", "waterproofing")),
    "carpet": ("carpet", ("padding", "stairs", "stretching")),
}
TRADE_WORDS = {
    "flooring": "Floors",
    "tile": "Tile & Stone",
    "carpet": "Carpet",
    "multi": "Interiors",
}
STATUSES = (
    (ContractorStatus.ACTIVE, 90),
    (ContractorStatus.ON_LEAVE, 6),
    (ContractorStatus.INACTIVE, 4),
)
PRIORITIES = (("low", 15), ("normal", 55), ("high", 20), ("urgent", 10))
DURATIONS = ((60, 15), (90, 15), (120, 25), (180, 20), (240, 15), (360, 6), (480, 4))
STARS = ((5, 45), (4, 35), (3, 12), (2, 5), (1, 3))
# (for an open request, for a booked job)
CANCEL_REASONS = ("Duplicate request from the customer.", "Customer postponed the renovation.")


def _week(days: Sequence[int], *spans: tuple[int, int, int, int]) -> tuple[Window, ...]:
    return tuple(
        Window(day, time(h1, m1), time(h2, m2)) for day in days for h1, m1, h2, m2 in spans
    )


MON_FRI = range(5)
HOURS_PATTERNS: tuple[tuple[tuple[Window, ...], int], ...] = (
    (_week(MON_FRI, (8, 0, 17, 0)), 38),
    (_week(MON_FRI, (7, 0, 15, 30)), 10),
    (_week(MON_FRI, (10, 0, 19, 0)), 7),
    (_week(MON_FRI, (7, 0, 11, 0), (12, 30, 17, 30)), 10),  # split shift
    (_week(MON_FRI, (8, 0, 17, 0)) + _week([5], (9, 0, 13, 0)), 10),  # Saturday mornings
    (_week(range(1, 6), (8, 0, 16, 30)), 9),  # Tuesday to Saturday
    (_week(range(4), (7, 0, 17, 0)), 8),  # four tens
    (_week([0, 2, 4], (9, 0, 15, 0)), 8),  # part time
)


# --- the plan (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    location: Location
    timezone: str


@dataclass(frozen=True)
class TimeOffSpec:
    start: datetime
    end: datetime
    reason: str


@dataclass(frozen=True)
class ContractorSpec:
    name: str
    type: str
    skills: tuple[str, ...]
    place: Place
    status: str
    hours: tuple[Window, ...]
    time_off: tuple[TimeOffSpec, ...] = ()


@dataclass(frozen=True)
class JobSpec:
    type: str
    required_skills: tuple[str, ...]
    place: Place
    desired_date: date
    duration_minutes: int
    priority: str
    book: bool
    stars: int | None = None
    cancel_reason: str | None = None


@dataclass(frozen=True)
class DemoPlan:
    contractors: tuple[ContractorSpec, ...]
    jobs: tuple[JobSpec, ...]


def _pick(rng: random.Random, weighted: Sequence[tuple[T, int]]) -> T:
    return rng.choices([item for item, _ in weighted], [w for _, w in weighted])[0]


def _place(rng: random.Random) -> Place:
    area = _pick(rng, [(a, a.weight) for a in AREAS])
    town = rng.choice(area.towns)
    miles, bearing = TOWN_SPREAD_MILES * sqrt(rng.random()), radians(rng.uniform(0, 360))
    lat = town.lat + miles / 69.0 * cos(bearing)
    lng = town.lng + miles / (69.0 * cos(radians(town.lat))) * sin(bearing)
    address = f"{rng.randint(1, 2999)} {rng.choice(STREETS)}, {town.name}, {town.state}"
    return Place(Location(round(lat, 5), round(lng, 5), address), area.timezone)


def _local_today(place: Place, now: datetime) -> date:
    return now.astimezone(ZoneInfo(place.timezone)).date()


def _time_off(rng: random.Random, place: Place, now: datetime) -> TimeOffSpec:
    tz, today = ZoneInfo(place.timezone), _local_today(place, now)
    kind = rng.random()
    if kind < 0.5:
        first = today + timedelta(days=rng.randint(2, 12))
        start = datetime.combine(first, time(0), tzinfo=tz)
        end = datetime.combine(first + timedelta(days=rng.randint(2, 5)), time(0), tzinfo=tz)
        return TimeOffSpec(start, end, "Vacation")
    day = today + timedelta(days=rng.randint(0, 10))
    if kind < 0.8:
        return TimeOffSpec(
            datetime.combine(day, time(12, 0), tzinfo=tz),
            datetime.combine(day, time(17, 0), tzinfo=tz),
            "Medical appointment",
        )
    return TimeOffSpec(
        datetime.combine(day, time(0), tzinfo=tz),
        datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz),
        "Certification course",
    )


def _contractor(rng: random.Random, now: datetime) -> ContractorSpec:
    kind = _pick(rng, CONTRACTOR_TYPES)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    name = f"{first} {last}" if rng.random() < 0.85 else f"{last} {TRADE_WORDS[kind]}"
    if kind == "multi":
        extras = [skill for _, pool in SKILLS.values() for skill in pool]
        skills = {core for core, _ in SKILLS.values()} | set(rng.sample(extras, rng.randint(2, 4)))
    else:
        core, pool = SKILLS[kind]
        skills = {core, *rng.sample(pool, rng.randint(1, 3))}
    place = _place(rng)
    time_off = (_time_off(rng, place, now),) if rng.random() < 0.1 else ()
    return ContractorSpec(
        name=name,
        type=kind,
        skills=tuple(sorted(skills)),
        place=place,
        status=_pick(rng, STATUSES),
        hours=_pick(rng, HOURS_PATTERNS),
        time_off=time_off,
    )


def _job(rng: random.Random, now: datetime) -> JobSpec:
    kind = _pick(rng, JOB_TYPES)
    core, pool = SKILLS[kind]
    required = (core, rng.choice(pool)) if rng.random() < 0.3 else (core,)
    place = _place(rng)
    offset = rng.choice([0] * 3 + [1, 2, 3] * 3 + list(range(4, 10)))
    desired = _local_today(place, now) + timedelta(days=offset)
    if desired.weekday() == 6:  # nobody asks for a Sunday install
        desired += timedelta(days=1)
    book = rng.random() < 0.55
    return JobSpec(
        type=kind,
        required_skills=tuple(sorted(required)),
        place=place,
        desired_date=desired,
        duration_minutes=_pick(rng, DURATIONS),
        priority=_pick(rng, PRIORITIES),
        book=book,
        stars=_pick(rng, STARS) if book and rng.random() < 0.35 else None,
    )


def plan_demo(*, seed: int, contractors: int, jobs: int, now: datetime) -> DemoPlan:
    """Who works where and when, and which jobs come in: deterministic for a seed and a day."""
    rng = random.Random(seed)
    crew = tuple(_contractor(rng, now) for _ in range(contractors))
    work = [_job(rng, now) for _ in range(jobs)]
    # One or two cancellations: an open request always, and with enough jobs a booked one too
    # (cancelling it frees its slot on the board).
    cancellations = [(False, CANCEL_REASONS[0]), (True, CANCEL_REASONS[1])]
    for booked, reason in cancellations[: 2 if jobs >= 20 else 1 if jobs >= 2 else 0]:
        index = next((i for i, j in enumerate(work) if j.book == booked and not j.stars), None)
        if index is not None:
            work[index] = replace(work[index], cancel_reason=reason)
    return DemoPlan(contractors=crew, jobs=tuple(work))
