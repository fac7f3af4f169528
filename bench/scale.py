"""Scenario `scale`: the EventLog at 10,000,000 published events.

The log is filled with straight SQL (no services, no relay): events_event rows with their
sequence, published_at, payload and groups, and their events_eventgroup rows (sequence, type),
over 20 regions and 2,000 contractors, with the demo's mix of types; the first 10% are older
than the 90-day retention horizon. The event tables' indexes are dropped for the fill and
built again afterwards from their own definitions, then VACUUM ANALYZE. Every subscriber is at
the head.

Then, in a Django process (`bench.scaleworker`), each read a client or operator repeats, timed
over many calls, with the EXPLAIN (ANALYZE, BUFFERS) of every query it issues: a websocket
resume 50 events behind (a 2-region dispatcher, a contractor), the board's resume point (the
head), pages of /api/events (`check_cursor` + `events_page`, as the view calls them) with and
without a type or aggregate filter, a subscriber's step (`Relay.step` of a do-nothing
subscriber 5,000 events behind), `events_status` and /metrics collection.

The cost of recording and of retention, under the booking load of scenario `booking` (daphne
and a relay, 20 client threads, `bench.booking.load_round`): booking p95 on an empty log
(before the fill; its events are truncated afterwards), again on the filled log, and while
`events.retention.prune` removes the old rows; with the prune's longest batch (the longest
any of its row locks is held), lock waits sampled from pg_locks, the WAL it wrote, and the
tables' dead tuples and size after it.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.booking import _answers, load_round, server_argv
from bench.cluster import BenchCluster
from bench.harness import ScenarioResult, load_note, percentile, progress
from devtools.processes import ROOT, free_port, wait_until

EVENTS = 10_000_000
REGIONS = 20
CONTRACTORS = 2_000
JOBS = 1_000_000
OLD_SHARE = float(os.environ.get("BENCH_SCALE_OLD_SHARE", "0.1"))  # older than the horizon
BOOKING_SECONDS = float(os.environ.get("BENCH_SCALE_BOOKING_SECONDS", "15"))
EVENT_TABLES = ["events_event", "events_eventgroup"]
CHUNK = 500_000
SUBSCRIBERS = [
    "contractors.rating_summary",
    "realtime.broadcast",
    "scheduling.availability_cache",
    "scheduling.rerank",
]
# g % 20 -> type: the demo's mix, job edits first.
TYPES = (
    ["JobUpdated"] * 6
    + ["JobCreated"] * 3
    + ["JobAssigned"] * 2
    + ["JobRescheduled", "JobCancelled", "ScheduleUpdated", "ScheduleUpdated"]
    + ["JobStarted", "JobCompleted", "ContractorRated"]
    + ["RecommendationsUpdated"] * 2
)
WITH_CONTRACTOR = {
    "JobAssigned", "JobRescheduled", "ScheduleUpdated", "JobStarted", "JobCompleted",
    "ContractorRated",
}  # fmt: skip
CONTRACTOR_AGGREGATE = {"ScheduleUpdated", "ContractorRated"}


def size() -> int:
    """BENCH_SCALE_EVENTS: a smaller log for a trial run."""
    return int(os.environ.get("BENCH_SCALE_EVENTS", EVENTS))


def sql_list(values) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


def event_select(first: int, last: int, total: int) -> str:
    """The SELECT that generates events first..last (id = sequence = g) of a log of `total`."""
    old = int(total * OLD_SHARE)
    types = sql_list(TYPES)
    with_contractor = sql_list(sorted(WITH_CONTRACTOR))
    contractor_aggregate = sql_list(sorted(CONTRACTOR_AGGREGATE))
    return f"""
        SELECT g AS id, g AS sequence, gen_random_uuid() AS event_id, t AS type, 1 AS version,
               CASE WHEN t = ANY({contractor_aggregate}) THEN 'contractor' ELSE 'job' END
                   AS aggregate_type,
               CASE WHEN t = ANY({contractor_aggregate}) THEN c::text ELSE j::text END
                   AS aggregate_id,
               jsonb_build_object(
                   'jobId', j, 'region', 'r' || r, 'priority', 'normal',
                   'contractorId', CASE WHEN t = ANY({with_contractor}) THEN c END,
                   'updatedFields', jsonb_build_array('priority'),
                   'timestamp', to_char(at, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) AS payload,
               CASE WHEN t = ANY({with_contractor})
                    THEN jsonb_build_array('dispatch/r' || r, 'contractor/' || c)
                    ELSE jsonb_build_array('dispatch/r' || r) END AS groups,
               at AS occurred_at, at + interval '10 ms' AS published_at
        FROM (
            SELECT g, ({types})[g % 20 + 1] AS t,
                   -- hashes, so region, contractor and job do not follow the type
                   (hashint8(g) & 2147483647) % {REGIONS} AS r,
                   (hashint8(g + {total}) & 2147483647) % {CONTRACTORS} + 1 AS c,
                   (hashint8(g + 2 * {total}) & 2147483647) % {JOBS} + 1 AS j,
                   CASE WHEN g <= {old}
                        THEN now() - interval '120 days' + g * (interval '25 days' / {old})
                        ELSE now() - interval '89 days'
                             + (g - {old}) * (interval '89 days' / {max(total - old, 1)}) END AS at
            FROM generate_series({first}::bigint, {last}::bigint) AS g
        ) AS s"""


def drop_indexes(conn, tables: list[str]) -> list[str]:
    """Drop every index and unique/foreign-key constraint of `tables` but the primary keys;
    returns the statements that create them again."""
    again: list[str] = []
    for table in tables:
        constraints = conn.execute(
            """SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint
               WHERE conrelid = %s::regclass AND contype IN ('u', 'f')""",
            (table,),
        ).fetchall()
        for name, definition, kind in constraints:
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            # A foreign key is added NOT VALID: checking 15 million rows proves nothing here.
            suffix = " NOT VALID" if kind == "f" else ""
            again.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}{suffix}')
        indexes = conn.execute(
            """SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x
               JOIN pg_class i ON i.oid = x.indexrelid
               WHERE x.indrelid = %s::regclass AND NOT x.indisprimary""",
            (table,),
        ).fetchall()
        for name, definition in indexes:
            conn.execute(f'DROP INDEX "{name}"')
            again.insert(0, definition)
    return again


def fill(cluster: BenchCluster, total: int) -> dict:
    timings: dict[str, float] = {}
    with cluster.sql() as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET synchronous_commit = off")
        again = drop_indexes(conn, ["events_eventgroup", "events_event"])
        started = time.perf_counter()
        for first in range(1, total + 1, CHUNK):
            last = min(total, first + CHUNK - 1)
            conn.execute(
                "INSERT INTO events_event (id, sequence, event_id, type, version, aggregate_type,"
                " aggregate_id, payload, groups, occurred_at, published_at)"
                + event_select(first, last, total)
            )
            conn.execute(
                'INSERT INTO events_eventgroup (event_id, "group", sequence, type) '
                "SELECT e.id, grp, e.sequence, e.type FROM events_event e, "
                "jsonb_array_elements_text(e.groups) AS grp WHERE e.id BETWEEN %s AND %s",
                (first, last),
            )
            progress(f"scale: {last:,} / {total:,} events ({time.perf_counter() - started:.0f} s)")
        timings["insert_s"] = time.perf_counter() - started
        started = time.perf_counter()
        for statement in again:
            conn.execute(statement)
        timings["index_s"] = time.perf_counter() - started
        conn.execute("SELECT setval(pg_get_serial_sequence('events_event', 'id'), %s)", (total,))
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE events_event")
        conn.execute("VACUUM ANALYZE events_eventgroup")
        timings["vacuum_s"] = time.perf_counter() - started
        conn.execute(
            "INSERT INTO events_subscriber (name, position, owner, outage_error) "
            "SELECT unnest(%s::text[]), %s, '', '' "
            "ON CONFLICT (name) DO UPDATE SET position = %s",
            (SUBSCRIBERS, total, total),
        )
        conn.execute("UPDATE events_subscriber SET position = %s", (total,))
        sizes = dict(
            conn.execute(
                """SELECT relname, pg_total_relation_size(oid) FROM pg_class
                   WHERE relname IN ('events_event', 'events_eventgroup')"""
            ).fetchall()
        )
        groups = conn.execute("SELECT count(*) FROM events_eventgroup").fetchone()[0]
    return {**timings, "bytes": sizes, "group_rows": groups}


def scaleworker(cluster: BenchCluster, part: str, total: int) -> subprocess.Popen:
    out = cluster.workdir / f"scale-{part}.json"
    return subprocess.Popen(
        [sys.executable, "-m", "bench.scaleworker", part, "--events", str(total),
         "--out", str(out)],
        cwd=ROOT,
        env=cluster.env(),
    )  # fmt: skip


def worker_result(cluster: BenchCluster, part: str, worker: subprocess.Popen) -> dict:
    if worker.wait(timeout=3600) != 0:
        raise RuntimeError(f"bench.scaleworker {part} failed ({worker.returncode})")
    return json.loads((cluster.workdir / f"scale-{part}.json").read_text())


def measure(cluster: BenchCluster, total: int) -> dict:
    return worker_result(cluster, "reads", scaleworker(cluster, "reads", total))


# --- booking and retention under load ---------------------------------------------------------


def drained(cluster: BenchCluster) -> bool:
    """Everything recorded is published and every subscriber is at the head."""
    with cluster.sql() as conn:
        return conn.execute(
            """SELECT NOT EXISTS (SELECT 1 FROM events_event WHERE sequence IS NULL)
                 AND (SELECT min(position) FROM events_subscriber)
                     >= (SELECT coalesce(max(sequence), 0) FROM events_event)"""
        ).fetchone()[0]


class Traffic:
    """daphne and a relay on the cluster's stores (scenario `booking`'s shape), and the
    booking load against them."""

    def __init__(self, cluster: BenchCluster, label: str) -> None:
        self.port = free_port()
        self.web = cluster.spawn(f"daphne-{label}", server_argv(self.port, "daphne"))
        self.relay = cluster.spawn(
            f"relay-{label}",
            [sys.executable, "manage.py", "relay", "--batch-size", "500", "--name", label],
        )
        wait_until(lambda: _answers(self.port), timeout=60, message="daphne to answer /healthz")
        wait_until(lambda: drained(cluster), timeout=300, message="the relay to drain", interval=1)

    def book(self, token: str, plans: list[dict], seconds: float) -> dict:
        watched = {"daphne": self.web.pid, "relay": self.relay.pid}
        return load_round(self.port, token, plans, seconds, watched)

    def stop(self) -> None:
        self.web.close()
        self.relay.close()


def booking_setup(cluster: BenchCluster) -> tuple[str, list[dict]]:
    """Scenario `booking`'s data: 300 contractors and open jobs with a free slot each."""
    out = cluster.manage("seed_demo", "--force", "--contractors", "300", "--jobs", "0")
    token = re.search(r"dispatcher login: .* token: (\S+)", out)[1]
    plan_path = cluster.workdir / "plans.json"
    # Enough for the three loads (the prune's included) at the booking scenario's rate.
    cluster.worker("booking-plan", "--jobs", "6000", "--days", "60", "--out", str(plan_path))
    return token, json.loads(plan_path.read_text())


