"""The long-running relay: one thread per subscriber, a publisher that listens, a heartbeat.

Invariant: no subscriber waits for another. Each runs in its own thread with its own database
connection, outage and backoff; a slow or failing subscriber holds only its own thread.
- The publisher thread LISTENs on a connection of its own (never one from Django's pool, which
  it could not give back), publishes what was recorded, and wakes the workers. After any
  reconnect it publishes before it waits, so a NOTIFY sent while it was away is not needed.
- A worker whose store is down probes it every 0.1 s to 1 s (doubling, with jitter) and
  delivers the moment a probe passes.
- The heartbeat renews this relay's leases, so a long batch never outlives its lease, and
  counts the live relays, so they split the subscribers between them. A relay dedicated to
  some subscribers (`relay --subscribers`) serves only those, and the others leave them to it
  while its heartbeat is fresh; if it dies they take them over once its leases expire.
"""

import contextlib
import itertools
import logging
import math
import random
import threading
import time
from datetime import timedelta

from django.db import DatabaseError, connection
from django.utils import timezone

from events import handlers
from events.handlers import Subscription
from events.models import RelayInstance, Subscriber
from events.publisher import PUBLISHED_CHANNEL, publish_all, wakeups
from events.recorder import NOTIFY_CHANNEL
from events.relay import LeaseLost, Outage, Relay, probe_stores

log = logging.getLogger("events.relay")

SUPERVISE_SECONDS = 5.0  # how often subscriptions that come and go (webhooks) are looked up


class Probing:
    """How long to wait before probing a store that is down: 0.1 s doubling to 1 s, +-20%.
    A probe is cheap enough to run every second, and a store that is back is found within
    about a second of it."""

    def __init__(self, first: float = 0.1, cap: float = 1.0) -> None:
        self.first, self.cap = first, cap
        self.failures = 0
        self.since: float | None = None

    @property
    def active(self) -> bool:
        return self.since is not None

    def next_delay(self) -> float:
        if self.since is None:
            self.since = time.monotonic()
        delay = min(self.cap, self.first * 2**self.failures)
        self.failures += 1
        return delay * random.uniform(0.8, 1.2)

    def duration(self) -> float:
        return time.monotonic() - self.since if self.since is not None else 0.0

    def reset(self) -> None:
        self.failures, self.since = 0, None


def close_connection() -> None:
    with contextlib.suppress(DatabaseError):
        connection.close()


def give_back_pooled_connection() -> None:
    """A pooled connection goes back after each step (threads outnumber a request pool);
    an unpooled one is kept for the thread's life."""
    if getattr(connection, "pool", None) is not None:
        close_connection()


