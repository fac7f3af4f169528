"""Helpers for the relay tests: real relay processes, a private redis-server (devtools), bounded
waits and ways to record many events through the services.

Every process started here is owned by a fixture in tests/events/conftest.py, which kills it in
its finalizer whatever the test's outcome. Waits poll with a deadline and fail with the relay's
own log in the message.
"""

import re
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from django.db import transaction

from contractors.models import Contractor
from contractors.services import Location
from events.handlers import subscriptions
from events.models import Event, FailedDelivery, Subscriber
from events.publisher import head
from scheduling.models import Job
from scheduling.services import create_job, rate_job
from tests.conftest import at
from tests.contractors.factories import ContractorFactory
from tests.scheduling.factories import AssignmentFactory
from tests.support import (  # noqa: F401 (re-exported for the relay tests)
    Process,
    free_port,
    subprocess_database_url,
    subprocess_env,
    wait_until,
)

STEP_LINE = re.compile(
    r"relay step subscriber=(?P<subscriber>\S+) handled=(?P<handled>\d+) "
    r"failed=(?P<failed>\d+) dead=(?P<dead>\d+) position=(?P<position>\d+) ms=[\d.]+ "
    r"relay=(?P<relay>\S+)"
)


class RelayProcess(Process):
    def __init__(self, name: str, args: list[str], *, log_path: Path, redis_url: str):
        self.name = name
        super().__init__(
            [sys.executable, "manage.py", "relay", "--name", name, *args],
            log_path=log_path,
            env=subprocess_env(redis_url=redis_url),
        )

    def steps(self) -> list[dict[str, Any]]:
        """The structured "relay step subscriber=... handled=N ..." lines logged so far."""
        return [
            {k: v if k in ("subscriber", "relay") else int(v) for k, v in m.groupdict().items()}
            for m in STEP_LINE.finditer(self.output())
        ]

    def handled(self, subscriber: str | None = None) -> int:
        return sum(
            step["handled"]
            for step in self.steps()
            if subscriber is None or step["subscriber"] == subscriber
        )

    def wait_started(self, timeout: float = 15.0) -> None:
        wait_until(
            lambda: "relay started" in self.output() or not self.alive(),
            timeout=timeout,
            message=self.describe,
        )
        assert self.alive(), self.describe()


# --- the EventLog -----------------------------------------------------------------------------


def positions() -> dict[str, int]:
    return dict(Subscriber.objects.values_list("name", "position"))


def failures() -> list[tuple[str, int, int, bool]]:
    """(subscriber, sequence, attempts, dead) of every failed delivery, in sequence order."""
    return list(
        FailedDelivery.objects.order_by("event__sequence", "subscriber_id").values_list(
            "subscriber_id", "event__sequence", "attempts", "dead"
        )
    )


def nothing_pending() -> bool:
    """Every committed event published, and every subscribed handler at the head with no
    retry waiting (dead deliveries do not count: nobody retries them)."""
    if Event.objects.filter(sequence=None).exists():
        return False
    end = head()
    at = positions()
    if any(at.get(sub.name, -1) != end for sub in subscriptions()):
        return False
    return not FailedDelivery.objects.filter(dead=False).exists()


def delivery_summary() -> str:
    unpublished = Event.objects.filter(sequence=None).count()
    return (
        f"head {head()}, unpublished {unpublished}, positions {positions()}, failures {failures()}"
    )


def wait_delivered(*relays: Process, timeout: float) -> None:
    """Wait until nothing is pending (nothing_pending); past `timeout` s, fail with the delivery
    summary and the logs of `relays`."""
    wait_until(
        nothing_pending,
        timeout=timeout,
        message=lambda: delivery_summary() + "".join(relay.describe() for relay in relays),
    )


def handlers_for(event_type: str) -> list[str]:
    """Names of the subscribed handlers that take `event_type`, sorted (the relay processes
    run the same apps, so the same registry)."""
    return sorted(sub.name for sub in subscriptions() if sub.accepts(event_type))


def create_jobs(count: int, *, desired_date: date | None = None) -> list[Job]:
    """`count` JobCreated events through the service, committed together (one NOTIFY)."""
    day = desired_date or date.today() + timedelta(days=10)
    with transaction.atomic():
        return [
            create_job(
                type="tile",
                location=Location(lat=40.72, lng=-73.99),
                desired_date=day,
                duration_minutes=120,
                required_skills=["tile"],
            )
            for _ in range(count)
        ]


@dataclass(frozen=True)
class RatedJobs:
    contractors: list[Contractor]
    jobs: list[Job]


def booked_jobs(*, contractors: int, jobs_each: int) -> RatedJobs:
    """Contractors with completed jobs (factory rows: set-up, no events) ready to be rated."""
    first_day = date.today() + timedelta(days=7)
    people = ContractorFactory.create_batch(contractors)
    jobs = [
        AssignmentFactory(
            contractor=person,
            start=at(first_day + timedelta(days=n), 14),
            status="completed",
            job__status="completed",
        ).job
        for person in people
        for n in range(jobs_each)
    ]
    return RatedJobs(contractors=people, jobs=jobs)


def rate_rounds(jobs: list[Job], *, rounds: int) -> int:
    """Rate every job `rounds` times with a different star count each time; returns how many
    ContractorRated events that recorded (one per call, as the stars always change)."""
    recorded = 0
    for round_ in range(rounds):
        with transaction.atomic():
            for index, job in enumerate(jobs):
                rate_job(job_id=job.pk, stars=(round_ + index) % 5 + 1)
                recorded += 1
    return recorded
