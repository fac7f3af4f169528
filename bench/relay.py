"""Scenario `relay`: EventLog delivery throughput against its ceilings and its alternatives.

20,000 events of the demo's mix are recorded through the services, then drained by
`manage.py relay --once --batch-size 500` (one process, then two in parallel), with handlers and
group sends. The Django start-up of `relay --once` (measured on an empty outbox) is subtracted.
In the same run: a bare SQL claim-and-mark loop over the same table and batch size, a bare
redis-py PUBLISH loop of the same messages, and the alternatives of `bench.alternatives` on the
same 20,000 events and handlers: `transaction.on_commit` delivery in the recording process, and
a procrastinate job per event drained by one procrastinate worker (these two on every 10th
event). Peak RSS of every relay and
worker process is read from `os.wait4` (ru_maxrss)."""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import psycopg

from bench import alternatives
from bench.cluster import BenchCluster
from bench.harness import ScenarioResult, progress, repeat
from chaos.cluster import ROOT

EVENTS = 20_000
BATCH = 500
REPEATS = 3
# Jobs one procrastinate worker runs at once (its default is 1). Each job costs two commits
# of its own (fetch, finish) around a few milliseconds of handlers in a thread; 4 overlaps
# those waits (on a 1,500-event trial it was 1.2x to 2.4x faster than 1), so the alternative is
# measured in its better configuration.
PROCRASTINATE_CONCURRENCY = 4
# The alternatives deliver every 10th of the 20,000 events (2,000, the same mix in the same
# order): at their speed the full set would take most of an hour per round.
ALTERNATIVE_EVERY = 10

RESET_SQL = [
    # Events recorded by handlers during a drain (e.g. RecommendationsUpdated) go, so every
    # repeat starts from the same 20,000.
    "DELETE FROM events_eventgroup WHERE event_id > %(last)s",
    "DELETE FROM events_event WHERE sequence > %(last)s",
    "DELETE FROM events_handlerreceipt",
    """UPDATE events_event SET status = 'pending', attempts = 0, claimed_by = '',
        lease_expires_at = NULL, delivered_at = NULL, last_error = '',
        available_at = LEAST(available_at, now())""",
]


def reset(cluster: BenchCluster, last: int) -> None:
    with cluster.sql() as conn:
        for statement in RESET_SQL:
            conn.execute(statement, {"last": last})
        conn.execute("VACUUM ANALYZE events_event")
        conn.execute("VACUUM ANALYZE events_handlerreceipt")
        if procrastinate_ready(conn):
            # CASCADE: procrastinate's own tables that reference jobs (its job events).
            conn.execute("TRUNCATE procrastinate_jobs CASCADE")
    cluster.redis_client().flushall()


def procrastinate_ready(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()[0]


@dataclass
class Exited:
    seconds: float  # wall time from start to exit
    stdout: str
    rss_mib: float  # peak resident set size (ru_maxrss)


class Child:
    """A child process with its output in temporary files, reaped with `os.wait4` so its peak
    RSS is known (ru_maxrss of that one process; `python manage.py` is exec'd directly)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 (closed in wait())
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 (closed in wait())
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.out, stderr=self.err)

    def wait(self) -> Exited:
        _, status, usage = os.wait4(self.proc.pid, 0)
        seconds = time.perf_counter() - self.started
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        outputs = []
        for stream in (self.out, self.err):
            stream.seek(0)
            outputs.append(stream.read().decode(errors="replace"))
            stream.close()
        if self.proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(self.proc.args)} failed ({self.proc.returncode}):\n"
                + "\n".join(outputs)
            )
        return Exited(seconds, outputs[0], usage.ru_maxrss / 1024)


def relay_argv(name: str) -> list[str]:
    return [
        sys.executable, "manage.py", "relay", "--once", "--batch-size", str(BATCH),
        "--name", name, "--log-level", "WARNING",
    ]  # fmt: skip


def run_relays(cluster: BenchCluster, count: int) -> tuple[float, int, list[float]]:
    """Start `count` relays at once; returns (wall seconds until all exited, events drained,
    peak RSS of each relay in MiB)."""
    started = time.perf_counter()
    children = [Child(relay_argv(f"bench-relay-{i}"), cluster.env()) for i in range(count)]
    exits = [child.wait() for child in children]
    drained = sum(int(re.search(r"drained (\d+) event", e.stdout)[1]) for e in exits)
    return time.perf_counter() - started, drained, [e.rss_mib for e in exits]


def run_alternative(cluster: BenchCluster, command: str, last: int) -> dict:
    """`python -m bench.alternatives COMMAND --last LAST` in the mode's environment."""
    mode = "on_commit" if command == "deliver-on-commit" else "procrastinate"
    sample = ["--last", str(last), "--every", str(ALTERNATIVE_EVERY)]
    child = Child(
        [sys.executable, "-m", "bench.alternatives", command, *sample],
        cluster.env(**alternatives.env(mode)),
    )
    done = child.wait()
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "rss_mib": done.rss_mib}


