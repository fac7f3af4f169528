"""Faults and the monitor that measures their effect.

Faults: SIGKILL a relay and start a new one; stop and start the private redis-server on the
same port; terminate every PostgreSQL backend of the chaos database except the observer's;
stop (cleanly or by SIGKILL) and start the private RabbitMQ.

Each fault has a start and an end: the moment the store answers again (the redis-server pings,
the broker takes an AMQP connection), or the kill/termination itself. The monitor samples,
every 0.25 s, what each subscriber still has to do: the events after its position and its
failed deliveries waiting for a retry (and the unpublished events, for the publisher). A fault
counts as recovered at the first sample after its end where every subscriber has handled
everything recorded before that end (the poison subscriber's deliberate failures aside).
"""

import contextlib
import random
import threading
import time
from dataclasses import dataclass, field

import psycopg

from chaos.background import Background
from chaos.cluster import OBSERVER_APP, Cluster
from chaos.subscribers import POISON

PUBLISHER = "(publisher)"
RETRIES = " retries"  # suffix of the key of a subscriber's failed deliveries awaiting a retry

# Per subscriber: what it has not handled yet (after its position, or failed and waiting for a
# retry), and what is not published yet. Events are identified by id (recording order) since
# unpublished ones have no sequence yet.
PENDING_SQL = f"""
WITH pending AS (
    SELECT s.name AS key, e.id, e.occurred_at
    FROM events_subscriber s JOIN events_event e ON e.sequence > s.position
    UNION ALL
    SELECT f.subscriber_id || '{RETRIES}', e.id, e.occurred_at
    FROM events_faileddelivery f JOIN events_event e ON e.id = f.event_id
    WHERE NOT f.dead
    UNION ALL
    SELECT '{PUBLISHER}', id, occurred_at FROM events_event WHERE sequence IS NULL
)
SELECT key, count(*), min(id), extract(epoch FROM now() - min(occurred_at))::float
FROM pending GROUP BY key
"""

# Whose work waits while a store is down (their probes fail, by design): their lag during the
# fault is the fault's recovery, measured apart, not relay lag.
WAITS_FOR = {
    "redis_restart": frozenset(
        {"realtime.broadcast", "scheduling.availability_cache", "scheduling.rerank"}
    ),
    "bus_restart": frozenset({"events.bus"}),
}
STORE_FAULTS = frozenset({"redis_restart", "pg_terminate_backends", "bus_restart"})
DELIBERATE = frozenset({POISON + RETRIES})  # the poison subscriber's retries: by design


@dataclass
class Fault:
    kind: str
    started: float  # monotonic
    started_wall: float  # time.time(), to compare with events' occurredAt
    detail: str
    ended: float | None = None  # when the store answered again
    ended_wall: float | None = None
    max_id: int = 0  # the newest event recorded when the fault ended
    recovered_after: float | None = None  # seconds from `ended`
    # Who still had events recorded before the end, at the last sample before it recovered:
    # the subscribers that recovered last (what a late recovery waited for).
    behind: tuple[str, ...] = ()

    @property
    def recovered_at(self) -> float | None:
        if self.ended is None or self.recovered_after is None:
            return None
        return self.ended + self.recovered_after

    def window(self, grace: float) -> tuple[float, float]:
        """From the fault until it recovered (or `grace` after its end, if later)."""
        end = self.ended if self.ended is not None else self.started
        if self.recovered_after is not None:
            return self.started, end + max(self.recovered_after, grace)
        return self.started, end + grace


@dataclass
class Pending:
    count: int
    oldest_id: int
    lag: float


@dataclass
class Sample:
    at: float
    by_key: dict[str, Pending]

    def lag(self, skip=frozenset()) -> float:
        return max((p.lag for k, p in self.by_key.items() if k not in skip), default=0.0)

    def behind(self, max_id: int) -> tuple[str, ...]:
        """The subscribers (and retries, and the publisher) that have not handled everything
        recorded up to event `max_id`; none when every one has."""
        return tuple(sorted(
            k for k, p in self.by_key.items()
            if k not in DELIBERATE and p.count and p.oldest_id <= max_id
        ))  # fmt: skip


