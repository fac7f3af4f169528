"""Concurrent bookings against real PostgreSQL: the booking service's row locks (backed by the
exclusion constraint) let exactly one of several simultaneous requests win; the rest get 409.

Each worker runs on its own thread, so on its own database connection, and every transaction
really commits: these tests need `transaction=True`.
"""

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from events.errors import Conflict
from scheduling.models import Assignment, Job
from scheduling.services import assign_job
from tests.conftest import at, events_of, next_weekday
from tests.contractors.factories import ContractorFactory
from tests.scheduling.factories import JobFactory

NY = ZoneInfo("America/New_York")
HOME = {"lat": 40.71, "lng": -74.0}
WORKERS = 10


def race(calls: list) -> list[tuple[str, object]]:
    """Run every call at the same instant, one thread each; return ("ok", value) or
    ("conflict", code) per call, in call order. Anything else is re-raised."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[tuple[str, object] | None] = [None] * len(calls)
    failures: list[BaseException] = []

    def worker(index: int, call) -> None:
        try:
            barrier.wait(timeout=10)
            try:
                outcomes[index] = ("ok", call())
            except Conflict as exc:
                outcomes[index] = ("conflict", exc.code)
        except BaseException as exc:  # surfaced in the test thread below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a booking thread hung"
    if failures:
        raise failures[0]
    return outcomes


def booking_call(job_id: int, contractor_id: int, start: datetime, minutes: int):
    return lambda: assign_job(
        job_id=job_id,
        contractor_id=contractor_id,
        start=start,
        end=start + timedelta(minutes=minutes),
    )


@pytest.mark.django_db(transaction=True)
def test_overlapping_bookings_of_one_contractor_only_one_wins():
    monday = next_weekday(0)
    contractor = ContractorFactory()
    jobs = [JobFactory(desired_date=monday, **HOME) for _ in range(WORKERS)]
    # Two-hour slots starting 10 minutes apart, 10:00 to 11:30: every pair overlaps.
    starts = [at(monday, 10, tz=NY) + timedelta(minutes=10 * i) for i in range(WORKERS)]

    outcomes = race(
        [
            booking_call(job.pk, contractor.pk, start, 120)
            for job, start in zip(jobs, starts, strict=True)
        ]
    )

    winners = [i for i, (kind, _) in enumerate(outcomes) if kind == "ok"]
    assert len(winners) == 1
    assert sorted(value for kind, value in outcomes if kind == "conflict") == ["slot_taken"] * (
        WORKERS - 1
    )
    (winner,) = winners
    live = list(Assignment.objects.filter(contractor=contractor, status="scheduled"))
    assert [(a.job_id, a.start) for a in live] == [(jobs[winner].pk, starts[winner])]
    assert outcomes[winner][1].pk == live[0].pk
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert statuses == {
        job.pk: ("assigned" if i == winner else "open") for i, job in enumerate(jobs)
    }
    events = events_of()
    assert [event.type for event in events] == ["JobAssigned"]
    assert events[0].payload["jobId"] == jobs[winner].pk
    assert events[0].payload["assignmentId"] == live[0].pk
    assert events[0].groups == ["dispatch/default", f"contractor/{contractor.pk}"]


@pytest.mark.django_db(transaction=True)
def test_bookings_within_the_buffer_of_each_other_only_one_wins():
    """The exclusion constraint cannot see the buffer: only the row lock and the re-check stop
    two back-to-back bookings. Several contractors race at once, over a few rounds, to give a
    missing lock many chances to show."""
    monday = next_weekday(0)
    pairs = 6
    for _ in range(3):
        contractors = [ContractorFactory() for _ in range(pairs)]
        jobs = [
            (JobFactory(desired_date=monday, **HOME), JobFactory(desired_date=monday, **HOME))
            for _ in range(pairs)
        ]
        # 10:00-12:00 and 12:00-14:00: not overlapping, but closer than the 30-minute buffer.
        calls = []
        for contractor, (first, second) in zip(contractors, jobs, strict=True):
            calls.append(booking_call(first.pk, contractor.pk, at(monday, 10, tz=NY), 120))
            calls.append(booking_call(second.pk, contractor.pk, at(monday, 12, tz=NY), 120))

        outcomes = race(calls)

        for index, (contractor, (first, second)) in enumerate(zip(contractors, jobs, strict=True)):
            pair = outcomes[2 * index : 2 * index + 2]
            assert sorted(kind for kind, _ in pair) == ["conflict", "ok"]
            assert [value for kind, value in pair if kind == "conflict"] == ["slot_taken"]
            winning_job = first if pair[0][0] == "ok" else second
            live = Assignment.objects.filter(contractor=contractor, status="scheduled")
            assert [a.job_id for a in live] == [winning_job.pk]
            assert [
                e.payload["jobId"]
                for e in events_of("JobAssigned")
                if e.payload["contractorId"] == contractor.pk
            ] == [winning_job.pk]
    assert [e.type for e in events_of()] == ["JobAssigned"] * (3 * pairs)


@pytest.mark.django_db(transaction=True)
def test_one_job_booked_with_two_contractors_at_once_only_one_wins():
    monday = next_weekday(0)
    job = JobFactory(desired_date=monday, **HOME)
    contractors = [ContractorFactory(), ContractorFactory()]
    start = at(monday, 10, tz=NY)

    outcomes = race([booking_call(job.pk, c.pk, start, 120) for c in contractors])

    assert sorted(kind for kind, _ in outcomes) == ["conflict", "ok"]
    assert [value for kind, value in outcomes if kind == "conflict"] == ["job_not_open"]
    winner = contractors[[kind for kind, _ in outcomes].index("ok")]
    live = list(Assignment.objects.filter(status="scheduled"))
    assert [(a.job_id, a.contractor_id) for a in live] == [(job.pk, winner.pk)]
    assert Job.objects.get(pk=job.pk).status == "assigned"
    events = events_of()
    assert [event.type for event in events] == ["JobAssigned"]
    assert (events[0].payload["jobId"], events[0].payload["contractorId"]) == (job.pk, winner.pk)
    assert events[0].groups == ["dispatch/default", f"contractor/{winner.pk}"]
