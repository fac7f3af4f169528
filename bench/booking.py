"""Scenario `booking`: POST /api/jobs/{id}/assign against the web server from 20 concurrent
clients.

300 contractors (demo seed), then open jobs each with a free slot of its own (one per
contractor and day, see `bench.worker.booking_plan`). The production shape serves (daphne,
see `server_argv`); one relay runs beside it. 20 threads, each with its own keep-alive
HTTP connection, book planned jobs back to back for the round's duration, one request in ten a
deliberate conflict; every request's latency and status are recorded."""

import http.client
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter

from bench.cluster import BenchCluster
from bench.harness import ScenarioResult, percentile, progress
from devtools.processes import free_port, wait_until

CLIENTS = 20
ROUND_SECONDS = float(os.environ.get("BOOKING_ROUND_SECONDS", "20"))
ROUNDS = 3
CONFLICT_EVERY = 10  # one request in ten is a deliberate conflict
OPEN_LOOP_RATE = 20.0  # bookings/s: the contract's p95 is at this offered load
OPEN_LOOP_THREADS = 32  # enough that the sender never waits on a slow answer
BARE_PATH = "/bench/bare/{job}/assign"  # bench/urls.py: authenticated DRF, no work
# The production shape (README): daphne, one process, with its connection pool. Others, for
# comparison: BOOKING_SERVER=uvicorn WEB_CONCURRENCY=2 (worker processes), DB_POOL_MAX_SIZE=0
# (a connection per request); `python -m bench.booking --compare` runs them side by side.
SERVER = os.environ.get("BOOKING_SERVER", "daphne")
WORKERS = int(os.environ.get("WEB_CONCURRENCY", "2"))