class Monitor(Background):
    JOIN_TIMEOUT = 10.0

    def __init__(self, cluster: Cluster, interval: float = 0.25) -> None:
        super().__init__(name="monitor")
        self.cluster = cluster
        self.interval = interval
        self.samples: list[Sample] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.conn: psycopg.Connection | None = None

    def stop(self) -> None:
        super().stop()
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()

    def query(self, sql: str, params=()) -> list[tuple]:
        for attempt in range(3):
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = self.cluster.observer()
                return self.conn.execute(sql, params).fetchall()
            except psycopg.Error:
                with contextlib.suppress(Exception):
                    if self.conn is not None:
                        self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.2)
        return []

    def head(self) -> int:
        """The highest published sequence: where a websocket client resumes from."""
        return self.query("SELECT coalesce(max(sequence), 0) FROM events_event")[0][0]

    def max_id(self) -> int:
        return self.query("SELECT coalesce(max(id), 0) FROM events_event")[0][0]

    def snapshot(self) -> Sample:
        rows = self.query(PENDING_SQL)
        return Sample(time.monotonic(), {k: Pending(n, low, lag) for k, n, low, lag in rows})

    def pending(self) -> tuple[int, float, int]:
        """Everything left to do, the poison subscriber's retries included: (count, lag of
        the oldest apart from those retries, its id)."""
        sample = self.snapshot()
        count = sum(p.count for p in sample.by_key.values())
        oldest = min((p.oldest_id for p in sample.by_key.values()), default=0)
        return count, sample.lag(DELIBERATE), oldest

    # --- faults -------------------------------------------------------------------------------

    def record_fault(self, kind: str, detail: str) -> Fault:
        fault = Fault(kind, time.monotonic(), time.time(), detail)
        with self.lock:
            self.faults.append(fault)
        return fault

    def end_fault(self, fault: Fault) -> None:
        """The store answers again (or the fault was instantaneous): recovery counts from now."""
        max_id = self.max_id()
        with self.lock:
            fault.max_id = max_id
            fault.ended, fault.ended_wall = time.monotonic(), time.time()

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                sample = self.snapshot()
            except psycopg.Error:
                continue
            self.samples.append(sample)
            with self.lock:
                for fault in self.faults:
                    if fault.ended is None or fault.recovered_after is not None:
                        continue
                    behind = sample.behind(fault.max_id)
                    if behind:
                        fault.behind = behind
                    else:
                        fault.recovered_after = max(0.0, sample.at - fault.ended)

    # --- what the samples say -------------------------------------------------------------------

    def excused(self, key: str, at: float, recovery_bound: float) -> bool:
        """Is this subscriber waiting, by design, for a store that is down (until its fault
        recovered, at most `recovery_bound` after the store came back)?"""
        if key in DELIBERATE:
            return True
        name = key.removesuffix(RETRIES)
        for fault in self.faults:
            if name not in WAITS_FOR.get(fault.kind, ()):
                continue
            if fault.ended is None:
                until = float("inf")
            elif fault.recovered_after is not None:
                until = fault.ended + min(fault.recovered_after, recovery_bound)
            else:
                until = fault.ended + recovery_bound
            if fault.started <= at < until:
                return True
        return False

    def relay_lag(self, recovery_bound: float) -> tuple[float, str]:
        """The largest lag of any subscriber (or the publisher) not excused: (seconds, which
        subscriber and when)."""
        worst, where = 0.0, ""
        started = self.samples[0].at if self.samples else 0.0
        for sample in self.samples:
            for key, pending in sample.by_key.items():
                if pending.lag > worst and not self.excused(key, sample.at, recovery_bound):
                    worst, where = pending.lag, f"{key} at t={sample.at - started:.1f}s"
        return worst, where

    def lag_by_key(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for sample in self.samples:
            for key, pending in sample.by_key.items():
                found[key] = max(found.get(key, 0.0), pending.lag)
        return found

    def max_lag(self) -> float:
        return max((s.lag(DELIBERATE) for s in self.samples), default=0.0)


@dataclass
class FaultInjector(Background):
    cluster: Cluster
    monitor: Monitor
    seed: int
    min_gap: float = 3.0
    max_gap: float = 6.0
    kinds: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    KINDS = ("relay_sigkill", "redis_restart", "pg_terminate_backends", "bus_restart")
    RECOVERY_WAIT = 15.0
    JOIN_TIMEOUT = 60.0

    def __post_init__(self) -> None:
        super().__init__(name="faults")
        self.rng = random.Random(self.seed)
        if not self.kinds:
            self.kinds = tuple(
                k for k in self.KINDS if k != "bus_restart" or self.cluster.broker is not None
            )
        self.counts = dict.fromkeys(self.kinds, 0)

    def _run(self) -> None:
        cycle: list[str] = []
        while not self.stop_event.wait(self.rng.uniform(self.min_gap, self.max_gap)):
            if not cycle:  # every kind once per cycle, in a random order
                cycle = list(self.kinds)
                self.rng.shuffle(cycle)
            kind = cycle.pop()
            try:
                fault = getattr(self, kind)()
                self.counts[kind] += 1
            except Exception as exc:  # report and keep injecting
                self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            # One fault at a time: the next waits until this one recovered (or RECOVERY_WAIT
            # passed), so each recovery is measured alone.
            deadline = time.monotonic() + self.RECOVERY_WAIT
            while (
                fault is not None
                and fault.recovered_after is None
                and time.monotonic() < deadline
                and not self.stop_event.wait(0.1)
            ):
                pass  # fmt: skip

    def _note(self, text: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {text}")

    def relay_sigkill(self) -> Fault | None:
        alive = [name for name, p in self.cluster.relays.items() if p.alive()]
        if not alive:
            return None
        name = self.rng.choice(alive)
        victim = self.cluster.relays[name]
        fault = self.monitor.record_fault("relay_sigkill", name)
        victim.kill()
        self.monitor.end_fault(fault)  # its subscribers wait for their leases from here
        self._note(f"SIGKILL relay {name} pid={victim.pid}")
        self.stop_event.wait(self.rng.uniform(0.3, 1.5))
        slot = name.split(".")[0]
        replacement = f"{slot}.{self.cluster.relay_starts + 1}"
        self.cluster.start_relay(replacement)
        self._note(f"started relay {replacement}")
        return fault

    def redis_restart(self) -> Fault:
        fault = self.monitor.record_fault("redis_restart", f"port {self.cluster.redis_port}")
        self.cluster.stop_redis()
        self._note("redis stopped")
        self.stop_event.wait(self.rng.uniform(0.5, 2.0))
        self.cluster.start_redis()
        self.monitor.end_fault(fault)
        self._note("redis started")
        return fault

    def pg_terminate_backends(self) -> Fault:
        fault = self.monitor.record_fault("pg_terminate_backends", "")
        rows = self.monitor.query(
            "SELECT pid, application_name, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() AND application_name <> %s",
            (self.cluster.database, OBSERVER_APP),
        )
        self.monitor.end_fault(fault)
        fault.detail = f"{len(rows)} backends"
        self._note(f"terminated {len(rows)} PostgreSQL backends")
        return fault

    def bus_restart(self) -> Fault:
        broker = self.cluster.broker
        assert broker is not None
        crash = self.rng.random() < 0.5
        fault = self.monitor.record_fault("bus_restart", "SIGKILL" if crash else "SIGTERM")
        broker.stop(crash=crash)
        self._note(f"rabbitmq stopped ({fault.detail})")
        self.stop_event.wait(self.rng.uniform(0.5, 2.0))
        started = time.monotonic()
        broker.start()
        self.monitor.end_fault(fault)
        fault.detail += f", down {fault.ended - fault.started:.1f}s"
        self._note(f"rabbitmq started in {time.monotonic() - started:.1f}s")
        return fault
