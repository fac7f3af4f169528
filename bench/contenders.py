"""The relay scenario's alternatives (bench/alternatives.py) on the same recorded events and
handlers, side by side with the relay in the same run: on_commit delivery in the recording
process, one procrastinate job per event, one Celery task per event (`delay_on_commit`).

Each delivers every ALTERNATIVE_EVERY-th of the scenario's events (the same mix in the same
order): at their speed the full set would take most of an hour per repeat. A queue is filled
first (the enqueue is timed on its own), then its worker drains it; events/s comes from the
queue's own stamps, first task started to last task finished, so worker start-up is not in it,
as the relay's figure leaves out its start-up. Peak RSS: VmHWM of the worker and its pool
processes, summed (a prefork Celery worker is a parent plus QUEUE_CONCURRENCY children)."""

import json
import subprocess
import sys
import time
from pathlib import Path

from bench import alternatives
from bench.cluster import BenchCluster
from bench.harness import ScenarioResult, progress, repeat
from bench.wsclients import peak_rss_mib
from devtools.processes import ROOT

ALTERNATIVE_EVERY = 10
DRAIN_TIMEOUT = 900.0
POLL = 0.2


def tree_pids(pid: int) -> list[int]:
    """A live process and its descendants (Linux /proc)."""
    found, index = [pid], 0
    while index < len(found):
        for task in Path(f"/proc/{found[index]}/task").glob("*"):
            try:
                found += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
        index += 1
    return found


def tree_rss_mib(pid: int) -> float:
    """Summed peak RSS (VmHWM) of a process and its live descendants."""
    total = 0.0
    for each in tree_pids(pid):
        try:
            total += peak_rss_mib(each)
        except (OSError, RuntimeError):
            continue
    return total