class RelayLoop:
    def __init__(self, relay: Relay, stop: threading.Event) -> None:
        self.relay = relay
        self.stop = stop
        self.config = relay.config
        self.heartbeat_seconds = max(0.5, self.config.lease.total_seconds() / 3)
        self.live_relays = 1  # live relays that serve every subscriber
        self.dedicated_elsewhere: frozenset[str] = frozenset()  # left to other live relays
        self.workers: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self.started = timezone.now()

    # --- the supervisor (this thread) -----------------------------------------------------

    def run(self) -> None:
        # Before any worker starts: a relay that starts beside live ones takes only its share,
        # and leaves alone what a dedicated relay serves.
        self.beat()
        threads = [
            threading.Thread(target=self.publisher, name="relay-publisher", daemon=True),
            threading.Thread(target=self.heartbeat, name="relay-heartbeat", daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            while not self.stop.is_set():
                with contextlib.suppress(DatabaseError):  # the store is down: try again later
                    self.supervise()
                give_back_pooled_connection()
                self.stop.wait(SUPERVISE_SECONDS)
        finally:
            for _, (_, worker_stop) in self.workers.items():
                worker_stop.set()
            wakeups.bump()
            for thread, _ in self.workers.values():
                thread.join(timeout=10)
            for thread in threads:
                thread.join(timeout=10)
            with contextlib.suppress(DatabaseError):
                self.relay.release()
                RelayInstance.objects.filter(name=self.relay.name).delete()
            close_connection()

    def supervise(self) -> None:
        subs = {sub.name: sub for sub in self.config.serves(handlers.subscriptions())}
        self.relay.ensure_subscribers(list(subs.values()))
        for name, sub in subs.items():
            if name not in self.workers or not self.workers[name][0].is_alive():
                worker_stop = threading.Event()
                thread = threading.Thread(
                    target=self.work, args=(sub, worker_stop), name=f"relay:{name}", daemon=True
                )
                self.workers[name] = (thread, worker_stop)
                thread.start()
        for name in [n for n in self.workers if n not in subs]:  # e.g. a webhook removed
            thread, worker_stop = self.workers.pop(name)
            worker_stop.set()

    # --- a worker per subscriber ----------------------------------------------------------

    def work(self, sub: Subscription, worker_stop: threading.Event) -> None:
        probing = Probing()
        seen = wakeups.generation
        retries_at = 0.0  # when to look for failed deliveries whose retry is due
        linger = self.config.linger if sub.linger is None else sub.linger
        next_step_at = 0.0  # a step starts no sooner (the linger after the last one)
        try:
            while not (self.stop.is_set() or worker_stop.is_set()):
                if time.monotonic() < next_step_at:
                    self._wait(next_step_at - time.monotonic(), worker_stop)
                    continue
                if probing.active:
                    down = self._probe(sub)
                    if down is not None:
                        self._wait(probing.next_delay(), worker_stop)
                        continue
                if not self._fair_to_own(sub.name):
                    # Another relay delivers it: look again at the next publication (a look
                    # costs no statement unless there is a lease to give back), so a dead
                    # relay's share is taken over as soon as its lease has expired.
                    seen = wakeups.wait(seen, self.config.poll_interval)
                    continue
                retries = time.monotonic() >= retries_at
                started = time.monotonic()
                try:
                    result = self.relay.step(sub, retries=retries)
                except (Outage, DatabaseError) as exc:
                    if not probing.active:
                        log.error("subscriber %s cannot reach a store: %s", sub.name, exc)
                        self._note_outage(sub.name, str(exc))
                    close_connection()
                    self._wait(probing.next_delay(), worker_stop)
                    continue
                except LeaseLost as exc:
                    log.warning("%s", exc)
                    self._forget(sub.name)
                    continue
                except Exception:  # a bug of ours: say so loudly, keep the thread alive
                    log.exception("subscriber %s: unexpected error", sub.name)
                    close_connection()
                    self._wait(self.config.poll_interval, worker_stop)
                    continue
                finally:
                    give_back_pooled_connection()
                if retries:  # looked for again a poll interval later
                    retries_at = time.monotonic() + self.config.poll_interval
                if probing.active:
                    log.warning("subscriber %s recovered after %.1fs", sub.name, probing.duration())
                    probing.reset()
                if result.progressed:
                    # More may be waiting: a backlog is drained step after step; a stream
                    # gathers for the linger first, so the next step carries more of it.
                    if not result.full(self.config.batch_size):
                        next_step_at = started + linger
                    continue
                # Until events of its types are published (or a poll interval, for retries
                # due and to move its position past events of other types).
                seen = wakeups.wait_relevant(seen, sub.types, self.config.poll_interval)
        finally:
            with contextlib.suppress(DatabaseError):
                self.relay.release([sub.name])
            self._forget(sub.name)
            close_connection()

    def _probe(self, sub: Subscription) -> str | None:
        try:
            return probe_stores(sub)
        finally:
            close_connection()

    def _wait(self, seconds: float, worker_stop: threading.Event) -> None:
        deadline = time.monotonic() + seconds
        while not (self.stop.is_set() or worker_stop.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.stop.wait(min(left, 0.1))

    def _forget(self, name: str) -> None:
        self.relay.forget([name])

    def _fair_to_own(self, name: str) -> bool:
        """Live relays split the subscribers: a relay holding more than its share lets the
        extra ones go (at a step boundary), and takes no more than its share. Subscribers
        that a live relay is dedicated to are left to it; a dedicated relay takes all of its
        own."""
        relay = self.relay
        if self.config.dedicated_to:
            return True
        dedicated = self.dedicated_elsewhere
        with relay.held_lock:
            holds = name in relay.held
            if name not in dedicated:
                shared = len(set(self.workers) - dedicated)
                share = math.ceil(max(1, shared) / max(1, self.live_relays))
                if holds:
                    if name not in sorted(relay.held - dedicated)[share:]:
                        return True
                elif len(relay.held - dedicated) < share:
                    return True
        if holds:  # a lease it holds: give it back for the other relay to take at once
            with contextlib.suppress(DatabaseError):
                self.relay.release([name])
        return False

    def _note_outage(self, name: str, error: str) -> None:
        """For operators (events_status): best effort, the database may be what is down."""
        with contextlib.suppress(DatabaseError):
            Subscriber.objects.filter(name=name, outage_since=None).update(
                outage_since=timezone.now(), outage_error=error[:2000]
            )

    # --- the publisher ----------------------------------------------------------------------

    def publisher(self) -> None:
        probing = Probing()
        listener = None
        looked = 0.0  # when a relay that leaves publication to another last looked itself
        quiet = True  # the last wait for a notification timed out
        follows_commits = True  # LISTENing to commits (a fresh listener does)
        try:
            while not self.stop.is_set():
                try:
                    if connection.vendor != "postgresql":
                        publish_all()
                        self._sleep_until_recorded()
                        continue
                    reconnected = listener is None
                    if reconnected:
                        listener, follows_commits = self._listen(), True
                        if probing.active:
                            log.warning("publisher recovered after %.1fs", probing.duration())
                            probing.reset()
                    # After a (re)connect a whole look; else on each notification, or (a relay
                    # that leaves publication to another) when a look of its own is due.
                    eager = self._publishes_on_notice()
                    resumed = eager and not follows_commits  # the dedicated relay has gone
                    if eager != follows_commits:
                        follows_commits = self._follow_commits(listener, eager)
                    if eager or reconnected or self._look_due(looked, quiet):
                        publish_all(everything=reconnected or resumed or not eager)
                        looked = time.monotonic()
                    quiet, elsewhere = self._published_elsewhere(listener)
                    if elsewhere != frozenset():
                        wakeups.bump(elsewhere)
                except Exception as exc:  # the database is down or restarted
                    if not probing.active:
                        log.error("publisher cannot reach the database: %s", exc)
                    listener = self._close_listener(listener)
                    close_connection()
                    self.stop.wait(probing.next_delay())
        finally:
            self._close_listener(listener)
            close_connection()

    def _publishes_on_notice(self) -> bool:
        """Does this relay publish as soon as a commit is notified? A relay of every
        subscriber leaves that to a live dedicated relay (the broadcast's: a process that
        nothing else loads, so the publication lock is never held by a thread waiting for a
        busy interpreter) and only looks itself now and then, in case that relay stalls."""
        return bool(self.config.dedicated_to) or not self.dedicated_elsewhere

    def _look_due(self, looked: float, quiet: bool) -> bool:
        """A relay that leaves publication to another looks after a poll interval without
        any notification, or two poll intervals after its last look however busy the log is;
        never on a commit's notification, which the publishing relay answers within
        milliseconds, so that the two rarely race for the lock."""
        since = time.monotonic() - looked
        interval = self.config.poll_interval
        return since >= 2 * interval or (quiet and since >= interval)

    def _sleep_until_recorded(self) -> None:
        wakeups.wait(wakeups.generation, self.config.poll_interval)

    def _listen(self):
        import psycopg

        # A connection of its own, outside Django's pool (connection params without "pool").
        params = connection.get_connection_params()
        listener = psycopg.connect(**params, autocommit=True)
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        listener.execute(f"LISTEN {PUBLISHED_CHANNEL}")
        return listener

    def _follow_commits(self, listener, follow: bool) -> bool:
        """LISTEN to commits, or stop: a relay that leaves publication to a dedicated one
        needs only the other relays' publications (at 200 commits a second, draining the
        commits' notifications was a sixth of its samples). Returns `follow`."""
        listener.execute(f"{'LISTEN' if follow else 'UNLISTEN'} {NOTIFY_CHANNEL}")
        return follow

    def _published_elsewhere(self, listener) -> tuple[bool, frozenset[str] | None]:
        """Wait for a NOTIFY (at most a poll interval); whether none came (the wait timed
        out), and the types that other relays published meanwhile (None: some, of types
        unknown). This relay's own publications are left out: `publish` woke their
        subscribers already, and a wake-up of every subscriber for each of them cost each
        handler a query per publication."""
        own = connection.connection.info.backend_pid if connection.connection else None
        types: set[str] = set()
        unknown, quiet = False, True
        first = listener.notifies(timeout=self.config.poll_interval, stop_after=1)
        burst = listener.notifies(timeout=0)  # what came meanwhile
        for notice in itertools.chain(first, burst):
            quiet = False
            if notice.channel == PUBLISHED_CHANNEL and notice.pid != own:
                types.update(filter(None, notice.payload.split(",")))
                unknown |= not notice.payload
        return quiet, None if unknown else frozenset(types)

    def _close_listener(self, listener) -> None:
        if listener is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail too
                listener.close()
        return None

    # --- the heartbeat ----------------------------------------------------------------------

    def heartbeat(self) -> None:
        while not self.stop.is_set():
            self.stop.wait(self.heartbeat_seconds)  # the first beat ran before the workers
            self.beat()
        close_connection()

    def beat(self) -> None:
        """Say this relay lives, renew its leases, and count the live relays."""
        with contextlib.suppress(DatabaseError):
            now = timezone.now()
            serves = sorted(self.config.dedicated_to)
            RelayInstance.objects.update_or_create(
                name=self.relay.name, defaults={"heartbeat_at": now, "serves": serves},
                create_defaults={"heartbeat_at": now, "started_at": self.started, "serves": serves},
            )  # fmt: skip
            with self.relay.held_lock:
                held = sorted(self.relay.held)
            for name in held:
                self.relay.acquire(name)  # renews: a long batch keeps its lease
            self._count_live_relays(now)
        give_back_pooled_connection()

    def _count_live_relays(self, now) -> None:
        """Relays whose heartbeat is fresh: how many serve every subscriber (this one too,
        unless it is dedicated), and which subscribers the others are dedicated to."""
        horizon = now - timedelta(seconds=3 * self.heartbeat_seconds)
        live = RelayInstance.objects.filter(heartbeat_at__gte=horizon).values_list("name", "serves")
        dedicated: set[str] = set()
        everything = 0
        for name, serves in live:
            if not serves:
                everything += 1
            elif name != self.relay.name:
                dedicated.update(serves)
        self.live_relays = max(1, everything)
        self.dedicated_elsewhere = frozenset(dedicated)
