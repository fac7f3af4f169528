"""Scenario `relay`: EventLog delivery throughput against its ceilings.

20,000 events of the demo's mix are recorded through the services, then drained by
`manage.py relay --once --batch-size 500` (one process, then two in parallel), with handlers and
group sends. The Django start-up of `relay --once` (measured on an empty outbox) is subtracted.
In the same run: a bare SQL claim-and-mark loop over the same table and batch size, and a bare
redis-py PUBLISH loop of the same messages."""

import re
import subprocess
import sys
import time

import psycopg

from bench.cluster import BenchCluster
from bench.harness import ScenarioResult, progress, repeat
from chaos.cluster import ROOT

EVENTS = 20_000
BATCH = 500
REPEATS = 3

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
    cluster.redis_client().flushall()


def relay_argv(name: str) -> list[str]:
    return [
        sys.executable, "manage.py", "relay", "--once", "--batch-size", str(BATCH),
        "--name", name, "--log-level", "WARNING",
    ]  # fmt: skip


def run_relays(cluster: BenchCluster, count: int) -> tuple[float, int]:
    """Start `count` relays at once; returns (wall seconds until all exited, events drained)."""
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            relay_argv(f"bench-relay-{i}"),
            cwd=ROOT,
            env=cluster.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    drained = 0
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"relay failed ({proc.returncode}):\n{out}\n{err}")
        drained += int(re.search(r"drained (\d+) event", out)[1])
    return time.perf_counter() - started, drained


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

    # Start-up of `relay --once` on an empty outbox (Django set-up, imports, one empty claim).
    with cluster.sql() as conn:
        conn.execute("UPDATE events_event SET status = 'delivered'")
    startup = repeat(REPEATS, "relay start-up (empty outbox)", lambda i: run_relays(cluster, 1)[0])

    def one(count: int) -> tuple[list[float], list[float]]:
        net, wall = [], []

        def sample(i: int) -> float:
            reset(cluster, last)
            seconds, drained = run_relays(cluster, count)
            if drained < EVENTS:
                raise RuntimeError(f"{count} relay(s) drained {drained} of {EVENTS}")
            wall.append(EVENTS / seconds)
            net.append(EVENTS / (seconds - statistics_median(startup)))
            return net[-1]

        repeat(REPEATS, f"{count} relay(s) draining {EVENTS:,} events", sample)
        return net, wall

    one_net, one_wall = one(1)
    two_net, two_wall = one(2)

    def sql_sample(i: int) -> float:
        reset(cluster, last)
        return sql_ceiling(cluster)

    sql = repeat(REPEATS, "bare SQL claim-and-mark", sql_sample)
    progress("relay: bare Redis PUBLISH loop")
    published = cluster.worker(
        "redis-ceiling", "--events", str(EVENTS), "--batch", str(BATCH), "--repeats", str(REPEATS)
    )

    result.add(
        "1 relay, end to end (start-up subtracted)",
        "events/s",
        one_net,
        budget=">= 3,000 events/s",
    )
    result.add("1 relay, wall clock incl. start-up", "events/s", one_wall)
    result.add("2 relays in parallel (start-up subtracted)", "events/s", two_net)
    result.add("2 relays, wall clock incl. start-up", "events/s", two_wall)
    result.add("relay --once start-up (empty outbox)", "s", startup)
    result.add("ceiling: bare SQL claim-and-mark", "events/s", sql)
    result.add("ceiling: bare Redis PUBLISH (pipelined)", "events/s", published["samples"])
    med = statistics_median
    result.add(
        "ratio 1 relay / SQL ceiling",
        "x",
        [a / b for a, b in zip(one_net, sql, strict=True)],
    )
    result.add(
        "ratio 1 relay / Redis ceiling",
        "x",
        [a / b for a, b in zip(one_net, published["samples"], strict=True)],
    )
    result.add(
        "ratio 2 relays / 1 relay",
        "x",
        [a / b for a, b in zip(two_net, one_net, strict=True)],
    )
    result.notes += [
        f"{EVENTS:,} events recorded through the services (demo seed: 300 contractors, 5,000 "
        f"jobs with bookings, ratings and cancellations, topped up with job edits and new "
        f"jobs): {mix}.",
        f"Relays: `manage.py relay --once --batch-size {BATCH}`, every handler subscribed "
        "(broadcast group sends, availability cache warming, re-ranking, rating summaries). "
        "Between repeats: delivery state reset to pending, receipts deleted, events the "
        "handlers recorded deleted, VACUUM ANALYZE, own Redis flushed.",
        f"Start-up subtracted: the median wall time of `relay --once` on an empty outbox "
        f"({med(startup):.2f} s), measured in the same run.",
        f"Redis ceiling: {published['messages']:,} messages (one per event and group, mean "
        f"{published['bytes']:.0f} bytes, the broadcast's JSON envelope) in pipelines of "
        f"{BATCH} events; events/s counts events, not messages.",
        "SQL ceiling: one psycopg connection, per batch one transaction: SELECT the relay's "
        f"columns ... FOR UPDATE SKIP LOCKED LIMIT {BATCH}, UPDATE ... SET status = "
        "'delivered'.",
    ]
    result.not_measured += [
        "Alternative: `transaction.on_commit` + `group_send` in the request.",
        "Alternative: a PostgreSQL job queue (procrastinate).",
    ]
    result.extra = {"mix": seeded["mix"], "startup_s": startup, "seed_seconds": seeded["seconds"]}
    return result


def statistics_median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)
