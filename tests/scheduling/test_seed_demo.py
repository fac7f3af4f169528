import re
from collections import Counter
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import OutputWrapper

from contractors.access import Role, roles_of
from contractors.models import Contractor, Rating, Region, TimeOff
from contractors.tokens import authenticate_key
from events.models import Event
from scheduling.demo_plan import plan_demo
from scheduling.management.commands.seed_demo import ProgressLine
from scheduling.models import LIVE_ASSIGNMENT, Assignment, Job, JobStatus


def seed(*args: str) -> tuple[str, str]:
    """`seed_demo --force ...`: the tests' database is a production-shape one (DATABASE_URL)."""
    out, err = StringIO(), StringIO()
    call_command("seed_demo", "--force", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def inside_working_hours(assignment: Assignment) -> bool:
    contractor = assignment.contractor
    start, end = (moment.astimezone(contractor.tz) for moment in (assignment.start, assignment.end))
    return start.date() == end.date() and any(
        hours.weekday == start.weekday() and hours.start <= start.time() and end.time() <= hours.end
        for hours in contractor.hours.all()
    )


@pytest.fixture
def seeded(db) -> str:
    output, _ = seed("--contractors", "12", "--jobs", "10")
    return output


def test_seed_writes_the_requested_sizes_and_every_contractor_has_hours(seeded):
    assert Contractor.objects.count() == 12
    assert Job.objects.count() == 10
    assert set(Region.objects.values_list("slug", flat=True)) == {
        "north",
        "south",
        "east",
        "west",
        "chicago",
    }
    assert not Contractor.objects.filter(hours__isnull=True).exists()
    assert Contractor.objects.filter(timezone="America/New_York").count() > 6
    assert {c.type for c in Contractor.objects.all()} <= {"flooring", "tile", "carpet", "multi"}
    assert Job.objects.filter(status=JobStatus.CANCELLED).count() == 1


def test_seed_books_jobs_inside_the_contractors_hours(seeded):
    live = list(
        Assignment.objects.filter(status__in=LIVE_ASSIGNMENT).select_related("contractor", "job")
    )

    assert live
    for assignment in live:
        assert (
            assignment.job.status
            == {
                "scheduled": JobStatus.ASSIGNED,
                "in_progress": JobStatus.IN_PROGRESS,
            }[assignment.status]
        )
        assert assignment.start >= datetime.now(UTC).replace(second=0, microsecond=0)
        assert inside_working_hours(assignment), assignment


def test_seed_fills_the_boards_in_progress_and_completed_columns(seeded):
    in_progress = Job.objects.filter(status=JobStatus.IN_PROGRESS)
    completed = Job.objects.filter(status=JobStatus.COMPLETED)

    assert in_progress.count() == 2
    assert completed.count() >= 1
    # Every rating is of a completed job, by the contractor who did it.
    assert sorted(Rating.objects.values_list("job_id", flat=True)) == sorted(
        completed.values_list("pk", flat=True)
    )
    for rating in Rating.objects.all():
        done = Assignment.objects.get(job_id=rating.job_id, status="completed")
        assert (done.contractor_id, done.completed_at is not None) == (rating.contractor_id, True)


def test_seed_records_an_event_for_every_change(seeded):
    types = Counter(Event.objects.values_list("type", flat=True))

    assert types["JobCreated"] == Job.objects.count()
    assert types["JobAssigned"] == Assignment.objects.count()
    assert types["JobCancelled"] == Job.objects.filter(status=JobStatus.CANCELLED).count()
    assert types["ContractorRated"] == Rating.objects.count()
    assert types["JobStarted"] == Assignment.objects.filter(started_at__isnull=False).count()
    assert types["JobCompleted"] == Job.objects.filter(status=JobStatus.COMPLETED).count()
    # One per contractor created, one per time-off range, one for the contractor login's link.
    assert types["ScheduleUpdated"] == Contractor.objects.count() + TimeOff.objects.count() + 1
    created = Event.objects.filter(type="ScheduleUpdated", payload__previousValues__status=None)
    assert sorted(int(e.aggregate_id) for e in created) == sorted(
        Contractor.objects.values_list("pk", flat=True)
    )
    assert set(types) <= {
        "JobCreated",
        "JobAssigned",
        "JobCancelled",
        "JobStarted",
        "JobCompleted",
        "ContractorRated",
        "ScheduleUpdated",
    }


def test_seed_creates_demo_logins_and_prints_their_tokens(seeded):
    dispatcher = User.objects.get(username="dispatcher")
    contractor = User.objects.get(username="contractor")

    assert roles_of(dispatcher) == {Role.DISPATCHER}
    assert roles_of(contractor) == {Role.CONTRACTOR}
    assert dispatcher.check_password("dispatch-demo")
    assert contractor.check_password("contractor-demo")
    printed = re.findall(r"(\w+) login: .* token: (\S+)", seeded)
    assert {role: authenticate_key(key)[0] for role, key in printed} == {
        "dispatcher": dispatcher,
        "contractor": contractor,
    }
    assert "password=dispatch-demo" in seeded


def test_a_second_run_refuses_without_append(seeded):
    counts = (Contractor.objects.count(), Job.objects.count(), Event.objects.count())

    output, _ = seed("--contractors", "12", "--jobs", "10")

    assert output.strip() == (
        "Demo data not loaded: 12 contractors already exist (use --append to add more)."
    )
    assert (Contractor.objects.count(), Job.objects.count(), Event.objects.count()) == counts


def test_append_adds_more_and_leaves_existing_logins_alone(seeded):
    output, _ = seed("--contractors", "3", "--jobs", "2", "--seed", "8", "--append")

    assert Contractor.objects.count() == 15
    assert Job.objects.count() == 12
    assert Region.objects.count() == 5
    assert User.objects.count() == 2
    assert "'dispatcher' not created: the user already exists." in output


def test_plan_is_deterministic_for_a_seed():
    now = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)

    first = plan_demo(seed=7, contractors=20, jobs=20, now=now)

    assert plan_demo(seed=7, contractors=20, jobs=20, now=now) == first
    assert plan_demo(seed=8, contractors=20, jobs=20, now=now) != first
    assert sum(job.cancel_reason is not None for job in first.jobs) == 2
    assert all(job.desired_date >= now.date() for job in first.jobs)


class FakeTerminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_one_updating_line_on_a_terminal_and_every_tenth_elsewhere():
    terminal, log = FakeTerminal(), StringIO()
    for stream in (terminal, log):
        progress = ProgressLine(OutputWrapper(stream))
        for done in range(0, 1001, 50):
            progress("contractors", done, 1000)
        progress("jobs", 10, 10)  # small phases stay quiet

    assert terminal.getvalue().count("\n") == 1
    assert terminal.getvalue().startswith("\rcontractors: 0/1000 (0%)")
    assert terminal.getvalue().split("\r")[-1].startswith("contractors: 1000/1000 (100%)")
    assert [line.split(" (")[0] for line in log.getvalue().splitlines()] == [
        f"contractors: {done}/1000" for done in range(0, 1001, 100)
    ]
