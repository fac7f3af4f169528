"""Demo data: a believable flooring business around New York City (and a Chicago branch).

Invariant: every row the seed writes goes through the services (`contractors.services`,
accounts included, and `scheduling.services`), so each change carries its domain event exactly
as if a dispatcher had made it, and the EventLog tells the same story as the tables. Bookings
go into slots the availability engine reports free, and the services re-validate them anyway.
What to write comes from `scheduling.demo_plan` (deterministic for a seed and a day); only the
slots booked depend on the time of day the seed runs.
"""

import random
import time as clock
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from contractors.geo import haversine_miles
from contractors.models import Contractor, ContractorStatus, Region
from contractors.selectors import live_contractors
from contractors.services import add_time_off, create_account, create_contractor, create_region
from events.errors import DomainError
from scheduling.availability import Site
from scheduling.demo_plan import AREAS, ContractorSpec, JobSpec, plan_demo
from scheduling.models import LIVE_ASSIGNMENT, Assignment, AssignmentStatus
from scheduling.selectors import availability
from scheduling.services import (
    assign_job,
    cancel_job,
    complete_job,
    create_job,
    rate_job,
    start_job,
)

# Rows per transaction while seeding: each service still runs in its own atomic block (a
# savepoint inside the batch's), the batch only saves a commit per row at large sizes.
BATCH = 250
# Candidates farther than this are not worth sending a truck to in the demo.
MAX_BOOKING_MILES = 35.0
BOOKING_LOOKAHEAD_DAYS = 6
# Booked jobs whose work is under way when the seed ends (the earliest booked ones), so the
# board's In progress column is not empty; rated jobs are done (only completed jobs are rated).
IN_PROGRESS_JOBS = 2
COMPLETION_NOTES = (
    "Done; customer happy with the finish.",
    "Finished early, site left clean.",
    "",
    "Replaced two damaged boards as well.",
)


# (phase, rows done, rows in the phase); called with 0 when a phase starts.
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Login:
    role: str
    username: str
    password: str | None = None
    token: str | None = None
    skipped: str | None = None  # why no login was created


@dataclass
class SeedReport:
    skipped: str | None = None
    regions: int = 0
    contractors: int = 0
    time_off: int = 0
    jobs: int = 0
    booked: int = 0
    in_progress: int = 0
    completed: int = 0
    rated: int = 0
    cancelled: int = 0
    logins: list[Login] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        if self.skipped:
            return [self.skipped]
        lines = [
            f"Seeded in {self.seconds:.1f} s: {self.regions} regions, {self.contractors} "
            f"contractors ({self.time_off} time-off ranges), {self.jobs} jobs ({self.booked} "
            f"booked, {self.in_progress} in progress, {self.completed} completed, {self.rated} "
            f"rated, {self.cancelled} cancelled)."
        ]
        for login in self.logins:
            if login.skipped:
                lines.append(f"{login.role} login '{login.username}' not created: {login.skipped}")
            else:
                lines.append(
                    f"{login.role} login: username={login.username} "
                    f"password={login.password} token: {login.token}"
                )
        return lines


def _in_batches(
    kind: str, specs: Sequence, write: Callable[[Any], int], progress: ProgressFn
) -> list[int]:
    """`write(spec)` for every spec, a transaction per BATCH of them, with progress after each
    batch; returns the ids `write` returned."""
    ids: list[int] = []
    progress(kind, 0, len(specs))
    for start in range(0, len(specs), BATCH):
        with transaction.atomic():
            ids.extend(write(spec) for spec in specs[start : start + BATCH])
        progress(kind, len(ids), len(specs))
    return ids


def _write_regions() -> int:
    existing = set(Region.objects.values_list("slug", flat=True))
    created = 0
    for area in AREAS:
        if area.slug is not None and area.slug not in existing:
            create_region(
                slug=area.slug,
                name=area.name,
                center_lat=area.lat,
                center_lng=area.lng,
                radius_miles=area.radius_miles,
            )
            created += 1
    return created