def empty_log(cluster: BenchCluster) -> None:
    """Remove the seed's and the empty-log round's events (and what refers to them: webhook
    deliveries) before the fill, whose ids start at 1; the subscribers stay and are put at the
    fill's head."""
    with cluster.sql() as conn:
        conn.execute(
            "TRUNCATE events_faileddelivery, events_eventgroup, events_event, "
            "events_prunedthrough CASCADE"
        )
        # The stopped relay's heartbeat and leases: the next relays start as the only ones.
        conn.execute("DELETE FROM events_relayinstance")
        conn.execute("UPDATE events_subscriber SET owner = '', lease_expires_at = NULL")


def table_stats(cluster: BenchCluster) -> dict:
    """Live and dead tuples, autovacuum runs and total size of the event tables, and the WAL
    position (of the whole PostgreSQL server: other databases' writes included)."""
    with cluster.sql() as conn:
        rows = conn.execute(
            """SELECT relname, n_live_tup, n_dead_tup, autovacuum_count,
                      pg_total_relation_size(relid)
               FROM pg_stat_user_tables WHERE relname = ANY(%s)""",
            (EVENT_TABLES,),
        ).fetchall()
        wal = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]
    tables = {
        name: {"live": live, "dead": dead, "autovacuums": runs, "bytes": size}
        for name, live, dead, runs, size in rows
    }
    return {"tables": tables, "wal_bytes": int(wal)}