def server_argv(port: int, server: str = SERVER, workers: int = WORKERS) -> list[str]:
    app = "smartscheduler.asgi:application"
    if server == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]
    return [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--lifespan", "off", "--no-proxy-headers", "--no-access-log",
    ]  # fmt: skip


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def _tree_cpu_seconds(root: int) -> float:
    """User + system CPU of a process and its live descendants (Linux /proc): the server's CPU
    per request is a count that does not depend on how busy the shared machine is."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, cpu seconds)
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:
                continue
            stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    tree, total = {root}, 0.0
    for pid in sorted(stats):  # children have higher pids than their parents, mostly
        if pid in tree or stats[pid][0] in tree:
            tree.add(pid)
            total += stats[pid][1]
    return total


def _body(plan: dict, slot: dict | None = None) -> str:
    slot = slot or plan
    body = {"contractorId": plan["contractorId"], "start": slot["start"], "end": slot["end"]}
    return json.dumps(body)


def open_loop(port: int, token: str, plans: list[dict], rate: float, seconds: float) -> dict:
    """The contract's latency: bookings sent at a steady `rate` per second whatever the answers
    so far (booking i is due at start + i / rate; a pool of OPEN_LOOP_THREADS threads, each with
    its own keep-alive connection). Each latency runs from the booking's due time, so a server
    that falls behind shows it (no coordinated omission). Every booking is a planned job into a
    free slot of its own (201 expected)."""
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter = Counter()
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def book(plan: dict, due: float) -> None:
        if getattr(local, "conn", None) is None:
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            local.conn.request("POST", f"/api/jobs/{plan['job']}/assign", _body(plan), headers)
            response = local.conn.getresponse()
            response.read()
            outcome = str(response.status)
        except (OSError, http.client.HTTPException) as exc:
            outcome = type(exc).__name__
            local.conn.close()
            local.conn = None
        with lock:
            latencies.append((time.perf_counter() - due) * 1000)
            statuses[outcome] += 1

    total = min(int(rate * seconds), len(plans))
    batch = [plans.pop() for _ in range(total)]
    started = time.perf_counter() + 0.1
    with ThreadPoolExecutor(max_workers=OPEN_LOOP_THREADS) as pool:
        for index, plan in enumerate(batch):
            due = started + index / rate
            time.sleep(max(due - time.perf_counter(), 0))
            pool.submit(book, plan, due)
    return {
        "requests": len(latencies),
        "rate": rate,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "statuses": dict(statuses),
        "unexpected": sum(n for status, n in statuses.items() if status != "201"),
        "latencies_ms": [round(ms, 1) for ms in latencies],
    }


def load_round(
    port: int, token: str, plans: list[dict], seconds: float, watched: dict[str, int],
    path: str = "/api/jobs/{job}/assign",
) -> dict:  # fmt: skip
    """Closed loop, CLIENTS threads back to back: the peak rate. Every CONFLICT_EVERY-th request
    is a deliberate conflict (409 expected), alternately a job booked already, sent again, and a
    planned job sent into a slot its contractor has just been booked in (that job goes back to
    the plan). The rest book planned jobs (201 expected). `path`: the bench's bare endpoint
    (bench/urls.py) takes the same requests, for the framework's floor."""
    lock = threading.Lock()
    latencies: list[float] = []
    outcomes: Counter = Counter()  # (kind, status)
    booked: list[dict] = []
    sent = 0
    deadline = time.perf_counter() + seconds

    def next_request() -> tuple[str, dict, str, dict | None] | None:
        """(kind, plan, body, plan to put back); the caller holds the lock."""
        nonlocal sent
        sent += 1
        if sent % CONFLICT_EVERY == 0 and booked:
            done = booked[-1 - (sent // CONFLICT_EVERY) % min(len(booked), 50)]
            if (sent // CONFLICT_EVERY) % 2:
                return "assigned job", done, _body(done), None
            same = next(
                (i for i in range(len(plans) - 1, -1, -1)
                 if plans[i]["contractorId"] == done["contractorId"]),
                None,
            )  # fmt: skip
            if same is not None:
                other = plans.pop(same)
                return "taken slot", other, _body(other, done), other
        if not plans:
            return None
        plan = plans.pop()
        return "book", plan, _body(plan), None

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        while time.perf_counter() < deadline:
            with lock:
                request = next_request()
            if request is None:
                return
            kind, plan, body, put_back = request
            started = time.perf_counter()
            try:
                conn.request("POST", path.format(job=plan["job"]), body, headers)
                response = conn.getresponse()
                response.read()
                outcome = str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                outcomes[kind, outcome] += 1
                if kind == "book" and outcome == "201":
                    booked.append(plan)
                if put_back is not None:
                    plans.insert(0, put_back)

    cpu = {name: _tree_cpu_seconds(pid) for name, pid in watched.items()}
    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    cpu = {name: _tree_cpu_seconds(pid) - cpu[name] for name, pid in watched.items()}
    statuses: Counter = Counter()
    for (_, status), count in outcomes.items():
        statuses[status] += count
    return {
        "requests": len(latencies),
        "seconds": wall,
        "throughput": len(latencies) / wall,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "statuses": dict(statuses),
        "conflicts": sum(n for (kind, _), n in outcomes.items() if kind != "book"),
        # A booking that is not 201, or a deliberate conflict that is not 409.
        "unexpected": sum(
            n
            for (kind, status), n in outcomes.items()
            if status != ("201" if kind == "book" else "409")
        ),
        "outcomes": {f"{kind}: {status}": n for (kind, status), n in sorted(outcomes.items())},
        "latencies_ms": [round(ms, 1) for ms in latencies],  # raw samples, for bench.plots
        "cpu_ms_per_request": {
            name: seconds * 1000 / max(len(latencies), 1) for name, seconds in cpu.items()
        },
    }


def delivered(cluster: BenchCluster) -> bool:
    """Nothing left to publish (the plan's JobCreated events), so the load rounds start from an
    idle relay."""
    with cluster.sql() as conn:
        return not conn.execute(
            "SELECT 1 FROM events_event WHERE sequence IS NULL LIMIT 1"
        ).fetchone()


def run(cluster: BenchCluster) -> ScenarioResult:
    result = ScenarioResult("booking")
    progress("booking: seeding 300 contractors and planning free slots")
    token, plan_path, planned = cluster.booking_plan(300)
    plans = json.loads(plan_path.read_text())
    progress(f"booking: {planned['planned']:,} jobs planned")
    port = free_port()
    # The bench settings: the product's, plus the bare endpoint (bench/urls.py), same server.
    web = cluster.spawn(SERVER, server_argv(port), DJANGO_SETTINGS_MODULE="bench.settings_bench")
    relay = cluster.spawn(
        "relay", [sys.executable, "manage.py", "relay", "--batch-size", "500", "--name", "bench"]
    )
    wait_until(lambda: _answers(port), timeout=60, message=f"{SERVER} to answer /healthz")
    wait_until(lambda: delivered(cluster), timeout=120, message="the relay to deliver the plan")
    rounds, opens, bares = [], [], []
    for index in range(ROUNDS):
        if not web.alive():
            raise RuntimeError(f"{SERVER} exited\n" + web.describe())
        watched = {SERVER: web.pid, "relay": relay.pid}
        opened = open_loop(port, token, plans, OPEN_LOOP_RATE, ROUND_SECONDS)
        opens.append(opened)
        progress(
            f"booking round {index + 1}/{ROUNDS}, open loop at {OPEN_LOOP_RATE:.0f}/s: "
            f"p95 {opened['p95']:.1f} ms, {opened['statuses']}"
        )
        stats = load_round(port, token, plans, ROUND_SECONDS, watched)
        rounds.append(stats)
        # The floor: the same requests, clients and server, on an endpoint that does nothing.
        bare = load_round(port, token, list(plans), ROUND_SECONDS, watched, path=BARE_PATH)
        bares.append(bare)
        progress(
            f"booking round {index + 1}/{ROUNDS}: peak {stats['throughput']:.0f}/s "
            f"(bare endpoint {bare['throughput']:.0f}/s), p95 {stats['p95']:.1f} ms, "
            f"{stats['outcomes']}, "
            + ", ".join(
                f"{name} CPU {ms:.1f} ms/request"
                for name, ms in stats["cpu_ms_per_request"].items()
            )
        )
    result.add(f"open loop {OPEN_LOOP_RATE:.0f} bookings/s: p50", "ms", [r["p50"] for r in opens])
    result.add(f"open loop {OPEN_LOOP_RATE:.0f} bookings/s: p95", "ms", [r["p95"] for r in opens],
               budget="< 50 ms")  # fmt: skip
    result.add(f"open loop {OPEN_LOOP_RATE:.0f} bookings/s: p99", "ms", [r["p99"] for r in opens])
    result.add(f"peak, {CLIENTS} clients closed loop", "bookings/s",
               [r["throughput"] for r in rounds])  # fmt: skip
    result.add(f"peak, bare authenticated DRF endpoint, {CLIENTS} clients", "requests/s",
               [r["throughput"] for r in bares])  # fmt: skip
    result.add(
        "peak booking / peak bare endpoint",
        "x",
        [r["throughput"] / b["throughput"] for r, b in zip(rounds, bares, strict=True)],
    )
    result.add(f"closed loop ({CLIENTS} clients): p95", "ms", [r["p95"] for r in rounds])
    for name in (SERVER, "relay"):
        result.add(
            f"{name} CPU per request",
            "ms",
            [r["cpu_ms_per_request"][name] for r in rounds],
            note="user + system CPU of its processes over the round / requests",
        )
    result.add(f"{SERVER} CPU per request, bare endpoint", "ms",
               [r["cpu_ms_per_request"][SERVER] for r in bares])  # fmt: skip
    result.add(
        "conflicts sent", "%", [r["conflicts"] / max(r["requests"], 1) * 100 for r in rounds]
    )
    # 201 for a booking and 409 for a deliberate conflict are expected; anything else is an error.
    result.add(
        "errors", "%",
        [(r["unexpected"] + o["unexpected"]) / max(r["requests"] + o["requests"], 1) * 100
         for r, o in zip(rounds, opens, strict=True)],
        budget="0",
    )  # fmt: skip
    mix: Counter = Counter()
    outcomes: Counter = Counter()
    for r in rounds:
        mix.update(r["statuses"])
        outcomes.update(r["outcomes"])
    shape = (
        "one daphne process" if SERVER == "daphne" else f"uvicorn with {WORKERS} worker processes"
    )
    result.notes += [
        f"{ROUNDS} rounds against {shape} (bench/settings_bench.py: the product's settings "
        "and URLs plus the bare endpoint), one relay running beside it. Each round: "
        f"{ROUND_SECONDS:.0f} s open loop at {OPEN_LOOP_RATE:.0f} bookings/s (the contract's "
        f"p95; {OPEN_LOOP_THREADS} sender threads with keep-alive connections, latency from "
        f"each booking's due time), then {ROUND_SECONDS:.0f} s closed loop with {CLIENTS} "
        "client threads back to back (the peak), then the same closed loop on "
        f"`POST {BARE_PATH}` (token authentication, IsAuthenticated, the project's DRF "
        "defaults, no other work): the ratio is what a booking costs over the framework's "
        "floor on this server.",
        f"Closed loop: nine requests in ten book a different open job into a free slot planned "
        f"beforehand ({planned['planned']:,} planned; {planned['contractors']} active "
        "contractors); one in ten is a deliberate conflict, alternately a booked job sent "
        "again and a planned job sent into a slot its contractor was just booked in (409 "
        "expected). Open loop: planned bookings only (201 expected).",
        "Status mix over the closed-loop rounds: "
        + ", ".join(f"{code}: {count:,}" for code, count in sorted(mix.items()))
        + "; by kind: "
        + ", ".join(f"{key} {count:,}" for key, count in sorted(outcomes.items()))
        + "; open loop: "
        + "; ".join(
            ", ".join(f"{c}: {n:,}" for c, n in sorted(o["statuses"].items())) for o in opens
        ),
        "The client threads run on the same machine as the server, the relay, PostgreSQL and "
        "Redis, and share its CPUs.",
        f"Median requests per closed-loop round: "
        f"{statistics.median(r['requests'] for r in rounds):,.0f}.",
    ]
    cpu = statistics.median(r["cpu_ms_per_request"][SERVER] for r in rounds)
    bare_cpu = statistics.median(r["cpu_ms_per_request"][SERVER] for r in bares)
    result.extra = {
        "rounds": rounds,
        "open_loop": opens,
        "bare": bares,
        "arithmetic": [
            f"{SERVER} spends {cpu:.1f} ms of CPU per booking ({bare_cpu:.1f} ms on the bare "
            f"endpoint): one process is bounded at {1000 / cpu:.0f} bookings/s, and at "
            f"{OPEN_LOOP_RATE:.0f}/s it is busy {cpu * OPEN_LOOP_RATE / 10:.0f}% of the time; "
            "a p95 under 50 ms needs the booking's own time (its CPU plus its queries' waits) "
            "well under that, with the queueing that a busy single process adds on top.",
        ],
    }
    return result


# --- python -m bench.booking --compare: server shapes side by side ---------------------------

SHAPES = [  # (label, server, workers, DB_POOL_MAX_SIZE)
    ("daphne, a connection per request", "daphne", 1, "0"),
    ("daphne, pool", "daphne", 1, "4"),
    ("uvicorn x1, pool", "uvicorn", 1, "4"),
    ("uvicorn x2, pool", "uvicorn", 2, "4"),
    ("uvicorn x4, pool", "uvicorn", 4, "4"),
]


def compare(repeats: int, seconds: float) -> None:
    """Interleave the shapes on one database and one relay, round after round, so each sees
    the same (shared, noisy) machine; print each shape's median over its rounds."""
    cluster = BenchCluster("bookingshapes")
    try:
        cluster.start()
        token, plan_path, _ = cluster.booking_plan(300)
        plans = json.loads(plan_path.read_text())
        relay = cluster.spawn(
            "relay", [sys.executable, "manage.py", "relay", "--batch-size", "500", "--name", "b"]
        )
        wait_until(lambda: delivered(cluster), timeout=120, message="the relay to deliver the plan")
        results: dict[str, list[dict]] = {label: [] for label, *_ in SHAPES}
        for repeat in range(repeats):
            for label, server, workers, pool in SHAPES:
                port = free_port()
                web = cluster.spawn(
                    f"{server}-{repeat}-{workers}-{pool}",
                    server_argv(port, server, workers),
                    DB_POOL_MAX_SIZE=pool,
                )
                wait_until(lambda port=port: _answers(port), timeout=60, message=f"{label} up")
                time.sleep(5)  # the first worker answers while the others still start
                watched = {"web": web.pid, "relay": relay.pid}
                stats = load_round(port, token, plans, seconds, watched)
                web.close()
                results[label].append(stats)
                progress(
                    f"{label}: {stats['throughput']:.0f}/s, p95 {stats['p95']:.0f} ms, "
                    f"web CPU {stats['cpu_ms_per_request']['web']:.1f} ms/request, "
                    f"unexpected {stats['unexpected']}"
                )
        print(f"{'shape':<34} {'req/s':>6} {'p50 ms':>7} {'p95 ms':>7} {'web CPU ms/req':>15}")
        for label, rounds in results.items():
            med = {
                key: statistics.median(r[key] for r in rounds)
                for key in ("throughput", "p50", "p95")
            }
            cpu = statistics.median(r["cpu_ms_per_request"]["web"] for r in rounds)
            print(
                f"{label:<34} {med['throughput']:>6.0f} {med['p50']:>7.0f} {med['p95']:>7.0f} "
                f"{cpu:>15.1f}"
            )
    finally:
        cluster.close()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.booking")
    parser.add_argument("--compare", action="store_true", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    compare(args.repeats, args.seconds)
