"""Faults and the monitor that measures their effect.

Faults: SIGKILL a relay and start a new one; stop and start the private redis-server on the
same port; terminate every PostgreSQL backend of the chaos database except the observer's.

The monitor samples the EventLog every 0.25 s: the number pending and the oldest pending age
(relay lag). A fault counts as recovered at the first sample where nothing recorded before
the fault is still pending and the lag is under a second again."""

import contextlib
import random
import threading
import time
from dataclasses import dataclass, field

import psycopg

from chaos.cluster import OBSERVER_APP, Cluster

# Not yet handled by every subscriber: unpublished, after the lowest position, or waiting
# for a retry. Events are identified by id (recording order) since unpublished ones have no
# sequence yet.
PENDING_SQL = """
WITH low AS (SELECT coalesce(min(position), 0) AS position FROM events_subscriber)
SELECT count(*), coalesce(extract(epoch FROM now() - min(occurred_at)), 0), coalesce(min(id), 0)
FROM events_event, low
WHERE sequence IS NULL OR sequence > low.position
   OR id IN (SELECT event_id FROM events_faileddelivery WHERE NOT dead)
"""


@dataclass
class Fault:
    kind: str
    started: float  # monotonic
    detail: str
    max_id: int  # the newest event recorded when the fault hit
    recovered_after: float | None = None


@dataclass
class Sample:
    at: float
    pending: int
    lag: float


class Monitor:
    def __init__(self, cluster: Cluster, interval: float = 0.25) -> None:
        self.cluster = cluster
        self.interval = interval
        self.samples: list[Sample] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self.conn: psycopg.Connection | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)
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

    def pending(self) -> tuple[int, float, int]:
        count, lag, oldest = self.query(PENDING_SQL)[0]
        return count, float(lag), oldest

    def record_fault(self, kind: str, detail: str) -> Fault:
        fault = Fault(kind, time.monotonic(), detail, self.max_id())
        with self.lock:
            self.faults.append(fault)
        return fault

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                count, lag, oldest = self.pending()
            except psycopg.Error:
                continue
            now = time.monotonic()
            self.samples.append(Sample(now, count, lag))
            with self.lock:
                for fault in self.faults:
                    if fault.recovered_after is not None:
                        continue
                    if (count == 0 or oldest > fault.max_id) and lag < 1.0:
                        fault.recovered_after = now - fault.started

    def max_lag(self) -> float:
        return max((s.lag for s in self.samples), default=0.0)


@dataclass
class FaultInjector:
    cluster: Cluster
    monitor: Monitor
    seed: int
    min_gap: float = 3.0
    max_gap: float = 6.0
    counts: dict[str, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    KINDS = ("relay_sigkill", "redis_restart", "pg_terminate_backends")

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="faults", daemon=True)
        self.counts = dict.fromkeys(self.KINDS, 0)
        self.lock = threading.Lock()  # a fault and a relay restart never overlap the stop

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        cycle: list[str] = []
        while not self.stop_event.wait(self.rng.uniform(self.min_gap, self.max_gap)):
            if not cycle:  # every kind once per cycle, in a random order
                cycle = list(self.KINDS)
                self.rng.shuffle(cycle)
            kind = cycle.pop()
            try:
                getattr(self, kind)()
                self.counts[kind] += 1
            except Exception as exc:  # report and keep injecting
                self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")

    def _note(self, text: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {text}")

    def relay_sigkill(self) -> None:
        alive = [name for name, p in self.cluster.relays.items() if p.alive()]
        if not alive:
            return
        name = self.rng.choice(alive)
        victim = self.cluster.relays[name]
        self.monitor.record_fault("relay_sigkill", name)
        victim.kill()
        self._note(f"SIGKILL relay {name} pid={victim.pid}")
        self.stop_event.wait(self.rng.uniform(0.3, 1.5))
        slot = name.split(".")[0]
        replacement = f"{slot}.{self.cluster.relay_starts + 1}"
        self.cluster.start_relay(replacement)
        self._note(f"started relay {replacement}")

    def redis_restart(self) -> None:
        self.monitor.record_fault("redis_restart", f"port {self.cluster.redis_port}")
        self.cluster.stop_redis()
        self._note("redis stopped")
        self.stop_event.wait(self.rng.uniform(0.5, 2.0))
        self.cluster.start_redis()
        self._note("redis started")

    def pg_terminate_backends(self) -> None:
        fault = self.monitor.record_fault("pg_terminate_backends", "")
        rows = self.monitor.query(
            "SELECT pid, application_name, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() AND application_name <> %s",
            (self.cluster.database, OBSERVER_APP),
        )
        fault.detail = f"{len(rows)} backends"
        self._note(f"terminated {len(rows)} PostgreSQL backends")