def run_procrastinate_worker(cluster: BenchCluster) -> Exited:
    """One procrastinate worker (`--one-shot`: it exits when the queue is empty)."""
    argv = alternatives.worker_argv(
        "procrastinate", concurrency=PROCRASTINATE_CONCURRENCY, one_shot=True
    )
    return Child(argv, cluster.env(**alternatives.worker_env("procrastinate"))).wait()


def procrastinate_jobs(cluster: BenchCluster) -> dict[str, int]:
    with cluster.sql() as conn:
        return dict(
            conn.execute("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1")
        )


def sql_ceiling(cluster: BenchCluster) -> float:
    """Claim (FOR UPDATE SKIP LOCKED, reading the rows a relay reads) and mark delivered, batch
    by batch, one transaction per batch as the relay's claim: no handlers, no Django."""
    with psycopg.connect(cluster.dsn) as conn:
        started = time.perf_counter()
        done = 0
        while True:
            with conn.transaction():
                rows = conn.execute(
                    """SELECT sequence, event_id, type, version, aggregate_type, aggregate_id,
                              payload, groups, occurred_at, attempts
                       FROM events_event
                       WHERE status = 'pending' AND available_at <= now()
                         AND (lease_expires_at IS NULL OR lease_expires_at < now())
                       ORDER BY sequence
                       FOR UPDATE SKIP LOCKED
                       LIMIT %s""",
                    (BATCH,),
                ).fetchall()
                if not rows:
                    break
                conn.execute(
                    """UPDATE events_event SET status = 'delivered', delivered_at = now(),
                              attempts = attempts + 1
                       WHERE sequence = ANY(%s)""",
                    ([row[0] for row in rows],),
                )
            done += len(rows)
        return done / (time.perf_counter() - started)


