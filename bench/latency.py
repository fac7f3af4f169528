"""Scenario `latency`: commit to websocket frame at a steady 200 events/s (budget: p50 < 10 ms,
p99 < 50 ms), under adversity.

Per run: daphne and the production shape's two relays (`manage.py relay --subscribers
realtime.broadcast`, and `manage.py relay` for every other subscriber, the message bus
included) start on the scenario's stores; one dispatcher watching every region connects to
`ws/dispatch/`; a recording process edits open jobs through `scheduling.services.update_job`
at 200/s for 3 s of warm-up and 30 s measured, stamping each event's commit (`time.time()` in
the first on_commit callback); the client stamps each frame's receipt. Same machine, same
clock. Modes, taking turns within each repeat so the machine's noise falls on all alike:

- `normal`: the bus publishes to the machine's RabbitMQ (an exchange of the run's own);
- `bus_down`: EVENT_BUS_URL points at a port where nothing listens, for the whole run;
- `lists`: 400 open jobs have active recommendation lists, and every 4th recorded event is a
  schedule change (weekly hours or time off) that re-ranks them.

Then, with the 400 lists active, a burst of schedule changes: the re-ranking subscriber's step
times from the relay's `relay step subscriber=scheduling.rerank ... ms=` lines.
"""

import json
import os
import re
import statistics
import time

from bench import alternatives, broker
from bench.cluster import BenchCluster
from bench.harness import ScenarioResult, percentile, progress
from bench.wsclients import ClientGroup, latencies_ms, peak_rss_mib, start_daphne

RATE = 200
SECONDS = 30
WARMUP = 3
REPEATS = int(os.environ.get("BENCH_LATENCY_REPEATS", 3))
DRAIN_TIMEOUT = 60  # seconds after the last commit for the broadcast's backlog to empty
SETTLE = 2.0  # then seconds for the last frames to arrive
RECORD_THREADS = 4  # so one slow commit does not hold back the next event
QUANTILES = 1000  # the latency distribution kept in the report, per mode
MODES = ("normal", "bus_down", "lists")
ACTIVE_LISTS = 400
BURST = 200  # schedule changes in the burst
BURST_TIMEOUT = 600.0
RERANK_ALL = 5  # repeats of a re-ranking step that ranks every list afresh
RERANK = "scheduling.rerank"
BROADCAST = "realtime.broadcast"
STEP_LINE = re.compile(r"relay step subscriber=(\S+) handled=(\d+) .* ms=([\d.]+)")


def trial() -> bool:
    """BENCH_LATENCY_TRIAL=1: a short run of every mode, to check the scenario works."""
    return os.environ.get("BENCH_LATENCY_TRIAL") == "1"


def run_worker(
    cluster: BenchCluster, mode: str, *args: str, timeout: float = 900,
    env: dict[str, str] | None = None,
) -> dict:  # fmt: skip
    """`python -m bench.wsworker ARGS` with the mode's environment (bench.alternatives.env)
    plus `env`; its last stdout line."""
    extra = {**alternatives.env(mode), **(env or {})}
    return cluster.run_module("bench.wsworker", *args, timeout=timeout, env=extra)


def backlog(cluster: BenchCluster) -> int:
    """Events recorded but not yet handed to the channel layer: unpublished ones plus the
    broadcast's lag (the bus or the re-ranking may lag on: that is the point)."""
    with cluster.sql() as conn:
        return conn.execute(
            """SELECT (SELECT count(*) FROM events_event WHERE sequence IS NULL)
                    + coalesce((SELECT max(sequence) FROM events_event), 0)
                    - coalesce((SELECT position FROM events_subscriber
                                WHERE name = 'realtime.broadcast'), 0)"""
        ).fetchone()[0]