def lock_waits(cluster: BenchCluster, stop: threading.Event, seen: list[float]) -> None:
    """Sample, every 200 ms, the longest a statement of this database has been waiting for a
    lock (pg_stat_activity, wait_event_type Lock; 0 when none waits), in ms."""
    with cluster.sql() as conn:
        while not stop.wait(0.2):
            waiting = conn.execute(
                """SELECT coalesce(max(extract(epoch FROM clock_timestamp() - query_start)), 0)
                   FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'"""
            )
            seen.append(float(waiting.fetchone()[0]) * 1000)


def prune_under_load(cluster: BenchCluster, total: int, traffic: Traffic, token, plans) -> dict:
    """The prune in its own process while booking rounds of 10 s run back to back."""
    before = table_stats(cluster)
    stop, waits = threading.Event(), []
    sampler = threading.Thread(target=lock_waits, args=(cluster, stop, waits))
    sampler.start()
    worker = scaleworker(cluster, "prune", total)
    rounds = []
    try:
        while worker.poll() is None and plans:
            rounds.append(traffic.book(token, plans, 10))
        pruned = worker_result(cluster, "prune", worker)
    finally:
        stop.set()
        sampler.join()
        if worker.poll() is None:
            worker.kill()
    time.sleep(1)
    after = table_stats(cluster)
    return {"prune": pruned, "rounds": rounds, "lock_waits": waits, "before": before,
            "after": after}  # fmt: skip


