"""Scenario `crash`: the crash ledger. Under a steady booking load, SIGKILL the web process (and,
separately, what delivers: the relay or the queue's worker) at random moments, again and again;
then count, per approach, the changes that committed but whose event never reached a client
(lost) and the events a client received more than once.

Approaches (bench/alternatives.py): the relay, on_commit delivery in the web process, one
procrastinate job per event, one Celery task per event (`delay_on_commit`). Per approach and
target (on_commit has no worker to kill):

- web: daphne with the bench settings (bench/settings_bench.py installs the approach in every
  process) takes open-loop bookings (POST /api/jobs/{id}/assign, BOOKINGS_PER_S, each on a new
  connection, a planned job into a free slot of its own, so every booking should commit);
- the ledger: a dispatcher watching every region on a second daphne that is never killed, so
  the web's deaths do not cut the ledger's connection; it keeps every event frame's id;
- KILLS times, after a random pause (uniform PAUSE seconds, seeded), the target's whole process
  group gets SIGKILL and is started again at once (the web on the same port); the load runs
  at least MIN_SECONDS;
- then the load stops and the approach gets DRAIN_TIMEOUT to deliver what it still has (the
  relay: everything published and the broadcast at the head; procrastinate: no job to do;
  Celery: no task waiting), and SETTLE for the last frames.

Committed: the JobAssigned events in the database afterwards (record_event writes the event in
the booking's transaction, so every committed booking has exactly one). Lost: committed and
never received by the ledger. Received twice: event frames for an id the ledger had already
received (clients drop those by id, docs/realtime.md; the count says how often that happens).
Expected: the relay loses nothing."""

import http.client
import json
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench import alternatives
from bench.booking import _answers, _body, server_argv
from bench.cluster import BenchCluster
from bench.harness import ScenarioResult, progress
from bench.latency import backlog
from bench.wsclients import ClientGroup, start_daphne
from devtools.processes import Process, free_port, wait_until

APPROACHES = ("relay", "on_commit", "procrastinate", "celery")
KILLS = int(os.environ.get("BENCH_CRASH_KILLS", 5))  # per approach and target
BOOKINGS_PER_S = 10.0
PAUSE = (1.0, 4.0)  # seconds between the target being back and the next kill
MIN_SECONDS = 25.0  # of load per run, kills or not (a worker is back at once, a web is not)
DRAIN_TIMEOUT = 60.0
SETTLE = 3.0
PLANNED = 2100  # 300 per run: 30 s of bookings; planning costs about a minute
SEED = 18


def ledger(committed: list[str], log: dict) -> dict[str, int]:
    """Lost: committed events (by id) the ledger client never received; received twice: its
    event frames beyond the first for an id (any event, the handlers' own included)."""
    received = set(log["received"])
    return {
        "lost": sum(event_id not in received for event_id in committed),
        "received_twice": log["frames"] - len(received),
    }


def targets(approach: str) -> tuple[str, ...]:
    return ("web",) if approach == "on_commit" else ("web", "worker")


class Load:
    """Open-loop bookings: booking i is sent at start + i / rate whatever the answers so far
    (a pool of threads, a new connection each), until stopped or out of plans."""

    def __init__(self, port: int, token: str, plans: list[dict], rate: float) -> None:
        self.port, self.token, self.plans, self.rate = port, token, plans, rate
        self.outcomes: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _book(self, plan: dict) -> None:
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request("POST", f"/api/jobs/{plan['job']}/assign", _body(plan), headers)
            outcome = str(conn.getresponse().status)
            conn.close()
        except (OSError, http.client.HTTPException) as exc:
            outcome = type(exc).__name__
        with self.lock:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def _run(self) -> None:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=16) as pool:
            for index, plan in enumerate(self.plans):
                wait = started + index / self.rate - time.perf_counter()
                if self.stopped.wait(max(wait, 0)):
                    break
                pool.submit(self._book, plan)

    def stop(self) -> dict[str, int]:
        self.stopped.set()
        self.thread.join()
        return dict(self.outcomes)


def kill_group(process: Process) -> None:
    """SIGKILL the process and everything in its group (a Celery worker's pool too)."""
    if process.alive():
        os.killpg(process.pid, signal.SIGKILL)
    process.proc.wait(timeout=10)
    process.close()  # dead already: closes its log


def web_env(approach: str) -> dict[str, str]:
    return {"DJANGO_SETTINGS_MODULE": "bench.settings_bench", "BENCH_DELIVERY": approach}


def start_web(cluster: BenchCluster, approach: str, port: int, name: str) -> Process:
    web = cluster.spawn(name, server_argv(port, "daphne"), **web_env(approach))
    wait_until(lambda: _answers(port), timeout=90, message=f"{name} to answer /healthz")
    return web


def start_worker(cluster: BenchCluster, approach: str, name: str) -> Process | None:
    if approach == "relay":
        return cluster.spawn(name, alternatives.worker_argv("relay"))
    return alternatives.start_worker(cluster, approach, name=name)


def drained(cluster: BenchCluster, approach: str) -> bool:
    if approach == "relay":
        return backlog(cluster) == 0
    if approach == "procrastinate":
        return not alternatives.procrastinate_holds(cluster, "todo")
    if approach == "celery":
        return cluster.celery_redis().llen(alternatives.CELERY_QUEUE) == 0
    return True


def wait_drained(cluster: BenchCluster, approach: str) -> float:
    started = time.perf_counter()
    while not drained(cluster, approach) and time.perf_counter() - started < DRAIN_TIMEOUT:
        time.sleep(0.5)
    return time.perf_counter() - started


