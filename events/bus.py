"""The external message bus: every event published at least once for other services.

`events.bus` is a subscriber like any other (its own position, retries, dead events and replay;
docs/events.md) and is subscribed only when `EVENT_BUS_URL` is set (`subscribe_bus`, called by
`EventsConfig.ready`). It is non-transactional: publishing is a network effect, and its
position moves after the broker confirmed every message of the batch, so a crash in between
publishes again. Consumers drop duplicates by `id`, which is also the message id.

Each message is the event as a CloudEvent in structured JSON mode (`events.cloudevent`:
`application/cloudevents+json`), the same bytes a webhook receives. On RabbitMQ the AMQP
`message_id` is the event id and the routing key its type; on SNS/SQS the notification's
message is that JSON itself (published through kombu's SNS helper, not as a kombu message), so
a consumer in any language reads the SQS body without kombu.

A broker that cannot be reached is an outage, not the events' fault: when publishing fails the
relay probes the broker (`probe_broker`); a failing probe spends no attempt and the bus waits at
its position, alone, until the broker answers. A broker that answers but refuses (bad
credentials, an exchange declared with another type, a nack) is an ordinary failure: retried
with backoff, dead in the end for the bus only, visible to operators.

kombu serves RabbitMQ (`amqp://`: a durable topic exchange, routing key = event type) and
Amazon SQS (`sqs://`: kombu routes topic exchanges inside the publishing process only, so there
the exchange is a fanout one, which kombu maps to an SNS topic that consumers' queues subscribe
to). One connection and producer per process, reused across batches, reopened after a failure.
"""

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

import kombu
from amqp.exceptions import MessageNacked
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from kombu.exceptions import OperationalError

from events.cloudevent import CONTENT_TYPE, structured
from events.handlers import ALL_TYPES, Subscription, subscribe, unsubscribe
from events.models import Event

HANDLER_NAME = "events.bus"
PERSISTENT = 2  # AMQP delivery_mode: the broker writes the message to disk
# Seconds to reach the broker, and to wait for its confirms of one batch (a broker under a
# memory or disk alarm blocks publishers): past either, the relay treats it as an outage.
CONNECT_TIMEOUT = 5.0
CONFIRM_TIMEOUT = 10.0

log = logging.getLogger("events.bus")


# --- the broker -------------------------------------------------------------------------------


def is_sqs(url: str) -> bool:
    return urlsplit(url).scheme.lower() == "sqs"


def bus_exchange(url: str, name: str) -> kombu.Exchange:
    """The exchange events are published to (see the module docstring for SQS's fanout)."""
    kind = "fanout" if is_sqs(url) else "topic"
    return kombu.Exchange(name, type=kind, durable=True, delivery_mode=PERSISTENT)


def bus_connection(url: str) -> kombu.Connection:
    """A connection that fails fast (the relay retries). Publisher confirms are the
    publisher's (`Confirms`): kombu's `confirm_publish` would wait after every message."""
    options: dict = {"max_retries": 0}
    if is_sqs(url):
        options["supports_fanout"] = True  # fanout exchange -> SNS topic (kombu's SQS transport)
    return kombu.Connection(url, connect_timeout=CONNECT_TIMEOUT, transport_options=options)


def safe_uri(connection: kombu.Connection) -> str:
    return connection.as_uri()  # the password masked, for logs and errors


class Confirms:
    """RabbitMQ's publisher confirms on one channel, awaited once per batch: the broker numbers
    the messages published on a channel in confirm mode 1, 2, ... and acks (or nacks) them,
    several at once when `multiple` is set. A batch is confirmed when every number it took was
    acked; a nack of any of them fails the whole batch (the relay publishes it again: at least
    once). Waiting per message (kombu's `confirm_publish`) costs a round trip each."""

    def __init__(self, channel) -> None:
        self.published = 0
        self.waiting: set[int] = set()
        self.nacked = 0
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)

    def sent(self) -> None:
        self.published += 1
        self.waiting.add(self.published)

    def wait(self, connection: kombu.Connection, timeout: float) -> None:
        """Until the broker settled everything sent; raises MessageNacked if it refused any,
        TimeoutError (an outage, for the relay) if it settled not all within `timeout`."""
        deadline = time.monotonic() + timeout
        while self.waiting:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                connection.drain_events(timeout=left)
            except TimeoutError:
                raise TimeoutError(
                    f"{len(self.waiting)} messages unconfirmed after {timeout:g}s"
                ) from None
        nacked, self.nacked = self.nacked, 0
        if nacked:
            raise MessageNacked(f"the broker refused {nacked} messages of the batch (nack)")

    def _settle(self, delivery_tag: int, multiple: bool) -> int:
        if multiple:
            settled = {tag for tag in self.waiting if tag <= delivery_tag}
        else:
            settled = {delivery_tag} & self.waiting
        self.waiting -= settled
        return len(settled)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacked += self._settle(delivery_tag, multiple)


