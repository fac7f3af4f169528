"""Scenario `relay`: EventLog delivery throughput, with every subscriber, against its ceilings.

20,000 events of the demo's mix are recorded through the services. Each repeat resets the log
to that state, *unpublished* (no sequence, no group rows, every subscriber at position 0), so a
relay does all of end-to-end delivery: publication (sequences and group rows) and every
subscriber (the broadcast, rating summaries, availability cache, re-ranking, and the message
bus on the machine's RabbitMQ, an exchange of the run's own), in one relay and in the
production shape (the broadcast in a relay of its own beside one for the rest). A drain is done
when nothing is unpublished and every subscriber's position is at the head.

Timed from the database's own stamps, so process start-up is not in the figure: from the first
publication (`min(published_at)`) to the last position move (`max(progressed_at)`). The wall
clock from spawning the relay to the done state observed by polling is reported too.

Ceilings in the same run: bare SQL doing the same reads and writes (publish: number a batch and
insert its group rows; then per subscriber: read a batch after its position, of its types, and
move the position), a bare redis-py PUBLISH loop of the broadcast's messages, and a bare kombu
publish loop of the bus's messages with publisher confirms."""

import json
import os
import re
import time

import psycopg

from bench import broker
from bench.cluster import BenchCluster
from bench.harness import ScenarioResult, progress, repeat
from bench.wsclients import peak_rss_mib
from devtools.processes import Process

EVENTS = 20_000
BATCH = 500
PUBLISH_BATCH = 1000  # events.publisher.BATCH
REPEATS = int(os.environ.get("BENCH_RELAY_REPEATS", 3))  # 1 for a trial run
SECONDARY = min(REPEATS, 2)  # repeats of the variants (--once, 2 relays, listened)
DRAIN_TIMEOUT = 600.0
POLL = 0.05  # seconds between two looks at the positions
BROADCAST = "realtime.broadcast"
BUS = "events.bus"
STEP_LINE = re.compile(r"relay step subscriber=(\S+) handled=(\d+) .* ms=([\d.]+)")

RESET_SQL = [
    # The product never unpublishes: this puts the log back to "recorded, not yet published" so
    # every repeat publishes and delivers the same 20,000 events.
    "DELETE FROM events_faileddelivery",
    "DELETE FROM events_eventgroup",
    # Events recorded by handlers during a drain (e.g. RecommendationsUpdated).
    "DELETE FROM events_event WHERE id > %(last)s",
    "UPDATE events_event SET sequence = NULL, published_at = NULL WHERE sequence IS NOT NULL",
    """UPDATE events_subscriber SET position = 0, owner = '', lease_expires_at = NULL,
        progressed_at = NULL, outage_since = NULL, outage_error = ''""",
    "DELETE FROM events_relayinstance",
]


def reset(cluster: BenchCluster, last: int) -> None:
    with cluster.sql() as conn:
        for statement in RESET_SQL:
            conn.execute(statement, {"last": last})
        for table in ("events_event", "events_eventgroup", "events_subscriber"):
            conn.execute(f"VACUUM ANALYZE {table}")
    cluster.redis_client().flushall()


def drained(conn: psycopg.Connection, names: list[str], events: int) -> bool:
    """One snapshot: nothing unpublished, at least `events` published, and every subscriber
    named is at the head (so none has anything left to do, and nothing it recorded is due)."""
    unpublished, end, behind, present = conn.execute(
        """WITH h AS (SELECT coalesce(max(sequence), 0) AS head FROM events_event)
           SELECT (SELECT count(*) FROM events_event WHERE sequence IS NULL), h.head,
                  (SELECT count(*) FROM events_subscriber s
                    WHERE s.name = ANY(%(names)s) AND s.position < h.head),
                  (SELECT count(*) FROM events_subscriber WHERE name = ANY(%(names)s))
           FROM h""",
        {"names": names},
    ).fetchone()
    return unpublished == 0 and end >= events and behind == 0 and present == len(names)


def measured_seconds(conn: psycopg.Connection) -> float:
    """From the first publication to the last position move, by the relay's own stamps."""
    return conn.execute(
        """SELECT extract(epoch FROM (SELECT max(progressed_at) FROM events_subscriber)
                                   - (SELECT min(published_at) FROM events_event))::float8"""
    ).fetchone()[0]