def wait_delivered(cluster: BenchCluster) -> float:
    """Wait (at most DRAIN_TIMEOUT) for the broadcast's backlog to empty; the seconds waited."""
    started = time.perf_counter()
    while backlog(cluster) and time.perf_counter() - started < DRAIN_TIMEOUT:
        time.sleep(0.5)
    return time.perf_counter() - started


def quantiles(values: list[float], count: int = QUANTILES) -> list[float]:
    """`count + 1` evenly spaced percentiles (0 to 100) of `values`, rounded to 1 microsecond."""
    return [round(percentile(values, 100 * i / count), 3) for i in range(count + 1)]


def step_times(log: str, subscriber: str) -> list[tuple[int, float]]:
    """(events handled, milliseconds) of each `relay step` line of `subscriber` in a relay log."""
    found = []
    for line in log.splitlines():
        match = STEP_LINE.search(line)
        if match and match[1] == subscriber:
            found.append((int(match[2]), float(match[3])))
    return found


def step_counts(log: str) -> dict[str, int]:
    """`relay step` lines per subscriber in a relay log."""
    counts: dict[str, int] = {}
    for line in log.splitlines():
        match = STEP_LINE.search(line)
        if match:
            counts[match[1]] = counts.get(match[1], 0) + 1
    return counts


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured_latencies(events_path, report: dict) -> tuple[dict, dict, list[float]]:
    """The recorder's commit times of the measured (not warm-up) events, the one client's
    log, and commit-to-frame milliseconds of the events it received."""
    rows = json.loads(events_path.read_text())
    commits = {event_id: at for event_id, _, at, warm in rows if not warm}
    (log,) = report["clients"]
    return commits, log, latencies_ms(commits, log["received"])


def per_mode(
    runs: dict[str, list[dict]], figure, unit: str = "", separator: str = "; ", between: str = "/"
) -> str:
    """`mode a/b/c unit` for each mode: `figure(run)` of each of its runs, `between` them."""
    return separator.join(
        f"{mode} " + between.join(figure(r) for r in mode_runs) + unit
        for mode, mode_runs in runs.items()
    )


def relays_cpu(relays) -> float:
    return sum(cpu_seconds(relay.pid) for relay in relays)


def cpu_per_event_ms(run: dict) -> float:
    """The relay's CPU milliseconds per event recorded in a run."""
    return 1000 * run["cpu"]["relay_s"] / max(run["recorded"]["events"], 1)


def bus_for(mode: str) -> dict[str, str]:
    return broker.bus_env("latency", down=mode == "bus_down")


def prepare_mode(cluster: BenchCluster, mode: str, bus: dict[str, str]) -> dict:
    """Settle the log (published, every subscriber at the head); in `lists` mode activate the
    400 lists, else end every active list."""
    settled = run_worker(
        cluster, "relay", "settle", *(["--keep-lists"] if mode == "lists" else []), env=bus
    )
    if mode == "lists":
        settled["lists"] = run_worker(
            cluster, "relay", "activate-lists", "--jobs", str(ACTIVE_LISTS), env=bus
        )
    return settled