class Publisher:
    """One connection and producer to the bus, kept across batches and reopened on failure.

    py-amqp connections are not thread-safe, so a lock serialises the relay threads of one
    process (the embedded relay, several relays in tests).
    """

    def __init__(self, url: str, exchange: str) -> None:
        self.url = url
        self.exchange = bus_exchange(url, exchange)
        self.where = safe_uri(bus_connection(url))
        # What the transport raises when it cannot talk to the broker (py-amqp: socket errors
        # and AMQP connection errors; SQS: botocore's and socket errors).
        self.connection_errors = bus_connection(url).connection_errors
        self.connection: kombu.Connection | None = None
        self.producer: kombu.Producer | None = None
        self.confirms: Confirms | None = None
        self.lock = threading.Lock()

    def publish(self, events: list[Event]) -> None:
        with self.lock:
            reused = self.producer is not None
            try:
                self._publish(events)
                return
            except Exception as exc:
                if not (reused and isinstance(exc, self.connection_errors)):
                    self._fail(exc)
                # A connection left idle since the last batch may have been dropped (a broker
                # restart, a proxy's idle timeout): one fresh try before calling it an outage.
                log.info("event bus connection lost (%s), reconnecting", exc)
                self._close()
            try:
                self._publish(events)
            except Exception as exc:
                self._fail(exc)

    def close(self) -> None:
        with self.lock:
            self._close()

    def _publish(self, events: list[Event]) -> None:
        if self.producer is None:
            self._open()
        assert self.producer is not None
        if is_sqs(self.url):
            self._publish_sns(events)
            return
        assert self.connection is not None and self.confirms is not None
        for event in events:
            self.producer.publish(
                structured(event),
                routing_key=event.type,
                message_id=str(event.event_id),
                delivery_mode=PERSISTENT,
                content_type=CONTENT_TYPE,
                content_encoding="utf-8",
                retry=False,
                timeout=CONFIRM_TIMEOUT,
            )
            self.confirms.sent()
        self.confirms.wait(self.connection, CONFIRM_TIMEOUT)

    def _publish_sns(self, events: list[Event]) -> None:
        """SNS/SQS: the CloudEvent JSON is the notification's message, with no kombu wrapper
        (kombu's SQS transport would base64 its body inside a JSON of its own). The `type`
        message attribute lets a subscription filter by event type (docs/bus.md)."""
        assert self.connection is not None
        sns = self.connection.default_channel.fanout  # kombu's SNS helper (supports_fanout)
        for event in events:
            sns.publish(
                exchange_name=self.exchange.name,
                message=structured(event).decode(),
                message_attributes={"type": event.type},
            )

    def _open(self) -> None:
        connection = bus_connection(self.url)
        self.connection = connection
        connection.ensure_connection(max_retries=0)  # kombu's OperationalError when down
        channel = connection.default_channel
        if not is_sqs(self.url):
            self.confirms = Confirms(channel)
        # Declares the (durable) exchange: idempotent on the broker.
        self.producer = kombu.Producer(channel, exchange=self.exchange)
        log.info("event bus connected to %s, exchange %s", self.where, self.exchange.name)

    def _fail(self, exc: Exception) -> NoReturn:
        """Close the connection and raise: an outage (kombu's OperationalError, transient for
        the relay) when the broker could not be reached, else the error as it is."""
        self._close()
        if not isinstance(exc, (OperationalError, *self.connection_errors)):
            raise exc
        raise OperationalError(
            f"event bus {self.where} unreachable: {type(exc).__name__}: {exc}"
        ) from exc

    def _close(self) -> None:
        if self.connection is not None:
            with suppress(Exception):  # closing a broken connection may fail too
                self.connection.release()
        self.connection, self.producer, self.confirms = None, None, None


_publisher: Publisher | None = None
_publisher_lock = threading.Lock()


def publisher() -> Publisher:
    """This process's publisher for the configured URL and exchange."""
    global _publisher
    url, exchange = settings.EVENT_BUS_URL, settings.EVENT_BUS_EXCHANGE
    if not url:
        raise ImproperlyConfigured("EVENT_BUS_URL is not set")
    with _publisher_lock:
        if _publisher is None or (_publisher.url, _publisher.exchange.name) != (url, exchange):
            if _publisher is not None:  # the settings changed (tests): drop the old connection
                _publisher.close()
            _publisher = Publisher(url, exchange)
        return _publisher


def close_publisher() -> None:
    global _publisher
    with _publisher_lock:
        if _publisher is not None:
            _publisher.close()
        _publisher = None


def publish_events(events: list[Event]) -> None:
    """The `events.bus` handler."""
    publisher().publish(events)