def relay_argv(name: str, *, once: bool = False) -> list[str]:
    import sys

    argv = [
        sys.executable, "manage.py", "relay", "--batch-size", str(BATCH), "--name", name,
        "--log-level", "INFO",
    ]  # fmt: skip
    return [*argv, "--once"] if once else argv


def drain(
    cluster: BenchCluster, names: list[str], bus: dict[str, str], *, events: int, last_id: int,
    relays: int = 1, once: bool = False, label: str, dedicated: tuple[str, ...] = (),
) -> dict:  # fmt: skip
    """Start `relays` relay processes on the reset log, and one more dedicated to each of
    `dedicated` (the production shape: the broadcast), and wait until every subscriber is at
    the head; returns seconds (by the database's stamps), wall seconds and peak RSS."""
    started = time.perf_counter()
    processes: list[Process] = []
    for subscriber in dedicated:
        name = f"bench-{label}-{subscriber}"
        # As in a deployment that runs on: a dedicated relay is live when the others start
        # (its first heartbeat, which the others read before taking subscribers).
        with cluster.sql() as conn:
            conn.execute(
                "INSERT INTO events_relayinstance (name, heartbeat_at, started_at, serves) "
                "VALUES (%s, now(), now(), %s)",
                (name, json.dumps([subscriber])),
            )
        argv = [*relay_argv(name), "--subscribers", subscriber]
        processes.append(cluster.spawn(f"{label}-{subscriber}", argv, **bus))
    processes += [
        cluster.spawn(f"{label}-{i}", relay_argv(f"bench-{label}-{i}", once=once), **bus)
        for i in range(relays)
    ]
    rss: dict[int, float] = {}
    try:
        with cluster.sql() as conn:
            while not drained(conn, names, events):
                for process in processes:
                    if process.alive():
                        rss[process.pid] = peak_rss_mib(process.pid)
                    elif not once or process.proc.returncode != 0:
                        raise RuntimeError(f"{label} exited early:\n{process.describe()}")
                if time.perf_counter() - started > DRAIN_TIMEOUT:
                    raise RuntimeError(f"{label}: not drained after {DRAIN_TIMEOUT:.0f} s")
                time.sleep(POLL)
            wall = time.perf_counter() - started
            seconds = measured_seconds(conn)
            extra = conn.execute(
                "SELECT count(*) FROM events_event WHERE sequence IS NOT NULL AND id > %s",
                (last_id,),
            ).fetchone()[0]
    finally:
        for process in processes:
            if process.alive():
                rss[process.pid] = peak_rss_mib(process.pid)
            process.close()
    steps = [STEP_LINE.search(line) for p in processes for line in p.output().splitlines()]
    return {
        "seconds": seconds,
        "wall": wall,
        "rss": list(rss.values()),
        "handler_events": extra,
        "steps": [(m[1], int(m[2]), float(m[3])) for m in steps if m],
    }


