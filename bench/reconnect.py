"""Scenario `reconnect`: 1,000 websocket clients reconnecting at once, each 500 events behind,
all replayed (budget: the last `replayed` frame within 10 s), while the HTTP p95 of a steady
request load stays under 200 ms.

The clients are scenario `fanout`'s (`bench.wsworker ws-accounts`): 900 contractor logins on
`ws/contractor/` and 100 dispatchers on `ws/dispatch/`, each a user of its own, so none meets
the per-user connection limit (4429). Each of their groups gets 500 published events, written
with straight SQL (as scenario `scale` fills its log), and each client's resume point is the
sequence 500 events of its own groups behind the head. Two daphne processes share the clients
round-robin (docs/realtime.md's deployment). All clients connect, the HTTP load runs for a
baseline, then every client drops its socket and reconnects at once with `?after=` its resume
point (no handshake gate) and reads its replay up to `replayed`. The HTTP load is a dispatcher's
GET /api/jobs/{id} at a steady rate, spread over both daphne processes.
"""

import http.client
import json
import os
import re
import threading
import time
from collections import Counter

from bench import alternatives
from bench.cluster import BenchCluster
from bench.harness import ScenarioResult, load_note, percentile, progress
from bench.latency import run_worker
from bench.wsclients import ClientGroup, cpu_seconds, start_daphne

CONTRACTORS = 900
DISPATCHERS = 100
WATCH_ALL = 10  # every tenth dispatcher watches every region
BEHIND = 500
DAPHNE_PROCESSES = 2
CLIENT_PROCESSES = 2
CONNECT_CONCURRENCY = 25  # the first connections, as scenario `fanout` makes them
HTTP_RATE = 20.0  # requests/s, over HTTP_THREADS keep-alive connections
HTTP_THREADS = 4
BASELINE_SECONDS = 10.0
REPEATS = int(os.environ.get("BENCH_RECONNECT_REPEATS", "3"))
# Handshakes in flight per client process during the reconnect; 0: all at once (the budget's
# case). A gate shows what the replays cost when the handshakes are not the bottleneck.
RECONNECT_GATE = int(os.environ.get("BENCH_RECONNECT_GATE", "0"))


def fill(cluster: BenchCluster, clients: list[dict]) -> int:
    """BEHIND published events in every group a client joins (round-robin over the groups,
    one group each), after the seed's; every subscriber put at the new head. Returns it."""
    groups = sorted({group for client in clients for group in client["groups"]})
    with cluster.sql() as conn:
        start = conn.execute("SELECT coalesce(max(id), 0) FROM events_event").fetchone()[0]
        head = conn.execute("SELECT coalesce(max(sequence), 0) FROM events_event").fetchone()[0]
        count = len(groups) * BEHIND
        conn.execute(
            """INSERT INTO events_event (id, sequence, event_id, type, version, aggregate_type,
                   aggregate_id, payload, groups, occurred_at, published_at)
               SELECT %(start)s + g, %(head)s + g, gen_random_uuid(), 'JobUpdated', 1, 'job',
                      g::text,
                      jsonb_build_object('jobId', g, 'updatedFields', jsonb_build_array('notes')),
                      jsonb_build_array((%(groups)s::text[])[(g - 1) %% %(n)s + 1]),
                      now(), now()
               FROM generate_series(1, %(count)s) AS g""",
            {"start": start, "head": head, "groups": groups, "n": len(groups), "count": count},
        )
        conn.execute(
            'INSERT INTO events_eventgroup (event_id, "group", sequence, type) '
            "SELECT e.id, grp, e.sequence, e.type FROM events_event e, "
            "jsonb_array_elements_text(e.groups) AS grp WHERE e.id > %s",
            (start,),
        )
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('events_event', 'id'), %s)", (start + count,)
        )
        conn.execute("UPDATE events_subscriber SET position = %s", (head + count,))
        conn.execute("ANALYZE events_event")
        conn.execute("ANALYZE events_eventgroup")
    return head + count


def resume_points(cluster: BenchCluster, clients: list[dict]) -> None:
    """Each client's `after`: the sequence BEHIND events of its own groups behind the head."""
    with cluster.sql() as conn:
        for client in clients:
            row = conn.execute(
                """SELECT sequence FROM events_eventgroup WHERE "group" = ANY(%s)
                   ORDER BY sequence DESC OFFSET %s LIMIT 1""",
                (client["groups"], BEHIND),
            ).fetchone()
            client["after"] = row[0] if row else 0


