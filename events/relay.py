"""The relay: at-least-once delivery from the EventLog to every handler and Channels group.

Algorithm (why nothing is lost, docs/events.md has the long form):
1. Claim: in one statement (one short transaction off PostgreSQL), pick pending rows whose
   backoff has passed and whose lease is free, `FOR UPDATE SKIP LOCKED`, in sequence order, and
   stamp them with this relay's name and a lease. Rows are chosen by *state*, never by
   `sequence > last seen`, so a transaction that commits after a higher sequence was delivered
   is still found.
2. Deliver, outside any transaction: for each subscribed handler, insert its receipts for the
   batch (`ON CONFLICT DO NOTHING RETURNING`) and run it on the events that were not yet
   processed, in one transaction with its effects. If the batch fails, each event is retried
   alone, so one bad event fails alone.
3. Mark: delivered rows become `delivered`; failed rows go back to pending with exponential
   backoff and jitter, or `dead` after `max_attempts`. Only rows still claimed by this relay
   are marked.
A relay that dies mid-batch leaves claimed rows whose lease expires; any relay then takes them
over, and receipts keep handler effects exactly-once. An outage of PostgreSQL, Redis or the
message bus is not the events' fault: the batch is released without spending an attempt and the
relay backs off (handlers that do not need the missing store still run on it first).
"""

import contextlib
import logging
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import redis
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import BooleanField, F, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django_redis.exceptions import ConnectionInterrupted

from events import handlers, metrics
from events.models import DeliveryStatus, Event, HandlerReceipt
from events.recorder import NOTIFY_CHANNEL

log = logging.getLogger("events.relay")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionInterrupted,  # django-redis's wrapper around the two above
    ConnectionError,
    TimeoutError,
)
try:  # the message bus (events/bus.py, docs/bus.md): an unreachable broker is an outage too
    import amqp.exceptions
    import kombu.exceptions
except ImportError:  # pragma: no cover (kombu is a dependency; the bus itself is optional)
    pass
else:
    TRANSIENT_ERRORS += (kombu.exceptions.OperationalError, amqp.exceptions.ConnectionError)
# The database is every handler's store: when it is down nothing else can run either.
DATABASE_ERRORS = (OperationalError, InterfaceError)


# What delivery reads of a claimed event: the envelope, the handlers' inputs, the attempts.
CLAIMED_COLUMNS = (
    "sequence", "event_id", "type", "version", "aggregate_type", "aggregate_id", "payload",
    "groups", "occurred_at", "attempts", "claimed_by",
)  # fmt: skip


class Outage(Exception):
    """A store the relay needs is unreachable; the batch was released, not failed."""


@dataclass(frozen=True)
class RelayConfig:
    batch_size: int = 200
    poll_interval: float = 1.0
    max_attempts: int = 10
    lease: timedelta = timedelta(seconds=60)
    backoff_base: float = 1.0
    backoff_max: float = 300.0


@dataclass
class BatchResult:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    seconds: float = 0.0
    failures: dict[int, str] = field(default_factory=dict)