def one_run(cluster: BenchCluster, approach: str, target: str, ctx: dict, plans: list[dict],
            rng: random.Random) -> dict:  # fmt: skip
    label = f"{approach}-{target}"
    with cluster.sql() as conn:
        first_id = conn.execute("SELECT coalesce(max(id), 0) FROM events_event").fetchone()[0]
    port = free_port()
    web = start_web(cluster, approach, port, f"web-{label}-0")
    worker = start_worker(cluster, approach, f"worker-{label}-0")
    clients = ClientGroup(cluster, f"ledger-{label}", ctx["ws_base"], [ctx["ledger"]])
    clients.wait_connected()
    time.sleep(2)  # the worker is up
    load = Load(port, ctx["token"], plans, BOOKINGS_PER_S)
    started = time.perf_counter()
    kills = []
    try:
        for index in range(1, KILLS + 1):
            time.sleep(rng.uniform(*PAUSE))
            if target == "web":
                kill_group(web)
                kills.append(time.time())
                web = start_web(cluster, approach, port, f"web-{label}-{index}")
            else:
                kill_group(worker)
                kills.append(time.time())
                worker = start_worker(cluster, approach, f"worker-{label}-{index}")
        time.sleep(max(MIN_SECONDS - (time.perf_counter() - started), 0))
        outcomes = load.stop()
        drain_seconds = wait_drained(cluster, approach)
        time.sleep(SETTLE)
        (report,) = clients.finish()
    finally:
        load.stop()
        for process in (web, worker):
            if process is not None:
                process.close()
    (log,) = report["clients"]
    with cluster.sql() as conn:
        committed = [
            str(row[0])
            for row in conn.execute(
                "SELECT event_id FROM events_event WHERE id > %s AND type = 'JobAssigned'",
                (first_id,),
            )
        ]
    stuck = 0
    if approach == "procrastinate":
        with cluster.sql() as conn:
            stuck = conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'"
            ).fetchone()[0]
    found = {
        "kills": len(kills),
        "committed": len(committed),
        "acknowledged": outcomes.get("201", 0),
        "outcomes": outcomes,
        **ledger(committed, log),
        "drain_seconds": drain_seconds,
        "stuck_jobs": stuck,
        "ledger_errors": log["errors"],
    }
    progress(f"crash {label}: {found}")
    return found


def run(cluster: BenchCluster) -> ScenarioResult:
    result = ScenarioResult("crash")
    progress("crash: seeding contractors and planning free slots")
    token, plan_path, _ = cluster.booking_plan(100, "--jobs", str(PLANNED))
    plans = json.loads(plan_path.read_text())
    alternatives.prepare(cluster, "procrastinate")
    relay = cluster.spawn("relay-settle", alternatives.worker_argv("relay"))
    wait_until(lambda: backlog(cluster) == 0, timeout=300, message="the relay to deliver the plan")
    relay.close()
    ws, ws_base = start_daphne(cluster, "daphne-ledger")
    ctx = {
        "token": token,
        "ws_base": ws_base,
        "ledger": {"name": "ledger", "path": f"/ws/dispatch/?token={token}", "groups": []},
    }
    rng = random.Random(SEED)
    runs: dict[str, dict] = {}
    per_run = len(plans) // sum(len(targets(a)) for a in APPROACHES)
    try:
        for approach in APPROACHES:
            for target in targets(approach):
                mine, plans = plans[:per_run], plans[per_run:]
                progress(f"crash: {approach}, {KILLS} kills of the {target}")
                runs[f"{approach}/{target}"] = one_run(cluster, approach, target, ctx, mine, rng)
    finally:
        ws.close()
    for key, found in runs.items():
        approach, target = key.split("/")
        budget = "0" if approach == "relay" else ""
        result.add(f"{approach}, {target} killed: committed, event never reached the client",
                   "events", [found["lost"]], budget=budget)  # fmt: skip
        result.add(f"{approach}, {target} killed: events received twice", "events",
                   [found["received_twice"]])  # fmt: skip
    result.notes += [
        f"Per approach and target: {KILLS} SIGKILLs of the target's process group at random "
        f"moments (a pause of {PAUSE[0]} to {PAUSE[1]} s, seeded {SEED}, after it is back), "
        f"under open-loop bookings at {BOOKINGS_PER_S:.0f}/s (at least {MIN_SECONDS:.0f} s) "
        "on daphne "
        "(bench/settings_bench.py), each a planned job into a free slot of its own; the "
        "ledger is a dispatcher watching every region on a second daphne, never killed.",
        "Committed / acknowledged (201) / kills per run: "
        + "; ".join(
            f"{key} {f['committed']}/{f['acknowledged']}/{f['kills']}" for key, f in runs.items()
        )
        + ". Committed counts JobAssigned events in the database afterwards (one per committed "
        "booking, written in its transaction).",
        f"After the load: at most {DRAIN_TIMEOUT:.0f} s for the approach to deliver what it "
        f"has, then {SETTLE:.0f} s. Seconds waited: "
        + "; ".join(f"{key} {f['drain_seconds']:.0f}" for key, f in runs.items())
        + ". procrastinate jobs left 'doing' by a killed worker (procrastinate does not retry "
        "them by itself): "
        + ", ".join(f"{key} {f['stuck_jobs']}" for key, f in runs.items() if "procr" in key)
        + ". Celery keeps its defaults: a task is acknowledged when a pool process starts it, "
        "so a worker killed mid-task loses it; tasks it had prefetched come back only after "
        "the Redis transport's visibility timeout (1 h by default), after this run. on_commit "
        "and Celery's `delay_on_commit` run after the commit, in the web process: a web "
        "killed in between never delivers or queues them.",
    ]
    result.extra = {"runs": runs}
    return result