def merged(rounds: list[dict]) -> dict:
    latencies = [ms for r in rounds for ms in r["latencies_ms"]]
    return {
        "requests": len(latencies),
        "p50": percentile(latencies, 50) if latencies else 0.0,
        "p95": percentile(latencies, 95) if latencies else 0.0,
        "unexpected": sum(r["unexpected"] for r in rounds),
        "throughput": len(latencies) / max(sum(r["seconds"] for r in rounds), 1e-9),
    }


def batch_rates(progress: list[list[float]]) -> list[float]:
    """Seconds of each prune batch, from [(removed so far, seconds so far)]."""
    seconds = [at for _, at in progress]
    return [b - a for a, b in zip([0.0, *seconds], seconds, strict=False)]


BUDGETS = {"resume": "p95 < 20 ms", "board": "p95 < 100 ms", "page": "p95 < 20 ms"}


def run(cluster: BenchCluster) -> ScenarioResult:
    result = ScenarioResult("scale")
    load_before = os.getloadavg()[0]
    total = size()
    progress(f"scale: booking for {BOOKING_SECONDS:.0f} s on an empty log")
    token, plans = booking_setup(cluster)
    traffic = Traffic(cluster, "empty")
    try:
        empty = traffic.book(token, plans, BOOKING_SECONDS)
    finally:
        traffic.stop()
    empty_log(cluster)
    progress(f"scale: filling the log with {total:,} published events")
    filled = fill(cluster, total)
    progress(
        f"scale: filled in {filled['insert_s']:.0f} s, indexes {filled['index_s']:.0f} s, "
        f"vacuum {filled['vacuum_s']:.0f} s"
    )
    measured = measure(cluster, total)
    progress(f"scale: booking for {BOOKING_SECONDS:.0f} s on the filled log, then during a prune")
    traffic = Traffic(cluster, "full")
    try:
        full = traffic.book(token, plans, BOOKING_SECONDS)
        under = prune_under_load(cluster, total, traffic, token, plans)
    finally:
        traffic.stop()
    for item in measured["reads"]:
        kind = item["kind"]
        result.add(f"{item['name']}: p50", "ms", [item["p50"]])
        result.add(f"{item['name']}: p95", "ms", [item["p95"]], budget=BUDGETS.get(kind, ""))
    add_booking(result, total, empty, full, under)
    add_prune(result, total, under)
    gib = {name: size / 2**30 for name, size in filled["bytes"].items()}
    result.notes.insert(
        0,
        f"{total:,} published events filled with straight SQL (`bench/scale.py`): "
        f"{filled['group_rows']:,} group rows, {REGIONS} regions (`dispatch/r0` ..), "
        f"{CONTRACTORS:,} contractors (`contractor/1` ..; 40% of events name one), "
        f"{JOBS:,} jobs as aggregates; types in the demo's proportions; the first "
        f"{OLD_SHARE:.0%} older than 90 days. events_event {gib.get('events_event', 0):.1f} GiB, "
        f"events_eventgroup {gib.get('events_eventgroup', 0):.1f} GiB with their indexes. "
        f"Fill {filled['insert_s']:.0f} s, index builds {filled['index_s']:.0f} s, "
        f"VACUUM ANALYZE {filled['vacuum_s']:.0f} s (indexes dropped during the fill and "
        "built again from their own definitions; the event_group foreign key re-added "
        "NOT VALID).",
    )
    result.notes.insert(
        1,
        f"Each read: {measured['calls']} calls in one Django process (after "
        f"{measured['warmup']} warm-up calls), p50 and p95 of the wall time of the call; "
        "the plans of every query they issue are in docs/events.md ('Reading the log at a "
        "cost that does not grow with it').",
    )
    result.notes.insert(
        2,
        "Resume: `events.resume.missed_events(groups, after)` with `after` 50 events of those "
        "groups behind the head. Pages: `events.access.check_cursor(after)` then "
        "`events_page(groups, after=..., limit=101)` (what GET /api/events calls for a page of "
        "100, without HTTP, authentication and JSON) from the middle of the log "
        f"(after={total // 2:,}). Step: `Relay().step()` of a subscriber whose handler does "
        "nothing, 5,000 events behind, batch 500 (acquire, head, read, advance). Status: "
        "`events.operations.status()`; metrics: `generate_latest(registry_with_event_log())`.",
    )
    result.not_measured += [
        "The same pages through HTTP (DRF, authentication, JSON rendering are per page, not "
        "per log size).",
        "Replication lag (no replica here): the WAL the prune wrote is the proxy.",
    ]
    result.extra = {
        "events": total,
        "fill": filled,
        "reads": measured["reads"],
        "booking": {
            "empty": {k: v for k, v in empty.items() if k != "latencies_ms"},
            "full": {k: v for k, v in full.items() if k != "latencies_ms"},
            "during_prune": merged(under["rounds"]),
        },
        "prune": {k: v for k, v in under["prune"].items() if k != "plan"},
        "tables": {"before": under["before"], "after": under["after"]},
        "lock_wait_max_ms": max(under["lock_waits"], default=0),
        "plans": [*measured["plans"], under["prune"]["plan"]],
    }
    result.notes.append(load_note(load_before))
    return result


