"""The relay: at-least-once delivery from the EventLog to every subscriber, each on its own.

Each subscriber (events.handlers) has a position in the published log and its own failures
(events.models). One step of one subscriber (docs/events.md has the long form):
1. Own it: take or renew its lease, stamped with the database's clock. Only the owner works.
2. Read the events published after its position (of the types it takes), and its failed
   deliveries whose retry is due.
3. Deliver, outside any transaction for network subscribers, or inside the transaction that
   also moves the position for transactional handlers (exactly-once effects).
4. If the handler raised, probe the stores it needs (the database, and the subscription's
   probe: Redis, the broker). A probe that fails is an outage: nothing moves, no attempt is
   spent, and the subscriber probes again within a second or two. Probes that pass mean the
   events failed: each is retried alone (a lone event too, once, if the database dropped the
   connection meanwhile: it failed with the store, which is back), and those that still fail
   get a FailedDelivery row (backoff, then dead) while the position moves past them, so a
   poison event blocks nothing.
5. Move the position, fenced on the owner and the old position: a relay that lost its lease
   changes nothing, and its transactional effects roll back with it.
A relay killed at any instant leaves the position where it was; the next owner delivers again
from there (duplicates for network subscribers, which consumers drop by id; none for
transactional handlers).
"""

import logging
import os
import random
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from events import handlers, metrics
from events.handlers import PartialFailure, Subscription
from events.models import Event, FailedDelivery, Subscriber
from events.publisher import head, publish_all

log = logging.getLogger("events.relay")

# What delivery reads of an event: the envelope and the handlers' inputs.
DELIVERY_COLUMNS = (
    "id", "sequence", "event_id", "type", "version", "aggregate_type", "aggregate_id",
    "payload", "groups", "occurred_at",
)  # fmt: skip


_TABLE = Event._meta.db_table
_COLUMNS = ", ".join(DELIVERY_COLUMNS)
NEXT_EVENTS_SQL = (
    f"SELECT {_COLUMNS} FROM {_TABLE} WHERE sequence > %s ORDER BY sequence LIMIT %s"
)  # fmt: skip
# The head (highest published sequence) comes with the batch, in the same round trip: a
# subscriber of some types moves past the events it does not take up to there. A LEFT JOIN
# so that the head row comes even when no event of those types is due.
NEXT_EVENTS_OF_TYPES_SQL = (
    f"SELECT log.head, due.* FROM (SELECT max(sequence) AS head FROM {_TABLE}) AS log "
    f"LEFT JOIN LATERAL (SELECT {_COLUMNS} FROM {_TABLE} WHERE sequence > %s "
    "AND sequence <= log.head AND type IN ({types}) ORDER BY sequence LIMIT %s) AS due ON true "
    "ORDER BY due.sequence"
)
# The position moves in one statement (one round trip, its own transaction for a network
# subscriber's clean batch), fenced on the owner and the old position; the one-row FROM sets
# this transaction's commit not to wait for the WAL flush (see Relay._advance).
_SUBSCRIBERS = Subscriber._meta.db_table
ADVANCE_SQL = (
    f"UPDATE {_SUBSCRIBERS} SET position = %s, progressed_at = %s, outage_since = NULL, "
    "outage_error = '' FROM (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush "
    "WHERE name = %s AND owner = %s AND position = %s"
)


class Outage(Exception):
    """A store a subscriber needs is unreachable: nothing moved, no attempt was spent."""


class LeaseLost(Exception):
    """Another relay owns the subscriber now: this relay's step changed nothing."""


# A handler's effects (the cache, the averages, the rankings, the bus, webhooks) may trail a
# commit by this much more; in return a step carries ten events at 200/s, not one or two.
DEFAULT_LINGER = 0.05  # seconds


@dataclass(frozen=True)
class RelayConfig:
    batch_size: int = 500
    poll_interval: float = 1.0
    lease: timedelta = timedelta(seconds=30)
    # Seconds between the starts of a subscriber's steps under a steady stream, unless the
    # subscription says otherwise (the broadcast: 0). `manage.py relay` uses DEFAULT_LINGER.
    linger: float = 0.0
    # The subscribers this relay is dedicated to (say, the broadcast in a process of its own,
    # so no handler shares its interpreter); empty: every subscriber.
    dedicated_to: frozenset[str] = frozenset()

    def serves(self, subs: list[Subscription]) -> list[Subscription]:
        return [sub for sub in subs if not self.dedicated_to or sub.name in self.dedicated_to]