def probe_broker() -> None:
    """Raises when the broker cannot be reached (the relay's outage probe): a fresh connection,
    opened and closed."""
    connection = bus_connection(settings.EVENT_BUS_URL)
    try:
        connection.ensure_connection(max_retries=0)
    finally:
        with suppress(Exception):
            connection.release()


def subscribe_bus() -> Subscription:
    """Subscribe `events.bus` (EventsConfig.ready does when EVENT_BUS_URL is set). A bus added
    to a running system starts with the events published from then on."""
    check_transport(settings.EVENT_BUS_URL)
    return subscribe(
        HANDLER_NAME, ALL_TYPES, publish_events, transactional=False, probe=probe_broker,
        starts_at="end",
    )  # fmt: skip


def check_transport(url: str) -> None:
    """Refuse at startup what would lose messages later: on SQS a fanout exchange reaches other
    processes only through kombu's SNS support (boto3, and a kombu recent enough to have it)."""
    if not is_sqs(url):
        return
    try:
        import kombu.transport.SQS.SNS  # noqa: F401
    except ImportError as exc:
        raise ImproperlyConfigured(
            "EVENT_BUS_URL is sqs:// but kombu's SNS fan-out is unavailable: install "
            f'"kombu[sqs]" in a version with kombu.transport.SQS.SNS ({exc})'
        ) from exc


def unsubscribe_bus() -> None:
    unsubscribe(HANDLER_NAME)
    close_publisher()


# --- consuming: bus_tail ----------------------------------------------------------------------


class RecentIds:
    """The last `size` event ids seen, to drop duplicates (delivery is at least once)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen(self, event_id: str) -> bool:
        """True if `event_id` was seen before; remembers it either way."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return True
        self._ids[event_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return False


@dataclass(frozen=True)
class TailResult:
    printed: int
    duplicates: int
    queue: str


def tail_queue(url: str, exchange: kombu.Exchange, types: Iterable[str], name: str | None):
    """A queue bound to the exchange for `types` (all when empty).

    Named: durable and kept, so a consumer that comes back gets what it missed. Unnamed: a
    temporary queue, exclusive and deleted with the connection.
    """
    keys = list(types) or ["#"]
    if exchange.type == "fanout":
        keys = keys[:1]  # routing keys mean nothing there; types are filtered on arrival
    temporary = name is None
    queue_name = name or f"bus-tail-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return kombu.Queue(
        queue_name,
        bindings=[kombu.binding(exchange, routing_key=key) for key in keys],
        durable=not temporary,
        exclusive=temporary,
        auto_delete=temporary,
    )


def tail(
    *,
    types: Iterable[str] = (),
    queue: str | None = None,
    count: int | None = None,
    timeout: float | None = None,
    emit: Callable[[str], None],
    ready: Callable[[str], None] = lambda _: None,
) -> TailResult:
    """Print each event arriving on the bus as one JSON line (`emit`), duplicates dropped.

    Stops after `count` events or `timeout` seconds, whichever comes first (else runs until
    interrupted). `ready` is told the queue's name once it is bound, before the first event.
    """
    url, exchange_name = settings.EVENT_BUS_URL, settings.EVENT_BUS_EXCHANGE
    if not url:
        raise ImproperlyConfigured("EVENT_BUS_URL is not set")
    wanted = frozenset(types)
    exchange = bus_exchange(url, exchange_name)
    bound = tail_queue(url, exchange, sorted(wanted), queue)
    recent = RecentIds()
    printed = duplicates = 0
    deadline = None if timeout is None else time.monotonic() + timeout

    def on_message(raw: bytes | str, message: kombu.Message) -> None:
        nonlocal printed, duplicates
        if count is not None and printed >= count:
            message.requeue()  # not ours to take: leave it for the next reader of a named queue
            return
        body = json.loads(raw)  # a structured CloudEvent (kombu has no decoder for its type)
        if recent.seen(body["id"]):
            duplicates += 1
        elif not wanted or body["type"] in wanted:
            emit(json.dumps(body, separators=(",", ":")))
            printed += 1
        message.ack()

    with bus_connection(url) as connection:
        try:
            connection.ensure_connection(max_retries=0)
            channel = connection.default_channel
            exchange(channel).declare()
            with kombu.Consumer(
                channel, [bound], callbacks=[on_message], accept=[CONTENT_TYPE], prefetch_count=100
            ):
                ready(bound.name)
                while count is None or printed < count:
                    wait = 1.0 if deadline is None else deadline - time.monotonic()
                    if wait <= 0:
                        break
                    with suppress(socket.timeout):
                        connection.drain_events(timeout=min(wait, 1.0))
            if queue is None and is_sqs(url):  # SQS has no auto-delete queues
                bound(channel).delete()
        except connection.connection_errors as exc:
            raise OperationalError(f"{safe_uri(connection)}: {type(exc).__name__}: {exc}") from exc
    return TailResult(printed=printed, duplicates=duplicates, queue=bound.name)