def add_booking(result: ScenarioResult, total: int, empty: dict, full: dict, under: dict) -> None:
    during = merged(under["rounds"])
    result.add("booking p95, empty log", "ms", [empty["p95"]])
    result.add(f"booking p95, {total:,}-event log", "ms", [full["p95"]])
    result.add(
        "booking p95, filled log over empty log",
        "%",
        [(full["p95"] / empty["p95"] - 1) * 100],
        budget="< 10 %",
    )
    result.add("booking p95 during the prune", "ms", [during["p95"]])
    result.notes.append(
        "Booking: scenario `booking`'s load (`bench.booking.load_round`: 20 client threads, "
        "one keep-alive connection each, POST /api/jobs/{id}/assign, one request in ten a "
        "deliberate conflict) against one daphne process and one relay, "
        f"{BOOKING_SECONDS:.0f} s on an empty log (before the fill: its events are truncated "
        f"afterwards), {BOOKING_SECONDS:.0f} s on the filled log, then rounds of 10 s for as "
        "long as the prune runs. Requests, p50/p95, unexpected statuses: "
        + "; ".join(
            f"{label} {r['requests']:,}, {r['p50']:.1f}/{r['p95']:.1f} ms, {r['unexpected']}"
            for label, r in [("empty", empty), ("filled", full), ("during the prune", during)]
        )
        + "."
    )