@dataclass
class StepResult:
    subscriber: str
    owned: bool = True
    handled: int = 0  # events handled now (new ones and successful retries)
    failed: int = 0  # events that failed now (to retry later, or dead)
    dead: int = 0
    position: int = 0
    seconds: float = 0.0
    # Of the new events' part of the step, seconds spent on "read" (the batch), "deliver"
    # (the handler) and "advance" (the position, with a transactional handler's commit).
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def progressed(self) -> bool:
        return self.handled + self.failed > 0

    def full(self, batch_size: int) -> bool:
        """Whether the step handled or failed a batch's worth (new events and retries alike):
        more are likely waiting."""
        return self.handled + self.failed >= batch_size


def default_relay_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def describe_failure(sub: Subscription) -> str:
    return f"{sub.name}: {traceback.format_exc(limit=8)}"


def database_dropped(held: object) -> bool:
    """Did the database drop this thread's connection (`held` before the handler ran) under
    the handler? Django closes a connection whose rollback failed (a terminated backend) and
    reconnects, so the probe that follows passes: the store failed, not the events, and they
    deserve one immediate second run."""
    return connection.connection is not held


def probe_stores(sub: Subscription) -> str | None:
    """None when the database and the subscriber's own store answer, else what failed."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return f"database: {type(exc).__name__}: {exc}"
    if sub.probe is not None:
        try:
            sub.probe()
        except Exception as exc:
            return f"{sub.name}: {type(exc).__name__}: {exc}"
    return None


class Relay:
    def __init__(self, config: RelayConfig | None = None, *, name: str | None = None) -> None:
        self.config = config or RelayConfig()
        self.name = name or default_relay_name()
        # The subscribers whose lease this relay holds, as far as it knows (the heartbeat
        # renews them, from the moment they are taken: a first batch may be a long one).
        self.held: set[str] = set()
        self.held_lock = threading.Lock()
        # Each held subscriber's position and when its lease was last renewed (monotonic): a
        # step within a third of the lease of the renewal reads neither (this relay is the
        # only writer of a position it holds, and every move is fenced anyway).
        self.positions: dict[str, int] = {}
        self.renewed: dict[str, float] = {}

    # --- ownership ---------------------------------------------------------------------------

    def ensure_subscribers(self, subs: list[Subscription]) -> None:
        """Create the rows of subscribers seen for the first time (before anything new is
        published, so a subscriber that starts at the end still gets what is unpublished)."""
        known = set(
            Subscriber.objects.filter(name__in=[s.name for s in subs]).values_list(
                "name", flat=True
            )
        )
        missing = [sub for sub in subs if sub.name not in known]
        if missing:
            end = head()
            Subscriber.objects.bulk_create(
                [Subscriber(name=s.name, position=end if s.starts_at == "end" else 0)
                 for s in missing],
                ignore_conflicts=True,
            )  # fmt: skip

    def acquire(self, name: str) -> int | None:
        """Take or renew the lease of subscriber `name`; its position, or None if another
        live relay owns it."""
        table = Subscriber._meta.db_table
        if connection.vendor == "postgresql":
            # The database's clock, not this host's: relays on hosts whose clocks differ
            # still agree on when a lease has expired.
            sql = (
                f"UPDATE {table} SET owner = %s, lease_expires_at = clock_timestamp() + %s "
                "WHERE name = %s AND (owner = %s OR owner = '' OR lease_expires_at IS NULL "
                "OR lease_expires_at < clock_timestamp()) RETURNING position"
            )
            params = [self.name, self.config.lease, name, self.name]
        else:  # the embedded default: one process, one clock
            now = timezone.now()
            sql = (
                f"UPDATE {table} SET owner = %s, lease_expires_at = %s WHERE name = %s AND "
                "(owner = %s OR owner = '' OR lease_expires_at IS NULL OR lease_expires_at < %s) "
                "RETURNING position"
            )
            params = [self.name, now + self.config.lease, name, self.name, now]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        with self.held_lock:
            if row is None:
                self.held.discard(name)
                self.positions.pop(name, None)
            else:
                self.held.add(name)
                self.positions[name], self.renewed[name] = row[0], time.monotonic()
        return None if row is None else row[0]

    def _held_position(self, name: str) -> int | None:
        """The position of a subscriber whose lease this relay renewed lately, else None."""
        fresh = self.config.lease.total_seconds() / 3
        with self.held_lock:
            if name in self.positions and time.monotonic() - self.renewed.get(name, 0) < fresh:
                return self.positions[name]
        return None

    def release(self, names: list[str] | None = None) -> None:
        """Give up leases (all of this relay's, or the named ones) so another relay may
        take over at once."""
        held = Subscriber.objects.filter(owner=self.name)
        if names is not None:
            held = held.filter(name__in=names)
        held.update(owner="", lease_expires_at=None)
        self.forget(names)

    def forget(self, names: list[str] | None = None) -> None:
        with self.held_lock:
            if names is None:
                self.held.clear()
                self.positions.clear()
            else:
                self.held.difference_update(names)
                for name in names:
                    self.positions.pop(name, None)

    def _advance(self, name: str, old: int, new: int) -> None:
        """Move the position, fenced: only the owner, only from where it started.

        Its commit does not wait for the WAL to reach the disk (a flush every step of every
        subscriber). That is safe: a position that a crash of PostgreSQL loses
        is one that moves again from where it was, so the events are delivered again (a
        network subscriber's consumers drop the duplicates by id; a transactional handler's
        effects were in the same lost transaction). The publisher keeps waiting for its
        flush: a sequence handed out is never handed out again."""
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(ADVANCE_SQL, [new, timezone.now(), name, self.name, old])
                moved = cursor.rowcount
        else:
            moved = Subscriber.objects.filter(name=name, owner=self.name, position=old).update(
                position=new, progressed_at=timezone.now(), outage_since=None, outage_error=""
            )
        if not moved:
            self.forget([name])
            raise LeaseLost(f"{name}: another relay took over at position {old}")
        with self.held_lock:
            self.positions[name] = new

    def _still_owner(self, name: str) -> None:
        if not Subscriber.objects.filter(name=name, owner=self.name).update(
            progressed_at=timezone.now()
        ):
            self.forget([name])
            raise LeaseLost(f"{name}: another relay took over")

    # --- one step of one subscriber ------------------------------------------------------------

    def step(self, sub: Subscription, *, retries: bool = True) -> StepResult:
        """One step of `sub`: its new events, and (with `retries`) its failed deliveries
        whose retry is due (the loop looks for those once a poll interval, not every step)."""
        started = time.monotonic()
        position = self._held_position(sub.name)
        if position is None:
            position = self.acquire(sub.name)
        if position is None and not Subscriber.objects.filter(name=sub.name).exists():
            self.ensure_subscribers([sub])  # seen for the first time
            position = self.acquire(sub.name)
        if position is None:
            return StepResult(sub.name, owned=False)
        result = StepResult(sub.name, position=position)
        self._deliver_new(sub, position, result)
        if retries:
            self._retry_due(sub, result)
        result.seconds = time.monotonic() - started
        if result.progressed:
            metrics.STEP_SECONDS.labels(subscriber=sub.name).observe(result.seconds)
            log.info(
                "relay step subscriber=%s handled=%d failed=%d dead=%d position=%d ms=%.1f "
                "relay=%s %s",
                sub.name, result.handled, result.failed, result.dead, result.position,
                result.seconds * 1000, self.name,
                " ".join(f"{phase}={s * 1000:.1f}" for phase, s in result.phases.items()),
            )  # fmt: skip
        return result

    def _deliver_new(self, sub: Subscription, position: int, result: StepResult) -> None:
        started = time.perf_counter()
        batch, new_position = self._next_batch(sub, position)
        read = time.perf_counter()
        result.phases["read"] = read - started
        if new_position <= position:
            return
        if sub.transactional:
            with transaction.atomic():
                failures = self._run_isolated(sub, batch)
                delivered = time.perf_counter()
                self._record_failures(sub, batch, failures, result)
                self._advance(sub.name, position, new_position)
        else:
            failures = self._run_isolated(sub, batch)
            delivered = time.perf_counter()
            if failures:
                with transaction.atomic():
                    self._record_failures(sub, batch, failures, result)
                    self._advance(sub.name, position, new_position)
            else:
                self._advance(sub.name, position, new_position)
        result.phases["deliver"] = delivered - read
        result.phases["advance"] = time.perf_counter() - delivered
        result.handled += len(batch) - len(failures)
        result.position = new_position
        if len(batch) > len(failures):
            metrics.DELIVERED.labels(subscriber=sub.name).inc(len(batch) - len(failures))

    def _next_batch(self, sub: Subscription, position: int) -> tuple[list[Event], int]:
        """The events after `position` that `sub` takes (a batch at most), and the position
        it reaches with them. Published sequences are a gap-free prefix, so a subscriber of
        every type reads from its position alone; one of some types also needs the head, to
        move past the events it does not take (on PostgreSQL in the same statement). Plain
        SQL, written once: a step at a steady rate handles an event or two, and building the
        ORM query cost more than running it."""
        size = self.config.batch_size
        if sub.all_types:
            batch = list(Event.objects.raw(NEXT_EVENTS_SQL, [position, size]))
            return batch, batch[-1].sequence if batch else position
        types = sorted(sub.types)
        if connection.vendor == "postgresql":
            sql = NEXT_EVENTS_OF_TYPES_SQL.format(types=", ".join(["%s"] * len(types)))
            rows = list(Event.objects.raw(sql, [position, *types, size]))
            end = rows[0].head or 0
            batch = [event for event in rows if event.pk is not None]  # not the head row alone
        else:  # SQLite has no LATERAL: two statements
            end = head()
            batch = list(
                Event.objects.filter(sequence__gt=position, sequence__lte=end, type__in=types)
                .only(*DELIVERY_COLUMNS)
                .order_by("sequence")[:size]
            )
        return batch, batch[-1].sequence if len(batch) == size else max(end, position)

    def _run(self, sub: Subscription, events: list[Event]) -> None:
        if sub.transactional:
            with transaction.atomic():  # a savepoint inside the step's transaction
                sub.func(events)
        else:
            sub.func(events)

    def _run_isolated(self, sub: Subscription, events: list[Event]) -> dict[int, str]:
        """Run the handler on the batch; if it raises, on each event alone. Returns
        {event id: error} of the events that failed; raises Outage if a store is down."""
        if not events:
            return {}
        held = connection.connection
        try:
            self._run(sub, events)
            return {}
        except PartialFailure as exc:
            by_sequence = {event.sequence: event.id for event in events}
            failures = {
                by_sequence[sequence]: f"{sub.name}: {error}"
                for sequence, error in exc.failures.items()
                if sequence in by_sequence
            }
            if len(failures) == len(events):
                self._raise_if_outage(sub, next(iter(failures.values())))
            return failures
        except Exception:
            error = describe_failure(sub)
        dropped = database_dropped(held)
        self._raise_if_outage(sub, error)
        if len(events) == 1 and not dropped:
            return {events[0].id: error}
        failures: dict[int, str] = {}
        for event in events:
            try:
                self._run(sub, [event])
            except Exception:
                failures[event.id] = describe_failure(sub)
        if len(failures) == len(events):
            self._raise_if_outage(sub, error)  # the store may have gone meanwhile
        return failures

    def _raise_if_outage(self, sub: Subscription, error: str) -> None:
        down = probe_stores(sub)
        if down is not None:
            raise Outage(f"{down} (after {error.strip().splitlines()[-1]})")

    def _record_failures(
        self, sub: Subscription, batch: list[Event], failures: dict[int, str], result: StepResult
    ) -> None:
        if not failures:
            return
        now = timezone.now()
        dead = sub.max_attempts <= 1
        delay = timedelta(seconds=0 if dead else backoff(sub, 1))
        FailedDelivery.objects.bulk_create(
            [
                FailedDelivery(
                    subscriber_id=sub.name, event_id=event.id, attempts=1, dead=dead,
                    next_attempt_at=now + delay, first_failed_at=now, last_failed_at=now,
                    last_error=failures[event.id][:10_000],
                )
                for event in batch
                if event.id in failures
            ],
            ignore_conflicts=True,  # a failure row that a replay left behind stays as it is
        )  # fmt: skip
        result.failed += len(failures)
        metrics.FAILURES.labels(subscriber=sub.name).inc(len(failures))
        if dead:
            self._log_dead(sub, [e for e in batch if e.id in failures], failures, result)
        for event in batch:
            if event.id in failures:
                log.warning(
                    "delivery failed subscriber=%s sequence=%d type=%s attempt=1: %s",
                    sub.name, event.sequence, event.type, last_line(failures[event.id]),
                )  # fmt: skip

    def _retry_due(self, sub: Subscription, result: StepResult) -> None:
        due = list(
            FailedDelivery.objects.filter(
                subscriber_id=sub.name, dead=False, next_attempt_at__lte=timezone.now()
            )
            .select_related("event")
            .order_by("next_attempt_at", "id")[: self.config.batch_size]
        )
        for failure in due:
            self._retry(sub, failure, result)

    def _retry(self, sub: Subscription, failure: FailedDelivery, result: StepResult) -> None:
        if sub.transactional:
            with transaction.atomic():
                self._still_owner(sub.name)  # locks the subscriber row until this commits
                error = self._attempt(sub, failure.event)
                self._settle(sub, failure, error, result)
        else:
            error = self._attempt(sub, failure.event)  # a network call: no transaction open
            with transaction.atomic():
                self._still_owner(sub.name)
                self._settle(sub, failure, error, result)

    def _attempt(self, sub: Subscription, event: Event, *, again: bool = True) -> str | None:
        """Run the handler on one event: None if it succeeded, else the error (raises Outage
        if a store is down, so no attempt is spent; runs it once more at once if the database
        dropped the connection meanwhile)."""
        held = connection.connection
        try:
            self._run(sub, [event])
            return None
        except Exception:
            error = describe_failure(sub)
        dropped = database_dropped(held)
        self._raise_if_outage(sub, error)
        if dropped and again:
            return self._attempt(sub, event, again=False)
        return error

    def _settle(
        self, sub: Subscription, failure: FailedDelivery, error: str | None, result: StepResult
    ) -> None:
        """Record how a retry went, fenced on the attempt count: a retry that a replay or
        another relay overtook changes nothing."""
        event = failure.event
        same = FailedDelivery.objects.filter(pk=failure.pk, attempts=failure.attempts, dead=False)
        if error is None:
            if same.delete()[0]:
                result.handled += 1
                metrics.DELIVERED.labels(subscriber=sub.name).inc()
            return
        now = timezone.now()
        attempts = failure.attempts + 1
        dead = attempts >= sub.max_attempts
        next_at = now if dead else now + timedelta(seconds=backoff(sub, attempts))
        if not same.update(
            attempts=attempts, dead=dead, last_failed_at=now, next_attempt_at=next_at,
            last_error=error[:10_000],
        ):  # fmt: skip
            return
        result.failed += 1
        metrics.FAILURES.labels(subscriber=sub.name).inc()
        if dead:
            self._log_dead(sub, [event], {event.id: error}, result)
        else:
            log.warning(
                "delivery failed subscriber=%s sequence=%d type=%s attempt=%d: %s",
                sub.name, event.sequence, event.type, attempts, last_line(error),
            )  # fmt: skip

    def _log_dead(
        self, sub: Subscription, events: list[Event], errors: dict[int, str], result: StepResult
    ) -> None:
        for event in events:
            result.dead += 1
            metrics.DEAD.labels(subscriber=sub.name).inc()
            log.error(
                "event dead subscriber=%s sequence=%d type=%s error=%s",
                sub.name, event.sequence, event.type, last_line(errors[event.id]),
            )  # fmt: skip

    # --- loops ---------------------------------------------------------------------------------

    def drain(
        self,
        subs: list[Subscription] | None = None,
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> int:
        """Publish and deliver until no subscriber has anything left that is due; returns
        how many deliveries (event x subscriber) succeeded or failed. Raises Outage."""
        subs = self.config.serves(handlers.subscriptions()) if subs is None else subs
        self.ensure_subscribers(subs)
        total = 0
        while not should_stop():
            publish_all()
            moved = 0
            for sub in subs:
                while not should_stop():
                    result = self.step(sub)
                    moved += result.handled + result.failed
                    if not result.progressed:
                        break
            total += moved
            if moved == 0:
                break
        return total

    def run_forever(self, stop: threading.Event) -> None:
        from events.relay_loop import RelayLoop

        RelayLoop(self, stop).run()


def backoff(sub: Subscription, failures: int) -> float:
    """The subscriber's delay after `failures` failed attempts, with jitter (0.8x to 1.2x)."""
    schedule = sub.retry_schedule
    base = schedule[min(failures, len(schedule)) - 1] if schedule else 0.0
    return base * random.uniform(0.8, 1.2)


def last_line(error: str) -> str:
    lines = error.strip().splitlines()
    return lines[-1] if lines else ""
