"""Scenario `latency`: commit to websocket frame at a steady 200 events/s (budget: p50 < 10 ms,
p99 < 50 ms), for ours ("relay") and the alternatives of `bench.alternatives`.

Per run: daphne and the mode's delivering process start on the scenario's stores; one dispatcher
watching every region connects to `ws/dispatch/`; a recording process edits open jobs through
`scheduling.services.update_job` at 200/s for 3 s of warm-up and 30 s measured, stamping each
event's commit (`time.time()` in the first on_commit callback); the client stamps each frame's
receipt. Same machine, same clock. The modes take turns within each repeat, so the machine's
noise falls on all of them alike.
"""

import json
import os
import subprocess
import sys
import time

from bench import alternatives
from bench.cluster import BenchCluster
from bench.harness import ScenarioResult, percentile, progress
from bench.wsclients import ClientGroup, latencies_ms, peak_rss_mib, start_daphne
from chaos.cluster import ROOT

RATE = 200
SECONDS = 30
WARMUP = 3
REPEATS = 3
DRAIN_TIMEOUT = 60  # seconds after the last commit for a mode's backlog to empty
SETTLE = 2.0  # then seconds for the last frames to arrive
PROCRASTINATE_CONCURRENCY = 4  # as in scenario relay
RECORD_THREADS = 4  # so one slow commit does not hold back the next event
QUANTILES = 1000  # the latency distribution kept in the report, per mode


def run_worker(cluster: BenchCluster, mode: str, *args: str, timeout: float = 900) -> dict:
    """`python -m bench.wsworker ARGS` with the mode's environment; its last stdout line."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.wsworker", *args],
        cwd=ROOT,
        env=cluster.env(**alternatives.env(mode)),
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.wsworker {' '.join(args)} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def settle(cluster: BenchCluster, mode: str) -> None:
    """Nothing left from an earlier run: the outbox is empty for a relay in every mode, and no
    procrastinate job is waiting, so each run measures its own events only."""
    with cluster.sql() as conn:
        conn.execute("UPDATE events_event SET status = 'delivered' WHERE status != 'delivered'")
        if mode == "procrastinate":
            conn.execute("DELETE FROM procrastinate_jobs WHERE status = 'todo'")


def backlog(cluster: BenchCluster, mode: str) -> int:
    """Events recorded but not yet handed to the channel layer by the mode's deliverer."""
    query = {
        "relay": "SELECT count(*) FROM events_event WHERE status = 'pending'",
        "procrastinate": (
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
        ),
    }.get(mode)
    if query is None:  # on_commit delivers before the recording call returns
        return 0
    with cluster.sql() as conn:
        return conn.execute(query).fetchone()[0]


def wait_delivered(cluster: BenchCluster, mode: str) -> float:
    """Wait (at most DRAIN_TIMEOUT) for the mode's backlog to empty; returns the seconds waited."""
    started = time.perf_counter()
    while backlog(cluster, mode) and time.perf_counter() - started < DRAIN_TIMEOUT:
        time.sleep(0.5)
    return time.perf_counter() - started


def quantiles(values: list[float], count: int = QUANTILES) -> list[float]:
    """`count + 1` evenly spaced percentiles (0 to 100) of `values`, rounded to 1 microsecond."""
    return [round(percentile(values, 100 * i / count), 3) for i in range(count + 1)]