def sql_ceiling(cluster: BenchCluster, subscribers: list[dict], events: int) -> dict:
    """The relay's SQL and nothing else, one connection, serially: publish (advisory lock, the
    next unpublished ids, UPDATE ... FROM unnest, INSERT the group rows) in batches of 1,000;
    then per subscriber: read a batch after its position (its types only, up to the head) with
    the delivery columns, and move the position (fenced, as the relay does)."""
    with psycopg.connect(cluster.dsn) as conn:
        started = time.perf_counter()
        while True:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x5353_4556,))
                rows = conn.execute(
                    "SELECT id, type, groups FROM events_event WHERE sequence IS NULL "
                    "ORDER BY id LIMIT %s",
                    (PUBLISH_BATCH,),
                ).fetchall()
                if not rows:
                    break
                base = conn.execute(
                    "SELECT coalesce(max(sequence), 0) FROM events_event"
                ).fetchone()[0]
                ids = [row[0] for row in rows]
                seqs = list(range(base + 1, base + 1 + len(rows)))
                conn.execute(
                    "UPDATE events_event AS e SET sequence = n.seq, published_at = now() "
                    "FROM unnest(%s::bigint[], %s::bigint[]) AS n(id, seq) WHERE e.id = n.id",
                    (ids, seqs),
                )
                pairs = [(i, g, s, t) for (i, t, gs), s in zip(rows, seqs, strict=True) for g in gs]
                conn.execute(
                    'INSERT INTO events_eventgroup (event_id, "group", sequence, type) '
                    "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::text[])",
                    tuple(list(column) for column in zip(*pairs, strict=True)),
                )
        published = time.perf_counter() - started
        end = conn.execute("SELECT max(sequence) FROM events_event").fetchone()[0]
        per_subscriber = {}
        for sub in subscribers:
            sub_started = time.perf_counter()
            position = 0
            while position < end:
                with conn.transaction():
                    conn.execute(
                        "UPDATE events_subscriber SET owner = 'ceiling', "
                        "lease_expires_at = clock_timestamp() + interval '30 s' WHERE name = %s",
                        (sub["name"],),
                    )
                    types = "" if sub["types"] is None else "AND type = ANY(%(types)s)"
                    batch = conn.execute(
                        "SELECT id, sequence, event_id, type, version, aggregate_type, "
                        "aggregate_id, payload, groups, occurred_at FROM events_event "
                        f"WHERE sequence > %(pos)s AND sequence <= %(end)s {types} "
                        "ORDER BY sequence LIMIT %(batch)s",
                        {"pos": position, "end": end, "types": sub["types"], "batch": BATCH},
                    ).fetchall()
                    new = batch[-1][1] if len(batch) == BATCH else end
                    conn.execute(
                        "UPDATE events_subscriber SET position = %s, progressed_at = now() "
                        "WHERE name = %s AND owner = 'ceiling' AND position = %s",
                        (new, sub["name"], position),
                    )
                    position = new
            per_subscriber[sub["name"]] = time.perf_counter() - sub_started
    total = published + sum(per_subscriber.values())
    return {
        "events_per_s": events / total,
        "publish_per_s": events / published,
        "subscriber_per_s": {name: events / s for name, s in per_subscriber.items()},
    }


def run(cluster: BenchCluster) -> ScenarioResult:
    result = ScenarioResult("relay")
    bus = broker.bus_env("relay")
    try:
        return measure(cluster, result, bus)
    finally:
        broker.delete_exchange("relay")