def run_command(cluster: BenchCluster, mode: str, command: str, last: int, bus: dict) -> dict:
    """`python -m bench.alternatives COMMAND` in the mode's environment; its JSON line."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.alternatives", command, "--last", str(last),
         "--every", str(ALTERNATIVE_EVERY)],
        cwd=ROOT, env=cluster.env(**alternatives.env(mode), **bus), stdout=subprocess.PIPE,
        text=True, timeout=DRAIN_TIMEOUT,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"bench.alternatives {command} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def procrastinate_state(cluster: BenchCluster) -> tuple[int, float | None]:
    """(jobs still to do or doing, seconds from the first job started to the last finished)."""
    with cluster.sql() as conn:
        return conn.execute(
            """SELECT (SELECT count(*) FROM procrastinate_jobs
                        WHERE status IN ('todo', 'doing')),
                      extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded')
                                       - min(at) FILTER (WHERE type = 'started'))::float8
               FROM procrastinate_events"""
        ).fetchone()


def celery_state(cluster: BenchCluster) -> tuple[int, int, float | None]:
    """(tasks waiting in the broker's queue, tasks finished, seconds first start to last end)."""
    client = cluster.celery_redis()
    waiting = client.llen(alternatives.CELERY_QUEUE)
    done = int(client.get(alternatives.CELERY_DONE) or 0)
    first, last = client.get(alternatives.CELERY_FIRST), client.get(alternatives.CELERY_LAST)
    seconds = float(last) - float(first) if first and last else None
    return waiting, done, seconds


def drain_queue(cluster: BenchCluster, mode: str, queued: int, bus: dict, label: str) -> dict:
    """Start the mode's worker on a filled queue and wait until it is empty and every queued
    task finished; seconds by the queue's stamps, and the worker tree's peak RSS."""
    worker = alternatives.start_worker(cluster, mode, name=label, **bus)
    started = time.perf_counter()
    rss = 0.0
    try:
        while True:
            if not worker.alive():
                raise RuntimeError(f"{label} exited early:\n{worker.describe()}")
            rss = max(rss, tree_rss_mib(worker.pid))
            if mode == "procrastinate":
                left, seconds = procrastinate_state(cluster)
                finished = left == 0
            else:
                waiting, done, seconds = celery_state(cluster)
                finished = waiting == 0 and done >= queued
            if finished and seconds:
                break
            if time.perf_counter() - started > DRAIN_TIMEOUT:
                raise RuntimeError(f"{label}: queue not drained after {DRAIN_TIMEOUT:.0f} s")
            time.sleep(POLL)
        time.sleep(POLL)  # tasks the handlers queued (RecommendationsUpdated) are few
    finally:
        rss = max(rss, tree_rss_mib(worker.pid)) if worker.alive() else rss
        worker.close()
    return {"seconds": seconds, "wall": time.perf_counter() - started, "rss_mib": rss}


def measure(
    cluster: BenchCluster, result: ScenarioResult, *, last_id: int, bus: dict, repeats: int,
    relay_per_s: list[float],
) -> None:  # fmt: skip
    """Add each alternative's events/s, enqueue rate, peak RSS and ratio to the relay."""
    from bench.relay import reset

    alternatives.prepare(cluster, "procrastinate")
    runs: dict[str, list[dict]] = {mode: [] for mode in ("on_commit", "procrastinate", "celery")}

    def clean() -> None:
        reset(cluster, last_id)  # also flushes the private Redis: the Celery broker's db 1
        with cluster.sql() as conn:
            conn.execute("TRUNCATE procrastinate_jobs CASCADE")

    def on_commit(i: int) -> float:
        clean()
        done = run_command(cluster, "on_commit", "deliver-on-commit", last_id, bus)
        runs["on_commit"].append({**done, "rss_mib": done["rss_mib"]})
        return done["events"] / done["seconds"]

    def queued(mode: str, command: str, key: str):
        def sample(i: int) -> float:
            clean()
            filled = run_command(cluster, mode, command, last_id, bus)
            drained = drain_queue(cluster, mode, filled[key], bus, f"{mode}-drain-{i}")
            runs[mode].append({**drained, "enqueue_per_s": filled[key] / filled["seconds"],
                               "events": filled[key]})  # fmt: skip
            return filled[key] / drained["seconds"]

        return sample

    every = f"every {ALTERNATIVE_EVERY}th event"
    samples = {
        "on_commit": repeat(repeats, f"on_commit delivery ({every})", on_commit),
        "procrastinate": repeat(
            repeats,
            f"procrastinate, 1 worker ({every})",
            queued("procrastinate", "defer-jobs", "jobs"),
        ),
        "celery": repeat(
            repeats, f"celery, 1 worker ({every})", queued("celery", "queue-tasks", "tasks")
        ),
    }
    clean()
    labels = {
        "on_commit": "on_commit: every handler in the recording process, one event at a time",
        "procrastinate": f"procrastinate: 1 worker, concurrency {alternatives.QUEUE_CONCURRENCY}",
        "celery": f"celery (delay_on_commit, Redis broker): 1 worker, prefork "
        f"{alternatives.QUEUE_CONCURRENCY}",
    }
    for mode, values in samples.items():
        result.add(labels[mode], "events/s", values)
    for mode, values in samples.items():
        result.add(f"ratio 1 relay / {mode}", "x",
                   [a / b for a, b in zip(relay_per_s, values, strict=False)])  # fmt: skip
    for mode in ("procrastinate", "celery"):
        result.add(f"{mode}: enqueue in the recording transaction's process", "events/s",
                   [r["enqueue_per_s"] for r in runs[mode]])  # fmt: skip
    for mode, mode_runs in runs.items():
        what = "recording process" if mode == "on_commit" else "worker and its pool"
        result.add(f"peak RSS, {mode} ({what})", "MiB", [r["rss_mib"] for r in mode_runs])
    progress("relay: alternatives done")
    result.notes.append(
        f"Alternatives (bench/alternatives.py), on every {ALTERNATIVE_EVERY}th of the same "
        "events (same mix and order) with the same handlers and the same bus: on_commit runs "
        "every subscribed handler on [event] in the recording process after each commit "
        "(timed: the deliveries); procrastinate defers one job per event in the recording "
        "transaction, Celery queues one task per event with `delay_on_commit` on the "
        "scenario's private redis-server (database 1); then one worker drains the queue "
        f"(procrastinate --concurrency {alternatives.QUEUE_CONCURRENCY}; Celery prefork "
        f"--concurrency {alternatives.QUEUE_CONCURRENCY}, its other defaults kept: early "
        "acknowledgement, prefetch 4). Concurrency 4 for both: their defaults are 1 and one "
        "per CPU (2), and a job spends most of its time waiting on PostgreSQL and Redis, so "
        "4 handlers in flight overlap those waits without more processes than the relay's "
        "threads. events/s by the queue's own stamps (procrastinate_events; the task's "
        "time.time() of its first start and last finish), worker start-up excluded."
    )
    result.extra["alternatives"] = runs