class HttpLoad:
    """GET /api/jobs/{id} as a dispatcher, at HTTP_RATE over HTTP_THREADS keep-alive
    connections spread over the servers; every request's latency (ms) and status kept with the
    time it started."""

    def __init__(self, ports: list[int], token: str, jobs: list[int]) -> None:
        self.samples: list[tuple[float, float, int | str]] = []  # (started, ms, status)
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.client, args=(ports[i % len(ports)], token, jobs, i))
            for i in range(HTTP_THREADS)
        ]
        for thread in self.threads:
            thread.start()

    def client(self, port: int, token: str, jobs: list[int], index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Token {token}"}
        interval = HTTP_THREADS / HTTP_RATE
        due = time.perf_counter() + index * interval / HTTP_THREADS
        sent = 0
        while not self.stop.is_set():
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            started = time.perf_counter()
            try:
                conn.request("GET", f"/api/jobs/{jobs[(sent * HTTP_THREADS + index) % len(jobs)]}",
                             headers=headers)  # fmt: skip
                response = conn.getresponse()
                response.read()
                status: int | str = response.status
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            self.samples.append((started, (time.perf_counter() - started) * 1000, status))
            sent += 1
            due += interval

    def between(self, start: float, end: float) -> list[tuple[float, float, int | str]]:
        return [s for s in self.samples if start <= s[0] < end]

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def summary(samples: list[tuple[float, float, int | str]]) -> dict:
    latencies = [ms for _, ms, _ in samples]
    return {
        "requests": len(samples),
        "p50": percentile(latencies, 50) if latencies else 0.0,
        "p95": percentile(latencies, 95) if latencies else 0.0,
        "errors": sum(status != 200 for _, _, status in samples),
    }


def one_run(cluster, clients: list[dict], servers, load: HttpLoad, label: str) -> dict:
    base = servers[0][1]
    per_process = -(-len(clients) // CLIENT_PROCESSES)
    group = ClientGroup(
        cluster, f"clients-{label}", base, clients, processes=CLIENT_PROCESSES, after=0,
        connect_concurrency=CONNECT_CONCURRENCY, resume_concurrency=RECONNECT_GATE or per_process,
    )  # fmt: skip
    connected = group.wait_connected()
    if connected < len(clients):
        why = sorted({reason for ready in group.ready for reason in ready["why"]})
        raise RuntimeError(f"only {connected} of {len(clients)} clients connected: {why[:3]}")
    started = time.perf_counter()
    time.sleep(BASELINE_SECONDS)
    storm = time.perf_counter()
    cpu_before = [cpu_seconds(daphne.pid) for daphne, _ in servers]
    reports = group.finish()
    ended = time.perf_counter()
    server_cpu = sum(cpu_seconds(d.pid) for d, _ in servers) - sum(cpu_before)
    logs = [log for report in reports for log in report["clients"]]
    replayed = [len(log["resumed"]) for log in logs]
    # Every first connection succeeded (checked above): a "connect: gave up" is the reconnect's.
    errors = sorted(
        {e for log in logs for e in log["errors"] if e.startswith(("resume", "connect"))}
    )
    # A refused or timed-out handshake is retried with backoff (1, 2, 4, 8 s), as a board does.
    retries = sum(len(log["connect_retries"]) for log in logs) - sum(
        ready["retries"] for ready in group.ready
    )
    why = sorted({w for log in logs for w in log["connect_retries"]})
    # How every replay ended, counted: "replayed", "gave up" (the handshakes), or the error
    # frame and close code of a server that ended it (4408 slow_consumer, 4429, ...).
    ends = Counter(log["resume_end"] for log in logs)
    out = {
        "clients": len(logs),
        "seconds": max(report["resume_seconds"] for report in reports),
        "wall_seconds": ended - storm,
        "complete": sum(n >= BEHIND for n in replayed),
        "frames": sum(replayed),
        "errors": errors,
        "retries": retries,
        "retry_reasons": why[:3],
        "ends": dict(ends.most_common()),
        "server_cpu_seconds": server_cpu,
        "client_cpu_seconds": sum(report["resume_cpu_seconds"] for report in reports),
        "baseline": summary(load.between(started, storm)),
        "during": summary(load.between(storm, ended)),
    }
    progress(
        f"reconnect {label}: last replayed after {out['seconds']:.1f} s, "
        f"{out['complete']}/{out['clients']} replayed all {BEHIND}, {retries} handshakes "
        f"retried; ends {dict(ends.most_common())}; CPU s daphne {server_cpu:.0f}, clients "
        f"{out['client_cpu_seconds']:.0f}; HTTP p95 "
        f"{out['baseline']['p95']:.0f} ms before, {out['during']['p95']:.0f} ms during"
        + (f"; errors {errors[:3]}" if errors else "")
    )
    return out


def run(cluster: BenchCluster) -> ScenarioResult:
    result = ScenarioResult("reconnect")
    load_before = os.getloadavg()[0]
    accounts_path = cluster.workdir / "accounts.json"
    progress(f"reconnect: {CONTRACTORS} contractor and {DISPATCHERS} dispatcher logins")
    run_worker(
        cluster, "relay", "ws-accounts", "--seed-contractors", str(CONTRACTORS + 10),
        "--contractors", str(CONTRACTORS), "--dispatchers", str(DISPATCHERS),
        "--watch-all", str(WATCH_ALL), "--out", str(accounts_path),
    )  # fmt: skip
    clients = json.loads(accounts_path.read_text())
    run_worker(cluster, "relay", "settle")
    head = fill(cluster, clients)
    resume_points(cluster, clients)
    progress(f"reconnect: {head:,} events, each client {BEHIND} behind")
    token = re.search(r"token=([^&]+)", clients[0]["path"])[1]  # a dispatcher's
    with cluster.sql() as conn:
        jobs = [row[0] for row in conn.execute("SELECT id FROM scheduling_job LIMIT 100")]
    relay = alternatives.start_worker(cluster, "relay")
    servers = [start_daphne(cluster, f"daphne-{i}") for i in range(DAPHNE_PROCESSES)]
    for index, client in enumerate(clients):
        client["base"] = servers[index % len(servers)][1]
    ports = [int(base.rsplit(":", 1)[1]) for _, base in servers]
    load = HttpLoad(ports, token, jobs)
    runs = []
    try:
        for repeat in range(REPEATS):
            runs.append(one_run(cluster, clients, servers, load, f"run-{repeat}"))
    finally:
        load.close()
        relay.close()
        for daphne, _ in servers:
            daphne.close()
    count = f"{len(clients):,} clients"
    result.add(
        f"{count} reconnecting, {BEHIND} behind each: last `replayed`",
        "s",
        [r["seconds"] for r in runs],
        budget="< 10 s",
    )
    result.add(
        "clients that got their whole replay",
        "%",
        [100 * r["complete"] / r["clients"] for r in runs],
        budget="100%",
    )
    result.add(
        "HTTP p95 during the reconnect", "ms", [r["during"]["p95"] for r in runs],
        budget="< 200 ms",
    )  # fmt: skip
    result.add("HTTP p95 before it", "ms", [r["baseline"]["p95"] for r in runs])
    result.add("HTTP errors during it", "", [r["during"]["errors"] for r in runs], budget="0")
    result.notes += [
        f"{count}: {CONTRACTORS} contractors on `ws/contractor/`, {DISPATCHERS} dispatchers on "
        f"`ws/dispatch/` (every {WATCH_ALL}th watching every region, the others one), each a "
        f"user of its own; {DAPHNE_PROCESSES} daphne processes sharing them round-robin, one "
        f"relay, {CLIENT_PROCESSES} client processes (`bench.wsclients`).",
        f"{head:,} published events: {BEHIND} in each group a client joins, written with "
        "straight SQL; each client resumes from the sequence "
        f"{BEHIND} events of its own groups behind the head, so its replay is {BEHIND} events "
        "and a `replayed` frame. The first connections are made at most "
        f"{CONNECT_CONCURRENCY} handshakes at a time per client process; then every client "
        "closes and reconnects at once ("
        + (
            f"at most {RECONNECT_GATE} handshakes in flight per client process"
            if RECONNECT_GATE
            else "no gate"
        )
        + "); a refused or timed-out handshake (daphne "
        "answers 403 to one its application has not accepted within 5 s) is retried with "
        "backoff (1, 2, 4, 8 s), as the board does. The time is from the sockets' close to the "
        "last `replayed` frame (handshakes and retries included), the largest of the client "
        "processes. Frames replayed / handshakes retried per run: "
        + "; ".join(f"{r['frames']:,} / {r['retries']}" for r in runs)
        + (f" ({'; '.join(runs[-1]['retry_reasons'])})" if runs[-1]["retries"] else "")
        + ".",
        f"HTTP: GET /api/jobs/{{id}} as a dispatcher, {HTTP_RATE:.0f} requests/s over "
        f"{HTTP_THREADS} keep-alive connections spread over the daphne processes; 'before' is "
        f"the {BASELINE_SECONDS:.0f} s with every client connected and idle, 'during' from "
        "the sockets' close to the last replay. Requests before/during per run: "
        + "; ".join(f"{r['baseline']['requests']}/{r['during']['requests']}" for r in runs)
        + ".",
        "How the replays ended, per run (`replayed`; `gave up`: its handshakes; else the "
        "error frame and close code the server ended it with): "
        + "; ".join(", ".join(f"{n} {end}" for end, n in r["ends"].items()) for r in runs)
        + ". CPU seconds during the reconnect, daphne processes / client processes, per run: "
        + "; ".join(f"{r['server_cpu_seconds']:.0f} / {r['client_cpu_seconds']:.0f}" for r in runs)
        + f" (the reconnect's wall time times the machine's {os.cpu_count()} cores is what "
        "there was).",
        "Reconnect errors (a client that gave up its handshakes, or an error frame or failure "
        "in its replay): "
        + ("; ".join(sorted({e for r in runs for e in r["errors"]})[:5]) or "none")
        + ".",
    ]
    result.notes.append(load_note(load_before))
    result.extra = {"runs": runs}
    return result
