"""Fixtures for the relay tests. Nothing here is autouse: tests ask for what they need.

`relays` (and tests/conftest.py's `own_redis`) own real processes and stop them in their
finalizers, whatever the test's outcome; their output is printed at teardown, so a failing test
shows it.
"""

import copy
import signal
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from events.handlers import subscribe, unsubscribe
from events.models import Event
from tests.events.support import RelayProcess


@pytest.fixture
def relays(transactional_db, tmp_path):
    """Start `python manage.py relay` processes on the test database: `relays(name, *args)`.

    Asks for `transactional_db` so the processes are gone before the database is flushed.
    """
    started: list[RelayProcess] = []

    def start(name: str, *args: str, redis_url: str | None = None) -> RelayProcess:
        relay = RelayProcess(
            name,
            list(args),
            log_path=tmp_path / f"relay-{len(started)}-{name}.log",
            redis_url=redis_url or settings.REDIS_URL,
        )
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.signal(signal.SIGTERM)
    for relay in started:
        relay.close()
        print(relay.describe(tail=300))


@pytest.fixture
def private_channel_layer(own_redis, settings):
    """The configured channels-redis layer (same backend and options), on a private server.

    The shared Redis database is flushed by `cache.clear()` before every test of every run on
    this machine, which can wipe a group between `group_add` and `group_send`; a private
    server keeps the Channels tests about the layer, not about the neighbours.
    """
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    config = layers["default"]["CONFIG"]
    assert layers["default"]["BACKEND"] == "realtime.layers.RedisChannelLayer"
    [host] = config["hosts"]
    host["address"] = own_redis.url
    settings.CHANNEL_LAYERS = layers  # Channels drops its cached layers on setting_changed
    return config


class Clock:
    """A stopped clock standing in for `django.utils.timezone.now`; tests move it by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock(timezone.now())
    monkeypatch.setattr(timezone, "now", fake)
    return fake


@dataclass
class TestHandlers:
    """Handlers subscribed through the public registry for one test.

    `tests.flaky` (transactional, JobCreated) raises for events of the jobs in `broken`;
    `tests.counter` (transactional) and `tests.sink` (non-transactional) never fail. Each
    records the sequences of every call that returned normally.
    """

    __test__ = False

    broken: set[int] = field(default_factory=set)
    calls: dict[str, list[list[int]]] = field(
        default_factory=lambda: {"tests.flaky": [], "tests.counter": [], "tests.sink": []}
    )

    def runs(self, handler: str, sequence: int) -> int:
        """How many successful calls of `handler` included the event `sequence`."""
        return sum(sequence in call for call in self.calls[handler])

    def flaky(self, events: list[Event]) -> None:
        for event in events:
            if int(event.payload["jobId"]) in self.broken:
                raise RuntimeError(f"tile supplier unreachable for job {event.payload['jobId']}")
        self.calls["tests.flaky"].append([e.sequence for e in events])

    def counter(self, events: list[Event]) -> None:
        self.calls["tests.counter"].append([e.sequence for e in events])

    def sink(self, events: list[Event]) -> None:
        self.calls["tests.sink"].append([e.sequence for e in events])


@pytest.fixture
def test_handlers():
    handlers = TestHandlers()
    try:
        subscribe("tests.counter", ["JobCreated", "ContractorRated"], handlers.counter)
        subscribe(
            "tests.sink", ["JobCreated", "ContractorRated"], handlers.sink, transactional=False
        )
        subscribe("tests.flaky", ["JobCreated"], handlers.flaky)
        yield handlers
    finally:
        for name in handlers.calls:
            unsubscribe(name)
