"""The latency scenario's alternatives (bench/alternatives.py): commit to websocket frame at the
same steady 200 events/s, the same job edits, the same dispatcher client and daphne, with the
bus up (the `normal` mode's conditions), delivered by each alternative instead of the relay:

- on_commit: the recording process runs every handler, the broadcast's group_send included,
  right after each commit (no worker);
- procrastinate: one job per event deferred in the recording transaction; one worker;
- celery: one task per event queued by `delay_on_commit` on the scenario's private
  redis-server (database 1); one Celery worker, the group sends from its pool processes.

Each run waits until the alternative's queue is empty (no job to do or doing; no task waiting
and every queued task finished), at most DRAIN_TIMEOUT, then SETTLE for the last frames."""

import os
import time

from bench import alternatives, latency
from bench.cluster import BenchCluster
from bench.contenders import tree_pids, tree_rss_mib
from bench.wsclients import ClientGroup, peak_rss_mib, start_daphne

DELIVERIES = ("on_commit", "procrastinate", "celery")


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for each in tree_pids(pid):
        try:
            total += latency.cpu_seconds(each)
        except OSError:
            continue
    return total


def queue_empty(cluster: BenchCluster, delivery: str, queued: int) -> bool:
    if delivery == "procrastinate":
        return not alternatives.procrastinate_holds(cluster, "todo", "doing")
    if delivery == "celery":
        broker = cluster.celery_redis()
        done = int(broker.get(alternatives.CELERY_DONE) or 0)
        return broker.llen(alternatives.CELERY_QUEUE) == 0 and done >= queued
    return True


def wait_empty(cluster: BenchCluster, delivery: str, queued: int) -> tuple[float, bool]:
    """(seconds waited, whether the queue emptied within DRAIN_TIMEOUT)."""
    started = time.perf_counter()
    while not queue_empty(cluster, delivery, queued):
        if time.perf_counter() - started > latency.DRAIN_TIMEOUT:
            return time.perf_counter() - started, False
        time.sleep(0.5)
    return time.perf_counter() - started, True


def one_run(cluster: BenchCluster, delivery: str, client: dict, label: str, seconds: int) -> dict:
    bus = latency.bus_for("normal")
    latency.prepare_mode(cluster, "normal", bus)
    cluster.celery_redis().flushdb()
    load_before = os.getloadavg()[0]
    daphne, base = start_daphne(cluster, f"daphne-{label}")
    worker = alternatives.start_worker(cluster, delivery, name=f"{delivery}-{label}", **bus)
    try:
        clients = ClientGroup(cluster, f"clients-{label}", base, [client])
        clients.wait_connected()
        time.sleep(2)  # the worker's start-up is over
        cpu_before = tree_cpu_seconds(worker.pid) if worker else 0.0
        events_path = cluster.workdir / f"events-{label}.json"
        recorded = latency.run_worker(
            cluster, delivery, "record-steady", "--mode", delivery, "--kind", "jobs",
            "--rate", str(latency.RATE), "--seconds", str(seconds), "--warmup", str(latency.WARMUP),
            "--out", str(events_path), "--threads", str(latency.RECORD_THREADS), env=bus,
        )  # fmt: skip
        drain_seconds, emptied = wait_empty(cluster, delivery, recorded["events"])
        time.sleep(latency.SETTLE)
        if worker is not None:
            worker_rss = tree_rss_mib(worker.pid)
            worker_cpu = tree_cpu_seconds(worker.pid) - cpu_before
        else:  # the handlers ran in the recording process
            worker_rss, worker_cpu = recorded["rss_mib"], None
        daphne_rss = peak_rss_mib(daphne.pid)
        (report,) = clients.finish()
    finally:
        if worker is not None:
            worker.close()
        daphne.close()
    commits, log, latencies = latency.measured_latencies(events_path, report)
    return {
        "latencies": latencies,
        "measured": len(commits),
        "missing": len(commits) - len(latencies),
        "drain_seconds": drain_seconds,
        "emptied": emptied,
        "recorded": recorded,
        "rss": {"worker_mib": worker_rss, "daphne_mib": daphne_rss},
        "cpu_ms_per_event": None
        if worker_cpu is None
        else 1000 * worker_cpu / max(recorded["events"], 1),
        "load_1min": [load_before, os.getloadavg()[0]],
        "errors": log["errors"],
    }
