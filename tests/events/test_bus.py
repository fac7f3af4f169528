"""The message bus (events/bus.py) against the real RabbitMQ on 127.0.0.1:5672.

Events are recorded through the services and delivered by the relay in-process; each test binds
its own exclusive queues (kombu) to an exchange of its own, so runs sharing the broker never see
each other's messages. The only fault injected is the network's: a closed port, and a TCP proxy
in front of the broker whose connections a test can cut.
"""

import ast
import contextlib
import json
import os
import socket
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

import kombu
import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from kombu.exceptions import OperationalError

from events.bus import HANDLER_NAME, subscribe_bus, unsubscribe_bus
from events.catalog import EVENT_TYPES
from events.handlers import ALL_TYPES, subscription, subscriptions
from events.models import Event, FailedDelivery
from events.publisher import head, publish_all
from events.relay import Outage, Relay
from scheduling.models import Job
from scheduling.services import assign_job
from tests.conftest import at, client_for, events_of, next_weekday
from tests.contractors.factories import ContractorFactory
from tests.contracts.checks import parse_and_validate
from tests.contracts.samples import record_samples
from tests.events.support import (
    create_jobs,
    delivery_summary,
    failures,
    handlers_for,
    positions,
    wait_delivered,
)
from tests.support import Process, free_port, subprocess_env, wait_until

BROKER = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
NY = ZoneInfo("America/New_York")

pytestmark = pytest.mark.django_db


# --- the broker side of a test ----------------------------------------------------------------


class Inbox:
    """An exclusive queue bound to the test's exchange: what a consuming service would see."""

    def __init__(
        self, channel, exchange: kombu.Exchange, keys: tuple[str, ...], arguments: dict
    ) -> None:
        self.queue = kombu.Queue(
            f"test-bus-{uuid.uuid4().hex[:8]}",
            bindings=[kombu.binding(exchange, routing_key=key) for key in keys],
            exclusive=True,
            auto_delete=True,
            queue_arguments=arguments,
        )(channel)
        self.queue.declare()

    def drain(self) -> list[kombu.Message]:
        messages = []
        while (message := self.queue.get(no_ack=True)) is not None:
            messages.append(message)
        return messages

    def take(self, count: int, *, timeout: float = 5.0) -> list[kombu.Message]:
        """Exactly `count` messages. The broker confirms a message once it is queued, so
        everything the relay published is here by the time it returned."""
        got: list[kombu.Message] = []
        wait_until(
            lambda: got.extend(self.drain()) or len(got) >= count,
            timeout=timeout,
            message=lambda: f"{len(got)} of {count} message(s) arrived",
        )
        assert len(got) == count, [m.delivery_info["routing_key"] for m in got]
        return got


@dataclass
class Bus:
    exchange: kombu.Exchange
    channel: object

    def bind(self, *keys: str, arguments: dict | None = None) -> Inbox:
        """A queue for `keys` (all by default); `arguments` are RabbitMQ's queue arguments."""
        return Inbox(self.channel, self.exchange, keys or ("#",), arguments or {})


@pytest.fixture
def bus(settings):
    """EVENT_BUS_URL set, the `events.bus` handler subscribed, and an exchange of this test's
    own, declared as the publisher must declare it (a mismatch fails its publish)."""
    name = f"smartscheduler.events.test-{uuid.uuid4().hex[:8]}"
    settings.EVENT_BUS_URL = BROKER
    settings.EVENT_BUS_EXCHANGE = name
    was_subscribed = any(sub.name == HANDLER_NAME for sub in subscriptions())
    unsubscribe_bus()
    subscribe_bus()
    # A bus turned on starts at the end of the log: from here on, as a relay would see it.
    Relay().ensure_subscribers([subscription(HANDLER_NAME)])
    connection = kombu.Connection(BROKER, connect_timeout=3)
    try:
        try:
            connection.ensure_connection(max_retries=0)
        except OperationalError as exc:
            pytest.fail(
                f"RabbitMQ is not reachable at {BROKER} (scripts/services starts it): {exc}"
            )
        channel = connection.channel()
        exchange = kombu.Exchange(name, type="topic", durable=True)(channel)
        exchange.declare()
        yield Bus(exchange=exchange, channel=channel)
        exchange.delete()
    finally:
        unsubscribe_bus()
        if was_subscribed:
            subscribe_bus()
        connection.release()


class TcpProxy:
    """A TCP proxy to the broker; `cut()` drops every connection through it, as a restarted
    broker or a load balancer's idle timeout would."""

    def __init__(self, port: int, *, listen_port: int = 0) -> None:
        self.upstream = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", listen_port))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream, timeout=5)
            upstream.settimeout(None)
            self.accepted += 1
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.sockets.clear()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.cut()