def measure(cluster: BenchCluster, result: ScenarioResult, bus: dict[str, str]) -> ScenarioResult:
    import statistics

    events = int(os.environ.get("BENCH_RELAY_EVENTS", EVENTS))  # smaller for a trial run
    progress(f"relay: recording {events:,} events through the services (about 80 s)")
    # A trial run (BENCH_RELAY_EVENTS below 20,000) seeds a demo scaled down alike.
    scale = min(1.0, events / EVENTS)
    seeded = cluster.worker(
        "seed-relay", "--events", str(events), "--contractors", str(max(20, int(300 * scale))),
        "--jobs", str(max(100, int(5000 * scale))),
    )  # fmt: skip
    if seeded["events"] != events:
        raise RuntimeError(f"expected {events} events, recorded {seeded['events']}")
    last_id = seeded["last_id"]
    subscribers = cluster.worker("subscribers", env=bus)["subscribers"]
    names = [sub["name"] for sub in subscribers]
    progress(f"relay: subscribers {', '.join(names)}")
    mix = ", ".join(f"{kind} {count:,}" for kind, count in seeded["mix"].items())
    progress(f"relay: mix {mix}")

    runs: dict[str, list[dict]] = {
        "threads": [], "shape": [], "shape_bus": [], "nobus": [], "once": [], "two": [],
        "listened": [],
    }  # fmt: skip
    without_bus = [name for name in names if name != "events.bus"]

    def sample(kind: str, **kw) -> float:
        reset(cluster, last_id)
        if kind == "listened":
            kw["listened"] = cluster.worker("listen-groups")["groups"]
        listened = kw.pop("listened", None)
        done = drain(
            cluster, without_bus if kind == "nobus" else names,
            {"EVENT_BUS_URL": ""} if kind == "nobus" else bus,
            events=events, last_id=last_id, label=f"relay-{kind}-{len(runs[kind])}", **kw,
        )  # fmt: skip
        done["listened_groups"] = listened
        runs[kind].append(done)
        return events / done["seconds"]

    loads = []
    threads = repeat(REPEATS, "1 relay (thread per subscriber)", lambda i: sample("threads"))
    shape = repeat(
        REPEATS, "broadcast relay + 1 relay (the production shape)",
        lambda i: sample("shape", dedicated=(BROADCAST,)),
    )  # fmt: skip
    shape_bus = repeat(
        SECONDARY, "broadcast relay + bus relay + 1 relay",
        lambda i: sample("shape_bus", dedicated=(BROADCAST, BUS)),
    )  # fmt: skip
    nobus = repeat(REPEATS, "1 relay, no bus", lambda i: sample("nobus"))
    loads.append(os.getloadavg()[0])
    once = repeat(SECONDARY, "1 relay --once", lambda i: sample("once", once=True))
    two = repeat(SECONDARY, "2 relays", lambda i: sample("two", relays=2))
    listened = repeat(SECONDARY, "1 relay, every group listened", lambda i: sample("listened"))
    loads.append(os.getloadavg()[0])

    def sql_sample(i: int) -> float:
        reset(cluster, last_id)
        found = sql_ceiling(cluster, subscribers, events)
        sql_runs.append(found)
        return found["events_per_s"]

    sql_runs: list[dict] = []
    sql = repeat(REPEATS, "bare SQL publish + every subscriber's read and advance", sql_sample)
    progress("relay: bare Redis PUBLISH loop, bare kombu publish loop")
    published = cluster.worker(
        "redis-ceiling", "--events", str(events), "--batch", str(BATCH), "--repeats", str(REPEATS)
    )
    kombu_ceiling = cluster.worker(
        "bus-ceiling", "--events", str(events), "--repeats", str(REPEATS), "--batch",
        str(BATCH), env=bus,
    )  # fmt: skip

    def ratio(ours: list[float], theirs: list[float]) -> list[float]:
        """Paired by repeat (a variant with fewer repeats pairs with the first ones)."""
        return [a / b for a, b in zip(ours, theirs, strict=False)]

    result.add(
        "1 relay, every subscriber incl. the bus, publication included",
        "events/s",
        threads,
        budget=">= 5,000 events/s",
    )
    result.add(
        "production shape (a broadcast relay + 1 relay), every subscriber incl. the bus",
        "events/s",
        shape,
        budget=">= 5,000 events/s",
    )
    result.add(
        "a relay each for the broadcast and the bus + 1 relay, every subscriber",
        "events/s",
        shape_bus,
    )
    result.add(
        "1 relay, a listener in every group",
        "events/s",
        listened,
        budget=">= 5,000 events/s",
    )
    result.add("1 relay, every subscriber but the bus (no EVENT_BUS_URL)", "events/s", nobus)
    result.add("1 relay, wall clock incl. start-up", "events/s",
               [events / r["wall"] for r in runs["threads"]])  # fmt: skip
    result.add("1 relay --once (one thread, subscribers in turn)", "events/s", once)
    result.add("2 relays (subscribers split between them)", "events/s", two)
    result.add("ceiling: bare SQL publish + every subscriber's read and advance", "events/s", sql)
    result.add("ceiling: bare SQL publish only", "events/s", [r["publish_per_s"] for r in sql_runs])
    result.add("ceiling: bare Redis PUBLISH (pipelined)", "events/s", published["samples"])
    result.add("ceiling: bare kombu publish with confirms", "events/s", kombu_ceiling["samples"])
    result.add(
        f"ceiling: bare py-amqp publish, confirmed per batch of {BATCH}",
        "events/s",
        kombu_ceiling["batch_confirm_samples"],
    )
    result.add("ratio 1 relay / SQL ceiling", "x", ratio(threads, sql))
    result.add("ratio 2 relays / 1 relay", "x", ratio(two, threads))
    result.add("peak RSS, 1 relay draining", "MiB", [max(r["rss"]) for r in runs["threads"]])
    if os.environ.get("BENCH_RELAY_ALTERNATIVES", "1") == "1":
        from bench import contenders

        contenders.measure(cluster, result, last_id=last_id, bus=bus, repeats=SECONDARY,
                           relay_per_s=threads)  # fmt: skip

    # Where the time goes: per subscriber, its steps' milliseconds summed per drain (median).
    per_sub: dict[str, list[float]] = {}
    for done in runs["threads"]:
        totals: dict[str, float] = {}
        for name, _, ms in done["steps"]:
            totals[name] = totals.get(name, 0.0) + ms
        for name, ms in totals.items():
            per_sub.setdefault(name, []).append(ms / 1000)
    busiest = sorted(per_sub.items(), key=lambda item: -statistics.median(item[1]))
    for name, seconds in busiest:
        result.add(f"{name}: time in its steps per drain (1 relay)", "s", seconds)
    sql_subs = {
        name: statistics.median(r["subscriber_per_s"][name] for r in sql_runs) for name in names
    }
    handler_events = statistics.median(r["handler_events"] for r in runs["threads"])
    result.notes += [
        f"{events:,} events recorded through the services (demo seed: 300 contractors, 5,000 "
        "jobs with bookings, ratings and cancellations, topped up with job edits and new "
        f"jobs): {mix}.",
        "Publication is part of the measured work: each repeat resets the log to recorded-but-"
        "unpublished (sequence and published_at cleared, group rows deleted, every position 0, "
        "failed deliveries and the events handlers recorded deleted, VACUUM ANALYZE, own "
        "Redis flushed), so the relay numbers the events and writes their group rows, then "
        "every subscriber reads and handles them. The product never unpublishes; this is "
        "the bench's reset only.",
        f"Subscribers: {', '.join(names)}; the bus publishes to the machine's RabbitMQ "
        f"(exchange `{bus['EVENT_BUS_EXCHANGE']}`, deleted afterwards; no queue bound, so the "
        "broker confirms and drops). "
        f"`manage.py relay --batch-size {BATCH}` (one thread per subscriber, as in "
        "production); done when nothing is unpublished and every subscriber's position is the "
        f"head (polled every {POLL * 1000:.0f} ms). events/s = {events:,} / (last "
        "`progressed_at` - first `published_at`), the database's stamps, so start-up is "
        "excluded; the wall-clock figure includes it. The production shape adds "
        "`manage.py relay --subscribers realtime.broadcast` beside it; its heartbeat row is "
        "written before both start (as in a deployment that runs on), so the other relay "
        "leaves the broadcast to it from its first step; likewise with a relay of its own for "
        "the bus too (`--subscribers events.bus`).",
        "Events the re-ranking records (RecommendationsUpdated) are published and delivered "
        f"too and not counted in events/s: median {handler_events:,.0f} per drain.",
        "Nobody listens during the drains except the one marked 'a listener in every group': "
        "the broadcast sends only to groups with members. There one channel "
        "(`bench.worker listen-groups`) is joined to each of the "
        f"{runs['listened'][0]['listened_groups']:,} groups the events name.",
        "Per-subscriber time: the sum of the `relay step subscriber=... ms=` log lines of one "
        "drain (steps run in parallel threads, so these overlap).",
        "SQL ceiling, per subscriber (events/s, median): "
        + ", ".join(f"{name} {value:,.0f}" for name, value in sql_subs.items())
        + f"; publication alone {statistics.median(r['publish_per_s'] for r in sql_runs):,.0f}.",
        f"Redis ceiling: {published['messages']:,} messages (one per event and group, mean "
        f"{published['bytes']:.0f} bytes) in pipelines of {BATCH} events. kombu ceiling: "
        f"{kombu_ceiling['events']:,} CloudEvent messages, persistent, publisher confirms, "
        "one at a time on one connection (as the bus publishes); and the same messages on a "
        f"channel in confirm mode, acknowledged once per batch of {BATCH} (py-amqp directly).",
        f"Machine load (1-minute load average, {os.cpu_count()} cores, shared): "
        + ", ".join(f"{load:.1f}" for load in loads)
        + ".",
    ]
    result.extra = {
        "mix": seeded["mix"],
        "handler_events": [r["handler_events"] for r in runs["threads"]],
        "load_average": loads,
        "seed_seconds": seeded["seconds"],
        "sql_ceiling": sql_runs,
        "wall_seconds": {k: [r["wall"] for r in v] for k, v in runs.items()},
    }
    return result