def run(cluster: BenchCluster) -> ScenarioResult:
    result = ScenarioResult("relay")
    progress(f"relay: recording {EVENTS:,} events through the services (about 80 s)")
    seeded = cluster.worker("seed-relay", "--events", str(EVENTS))
    if seeded["events"] != EVENTS:
        raise RuntimeError(f"expected {EVENTS} events, recorded {seeded['events']}")
    with cluster.sql() as conn:
        last = conn.execute("SELECT max(sequence) FROM events_event").fetchone()[0]
    mix = ", ".join(f"{kind} {count:,}" for kind, count in seeded["mix"].items())
    progress(f"relay: mix {mix}")
    alternatives.prepare(cluster, "procrastinate")
    med = statistics_median

    # Start-up of `relay --once` on an empty outbox (Django set-up, imports, one empty claim),
    # and of a one-shot procrastinate worker on an empty queue.
    with cluster.sql() as conn:
        conn.execute("UPDATE events_event SET status = 'delivered'")
    startup = repeat(REPEATS, "relay start-up (empty outbox)", lambda i: run_relays(cluster, 1)[0])
    worker_startup = repeat(
        REPEATS,
        "procrastinate worker start-up (empty queue)",
        lambda i: run_procrastinate_worker(cluster).seconds,
    )

    # Ours and the alternatives side by side: each round runs all three on the same events, so
    # the shared machine's drift hits them alike.
    one_net, one_wall, one_rss, on_commit, deferral = [], [], [], [], []
    queue_net, queue_wall, queue_rss = [], [], []
    handler_events: dict[str, list[int]] = {"relay": [], "on_commit": [], "procrastinate": []}
    loads: list[float] = []  # the machine is shared: its 1-minute load average after each round
    for round_no in range(REPEATS):
        reset(cluster, last)
        seconds, drained, rss = run_relays(cluster, 1)
        if drained < EVENTS:
            raise RuntimeError(f"1 relay drained {drained} of {EVENTS}")
        one_wall.append(EVENTS / seconds)
        one_net.append(EVENTS / (seconds - med(startup)))
        one_rss += rss
        handler_events["relay"].append(drained - EVENTS)

        reset(cluster, last)
        done = run_alternative(cluster, "deliver-on-commit", last)
        alternative_events = done["events"]
        on_commit.append(done["events"] / done["seconds"])
        handler_events["on_commit"].append(done["handler_events"])

        reset(cluster, last)
        deferred = run_alternative(cluster, "defer-jobs", last)
        deferral.append(deferred["jobs"] / deferred["seconds"])
        exited = run_procrastinate_worker(cluster)
        jobs = procrastinate_jobs(cluster)
        if set(jobs) != {"succeeded"} or jobs["succeeded"] < deferred["jobs"]:
            raise RuntimeError(f"the procrastinate worker left jobs: {jobs}")
        queue_wall.append(deferred["jobs"] / exited.seconds)
        queue_net.append(deferred["jobs"] / (exited.seconds - med(worker_startup)))
        queue_rss.append(exited.rss_mib)
        handler_events["procrastinate"].append(jobs["succeeded"] - deferred["jobs"])
        loads.append(os.getloadavg()[0])
        progress(
            f"round {round_no + 1}/{REPEATS}: 1 relay {one_net[-1]:,.0f}, on_commit "
            f"{on_commit[-1]:,.0f}, procrastinate {queue_net[-1]:,.0f} events/s"
        )

    two_net, two_wall, two_rss = [], [], []

    def two_sample(i: int) -> float:
        reset(cluster, last)
        seconds, drained, rss = run_relays(cluster, 2)
        if drained < EVENTS:
            raise RuntimeError(f"2 relays drained {drained} of {EVENTS}")
        two_wall.append(EVENTS / seconds)
        two_net.append(EVENTS / (seconds - med(startup)))
        two_rss.extend(rss)
        return two_net[-1]

    repeat(REPEATS, f"2 relays draining {EVENTS:,} events", two_sample)

    # The drains above run with nobody listening, so the broadcast skips every group (it looks
    # up members first). Here one channel is joined to every group: every group gets its sends.
    listened_net: list[float] = []
    listened_groups = 0

    def listened_sample(i: int) -> float:
        nonlocal listened_groups
        reset(cluster, last)
        listened_groups = cluster.worker("listen-groups")["groups"]
        seconds, drained, _ = run_relays(cluster, 1)
        if drained < EVENTS:
            raise RuntimeError(f"1 relay drained {drained} of {EVENTS}")
        listened_net.append(EVENTS / (seconds - med(startup)))
        return listened_net[-1]

    repeat(REPEATS, "1 relay, every group listened", listened_sample)

    def sql_sample(i: int) -> float:
        reset(cluster, last)
        return sql_ceiling(cluster)

    sql = repeat(REPEATS, "bare SQL claim-and-mark", sql_sample)
    progress("relay: bare Redis PUBLISH loop")
    published = cluster.worker(
        "redis-ceiling", "--events", str(EVENTS), "--batch", str(BATCH), "--repeats", str(REPEATS)
    )

    def ratio(ours: list[float], theirs: list[float]) -> list[float]:
        return [a / b for a, b in zip(ours, theirs, strict=True)]

    result.add(
        "1 relay, end to end (start-up subtracted)",
        "events/s",
        one_net,
        budget=">= 3,000 events/s",
    )
    result.add("1 relay, wall clock incl. start-up", "events/s", one_wall)
    result.add(
        "1 relay, a listener in every group (start-up subtracted)",
        "events/s",
        listened_net,
        budget=">= 3,000 events/s",
    )
    result.add("2 relays in parallel (start-up subtracted)", "events/s", two_net)
    result.add("2 relays, wall clock incl. start-up", "events/s", two_wall)
    result.add("relay --once start-up (empty outbox)", "s", startup)
    result.add("alternative: on_commit delivery in the request", "events/s", on_commit)
    result.add(
        f"alternative: procrastinate, 1 worker (concurrency {PROCRASTINATE_CONCURRENCY}), "
        "start-up subtracted",
        "events/s",
        queue_net,
    )
    result.add("alternative: procrastinate, wall clock incl. start-up", "events/s", queue_wall)
    result.add("procrastinate worker start-up (empty queue)", "s", worker_startup)
    result.add("procrastinate deferral, one job per event (not in the above)", "jobs/s", deferral)
    result.add("ceiling: bare SQL claim-and-mark", "events/s", sql)
    result.add("ceiling: bare Redis PUBLISH (pipelined)", "events/s", published["samples"])
    result.add("ratio 1 relay / on_commit", "x", ratio(one_net, on_commit))
    result.add("ratio 1 relay / procrastinate worker", "x", ratio(one_net, queue_net))
    result.add("ratio 1 relay / SQL ceiling", "x", ratio(one_net, sql))
    result.add("ratio 1 relay / Redis ceiling", "x", ratio(one_net, published["samples"]))
    result.add("ratio 2 relays / 1 relay", "x", ratio(two_net, one_net))
    result.add("peak RSS, 1 relay draining", "MiB", one_rss)
    result.add("peak RSS, each of 2 relays draining", "MiB", two_rss)
    result.add("peak RSS, procrastinate worker draining", "MiB", queue_rss)
    spawned = ", ".join(
        f"{mode} {med(counts):,.0f}" for mode, counts in handler_events.items() if counts
    )
    result.notes += [
        f"{EVENTS:,} events recorded through the services (demo seed: 300 contractors, 5,000 "
        f"jobs with bookings, ratings and cancellations, topped up with job edits and new "
        f"jobs): {mix}.",
        f"Relays: `manage.py relay --once --batch-size {BATCH}`, every handler subscribed "
        "(broadcast group sends, availability cache warming, re-ranking, rating summaries). "
        "Between repeats: delivery state reset to pending, receipts deleted, events the "
        "handlers recorded deleted, procrastinate's jobs deleted, VACUUM ANALYZE, own Redis "
        "flushed.",
        f"Start-up subtracted: the median wall time of `relay --once` on an empty outbox "
        f"({med(startup):.2f} s), measured in the same run; likewise the procrastinate "
        f"worker's ({med(worker_startup):.2f} s on an empty queue).",
        "Alternatives (`bench/alternatives.py`), on every "
        f"{ALTERNATIVE_EVERY}th of the same events ({alternative_events:,}, the same mix in "
        "the same order), same subscribed handlers and groups, measured in rounds "
        "alternating with 1 relay (ratios pair each round): "
        "on_commit = what the requests would run after their commits, every handler on "
        "[event] one event at a time in one process (the broadcast's group_send through the "
        "same channel layer), timed over the deliveries only, no receipts, no retries, no "
        "durability; procrastinate = one job per event (`bench.deliver_event`, deferred "
        "through Django's connection, 500 per transaction, timed separately as the deferral "
        "figure), then `manage.py procrastinate worker --one-shot --concurrency "
        f"{PROCRASTINATE_CONCURRENCY}` (procrastinate {procrastinate_version()}, kept database "
        "connections) draining the queue: each job loads its event and runs every handler "
        "on [event]; wall time until it exits, start-up subtracted.",
        "Events the handlers record (RecommendationsUpdated) are delivered too, each way's own "
        f"way, and are not counted in events/s; recorded per drain (median): {spawned}.",
        "Nobody listens during the drains except the one marked 'a listener in every group': "
        "the broadcast looks up which groups have members (one pipelined round trip per "
        "batch) and sends only to those, as it does in production for offline contractors "
        "and unwatched regions. In that drain one channel (`bench.worker listen-groups`) is "
        f"joined to each of the {listened_groups:,} groups the events name, so every group "
        "gets its group_send.",
        "Peak RSS: ru_maxrss from os.wait4 of each relay / worker process, per drain.",
        f"Machine load (1-minute load average on {os.cpu_count()} cores) after each round of "
        f"1 relay and the alternatives: {', '.join(f'{load:.1f}' for load in loads)}.",
        f"Redis ceiling: {published['messages']:,} messages (one per event and group, mean "
        f"{published['bytes']:.0f} bytes, the broadcast's JSON envelope) in pipelines of "
        f"{BATCH} events; events/s counts events, not messages.",
        "SQL ceiling: one psycopg connection, per batch one transaction: SELECT the relay's "
        f"columns ... FOR UPDATE SKIP LOCKED LIMIT {BATCH}, UPDATE ... SET status = "
        "'delivered'.",
    ]
    result.extra = {
        "mix": seeded["mix"],
        "startup_s": startup,
        "procrastinate_startup_s": worker_startup,
        "handler_events": handler_events,
        "load_average_after_rounds": loads,
        "seed_seconds": seeded["seconds"],
    }
    return result


def procrastinate_version() -> str:
    from importlib import metadata

    return metadata.version("procrastinate")


def statistics_median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)