def one_run(cluster: BenchCluster, mode: str, client: dict, label: str) -> dict:
    load_before = os.getloadavg()[0]
    settle(cluster, mode)
    daphne, base = start_daphne(cluster, f"daphne-{label}", **alternatives.env(mode))
    if mode == "procrastinate":
        worker = alternatives.start_worker(cluster, mode, concurrency=PROCRASTINATE_CONCURRENCY)
    else:
        worker = alternatives.start_worker(cluster, mode)
    try:
        clients = ClientGroup(cluster, f"clients-{label}", base, [client])
        clients.wait_connected()
        events_path = cluster.workdir / f"events-{label}.json"
        recorded = run_worker(
            cluster, mode, "record-steady", "--mode", mode, "--rate", str(RATE),
            "--seconds", str(SECONDS), "--warmup", str(WARMUP), "--out", str(events_path),
            "--threads", str(RECORD_THREADS),
        )  # fmt: skip
        drain_seconds = wait_delivered(cluster, mode)
        left = backlog(cluster, mode)
        time.sleep(SETTLE)
        rss = {"daphne_mib": peak_rss_mib(daphne.pid)}
        if worker is not None:
            rss["worker_mib"] = peak_rss_mib(worker.pid)
        (report,) = clients.finish()
    finally:
        if worker is not None:
            worker.stop()
        daphne.stop()
    rows = json.loads(events_path.read_text())
    commits = {event_id: at for event_id, _, at, warm in rows if not warm}
    (log,) = report["clients"]
    latencies = latencies_ms(commits, log["received"])
    missing = len(commits) - len(latencies)
    summary = (
        f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms"
        if latencies
        else "no event arrived"
    )
    progress(
        f"latency {label}: {summary}, {len(latencies)}/{len(commits)} received, "
        f"recorded at {recorded['rate']:.0f}/s, delivered {drain_seconds:.1f} s after the last "
        f"commit ({left} undelivered at the {DRAIN_TIMEOUT} s limit), "
        f"daphne peak RSS {rss['daphne_mib']:.0f} MiB"
    )
    return {
        "latencies": latencies,
        "measured": len(commits),
        "missing": missing,
        "drain_seconds": drain_seconds,
        "undelivered_at_limit": left,
        "recorded": recorded,
        "rss": rss,
        "client_loop_lag_p99_ms": percentile(report["loop_lag_ms"] or [0.0], 99),
        "load_1min": [load_before, os.getloadavg()[0]],
        "errors": log["errors"],
    }