def add_prune(result: ScenarioResult, total: int, under: dict) -> None:
    prune = under["prune"]
    old = int(total * OLD_SHARE)
    label = f"prune of {old:,} old events" + (
        f" (stopped at {prune['cap_s']:.0f} s: {prune['removed']:,} removed)"
        if prune["capped"]
        else ""
    )
    result.add(label, "s", [prune["seconds"]])
    result.add("prune rate", "events/s", [prune["removed"] / max(prune["seconds"], 1e-9)])
    batches = batch_rates(prune["progress"])
    result.add("longest prune batch (its row locks held)", "ms", [max(batches, default=0) * 1000])
    before, after = under["before"], under["after"]
    wal = after["wal_bytes"] - before["wal_bytes"]
    tables = "; ".join(
        f"{name}: {after['tables'][name]['dead']:,} dead of "
        f"{after['tables'][name]['live'] + after['tables'][name]['dead']:,} tuples, "
        f"{before['tables'][name]['bytes'] / 2**30:.2f} -> "
        f"{after['tables'][name]['bytes'] / 2**30:.2f} GiB, autovacuum runs "
        f"{before['tables'][name]['autovacuums']} -> {after['tables'][name]['autovacuums']}"
        for name in EVENT_TABLES
    )
    result.notes.append(
        f"Prune: `events.retention.prune(days=90)` (plain SQL batches of 5,000 keyset by id; "
        f"every subscriber at the head) in its own process, under the booking load, removed "
        f"{prune['removed']:,} of the {old:,} old events in {prune['batches']} batches, "
        f"{prune['seconds']:.0f} s"
        + (f", stopped at the {prune['cap_s']:.0f} s cap" if prune["capped"] else "")
        + ". Seconds per batch (every 10th): "
        + ", ".join(f"{r:.2f}" for r in batches[::10])
        + f". WAL written meanwhile by the whole server (shared with other work) "
        f"{wal / 2**20:,.0f} MiB; the first batch's own WAL is in its plan (docs/events.md). "
        "The longest any statement of the bench database waited for a lock (pg_stat_activity, "
        f"sampled every 200 ms): {max(under['lock_waits'], default=0):.0f} ms. "
        f"Right after: {tables} (pg_stat_user_tables, pg_total_relation_size)."
    )


# --- the plans in docs/events.md ---------------------------------------------------------------

EVENTS_DOC = "events.md"
PLANS_BEGIN = "<!-- scale plans: generated by `python -m bench plans`, do not edit -->"
PLANS_END = "<!-- end of scale plans -->"


def query_shape(sql: str) -> str:
    """The query with its literals taken out: two reads issuing the same shape share a plan."""
    sql = re.sub(r"'[^']*'", "?", sql)
    sql = re.sub(r"\b\d+(\.\d+)?\b", "N", sql)
    return re.sub(r"\((N, )+N( \.\.\.)?\)", "(N...)", sql)


def plans_markdown(plans: list[dict], *, events: int, date: str, command: str) -> str:
    """Every read's queries with their EXPLAIN (ANALYZE, BUFFERS), each query shape once (later
    reads refer to the first that issued it)."""
    out = [
        f"Measured on a log of {events:,} published events ({date}, `{command}`; "
        "`python -m bench plans` rewrites this block from docs/benchmarks.json).",
        "",
    ]
    seen: dict[str, str] = {}
    for read in plans:
        out += [f"#### {read['read']}", ""]
        shapes: dict[str, list[dict]] = {}  # this read's queries by shape, in order
        for query in read["queries"]:
            shapes.setdefault(query_shape(query["sql"]), []).append(query)
        for shape, queries in shapes.items():
            query, times = queries[0], f" ({len(queries)} times)" if len(queries) > 1 else ""
            if shape in seen:
                out += [f"- `{shorten(query['sql'], 140)}`{times}: the same plan as under "
                        f"'{seen[shape]}'."]  # fmt: skip
                continue
            seen[shape] = read["read"]
            out += [f"- `{shorten(query['sql'], 400)}`{times}", "", "```", query["plan"], "```"]
            out.append("")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def shorten(sql: str, width: int) -> str:
    sql = " ".join(sql.split()).replace("`", "'")
    return sql if len(sql) <= width else sql[: width - 4] + " ..."


def write_plans(data: dict, docs: Path) -> bool:
    """Replace the generated block of docs/events.md with the plans of the last `scale` run;
    False if there is none."""
    scale = data.get("scenarios", {}).get("scale")
    if not scale or "plans" not in scale.get("extra", {}):
        return False
    path = docs / EVENTS_DOC
    text = path.read_text()
    if PLANS_BEGIN not in text or PLANS_END not in text:
        raise RuntimeError(f"{path} has no generated plans block")
    events = scale["extra"].get("events", 0)
    block = plans_markdown(
        scale["extra"]["plans"], events=events, date=scale["date"], command=scale["command"]
    )
    head, rest = text.split(PLANS_BEGIN, 1)
    _, tail = rest.split(PLANS_END, 1)
    path.write_text(f"{head}{PLANS_BEGIN}\n\n{block}\n{PLANS_END}{tail}")
    return True
