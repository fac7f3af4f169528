"""The chaos run and the soak: boot a private cluster, drive traffic and websocket clients,
inject faults (run only), then check the invariants and the fault measures (chaos.measures)
and print the report.

Every process is stopped and the database dropped in `finally` (and by atexit); SIGTERM is
turned into SystemExit so that path runs on `kill` as on Ctrl-C."""

import contextlib
import json
import os
import random
import re
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from chaos import invariants, measures
from chaos.clients import ClientRecord, WebsocketClient
from chaos.cluster import RELAY_SLOTS, Cluster
from chaos.faults import FaultInjector, Monitor
from chaos.load import LoadGenerator, World
from devtools.processes import Process, wait_until

CONTRACTORS = 20
SHORT_SECONDS = 16.0
# A broker restart takes 6 to 15 s on a busy 2-core machine: the short run (CI) keeps RabbitMQ
# (bus delivery, the audit queue) but leaves its restarts to the full run.
SHORT_FAULTS = ("relay_sigkill", "redis_restart", "pg_terminate_backends")
CONTRACTOR_CLIENTS = 3
# Checks whose failures are events some subscriber, client or the bus never got.
LOSS_CHECKS = {
    "events published", "every subscriber handled every event", "bus queue got every event",
    "clients hold every event of their groups",
}  # fmt: skip
RECOVERED = re.compile(r"(?:subscriber \S+|publisher) recovered after ([\d.]+)s")


def say(text: str) -> None:
    print(f"chaos: {text}", flush=True)


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


@dataclass
class Setup:
    cluster: Cluster
    token: str
    world: World
    records: list[ClientRecord]
    monitor: Monitor
    first_after: int


def _get(cluster: Cluster, path: str, token: str):
    request = urllib.request.Request(
        cluster.base_url + path, headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def boot(cluster: Cluster, seed: int) -> Setup:
    started = time.monotonic()

    def note(text: str) -> None:
        say(f"[{time.monotonic() - started:4.1f}s] {text}")

    broker = cluster.broker
    if broker is not None:
        broker.launch()  # it boots while the database migrates
    cluster.create_database()
    note(f"database {cluster.database} created; migrating")
    cluster.manage("migrate", "--no-input", timeout=300)
    cluster.start_redis()
    note(f"redis-server on port {cluster.redis_port}")
    if broker is not None:
        broker.wait_ready()
        broker.declare_audit_queue()  # bound before the bus publishes anything
        note(f"rabbitmq node {broker.node} on port {broker.port}")
    cluster.manage("seed_demo", "--force", "--contractors", str(CONTRACTORS), "--jobs", "0",
                   "--seed", str(seed % 10_000))  # fmt: skip
    token = cluster.create_token("chaos-dispatcher", "dispatcher")
    cluster.start_web()
    note(f"daphne on port {cluster.web_port}")
    relays = [cluster.start_relay(f"{slot}.{n}") for n, slot in enumerate(RELAY_SLOTS, 1)]
    for relay in relays:
        wait_until(
            lambda r=relay: "relay started" in r.output() or not r.alive(),
            timeout=30,
            message=f"relay {relay.name} to start",
        )
        if not relay.alive():
            raise RuntimeError("relay exited at start\n" + relay.describe())
    note("relays started")

    contractors = _get(cluster, "/api/contractors?limit=200&status=active", token)["results"]
    regions = sorted({r["slug"] for r in _get(cluster, "/api/regions", token)} | {"default"})
    world = World(contractors=contractors)
    monitor = Monitor(cluster)
    wait_until(lambda: monitor.pending()[0] == 0, timeout=60, message="the seed events to drain")
    first_after = monitor.head()

    records = [
        ClientRecord(f"dispatch[{slug}]", f"/ws/dispatch/?regions={slug}&token={token}",
                     {f"dispatch/{slug}"}, first_after)
        for slug in regions
    ]  # fmt: skip
    records.append(
        ClientRecord("dispatch[all]", f"/ws/dispatch/?token={token}",
                     {f"dispatch/{slug}" for slug in regions}, first_after)
    )  # fmt: skip
    rng = random.Random(seed)
    unlinked = [c for c in contractors if not c.get("userId")]  # seed_demo links one
    picked = rng.sample(unlinked, min(CONTRACTOR_CLIENTS, len(unlinked)))

    def login_for(contractor: dict) -> str:
        number = str(contractor["id"])
        return cluster.create_token(f"chaos-contractor-{number}", "contractor",
                                    "--contractor", number)  # fmt: skip

    with ThreadPoolExecutor(len(picked) or 1) as pool:  # one manage.py each, side by side
        logins = list(pool.map(login_for, picked))
    for contractor, login in zip(picked, logins, strict=True):
        records.append(
            ClientRecord(f"contractor[{contractor['id']}]", f"/ws/contractor/?token={login}",
                         {f"contractor/{contractor['id']}"}, first_after)
        )  # fmt: skip
    note(
        f"cluster up in {time.monotonic() - started:.1f}s: {len(contractors)} contractors, "
        f"regions {', '.join(regions)}, {len(records)} websocket clients, first after="
        f"{first_after}"
    )
    return Setup(cluster, token, world, records, monitor, first_after)


def setup_django(cluster: Cluster) -> None:
    """Django in this process, on the run's database and Redis (after the faults: our
    sessions here are not the observer's)."""
    os.environ.pop("EVENT_BUS_URL", None)
    for key, value in cluster.env().items():
        if key in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "SECRET_KEY",
                   "DEBUG", "EMBEDDED_RELAY", "ALLOWED_HOSTS", "EVENT_BUS_URL"}:  # fmt: skip
            os.environ[key] = value
    import django

    django.setup()
    from chaos.subscribers import register

    register()  # the invariants know the relays' subscribers


