"""Helpers for the relay tests: real relay processes, a private redis-server, bounded waits and
ways to record many events through the services.

Every process started here is owned by a fixture in tests/events/conftest.py, which kills it in
its finalizer whatever the test's outcome. Waits poll with a deadline and fail with the relay's
own log in the message.
"""

import re
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import redis
from django.db import transaction

from contractors.models import Contractor
from contractors.services import Location
from events.handlers import subscriptions
from events.models import DeliveryStatus, Event, HandlerReceipt
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

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

BATCH_LINE = re.compile(
    r"relay batch claimed=(?P<claimed>\d+) delivered=(?P<delivered>\d+) "
    r"retried=(?P<retried>\d+) dead=(?P<dead>\d+) ms=[\d.]+ relay=(?P<relay>\S+)"
)


class RelayProcess(Process):
    def __init__(self, name: str, args: list[str], *, log_path: Path, redis_url: str):
        self.name = name
        super().__init__(
            [sys.executable, "manage.py", "relay", "--name", name, *args],
            log_path=log_path,
            env=subprocess_env(redis_url=redis_url),
        )

    def batches(self) -> list[dict[str, Any]]:
        """The structured "relay batch claimed=N ..." lines this relay logged so far."""
        return [
            {**{k: int(v) for k, v in m.groupdict().items() if k != "relay"}, "relay": m["relay"]}
            for m in BATCH_LINE.finditer(self.output())
        ]

    def claimed(self) -> int:
        return sum(batch["claimed"] for batch in self.batches())

    def wait_started(self, timeout: float = 15.0) -> None:
        wait_until(
            lambda: "relay started" in self.output() or not self.alive(),
            timeout=timeout,
            message=self.describe,
        )
        assert self.alive(), self.describe()


class RedisServer:
    """A private redis-server on its own port, which a test may stop and start again.

    The shared Redis (6379) is never touched: other people's runs depend on it.
    """

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.process is None or not self.process.alive()
        self.starts += 1
        self.process = Process(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", str(self.workdir),
            ],
            log_path=self.workdir / f"redis-{self.starts}.log",
        )  # fmt: skip
        wait_until(self.ping, timeout=10, message=lambda: self.process.describe())

    def ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Terminate the server process (its clients see their connections drop)."""
        if self.process is not None:
            self.process.close()
        assert not self.ping()


# --- the EventLog -----------------------------------------------------------------------------


def counts_by_status() -> dict[str, int]:
    counts = dict.fromkeys(DeliveryStatus.values, 0)
    for status in Event.objects.values_list("status", flat=True):
        counts[status] += 1
    return counts


def nothing_pending() -> bool:
    return not Event.objects.filter(status=DeliveryStatus.PENDING).exists()


def handlers_for(event_type: str) -> list[str]:
    """Names of the subscribed handlers that take `event_type`, sorted (the relay processes
    run the same apps, so the same registry)."""
    return sorted(sub.name for sub in subscriptions() if sub.accepts(event_type))


def receipts_by_event() -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for event_id, handler in HandlerReceipt.objects.order_by("event_id", "handler").values_list(
        "event_id", "handler"
    ):
        found.setdefault(event_id, []).append(handler)
    return found


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