def start_relays(cluster: BenchCluster, label: str, bus: dict[str, str]) -> tuple:
    """The production shape's relays: the broadcast's own (started first, and owning the
    broadcast before the other starts), then the one of every other subscriber."""
    argv = alternatives.worker_argv("relay")
    broadcaster = cluster.spawn(
        f"relay-broadcast-{label}", [*argv, "--subscribers", BROADCAST], **bus
    )
    deadline = time.monotonic() + 30
    with cluster.sql() as conn:
        while conn.execute(
            "SELECT owner FROM events_subscriber WHERE name = %s", (BROADCAST,)
        ).fetchone() in (None, ("",)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the broadcast's relay took no lease\n{broadcaster.describe()}")
            time.sleep(0.1)
    return broadcaster, cluster.spawn(f"relay-{label}", argv, **bus)


def one_run(cluster: BenchCluster, mode: str, client: dict, label: str, seconds: int) -> dict:
    bus = bus_for(mode)
    prepared = prepare_mode(cluster, mode, bus)
    load_before = os.getloadavg()[0]
    daphne, base = start_daphne(cluster, f"daphne-{label}")
    broadcaster, relay = start_relays(cluster, label, bus)
    relays = (broadcaster, relay)
    try:
        clients = ClientGroup(cluster, f"clients-{label}", base, [client])
        clients.wait_connected()
        time.sleep(1)  # the relay's start-up is over (it published and delivered nothing yet)
        cpu_before = {"relay_s": relays_cpu(relays), "daphne_s": cpu_seconds(daphne.pid)}
        events_path = cluster.workdir / f"events-{label}.json"
        recorded = run_worker(
            cluster, "relay", "record-steady", "--kind",
            "schedule" if mode == "lists" else "jobs", "--rate", str(RATE),
            "--seconds", str(seconds), "--warmup", str(WARMUP), "--out", str(events_path),
            "--threads", str(RECORD_THREADS),
        )  # fmt: skip
        drain_seconds = wait_delivered(cluster)
        left = backlog(cluster)
        time.sleep(SETTLE)
        rss = {
            "daphne_mib": peak_rss_mib(daphne.pid), "relay_mib": peak_rss_mib(relay.pid),
            "broadcast_relay_mib": peak_rss_mib(broadcaster.pid),
        }  # fmt: skip
        cpu = {
            "relay_s": relays_cpu(relays) - cpu_before["relay_s"],
            "daphne_s": cpu_seconds(daphne.pid) - cpu_before["daphne_s"],
        }
        (report,) = clients.finish()
    finally:
        relay.close()
        broadcaster.close()
        daphne.close()
    commits, log, latencies = measured_latencies(events_path, report)
    # Where the time went: commit -> publication (the relay's published_at, same clock) and
    # publication -> frame.
    with cluster.sql() as conn:
        published = dict(
            conn.execute(
                "SELECT event_id::text, extract(epoch FROM published_at)::float8 "
                "FROM events_event WHERE event_id = ANY(%s::uuid[])",
                (list(commits),),
            ).fetchall()
        )
    to_publish = latencies_ms(commits, published)
    to_frame = latencies_ms(published, {k: v for k, v in log["received"].items() if k in commits})
    rerank_steps = step_times(relay.output(), RERANK)
    summary = (
        f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms"
        if latencies
        else "no event arrived"
    )
    progress(
        f"latency {label}: {summary}, {len(latencies)}/{len(commits)} received, "
        f"recorded at {recorded['rate']:.0f}/s, delivered {drain_seconds:.1f} s after the last "
        f"commit ({left} undelivered at the {DRAIN_TIMEOUT} s limit), "
        f"{len(rerank_steps)} re-ranking steps"
    )
    return {
        "latencies": latencies,
        "to_publish": to_publish,
        "to_frame": to_frame,
        "measured": len(commits),
        "missing": len(commits) - len(latencies),
        "drain_seconds": drain_seconds,
        "undelivered_at_limit": left,
        "recorded": recorded,
        "prepared": prepared,
        "rss": rss,
        "rerank_steps": rerank_steps,
        "steps": step_counts(relay.output() + broadcaster.output()),
        "cpu": cpu,
        "bus_outage_logged": "subscriber events.bus cannot reach a store" in relay.output(),
        "client_loop_lag_p99_ms": percentile(report["loop_lag_ms"] or [0.0], 99),
        "load_1min": [load_before, os.getloadavg()[0]],
        "errors": log["errors"],
    }


def rerank_burst(cluster: BenchCluster, changes: int) -> dict:
    """With the 400 lists active and a relay running, `changes` schedule changes recorded at
    once; waits until the re-ranking subscriber is at the head."""
    bus = bus_for("lists")
    prepare_mode(cluster, "lists", bus)
    broadcaster, relay = start_relays(cluster, "burst", bus)
    try:
        time.sleep(3)  # the relay is up and idle
        burst = run_worker(cluster, "relay", "schedule-burst", "--changes", str(changes))
        started = time.perf_counter()
        with cluster.sql() as conn:
            while True:
                behind, unpublished = conn.execute(
                    """SELECT coalesce((SELECT max(sequence) FROM events_event), 0)
                              - (SELECT position FROM events_subscriber WHERE name = %s),
                              (SELECT count(*) FROM events_event WHERE sequence IS NULL)""",
                    (RERANK,),
                ).fetchone()
                if behind == 0 and unpublished == 0:
                    break
                if time.perf_counter() - started > BURST_TIMEOUT:
                    raise RuntimeError(f"re-ranking still {behind} behind after the burst")
                time.sleep(0.2)
            seconds = conn.execute(
                """SELECT extract(epoch FROM (SELECT progressed_at FROM events_subscriber
                                              WHERE name = %s)
                                  - (SELECT min(published_at) FROM events_event
                                     WHERE id >= %s))::float8""",
                (RERANK, burst["first_id"]),
            ).fetchone()[0]
            updates = conn.execute(
                "SELECT count(*) FROM events_event WHERE id >= %s "
                "AND type = 'RecommendationsUpdated'",
                (burst["first_id"],),
            ).fetchone()[0]
    finally:
        relay.close()
        broadcaster.close()
    steps = step_times(relay.output(), RERANK)
    return {**burst, "catch_up_s": seconds, "steps": steps, "recommendations_updated": updates}


def run(cluster: BenchCluster) -> ScenarioResult:
    try:
        return measure(cluster)
    finally:
        broker.delete_exchange("latency")


def measure(cluster: BenchCluster) -> ScenarioResult:
    result = ScenarioResult("latency")
    seconds, repeats, burst_changes = (5, 1, 40) if trial() else (SECONDS, REPEATS, BURST)
    accounts = cluster.workdir / "accounts.json"
    progress("latency: demo data and one dispatcher login watching every region")
    run_worker(cluster, "relay", "ws-accounts", "--dispatchers", "1", "--out", str(accounts))
    (client,) = json.loads(accounts.read_text())
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    from bench import latency_alternatives as alt

    deliveries = alt.DELIVERIES if os.environ.get("BENCH_LATENCY_ALTERNATIVES", "1") == "1" else ()
    alternatives.prepare(cluster, "procrastinate")
    alt_runs: dict[str, list[dict]] = {delivery: [] for delivery in deliveries}
    for repeat in range(repeats):
        for mode in MODES:
            progress(f"latency: {mode}, run {repeat + 1}/{repeats} ({WARMUP + seconds} s)")
            runs[mode].append(one_run(cluster, mode, client, f"{mode}-{repeat}", seconds))
        for delivery in deliveries:
            progress(f"latency: {delivery}, run {repeat + 1}/{repeats} ({WARMUP + seconds} s)")
            label = f"{delivery}-{repeat}"
            alt_runs[delivery].append(alt.one_run(cluster, delivery, client, label, seconds))
    progress(f"latency: re-ranking burst of {burst_changes} schedule changes, 400 lists active")
    burst = rerank_burst(cluster, burst_changes)
    progress(f"latency: every one of the {ACTIVE_LISTS} lists ranked afresh, {RERANK_ALL} times")
    every = run_worker(cluster, "relay", "rerank-all", "--repeats", str(RERANK_ALL))

    add_commit_to_frame(result, runs, budgets={50: "< 10 ms", 99: "< 50 ms"})
    add_alternatives(result, alt_runs)
    for mode, mode_runs in runs.items():
        split = [r for r in mode_runs if r["to_publish"] and r["to_frame"]]
        if split:
            result.add(f"{mode}: commit to publication p50", "ms",
                       [percentile(r["to_publish"], 50) for r in split])  # fmt: skip
            result.add(f"{mode}: publication to frame p50", "ms",
                       [percentile(r["to_frame"], 50) for r in split])  # fmt: skip
    lists_steps = [ms for r in runs["lists"] for _, ms in r["rerank_steps"]]
    if lists_steps:
        result.add("lists: re-ranking step time p50 (at 200 events/s)", "ms",
                   [percentile([ms for _, ms in r["rerank_steps"]], 50)
                    for r in runs["lists"] if r["rerank_steps"]])  # fmt: skip
        result.add("lists: re-ranking step time max (at 200 events/s)", "ms",
                   [max(ms for _, ms in r["rerank_steps"])
                    for r in runs["lists"] if r["rerank_steps"]])  # fmt: skip
    burst_ms = [ms for _, ms in burst["steps"]]
    if burst_ms:
        result.add(f"burst of {burst_changes} schedule changes: re-ranking step p50", "ms",
                   [percentile(burst_ms, 50)])  # fmt: skip
        result.add(f"burst of {burst_changes} schedule changes: re-ranking step max", "ms",
                   [max(burst_ms)])  # fmt: skip
    result.add(f"burst of {burst_changes} schedule changes: re-ranking caught up after", "s",
               [burst["catch_up_s"]])  # fmt: skip
    result.add(f"every one of {every['lists']} lists ranked afresh in one step: CPU per list",
               "ms", [1000 * s / every["lists"] for s in every["cpu_s"]])  # fmt: skip
    for mode, mode_runs in runs.items():
        result.add(f"{mode}: relay CPU per event", "ms", [cpu_per_event_ms(r) for r in mode_runs])
    result.add("daphne peak RSS (VmHWM), normal", "MiB",
               [r["rss"]["daphne_mib"] for r in runs["normal"]])  # fmt: skip
    result.add(f"relay peak RSS (VmHWM) at {RATE} events/s, normal", "MiB",
               [r["rss"]["relay_mib"] for r in runs["normal"]])  # fmt: skip
    result.add(f"broadcast relay peak RSS (VmHWM) at {RATE} events/s, normal", "MiB",
               [r["rss"]["broadcast_relay_mib"] for r in runs["normal"]])  # fmt: skip
    measured = sum(r["measured"] for r in runs["normal"])
    lists_active = [r["prepared"]["lists"]["active"] for r in runs["lists"]]
    result.notes += [
        f"Per run: {RATE} events/s through the services ({RECORD_THREADS} recording threads) "
        f"for {WARMUP} s of warm-up and {seconds} s measured ({RATE * seconds:,} events); "
        f"{repeats} run(s) per mode, the modes taking turns. Figures: the percentile of each "
        "run; median and spread over the runs.",
        "Commit: `time.time()` in the recording transaction's first on_commit callback. "
        "Frame: `time.time()` when the client's `recv()` returns, one dispatcher on "
        "`ws/dispatch/` (every region) through daphne. Same machine, same clock.",
        "Every mode runs the production shape's two relays: `manage.py relay --subscribers "
        "realtime.broadcast`, and `manage.py relay` (one thread per subscriber: rating "
        "summaries, availability cache, re-ranking, bus); relay CPU is both together. normal: "
        "the bus on the machine's RabbitMQ, exchange of the run's own (deleted afterwards); "
        "bus_down: EVENT_BUS_URL at a free local port (connection refused) for the whole run"
        + (
            ", the relay logged the bus's outage in "
            f"{sum(r['bus_outage_logged'] for r in runs['bus_down'])} of "
            f"{len(runs['bus_down'])} run(s)"
        )
        + "; lists: "
        f"{ACTIVE_LISTS} open jobs with an active recommendation list each (requested through "
        f"`recommend_for_job` before each run; active lists: {lists_active}), and the load is "
        "job priority edits with every 4th event a schedule change (weekly hours toggled, or "
        "an hour of time off), which re-ranks the lists the contractor is in or could enter.",
        "Before each run every event is published and every subscriber set at the head "
        "(`bench.wsworker settle`), so a run measures its own events only. After the last "
        f"commit each run waits (at most {DRAIN_TIMEOUT} s) until the broadcast is at the head, "
        f"then {SETTLE:.0f} s. Seconds waited per run: "
        + per_mode(runs, lambda r: f"{r['drain_seconds']:.0f}")
        + ". Measured events that never reached the client: "
        + ", ".join(f"{mode} {sum(r['missing'] for r in rs)}" for mode, rs in runs.items())
        + f" (of {measured:,} per mode).",
        "Re-ranking steps: the relay's `relay step subscriber=scheduling.rerank handled=N ... "
        "ms=T` lines; in the lists runs, steps per run "
        + "/".join(str(len(r["rerank_steps"])) for r in runs["lists"])
        + ", events per step (median) "
        + "/".join(
            f"{statistics.median([n for n, _ in r['rerank_steps']]):.0f}"
            for r in runs["lists"]
            if r["rerank_steps"]
        )
        + f". Burst: {burst_changes} schedule-change calls (a call that sets hours already in "
        f"place records nothing) by one thread in "
        f"{burst['seconds']:.1f} s with {ACTIVE_LISTS} lists active; {len(burst['steps'])} "
        f"re-ranking steps ({', '.join(f'{n} events {ms:.0f} ms' for n, ms in burst['steps'][:8])}"
        f"{' ...' if len(burst['steps']) > 8 else ''}); "
        f"{burst['recommendations_updated']} RecommendationsUpdated recorded; caught up "
        "= from the burst's first publication to the re-ranking's last position move.",
        f"Every list ranked afresh: `bench.wsworker rerank-all`, a re-ranking step in one "
        f"process with no relay running, every contractor ({every['contractors']}) changed on "
        f"every day so that each of the {every['lists']} lists is ranked afresh (nothing "
        f"changed in fact: nothing is recorded); {RERANK_ALL} steps, CPU "
        + "/".join(f"{s:.2f}" for s in every["cpu_s"])
        + " s, wall "
        + "/".join(f"{s:.2f}" for s in every["wall_s"])
        + " s; the figure is CPU per list.",
        "Relay CPU (user + system, from the first recorded event to the end of the run, "
        "warm-up included) per run: "
        + per_mode(runs, lambda r: f"{r['cpu']['relay_s']:.1f}", " s")
        + f" for {(WARMUP + seconds) * RATE:,} events ("
        + per_mode(runs, lambda r: f"{cpu_per_event_ms(r):.1f}")
        + " ms of relay CPU per recorded event); daphne: "
        + per_mode(runs, lambda r: f"{r['cpu']['daphne_s']:.1f}", " s")
        + ". Relay steps per subscriber (first run of each mode): "
        + "; ".join(
            f"{mode} " + ", ".join(f"{name} {n}" for name, n in sorted(rs[0]["steps"].items()))
            for mode, rs in runs.items()
            if rs
        )
        + ".",
        "Client event-loop lag, p99 per run: "
        + per_mode(runs, lambda r: f"{r['client_loop_lag_p99_ms']:.1f}", separator=", ")
        + " ms (sampled every 50 ms).",
        "Machine load (1-minute load average before/after each run, 2 cores, shared with other "
        "work): "
        + per_mode(runs, lambda r: f"{r['load_1min'][0]:.1f}/{r['load_1min'][1]:.1f}", between=", ")
        + ". The recorder's achieved rate per run: "
        + per_mode(runs, lambda r: f"{r['recorded']['rate']:.0f}", " events/s")
        + f" (target {RATE}).",
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
        "rerank_steps": {"lists": [r["rerank_steps"] for r in runs["lists"]], "burst": burst},
        "relay_steps": {mode: [r["steps"] for r in rs] for mode, rs in runs.items()},
        "cpu_seconds": {mode: [r["cpu"] for r in rs] for mode, rs in runs.items()},
        "client_errors": {
            mode: [e for r in mode_runs for e in r["errors"]] for mode, mode_runs in runs.items()
        },
    }
    cpu = statistics.median(cpu_per_event_ms(r) for r in runs["normal"])
    result.extra["arithmetic"] = [
        f"The relay spends {cpu:.2f} ms of CPU per event (normal): at {RATE} events/s that is "
        f"{cpu * RATE / 1000:.2f} of the machine's {os.cpu_count()} cores, before daphne, "
        "PostgreSQL and the recorder; a p50 of 10 ms leaves one relay step (read a batch, run "
        "the broadcast, move the position) about 10 ms from commit to send, i.e. a poll or "
        "wake-up well under 10 ms and a step whose CPU per batch fits in it.",
    ]
    result.extra["alternatives"] = {
        delivery: [{k: v for k, v in r.items() if k != "latencies"} for r in rs]
        for delivery, rs in alt_runs.items()
    }
    for delivery, rs in alt_runs.items():
        if any(r["latencies"] for r in rs):
            result.extra["latency_ms_quantiles"][delivery] = quantiles(
                [v for r in rs for v in r["latencies"]]
            )
    return result


def add_commit_to_frame(
    result: ScenarioResult, runs: dict[str, list[dict]], budgets: dict[int, str] | None = None
) -> None:
    """Commit to frame p50, p95 and p99 of each mode (`budgets` by percentile), over the runs
    in which an event reached the client."""
    budgets = budgets or {}
    for mode, mode_runs in runs.items():
        measured = [r for r in mode_runs if r["latencies"]]
        if not measured:
            result.not_measured.append(f"{mode}: no event reached the client in any run.")
            continue
        for pct in (50, 95, 99):
            result.add(
                f"{mode}: commit to frame p{pct}",
                "ms",
                [percentile(r["latencies"], pct) for r in measured],
                budget=budgets.get(pct, ""),
            )


def add_alternatives(result: ScenarioResult, alt_runs: dict[str, list[dict]]) -> None:
    """Commit-to-frame, peak RSS and CPU of each alternative, beside the relay's `normal`."""
    add_commit_to_frame(result, alt_runs)
    for delivery, rs in alt_runs.items():
        where = "recording process" if delivery == "on_commit" else "worker and its pool"
        result.add(f"{delivery}: peak RSS (VmHWM, {where})", "MiB",
                   [r["rss"]["worker_mib"] for r in rs])  # fmt: skip
        cpu = [r["cpu_ms_per_event"] for r in rs if r["cpu_ms_per_event"] is not None]
        if cpu:
            result.add(f"{delivery}: worker CPU per event", "ms", cpu)
    if not alt_runs:
        return
    result.notes.append(
        "Alternatives (bench/latency_alternatives.py), in the same run, taking turns with the "
        "relay's modes, under the `normal` mode's conditions (bus up): the same job edits at "
        f"{RATE}/s, the same client and daphne; no relay runs. on_commit: the recording "
        "process runs every handler after each commit; procrastinate: one job per event, one "
        f"worker at --concurrency {alternatives.QUEUE_CONCURRENCY}; celery: `delay_on_commit`, "
        f"one worker, prefork {alternatives.QUEUE_CONCURRENCY} (the group sends from its pool "
        "processes), broker on the private redis-server, database 1. Waited for the queue to "
        "empty per run: "
        + per_mode(alt_runs, lambda r: f"{r['drain_seconds']:.0f} s")
        + ". Measured events that never reached the client: "
        + ", ".join(f"{d} {sum(r['missing'] for r in rs)}" for d, rs in alt_runs.items())
        + ". Achieved recording rate: "
        + per_mode(alt_runs, lambda r: f"{r['recorded']['rate']:.0f}")
        + " events/s. Peak RSS of a queue worker: VmHWM summed over its processes."
    )