def drain(setup: Setup, timeout: float) -> float:
    started = time.monotonic()
    try:
        wait_until(
            lambda: setup.monitor.pending()[0] == 0,
            timeout=timeout,
            message="pending to drain",
            interval=0.2,
        )
    except TimeoutError:
        say(f"pending did not drain within {timeout:.0f}s: {setup.monitor.pending()}")
    return time.monotonic() - started


def dump_clients(records: list[ClientRecord], path: Path) -> None:
    path.write_text(json.dumps({r.name: r.timeline for r in records}))


def catch_up(clients: list[WebsocketClient]) -> list[str]:
    failed: list[str] = []

    def one(client: WebsocketClient) -> None:
        if not client.catch_up():
            failed.append(client.record.name)

    threads = [threading.Thread(target=one, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return failed


# --- the report ---------------------------------------------------------------------------


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    out = [line, "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
           line]  # fmt: skip
    for row in rows:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        out.append("| " + " | ".join(cells) + " |")
    out.append(line)
    return "\n".join(out)


def events_recorded() -> Counter:
    from events.models import Event

    return Counter(Event.objects.values_list("type", flat=True))


def relay_recoveries(cluster: Cluster) -> list[float]:
    found: list[float] = []
    for relay in cluster.relays.values():
        found += [float(x) for x in RECOVERED.findall(relay.output())]
    return found


def print_report(setup: Setup, load: LoadGenerator, checks: list[invariants.Check],
                 found: list[measures.Measure], injector: FaultInjector | None,
                 drained_in: float, bus_received: Counter | None) -> None:  # fmt: skip
    cluster = setup.cluster
    monitor = setup.monitor
    recorded = events_recorded()
    print()
    print(f"events recorded: {sum(recorded.values())} "
          f"({', '.join(f'{t} {n}' for t, n in sorted(recorded.items()))})")  # fmt: skip
    outcomes = load.summary()
    print("api calls: " + "; ".join(
        f"{op} " + " ".join(f"{status}x{n}" for status, n in sorted(c.items()))
        for op, c in outcomes.items()
    ))  # fmt: skip
    if load.errors:
        print(f"load generator errors: {len(load.errors)} (first: {load.errors[0]})")
    if injector is not None:
        print("faults injected: " + ", ".join(f"{k} {n}" for k, n in injector.counts.items())
              + f" (total {sum(injector.counts.values())})")  # fmt: skip
        rows = []
        first = monitor.samples[0].at if monitor.samples else 0.0
        for fault in monitor.faults:
            recovered = (f"{fault.recovered_after:.2f}s" if fault.recovered_after is not None
                         else "never")  # fmt: skip
            ended = fault.ended if fault.ended is not None else fault.started
            rows.append([f"{fault.started - first:.1f}s", fault.kind, fault.detail,
                         f"{ended - fault.started:.2f}s", recovered,
                         ", ".join(fault.behind) or "-"])  # fmt: skip
        print(table(rows, ["at", "fault", "detail", "store down", "recovered after",
                           "last to catch up"]))  # fmt: skip
        if injector.errors:
            print(f"fault injector errors: {injector.errors}")
        recoveries = relay_recoveries(cluster)
        if recoveries:
            print(f"relay logged 'recovered' {len(recoveries)} times, after "
                  + ", ".join(f"{x:.1f}s" for x in recoveries))  # fmt: skip
    records = setup.records
    duplicates = sum(r.duplicates for r in records)
    received = sum(len(r.received) for r in records)
    print(
        f"websocket clients: {len(records)}, connections {sum(r.connects for r in records)} "
        f"(failed {sum(r.failed_connects for r in records)}, closed by the server "
        f"{sum(len(r.disconnects) for r in records)}, degraded frames "
        f"{sum(r.degraded for r in records)}), events received {received}, duplicates "
        f"received {duplicates}"
    )
    live = [got - occurred for r in records for occurred, got in r.live]
    if live:
        print(f"websocket live lag (occurredAt to receipt), {len(live)} frames: p50 "
              f"{measures.percentile(live, 0.5):.3f}s, p99 {measures.percentile(live, 0.99):.3f}s"
              f", max {max(live):.3f}s")  # fmt: skip
    protocol_errors = [e for r in records for e in r.errors if not e.startswith("connection")]
    if protocol_errors:
        print(f"websocket error frames: {protocol_errors[:5]}")
    lags = monitor.lag_by_key()
    if lags:
        print("max lag by subscriber (excused or not): "
              + ", ".join(f"{k} {v:.2f}s" for k, v in sorted(lags.items())))  # fmt: skip
    print(f"final drain took {drained_in:.2f}s")
    if bus_received is not None:
        print(f"bus audit queue: {sum(bus_received.values())} messages, "
              f"{len(bus_received)} distinct events")  # fmt: skip
    broker_starts = cluster.broker.starts if cluster.broker is not None else 0
    print(f"relay processes started: {cluster.relay_starts}; redis starts: "
          f"{cluster.redis_starts}; rabbitmq starts: {broker_starts}")  # fmt: skip
    print()
    rows = [[c.name, c.checked, c.failures, "ok" if c.ok else "FAIL"] for c in checks]
    print(table(rows, ["invariant", "checked", "failures", "result"]))
    lost = sum(c.failures for c in checks if c.name in LOSS_CHECKS)
    print(f"lost = {lost}")
    if found:
        print()
        rows = [[m.name, m.value, m.bound, "ok" if m.ok else "FAIL"] for m in found]
        print(table(rows, ["fault measure", "value", "bound", "result"]))
    for check in checks:
        if not check.ok:
            print(f"\nFAILED {check.name}: {check.failures}")
            for line in check.offending[:30]:
                print(f"  {line}")
            if len(check.offending) > 30:
                print(f"  ... and {len(check.offending) - 30} more")
    for measure in found:
        if not measure.ok:
            print(f"\nOUT OF BOUNDS {measure.name}: {measure.value} (bound {measure.bound})")
            for line in measure.offending[:30]:
                print(f"  {line}")


# --- the two commands ---------------------------------------------------------------------


def _processes_healthy(cluster: Cluster) -> list[str]:
    problems = []
    if cluster.web is None or not cluster.web.alive():
        problems.append("daphne is not running\n" + (cluster.web.describe() if cluster.web else ""))
    for name, relay in cluster.relays.items():
        if not relay.alive() and relay.proc.returncode != -signal.SIGKILL:
            problems.append(f"relay {name} exited by itself\n" + relay.describe())
    broker = cluster.broker
    if broker is not None and (broker.process is None or not broker.process.alive()):
        problems.append("the private RabbitMQ is not running\n" + broker.describe())
    for relay in cluster.relays.values():
        if "Traceback" in relay.output():
            problems.append(f"relay {relay.name} logged a traceback\n" + relay.describe(60))
    return problems


def _execute(args, *, soak: bool) -> int:
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
    cluster = Cluster(workdir, keep=args.keep, bus=not args.no_bus)
    clients: list[WebsocketClient] = []
    load: LoadGenerator | None = None
    injector: FaultInjector | None = None
    setup: Setup | None = None
    say(f"seed {seed}; logs in {workdir}")
    try:
        setup = boot(cluster, seed)
        if soak:
            rate, duration = args.rate, args.minutes * 60
        elif args.short:
            rate, duration = args.rate or 20.0, SHORT_SECONDS
        else:
            rate, duration = args.rate or 20.0, args.duration
        setup.monitor.start()
        clients = [
            WebsocketClient(record, ws_url=cluster.ws_url, seed=seed + n)
            for n, record in enumerate(setup.records)
        ]
        for client in clients:
            client.start()
        load = LoadGenerator(port=cluster.web_port, token=setup.token, world=setup.world,
                             rate=rate, seed=seed)  # fmt: skip
        load.start()
        if not soak:
            gaps = (1.5, 3.0) if args.short else (3.0, 6.0)
            kinds = SHORT_FAULTS if args.short else ()
            injector = FaultInjector(cluster, setup.monitor, seed, *gaps, kinds=kinds)
            injector.start()
        say(f"load at {rate:g} ops/s for {duration:g}s" + ("" if soak else " with faults"))
        samples = sample_loop(cluster, setup.monitor, duration,
                              args.sample_every if soak else None)  # fmt: skip
        if injector is not None:
            injector.stop()
        load.stop()
        for client in clients:
            client.stop_event.set()
        for client in clients:
            client.stop()
        say("load stopped; waiting for the EventLog to drain")
        drained_in = drain(setup, timeout=cluster.relay_lease + 60)
        stragglers = catch_up(clients)
        if stragglers:
            say(f"clients that could not finish their final resume: {stragglers}")
        setup.monitor.stop()
        bus_received = cluster.broker.read_audit_queue() if cluster.broker is not None else None
        setup_django(cluster)
        checks = invariants.run_all(setup.records, bus_received, setup.first_after)
        found = [] if soak else measures.run_all(setup.monitor, setup.records, cluster.relay_lease)
        print_report(setup, load, checks, found, injector, drained_in, bus_received)
        if args.keep:
            dump_clients(setup.records, workdir / "clients.json")
        failed = [c for c in checks if not c.ok] + [m for m in found if not m.ok]
        problems = _processes_healthy(cluster)
        if stragglers:
            problems.append(f"clients without a final resume: {stragglers}")
        if soak:
            problems += print_soak(samples)
        for problem in problems:
            print(f"\nPROBLEM: {problem}")
        if injector is not None:
            missing = [k for k, n in injector.counts.items() if n == 0]
            if missing:
                print(f"\nnote: no {', '.join(missing)} fault in this run (too short?)")
        ok = not failed and not problems
        print(f"\nchaos {'soak' if soak else 'run'}: {'PASSED' if ok else 'FAILED'} "
              f"(seed {seed}, {datetime.now(UTC):%Y-%m-%d %H:%M:%SZ})")  # fmt: skip
        return 0 if ok else 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except Exception as exc:
        say(f"error: {type(exc).__name__}: {exc}")
        broker = cluster.broker.process if cluster.broker is not None else None
        for process in [cluster.web, broker, *cluster.relays.values()]:
            if process is not None:
                print(process.describe(), file=sys.stderr)
        return 2
    finally:
        if injector is not None:
            injector.stop_event.set()
        if load is not None:
            load.stop_event.set()
        for client in clients:
            client.stop_event.set()
        if setup is not None:
            setup.monitor.stop_event.set()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        cluster.close()
        signal.signal(signal.SIGTERM, previous)
        if args.keep:
            say(f"kept database {cluster.database} and logs in {workdir}")


def run_chaos(args) -> int:
    return _execute(args, soak=False)


def run_soak(args) -> int:
    return _execute(args, soak=True)


# --- sampling (soak) ------------------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class SoakSample:
    elapsed: float
    lag: float
    pending: int
    connections: int
    rss: dict[str, int]


def sample_loop(cluster: Cluster, monitor: Monitor, duration: float,
                every: float | None) -> list[SoakSample]:  # fmt: skip
    """Wait out the run; with `every`, take a soak sample each `every` seconds. A dead daphne
    ends the run early."""
    started = time.monotonic()
    samples: list[SoakSample] = []
    next_sample = started + (every or 0)
    while (left := started + duration - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))
        if cluster.web is None or not cluster.web.alive():
            say("daphne died; ending the load early")
            break
        if every is not None and time.monotonic() >= next_sample:
            next_sample += every
            count, lag, _ = monitor.pending()
            connections = monitor.query(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (cluster.database,)
            )[0][0]
            procs: list[Process] = [p for p in cluster.processes()]
            rss = {p.name: rss_kib(p.pid) or 0 for p in procs}
            sample = SoakSample(time.monotonic() - started, lag, count, connections, rss)
            samples.append(sample)
            say(f"t={sample.elapsed:6.0f}s lag={lag:5.2f}s pending={count:4d} "
                f"pg_connections={connections:3d} rss_kib="
                + " ".join(f"{k}={v}" for k, v in sorted(rss.items())))  # fmt: skip
    return samples


def print_soak(samples: list[SoakSample]) -> list[str]:
    """Growth checks over the samples: the last third against the first third."""
    if len(samples) < 6:
        return [f"only {len(samples)} soak samples: too short to judge growth"]
    third = len(samples) // 3
    first, last = samples[:third], samples[-third:]
    problems = []
    rows = []
    for name in sorted(samples[0].rss):
        before = sum(s.rss.get(name, 0) for s in first) / len(first)
        after = sum(s.rss.get(name, 0) for s in last) / len(last)
        growth = (after - before) / before if before else 0.0
        rows.append([f"rss {name} (KiB)", f"{before:.0f}", f"{after:.0f}", f"{growth:+.1%}"])
        if growth > 0.5:
            problems.append(f"RSS of {name} grew {growth:.0%} ({before:.0f} -> {after:.0f} KiB)")
    conn_before = max(s.connections for s in first)
    conn_after = max(s.connections for s in last)
    rows.append(["pg connections (max)", conn_before, conn_after, f"{conn_after - conn_before:+d}"])
    # Web threads open and drop connections as they come and go; a leak keeps climbing.
    if conn_after > conn_before * 1.25 + 2:
        problems.append(f"PostgreSQL connections grew {conn_before} -> {conn_after}")
    lag_before = max(s.lag for s in first)
    lag_after = max(s.lag for s in last)
    rows.append(["relay lag (max s)", f"{lag_before:.2f}", f"{lag_after:.2f}", ""])
    if samples[-1].lag >= 2.0 and lag_after >= 2.0:
        problems.append(f"relay lag did not return under 2 s (last third max {lag_after:.2f}s)")
    print()
    print(table(rows, ["soak measure", "first third", "last third", "change"]))
    return problems