def run(cluster: BenchCluster) -> ScenarioResult:
    result = ScenarioResult("latency")
    accounts = cluster.workdir / "accounts.json"
    progress("latency: demo data and one dispatcher login watching every region")
    run_worker(cluster, "relay", "ws-accounts", "--dispatchers", "1", "--out", str(accounts))
    (client,) = json.loads(accounts.read_text())
    for mode in alternatives.MODES:
        alternatives.prepare(cluster, mode)
    runs: dict[str, list[dict]] = {mode: [] for mode in alternatives.MODES}
    for repeat in range(REPEATS):
        for mode in alternatives.MODES:
            progress(f"latency: {mode}, run {repeat + 1}/{REPEATS} ({WARMUP + SECONDS} s)")
            runs[mode].append(one_run(cluster, mode, client, f"{mode}-{repeat}"))

    budgets = {50: "< 10 ms", 99: "< 50 ms"}
    for mode, mode_runs in runs.items():
        measured_runs = [r for r in mode_runs if r["latencies"]]
        if not measured_runs:
            result.not_measured.append(f"{mode}: no event reached the client in any run.")
            continue
        for pct in (50, 95, 99):
            result.add(
                f"{mode}: commit to frame p{pct}",
                "ms",
                [percentile(r["latencies"], pct) for r in measured_runs],
                budget=budgets.get(pct, "") if mode == "relay" else "",
            )
    for mode in alternatives.MODES[1:]:
        for pct in (50, 99):
            pairs = [
                (ours, theirs)
                for ours, theirs in zip(runs["relay"], runs[mode], strict=True)
                if ours["latencies"] and theirs["latencies"]
            ]
            if pairs:
                result.add(
                    f"ratio relay / {mode}, p{pct} (same repeat)",
                    "x",
                    [
                        percentile(ours["latencies"], pct) / percentile(theirs["latencies"], pct)
                        for ours, theirs in pairs
                    ],
                )
    result.add(
        "daphne peak RSS (VmHWM), relay mode",
        "MiB",
        [r["rss"]["daphne_mib"] for r in runs["relay"]],
    )
    result.add(
        f"relay peak RSS (VmHWM) at {RATE} events/s",
        "MiB",
        [r["rss"]["worker_mib"] for r in runs["relay"]],
    )
    measured = sum(r["measured"] for r in runs["relay"])
    result.notes += [
        f"Per run: {RATE} events/s through `scheduling.services.update_job` (a priority edit of "
        f"an open job: JobUpdated to its region's group; {RECORD_THREADS} recording threads) "
        f"for {WARMUP} s of warm-up and {SECONDS} s measured ({RATE * SECONDS:,} events); "
        f"{REPEATS} runs per mode, the modes taking turns. Figures: the percentile of each run; "
        "median and spread over the runs.",
        "Commit: `time.time()` in the recording transaction's first on_commit callback (before "
        "anything an alternative hooks on commit). Frame: `time.time()` when the client's "
        "`recv()` returns, one dispatcher on `ws/dispatch/` (every region) through daphne. "
        "Same machine, same clock.",
        "Modes (`bench/alternatives.py`): relay = `manage.py relay` (NOTIFY wake-up, batch "
        f"{alternatives.RELAY_BATCH}); on_commit = the handlers and `group_send` in "
        "`transaction.on_commit` of the recording process (the recording request pays for the "
        "delivery); procrastinate = one job per event, deferred in the recording transaction, "
        f"run by one procrastinate worker at concurrency {PROCRASTINATE_CONCURRENCY}.",
        f"After the last commit each run waits (at most {DRAIN_TIMEOUT} s) until the mode has "
        "nothing left to deliver, then "
        f"{SETTLE:.0f} s. Seconds waited per run: "
        + "; ".join(
            f"{mode} " + "/".join(f"{r['drain_seconds']:.0f}" for r in rs)
            for mode, rs in runs.items()
        )
        + ". Measured events that never reached the client: "
        + ", ".join(f"{mode} {sum(r['missing'] for r in rs)}" for mode, rs in runs.items())
        + f" (of {measured:,} per mode).",
        "Client event-loop lag, p99 per run: "
        + ", ".join(
            f"{mode} " + "/".join(f"{r['client_loop_lag_p99_ms']:.1f}" for r in mode_runs)
            for mode, mode_runs in runs.items()
        )
        + " ms (sampled every 50 ms; small against the latencies means the client kept up).",
        "Machine load (1-minute load average before/after each run, 2 cores, shared with other "
        "work): "
        + "; ".join(
            f"{mode} " + ", ".join(f"{r['load_1min'][0]:.1f}/{r['load_1min'][1]:.1f}" for r in rs)
            for mode, rs in runs.items()
        )
        + ". The recorder's achieved rate per run: "
        + "; ".join(
            f"{mode} " + "/".join(f"{r['recorded']['rate']:.0f}" for r in rs) + " events/s"
            for mode, rs in runs.items()
        )
        + f" (target {RATE}; a recorder behind schedule records at once, in bursts).",
    ]
    result.extra = {
        "latency_ms_quantiles": {
            mode: quantiles([v for r in mode_runs for v in r["latencies"]])
            for mode, mode_runs in runs.items()
            if any(r["latencies"] for r in mode_runs)
        },
        "received_share": {
            mode: sum(len(r["latencies"]) for r in rs) / max(sum(r["measured"] for r in rs), 1)
            for mode, rs in runs.items()
        },
        "recorded": {mode: [r["recorded"] for r in mode_runs] for mode, mode_runs in runs.items()},
        "peak_rss_mib": {mode: [r["rss"] for r in mode_runs] for mode, mode_runs in runs.items()},
        "client_errors": {
            mode: [e for r in mode_runs for e in r["errors"]] for mode, mode_runs in runs.items()
        },
    }
    return result