def _write_contractors(
    specs: Sequence[ContractorSpec], report: SeedReport, progress: ProgressFn
) -> list[int]:
    def write(spec: ContractorSpec) -> int:
        contractor = create_contractor(
            name=spec.name,
            type=spec.type,
            location=spec.place.location,
            timezone_name=spec.place.timezone,
            skills=list(spec.skills),
            status=spec.status,
            working_hours=list(spec.hours),
        )
        for off in spec.time_off:
            add_time_off(
                contractor_id=contractor.pk, start=off.start, end=off.end, reason=off.reason
            )
        return contractor.pk

    ids = _in_batches("contractors", specs, write, progress)
    report.contractors = len(ids)
    report.time_off += sum(len(spec.time_off) for spec in specs)
    return ids


def _write_jobs(specs: Sequence[JobSpec], report: SeedReport, progress: ProgressFn) -> list[int]:
    def write(spec: JobSpec) -> int:
        return create_job(
            type=spec.type,
            location=spec.place.location,
            desired_date=spec.desired_date,
            duration_minutes=spec.duration_minutes,
            required_skills=list(spec.required_skills),
            priority=spec.priority,
        ).pk

    ids = _in_batches("jobs", specs, write, progress)
    report.jobs = len(ids)
    return ids


def _candidates(crew: Sequence[Contractor], spec: JobSpec) -> list[Contractor]:
    """Eligible contractors within reach of the job, nearest first."""
    loc, required = spec.place.location, set(spec.required_skills)
    near = []
    for contractor in crew:
        if not contractor.matches_type(spec.type) or not required <= set(contractor.skills):
            continue
        miles = haversine_miles(contractor.lat, contractor.lng, loc.lat, loc.lng)
        if miles <= MAX_BOOKING_MILES:
            near.append((miles, contractor.pk, contractor))
    return [contractor for _, _, contractor in sorted(near, key=lambda item: item[:2])]


def _book(rng: random.Random, crew: Sequence[Contractor], job_id: int, spec: JobSpec) -> bool:
    """Book the job into a free slot of the nearest contractor who has one soon."""
    duration = timedelta(minutes=spec.duration_minutes)
    site = Site(spec.place.location.lat, spec.place.location.lng)
    last = spec.desired_date + timedelta(days=BOOKING_LOOKAHEAD_DAYS)
    for contractor in _candidates(crew, spec)[:6]:
        slots = availability(contractor, spec.desired_date, last, duration, site).slots
        if not slots:
            continue
        # Any free start on the first day that has one, not always the first free minute, so
        # the board does not look machine-packed.
        first_day = slots[0][0].astimezone(contractor.tz).date()
        start, end = rng.choice(
            [slot for slot in slots if slot[0].astimezone(contractor.tz).date() == first_day]
        )
        try:
            assign_job(job_id=job_id, contractor_id=contractor.pk, start=start, end=end)
        except DomainError:
            continue  # taken by someone else, or its start passed, while we looked: next one
        return True
    return False