BROKER_PORT = kombu.Connection(BROKER).port or 5672


@pytest.fixture
def proxies():
    """`proxies(listen_port=0)`: a TcpProxy to the broker, closed at teardown."""
    started: list[TcpProxy] = []

    def start(listen_port: int = 0) -> TcpProxy:
        started.append(TcpProxy(BROKER_PORT, listen_port=listen_port))
        return started[-1]

    yield start
    for server in started:
        server.close()


def bus_position() -> int:
    return positions()[HANDLER_NAME]


def book_a_job() -> Job:
    """A contractor (factory row) and a job booked through the services: JobCreated, then
    JobAssigned."""
    monday = next_weekday(0)
    contractor = ContractorFactory()
    [job] = create_jobs(1, desired_date=monday)
    start = at(monday, 10, tz=NY)
    assign_job(
        job_id=job.pk, contractor_id=contractor.pk, start=start, end=start + timedelta(hours=2)
    )
    return job


# --- publishing -------------------------------------------------------------------------------


def as_cloudevent(event: Event) -> dict:
    """What a consumer parses out of the message for `event` (built here from the row)."""
    return {
        "specversion": "1.0",
        "id": str(event.event_id),
        "source": "/smartscheduler",
        "type": event.type,
        "time": event.occurred_at.replace(microsecond=event.occurred_at.microsecond // 1000 * 1000),
        "subject": f"{event.aggregate_type}/{event.aggregate_id}",
        "datacontenttype": "application/json",
        "dataschema": f"/api/asyncapi#/components/schemas/{event.type}.v{event.version}",
        "sequence": f"{event.sequence:019d}",
        "data": event.payload,
    }


def asyncapi() -> dict:
    return client_for(None).get("/api/asyncapi").json()


def test_events_recorded_by_the_services_reach_the_bus_as_persistent_cloudevents(bus):
    everything, assigned_only = bus.bind("#"), bus.bind("JobAssigned")

    job = book_a_job()
    Relay().drain()

    events = events_of()  # those the services recorded, and any the handlers recorded since
    assert [e.type for e in events if e.aggregate_id == str(job.pk)][:2] == [
        "JobCreated",
        "JobAssigned",
    ]
    got = everything.take(len(events))
    # In sequence order: one relay, one channel.
    assert [(m.delivery_info["routing_key"], m.properties["message_id"]) for m in got] == [
        (e.type, str(e.event_id)) for e in events
    ]
    # Parsed as a consumer would (the CloudEvents SDK), each data validated against the schema
    # its dataschema names in the AsyncAPI document.
    document = asyncapi()
    assert [parse_and_validate(m.body, document) for m in got] == [as_cloudevent(e) for e in events]
    assert {
        (m.delivery_info["exchange"], m.properties["delivery_mode"], m.content_type) for m in got
    } == {(bus.exchange.name, 2, "application/cloudevents+json")}

    [assigned] = assigned_only.take(1)
    [booking] = events_of("JobAssigned")
    assert parse_and_validate(assigned.body, document) == as_cloudevent(booking)
    assert assigned.properties["message_id"] == str(booking.event_id)

    assert bus_position() == head() == events[-1].sequence
    assert failures() == []


def test_every_catalog_type_reaches_a_consumer_that_has_only_the_asyncapi_document(bus):
    inbox = bus.bind("#")
    recorded = record_samples(EVENT_TYPES.values())

    Relay().drain()

    document = asyncapi()
    got = {
        m.delivery_info["routing_key"]: parse_and_validate(m.body, document)
        for m in inbox.take(len(recorded))
    }
    assert sorted(got) == sorted(EVENT_TYPES)
    assert [got[e.type] for e in recorded] == [as_cloudevent(e) for e in recorded]


def test_the_bus_handler_is_non_transactional_and_takes_every_type(bus):
    sub = subscription(HANDLER_NAME)

    assert (sub.types, sub.transactional) == (frozenset({ALL_TYPES}), False)


def test_one_connection_serves_every_batch_and_a_dropped_one_is_reopened(bus, settings, proxies):
    proxy = proxies()
    settings.EVENT_BUS_URL = f"amqp://guest:guest@127.0.0.1:{proxy.port}//"
    inbox = bus.bind()

    for _ in range(2):
        create_jobs(2)
        Relay().drain()
    assert len(inbox.take(4)) == 4
    assert proxy.accepted == 1

    proxy.cut()  # the idle connection is gone; the publisher finds out on its next publish
    [job] = create_jobs(1)
    publish_all()
    result = Relay().step(subscription(HANDLER_NAME))  # no Outage: it reconnected at once

    assert (result.handled, result.failed) == (1, 0)
    [message] = inbox.take(1)
    assert json.loads(message.body)["subject"] == f"job/{job.pk}"
    assert proxy.accepted == 2


def test_a_batch_the_broker_refuses_in_part_is_published_again_until_it_takes_it(bus, clock):
    """Confirms are awaited once per batch, and every message of it counts: a queue that is
    full and rejects publishes makes RabbitMQ nack them, so the bus does not count the batch
    as done; its events are retried (alone, with backoff) until the broker took each one.
    At least once: the consumer gets duplicates, which it drops by id."""
    limited = bus.bind(arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    create_jobs(3)
    relay = Relay()

    relay.drain()  # the first two fill the queue; the third is refused: the batch failed
    assert failures() == [(HANDLER_NAME, sequence, 1, False) for sequence in (1, 2, 3)]
    assert "nack" in FailedDelivery.objects.filter(event__sequence=3).get().last_error
    received = [m.properties["message_id"] for m in limited.drain()]
    assert len(received) == 2

    for _ in range(3):  # retried alone: the queue takes two at a time
        clock.advance(60)
        relay.drain()
        received += [m.properties["message_id"] for m in limited.drain()]
    assert failures() == []
    assert set(received) == {str(e.event_id) for e in Event.objects.all()}
    assert len(received) == 5  # the first two twice: the broker had them before the nack


# --- the broker unreachable -------------------------------------------------------------------


def test_with_the_broker_unreachable_events_wait_for_the_bus_and_arrive_when_it_is_back(
    bus, settings
):
    inbox = bus.bind()
    settings.EVENT_BUS_URL = f"amqp://guest:guest@127.0.0.1:{free_port()}//"  # nothing listens
    create_jobs(3)
    relay = Relay()
    relay.ensure_subscribers(subscriptions())  # as a relay does when it starts
    others = [sub for sub in subscriptions() if sub.name != HANDLER_NAME]
    relay.drain(others)  # every other subscriber is done with them

    with pytest.raises(Outage, match="unreachable"):
        relay.step(subscription(HANDLER_NAME))

    # An outage, not a failure: the bus stays where it was, no attempt spent, no error.
    assert bus_position() == 0
    assert failures() == []
    assert inbox.drain() == []
    assert {sub.name: positions()[sub.name] for sub in others} == {s.name: 3 for s in others}

    settings.EVENT_BUS_URL = BROKER  # the broker is back
    relay.drain()

    got = inbox.take(3)
    recorded = list(Event.objects.order_by("sequence"))
    assert [m.properties["message_id"] for m in got] == [str(e.event_id) for e in recorded]
    assert bus_position() == 3
    assert failures() == []


@pytest.mark.django_db(transaction=True)
def test_a_relay_process_keeps_every_other_subscriber_going_while_the_broker_is_down(
    bus, relays, proxies, monkeypatch
):
    """A real relay process and a broker that is down, then back on the same address: the
    websocket broadcast and the handlers keep up meanwhile, whatever piles up for the bus."""
    inbox = bus.bind()
    port = free_port()  # nothing listens here until the proxy starts
    monkeypatch.setenv("EVENT_BUS_URL", f"amqp://guest:guest@127.0.0.1:{port}//")
    monkeypatch.setenv("EVENT_BUS_EXCHANGE", bus.exchange.name)
    relay = relays("bus-down", "--poll-interval", "0.2", "--batch-size", "50")
    relay.wait_started()

    create_jobs(3)
    create_jobs(300)  # past any batch: the bus's backlog never holds the others back
    booking = book_a_job()
    others = [name for name in handlers_for("JobAssigned") if name != HANDLER_NAME]
    assert "realtime.broadcast" in others
    wait_until(
        lambda: (
            "subscriber events.bus cannot reach a store" in relay.output()
            and not Event.objects.filter(sequence=None).exists()
            and all(positions().get(name) == head() for name in others)
        ),
        timeout=20,
        message=lambda: delivery_summary() + relay.describe(),
    )
    assert Event.objects.get(type="JobAssigned", aggregate_id=str(booking.pk)).sequence == head()
    assert "event bus amqp://guest:**@127.0.0.1" in relay.output()
    assert positions().get(HANDLER_NAME, 0) == 0  # the bus waits, no attempt spent
    assert failures() == []

    proxies(listen_port=port)  # the broker is back
    wait_delivered(relay, timeout=30)

    got = inbox.take(head(), timeout=10)
    assert [m.properties["message_id"] for m in got] == [
        str(e.event_id) for e in Event.objects.order_by("sequence")
    ]  # every event, once, in sequence order
    assert failures() == []
    assert "subscriber events.bus recovered" in relay.output()


# --- replay -----------------------------------------------------------------------------------


def replay_to_the_bus(events: list[Event], option: str) -> None:
    """`events_replay` of `events` (first to last) for the bus, named by `option`
    (--subscriber or --handler), then a drain that delivers them."""
    call_command(
        "events_replay",
        "--from", str(events[0].sequence),
        "--to", str(events[-1].sequence),
        option, HANDLER_NAME,
    )  # fmt: skip
    Relay().drain()


def test_a_replay_to_the_bus_publishes_the_same_messages_again_and_nothing_else_reruns(bus):
    inbox = bus.bind()
    create_jobs(2)
    Relay().drain()
    first = inbox.take(2)
    events = events_of()
    others_before = {name: at for name, at in positions().items() if name != HANDLER_NAME}

    replay_to_the_bus(events, "--subscriber")

    again = inbox.take(2)
    assert [m.properties["message_id"] for m in again] == [
        m.properties["message_id"] for m in first
    ]
    assert [m.body for m in again] == [m.body for m in first]
    # Only the bus ran again: no other subscriber moved or got anything to retry.
    assert {name: at for name, at in positions().items() if name != HANDLER_NAME} == others_before
    assert failures() == []


# --- bus_tail ---------------------------------------------------------------------------------


def test_bus_tail_prints_the_chosen_types_once_each_as_json_lines(bus, tmp_path):
    tail = Process(
        [
            sys.executable, "manage.py", "bus_tail",
            "--types", "JobCreated,JobAssigned", "--count", "3", "--timeout", "20",
        ],
        log_path=tmp_path / "bus_tail.log",
        env={
            **subprocess_env(redis_url=django_settings.REDIS_URL),
            "EVENT_BUS_URL": BROKER,
            "EVENT_BUS_EXCHANGE": bus.exchange.name,
        },
    )  # fmt: skip
    try:
        wait_until(
            lambda: "bus_tail: listening" in tail.output() or not tail.alive(),
            timeout=15,
            message=tail.describe,
        )
        assert tail.alive(), tail.describe()

        monday = next_weekday(0)
        jobs = create_jobs(2, desired_date=monday)
        Relay().drain()
        created = events_of("JobCreated")
        # The same two again (a redelivery), which bus_tail must drop...
        replay_to_the_bus(created, "--handler")
        # ...then a booking: the third distinct event of the chosen types.
        start = at(monday, 10, tz=NY)
        contractor = ContractorFactory()
        assign_job(
            job_id=jobs[0].pk,
            contractor_id=contractor.pk,
            start=start,
            end=start + timedelta(hours=2),
        )
        Relay().drain()

        tail.proc.wait(timeout=15)
    finally:
        tail.close()
    assert tail.proc.returncode == 0, tail.describe()
    printed = [json.loads(line) for line in tail.output().splitlines() if line.startswith("{")]
    expected = [*created, *events_of("JobAssigned")]
    assert [p["id"] for p in printed] == [str(e.event_id) for e in expected]
    assert [parse_and_validate(json.dumps(p), asyncapi()) for p in printed] == [
        as_cloudevent(e) for e in expected
    ]


def test_bus_tail_with_a_count_fails_when_the_events_do_not_come_in_time(bus):
    with pytest.raises(CommandError, match=r"0 of 1 event\(s\) arrived within 0.3s"):
        call_command("bus_tail", "--count", "1", "--timeout", "0.3")


# --- off unless configured ---------------------------------------------------------------------


def test_the_bus_handler_is_subscribed_only_when_event_bus_url_is_set(tmp_path):
    listing = (
        "from events.handlers import subscriptions; print(sorted(s.name for s in subscriptions()))"
    )
    env = subprocess_env(redis_url=django_settings.REDIS_URL)
    without = {key: value for key, value in env.items() if key != "EVENT_BUS_URL"}
    processes = {
        "off": Process(
            [sys.executable, "manage.py", "shell", "-c", listing],
            log_path=tmp_path / "off.log",
            env=without,
        ),
        "on": Process(
            [sys.executable, "manage.py", "shell", "-c", listing],
            log_path=tmp_path / "on.log",
            env={**without, "EVENT_BUS_URL": BROKER},
        ),
    }
    names = {}
    for key, process in processes.items():
        try:
            process.proc.wait(timeout=60)  # two Django start-ups on a loaded machine
        finally:
            process.close()
        assert process.proc.returncode == 0, process.describe()
        names[key] = set(ast.literal_eval(process.output().strip().splitlines()[-1]))

    assert HANDLER_NAME not in names["off"]
    assert names["on"] == names["off"] | {HANDLER_NAME}