def default_relay_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class Relay:
    def __init__(self, config: RelayConfig | None = None, *, name: str | None = None) -> None:
        self.config = config or RelayConfig()
        self.name = name or default_relay_name()

    # --- one batch -------------------------------------------------------------------------

    def claim(self) -> list[Event]:
        now = timezone.now()
        lease_expires_at = now + self.config.lease
        if connection.vendor == "postgresql":
            # One statement, one round trip: lock and stamp together (what the transaction
            # below does in four: BEGIN, SELECT ... FOR UPDATE, UPDATE, COMMIT). Only the
            # columns delivery reads come back (the others are deferred): converting the
            # delivery-state timestamps of every row was a tenth of the relay's time.
            table = Event._meta.db_table
            claimed = Event.objects.raw(
                f"""WITH picked AS (
                        SELECT sequence FROM {table}
                        WHERE status = %s AND available_at <= %s
                          AND (lease_expires_at IS NULL OR lease_expires_at < %s)
                        ORDER BY sequence
                        LIMIT %s
                        FOR UPDATE SKIP LOCKED
                    )
                    UPDATE {table} AS event
                    SET claimed_by = %s, lease_expires_at = %s, attempts = event.attempts + 1
                    FROM picked WHERE event.sequence = picked.sequence
                    RETURNING {", ".join(f"event.{column}" for column in CLAIMED_COLUMNS)}""",
                [DeliveryStatus.PENDING, now, now, self.config.batch_size, self.name,
                 lease_expires_at],
            )  # fmt: skip
            return sorted(claimed, key=lambda event: event.sequence)
        with transaction.atomic():
            batch = list(
                Event.objects.select_for_update(skip_locked=True)
                .filter(status=DeliveryStatus.PENDING, available_at__lte=now)
                .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
                .order_by("sequence")[: self.config.batch_size]
            )
            if batch:
                Event.objects.filter(sequence__in=[e.sequence for e in batch]).update(
                    claimed_by=self.name,
                    lease_expires_at=lease_expires_at,
                    attempts=F("attempts") + 1,
                )
                for event in batch:
                    event.attempts += 1
        return batch

    def run_batch(self) -> BatchResult:
        started = time.monotonic()
        batch = self.claim()
        result = BatchResult(claimed=len(batch))
        if not batch:
            return result
        try:
            failures = self.deliver(batch)
        except TRANSIENT_ERRORS as exc:
            self.release(batch)
            raise Outage(f"{type(exc).__name__}: {exc}") from exc
        self.mark(batch, failures, result)
        result.seconds = time.monotonic() - started
        metrics.BATCH_SECONDS.observe(result.seconds)
        log.info(
            "relay batch claimed=%d delivered=%d retried=%d dead=%d ms=%.1f relay=%s",
            result.claimed,
            result.delivered,
            result.retried,
            result.dead,
            result.seconds * 1000,
            self.name,
        )
        return result

    def deliver(self, batch: list[Event]) -> dict[int, str]:
        """Run every handler on the batch; returns {sequence: error} for events that failed."""
        failures: dict[int, str] = {}
        outage: BaseException | None = None
        for sub in handlers.subscriptions():
            events = [e for e in batch if sub.accepts(e.type)]
            if not events:
                continue
            try:
                results = apply_handler(sub, events)
            except TRANSIENT_ERRORS as exc:
                # A store only some handlers need (Redis, the message bus) holds back only
                # them: the others still run (their receipts keep them from running twice),
                # then the whole batch is released as an outage.
                if isinstance(exc, DATABASE_ERRORS):
                    raise
                outage = outage or exc
                continue
            for sequence, error in results.items():
                failures.setdefault(sequence, error)
                metrics.FAILURES.labels(handler=sub.name).inc()
        if outage is not None:
            raise outage
        return failures

    def mark(self, batch: list[Event], failures: dict[int, str], result: BatchResult) -> None:
        now = timezone.now()
        delivered = [e for e in batch if e.sequence not in failures]
        if delivered:
            Event.objects.filter(
                sequence_in([e.sequence for e in delivered]), claimed_by=self.name
            ).update(
                status=DeliveryStatus.DELIVERED,
                delivered_at=now,
                claimed_by="",
                lease_expires_at=None,
                last_error="",
            )
            for event_type, count in Counter(e.type for e in delivered).items():
                metrics.DELIVERED.labels(type=event_type).inc(count)
        for event in batch:
            error = failures.get(event.sequence)
            if error is None:
                continue
            dead = event.attempts >= self.config.max_attempts
            Event.objects.filter(sequence=event.sequence, claimed_by=self.name).update(
                status=DeliveryStatus.DEAD if dead else DeliveryStatus.PENDING,
                available_at=now + timedelta(seconds=self.backoff(event.attempts)),
                claimed_by="",
                lease_expires_at=None,
                last_error=error[:10_000],
            )
            if dead:
                metrics.DEAD.labels(type=event.type).inc()
                log.error(
                    "event dead sequence=%d type=%s error=%s",
                    event.sequence,
                    event.type,
                    error.splitlines()[0] if error else "",
                )
            result.dead += dead
            result.retried += not dead
        result.delivered = len(delivered)
        result.failures = failures

    def release(self, batch: list[Event]) -> None:
        """Give the batch back without spending an attempt (the stores failed, not the events)."""
        with contextlib.suppress(DatabaseError):  # if it fails, the lease expires by itself
            Event.objects.filter(
                sequence_in([e.sequence for e in batch]), claimed_by=self.name
            ).update(claimed_by="", lease_expires_at=None, attempts=F("attempts") - 1)

    def backoff(self, attempts: int) -> float:
        """Exponential in the attempts so far, capped, with jitter (0.5x to 1.5x)."""
        base = min(self.config.backoff_max, self.config.backoff_base * 2 ** max(0, attempts - 1))
        return base * random.uniform(0.5, 1.5)

    # --- loops -----------------------------------------------------------------------------

    def drain(self, *, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Deliver until nothing is claimable; returns how many events were claimed."""
        total = 0
        while not should_stop():
            result = self.run_batch()
            total += result.claimed
            if result.claimed == 0:
                break
        return total

    def run_forever(self, stop: threading.Event) -> None:
        outage = Backoff()
        waiter = Wakeup(self.config.poll_interval)
        try:
            while not stop.is_set():
                try:
                    self.drain(should_stop=stop.is_set)
                    if outage.active:
                        log.warning("relay recovered after %.1fs", outage.duration())
                        outage.reset()
                    waiter.wait(stop)
                except (Outage, *TRANSIENT_ERRORS) as exc:
                    if not outage.active:
                        log.error("relay cannot reach a store, retrying quietly: %s", exc)
                    close_db_connection()
                    waiter.close()
                    stop.wait(outage.next_delay())
        finally:
            waiter.close()


class Backoff:
    def __init__(self, base: float = 0.5, cap: float = 10.0) -> None:
        self.base, self.cap = base, cap
        self.failures = 0
        self.since: float | None = None

    @property
    def active(self) -> bool:
        return self.failures > 0

    def next_delay(self) -> float:
        if self.since is None:
            self.since = time.monotonic()
        self.failures += 1
        return min(self.cap, self.base * 2 ** (self.failures - 1)) * random.uniform(0.8, 1.2)

    def duration(self) -> float:
        return time.monotonic() - (self.since or time.monotonic())

    def reset(self) -> None:
        self.failures, self.since = 0, None


class Wakeup:
    """Wait for a NOTIFY from a recording transaction, at most `poll_interval` seconds.

    On PostgreSQL a dedicated autocommit connection LISTENs; after any reconnect the caller
    drains before waiting again, so a notification sent while disconnected is not needed. On
    SQLite it simply sleeps.
    """

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        self.conn = None

    def wait(self, stop: threading.Event) -> None:
        if connection.vendor != "postgresql":
            stop.wait(self.poll_interval)
            return
        # The LISTEN connection is the driver's own, not Django's: translate its errors (a
        # terminated backend, a server restart) into Django's, which the caller treats as an
        # outage, instead of letting a raw driver error end the relay.
        with connection.wrap_database_errors:
            if self.conn is None or self.conn.closed:
                self.conn = connection.get_new_connection(connection.get_connection_params())
                self.conn.autocommit = True
                self.conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                return  # just (re)connected: drain once more before sleeping
            for _ in self.conn.notifies(timeout=self.poll_interval, stop_after=1):
                break
            # Swallow the burst that arrived meanwhile; one drain serves them all.
            for _ in self.conn.notifies(timeout=0):
                pass

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail too
                self.conn.close()
            self.conn = None


def close_db_connection() -> None:
    with contextlib.suppress(DatabaseError):
        connection.close()


# --- applying one handler ------------------------------------------------------------------


def sequence_in(values: list[int], column: str = "sequence") -> Q | RawSQL:
    """`column IN values` as a filter. On PostgreSQL one array parameter (`= ANY(%s)`), not
    one placeholder per event: a different query text per batch size, which psycopg parses
    anew each time (it showed in the relay's profile, docs/profiles/relay.md)."""
    if connection.vendor == "postgresql":
        return RawSQL(f"{column} = ANY(%s)", (values,), output_field=BooleanField())
    return Q(**{f"{column}__in": values})


def _claim_receipts(handler: str, sequences: list[int]) -> set[int]:
    """Insert receipts; returns the sequences that had none (not yet processed)."""
    if not sequences:
        return set()
    now = timezone.now()
    table = HandlerReceipt._meta.db_table
    if connection.vendor == "postgresql":
        rows, params = "SELECT unnest(%s::bigint[]), %s, %s", [sequences, handler, now]
    else:
        rows = "VALUES " + ", ".join(["(%s, %s, %s)"] * len(sequences))
        params = [value for sequence in sequences for value in (sequence, handler, now)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (event_id, handler, processed_at) {rows} "
            "ON CONFLICT (event_id, handler) DO NOTHING RETURNING event_id",
            params,
        )
        return {row[0] for row in cursor.fetchall()}


def _run_transactional(sub: handlers.Subscription, events: list[Event]) -> None:
    with transaction.atomic():
        fresh = _claim_receipts(sub.name, [e.sequence for e in events])
        todo = [e for e in events if e.sequence in fresh]
        if todo:
            sub.func(todo)


def _run_outside_transaction(sub: handlers.Subscription, events: list[Event]) -> None:
    done = set(
        HandlerReceipt.objects.filter(
            sequence_in([e.sequence for e in events], "event_id"), handler=sub.name
        ).values_list("event_id", flat=True)
    )
    todo = [e for e in events if e.sequence not in done]
    if todo:
        sub.func(todo)
        _claim_receipts(sub.name, [e.sequence for e in todo])


def apply_handler(sub: handlers.Subscription, events: list[Event]) -> dict[int, str]:
    run = _run_transactional if sub.transactional else _run_outside_transaction
    try:
        run(sub, events)
        return {}
    except TRANSIENT_ERRORS:
        raise
    except Exception:
        if len(events) == 1:
            return {events[0].sequence: _describe(sub)}
    # The batch failed: retry each event alone so only the bad ones fail.
    failures: dict[int, str] = {}
    for event in events:
        try:
            run(sub, [event])
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            failures[event.sequence] = _describe(sub)
    return failures


def _describe(sub: handlers.Subscription) -> str:
    import traceback

    return f"handler {sub.name}: {traceback.format_exc(limit=8)}"
