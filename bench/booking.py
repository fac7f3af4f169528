"""Scenario `booking`: POST /api/jobs/{id}/assign against daphne from 20 concurrent clients.

300 contractors (demo seed), then open jobs each with a free slot of its own (one per
contractor and day, see `bench.worker.booking_plan`). daphne serves; one relay runs beside it,
as in production. 20 threads, each with its own keep-alive HTTP connection, book planned jobs
back to back for the round's duration; every request's latency and status are recorded."""

import http.client
import json
import re
import statistics
import sys
import threading
import time
from collections import Counter

from bench.cluster import BenchCluster
from bench.harness import ScenarioResult, percentile, progress
from chaos.cluster import free_port, wait_until

CLIENTS = 20
ROUND_SECONDS = 20.0
ROUNDS = 3


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def load_round(port: int, token: str, plans: list[dict], seconds: float) -> dict:
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter = Counter()
    deadline = time.perf_counter() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        while time.perf_counter() < deadline:
            with lock:
                if not plans:
                    return
                plan = plans.pop()
            body = json.dumps(
                {"contractorId": plan["contractorId"], "start": plan["start"], "end": plan["end"]}
            )
            started = time.perf_counter()
            try:
                conn.request("POST", f"/api/jobs/{plan['job']}/assign", body, headers)
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
                statuses[outcome] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "seconds": wall,
        "throughput": len(latencies) / wall,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "statuses": dict(statuses),
    }


def run(cluster: BenchCluster) -> ScenarioResult:
    result = ScenarioResult("booking")
    progress("booking: seeding 300 contractors and planning free slots")
    out = cluster.manage("seed_demo", "--contractors", "300", "--jobs", "0")
    token = re.search(r"dispatcher login: .* token: (\S+)", out)[1]
    plan_path = cluster.workdir / "plans.json"
    planned = cluster.worker("booking-plan", "--out", str(plan_path))
    plans = json.loads(plan_path.read_text())
    progress(f"booking: {planned['planned']:,} jobs planned")
    port = free_port()
    web = cluster.spawn(
        "daphne",
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "smartscheduler.asgi:application"],
    )  # fmt: skip
    cluster.spawn(
        "relay", [sys.executable, "manage.py", "relay", "--batch-size", "500", "--name", "bench"]
    )
    wait_until(lambda: _answers(port), timeout=30, what="daphne to answer /healthz")
    rounds = []
    for index in range(ROUNDS):
        if not web.alive():
            raise RuntimeError("daphne exited\n" + web.tail())
        stats = load_round(port, token, plans, ROUND_SECONDS)
        rounds.append(stats)
        progress(
            f"booking round {index + 1}/{ROUNDS}: {stats['requests']} requests, "
            f"{stats['throughput']:.0f}/s, p95 {stats['p95']:.1f} ms, {stats['statuses']}"
        )
    result.add("throughput", "requests/s", [r["throughput"] for r in rounds])
    result.add("p50", "ms", [r["p50"] for r in rounds])
    result.add("p95", "ms", [r["p95"] for r in rounds], budget="< 50 ms")
    result.add("p99", "ms", [r["p99"] for r in rounds])
    errors = [
        sum(n for code, n in r["statuses"].items() if code != "201") / max(r["requests"], 1) * 100
        for r in rounds
    ]
    result.add("non-201 responses", "%", errors)
    mix: Counter = Counter()
    for r in rounds:
        mix.update(r["statuses"])
    result.notes += [
        f"{CLIENTS} client threads, one keep-alive connection each, {ROUNDS} rounds of "
        f"{ROUND_SECONDS:.0f} s against one daphne process, one relay running beside it.",
        f"Each request books a different open job into a free slot planned beforehand "
        f"({planned['planned']:,} planned; {planned['contractors']} active contractors).",
        "Status mix over all rounds: "
        + ", ".join(f"{code}: {count:,}" for code, count in sorted(mix.items())),
        "The 20 client threads run on the same machine as daphne, the relay, PostgreSQL "
        "and Redis, and share its CPUs.",
        f"Median requests per round: {statistics.median(r['requests'] for r in rounds):,.0f}.",
    ]
    result.extra = {"rounds": rounds}
    return result