def _write_bookings(
    rng: random.Random,
    job_ids: Sequence[int],
    specs: Sequence[JobSpec],
    report: SeedReport,
    progress: ProgressFn,
) -> None:
    crew = list(live_contractors().filter(status=ContractorStatus.ACTIVE))
    planned = [(job_id, spec) for job_id, spec in zip(job_ids, specs, strict=True) if spec.book]
    booked: set[int] = set()
    progress("bookings", 0, len(planned))
    for done, (job_id, spec) in enumerate(planned, start=1):
        if _book(rng, crew, job_id, spec):
            booked.add(job_id)
        progress("bookings", done, len(planned))
    report.booked += len(booked)
    for job_id, spec in zip(job_ids, specs, strict=True):
        if spec.cancel_reason:
            cancel_job(job_id=job_id, reason=spec.cancel_reason)
            report.cancelled += 1
        elif spec.stars is not None and job_id in booked:  # unbooked (nobody free): no rating
            # Only a completed job can be rated: the work is started, done, then rated.
            start_job(job_id=job_id)
            complete_job(job_id=job_id, notes=rng.choice(COMPLETION_NOTES))
            rate_job(job_id=job_id, stars=spec.stars)
            report.completed += 1
            report.rated += 1
    waiting = [
        job_id
        for job_id, spec in zip(job_ids, specs, strict=True)
        if job_id in booked and spec.stars is None and not spec.cancel_reason
    ]
    earliest = Assignment.objects.filter(
        job_id__in=waiting, status=AssignmentStatus.SCHEDULED
    ).order_by("start", "pk")
    for assignment in earliest[:IN_PROGRESS_JOBS]:
        start_job(job_id=assignment.job_id)
        report.in_progress += 1


def _write_logins(
    *,
    dispatcher: tuple[str, str],
    contractor: tuple[str, str],
    contractor_ids: Sequence[int],
) -> list[Login]:
    user_model = get_user_model()
    taken = set(
        user_model._default_manager.filter(
            **{f"{user_model.USERNAME_FIELD}__in": [dispatcher[0], contractor[0]]}
        ).values_list(user_model.USERNAME_FIELD, flat=True)
    )
    # The contractor login belongs to the busiest new contractor, so its board is not empty.
    busiest = _busiest(contractor_ids)
    logins: list[Login] = []
    for role, (username, password), contractor_id in (
        ("dispatcher", dispatcher, None),
        ("contractor", contractor, busiest),
    ):
        if username in taken:
            logins.append(Login(role, username, skipped="the user already exists."))
            continue
        if role == "contractor" and contractor_id is None:
            logins.append(Login(role, username, skipped="no new active contractor to link."))
            continue
        account = create_account(
            username=username,
            role=role,
            password=password,
            contractor_id=contractor_id,
            check_password=False,  # demo credentials, printed on purpose
        )
        logins.append(Login(role, username, password, account.token_key))
    return logins


def _busiest(contractor_ids: Sequence[int]) -> int | None:
    return (
        Contractor.objects.filter(
            pk__in=contractor_ids, user__isnull=True, status=ContractorStatus.ACTIVE
        )
        .annotate(live=Count("assignments", filter=Q(assignments__status__in=LIVE_ASSIGNMENT)))
        .order_by("-live", "pk")
        .values_list("pk", flat=True)
        .first()
    )


def _no_progress(phase: str, done: int, total: int) -> None:
    return None


def seed_demo(
    *,
    seed: int = 7,
    contractors: int = 36,
    jobs: int = 40,
    append: bool = False,
    dispatcher_login: tuple[str, str] = ("dispatcher", "dispatch-demo"),
    contractor_login: tuple[str, str] = ("contractor", "contractor-demo"),
    progress: ProgressFn = _no_progress,
) -> SeedReport:
    """Load the demo data set; with contractors already present, do nothing unless `append`."""
    started = clock.perf_counter()
    existing = Contractor.objects.count()
    if existing and not append:
        return SeedReport(
            skipped=f"Demo data not loaded: {existing} contractors already exist "
            "(use --append to add more)."
        )
    plan = plan_demo(seed=seed, contractors=contractors, jobs=jobs, now=timezone.now())
    report = SeedReport()
    report.regions = _write_regions()
    contractor_ids = _write_contractors(plan.contractors, report, progress)
    job_ids = _write_jobs(plan.jobs, report, progress)
    _write_bookings(random.Random(seed + 1), job_ids, plan.jobs, report, progress)
    report.logins = _write_logins(
        dispatcher=dispatcher_login, contractor=contractor_login, contractor_ids=contractor_ids
    )
    report.seconds = clock.perf_counter() - started
    return report
