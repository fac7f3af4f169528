"""Websocket clients for the `latency` and `fanout` scenarios, and their accounting.

Run as `python -m bench.wsclients PLAN OUT`: connects every client of PLAN (a JSON file) to
daphne, a bounded number of handshakes at a time, writes PLAN's `ready` file once all are
connected, and stamps `time.time()` on every event frame received (by event id) until PLAN's
`stop` file appears. Then each client reconnects with `?after=<PLAN's after>` and reads the
replay up to its `replayed` frame, so the report shows what arrived live and what after resume.
The report (OUT) also holds the event loop's lag, sampled every 50 ms: if the clients' own loop
lags, the latencies measure the clients, not the server.

Invariant of the accounting: an event is meant for a client when their groups intersect, and
only events the scenario recorded itself count (`expected_ids`), so events that handlers record
on the side neither inflate nor hide a client's losses.
"""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.cluster import BenchCluster
    from devtools.processes import Process

# daphne's --websocket_connect_timeout (s), daphne's own 5 by default: how long a handshake
# may wait for its application's accept before daphne answers 403 and the client retries.
WS_CONNECT_TIMEOUT = os.environ.get("BENCH_WS_CONNECT_TIMEOUT", "5")

LAG_INTERVAL = 0.05
CONNECT_ATTEMPTS = 5  # with backoff 1, 2, 4, 8 s, as a reconnecting board would


@dataclass
class ClientSpec:
    name: str
    path: str  # e.g. "/ws/dispatch/?token=..." (no `after`)
    groups: list[str]  # the logical groups this client's stream joins
    base: str = ""  # its server's ws:// address, when not the spec's
    after: int | None = None  # its own resume point, when not the spec's


@dataclass
class ClientLog:
    name: str
    groups: list[str]
    received: dict[str, float] = field(default_factory=dict)  # event id -> receipt time.time()
    resumed: set[str] = field(default_factory=set)
    frames: int = 0  # event frames, duplicates included
    errors: list[str] = field(default_factory=list)
    connect_retries: list[str] = field(default_factory=list)  # why a handshake was retried
    # How its resume ended: "replayed", "gave up" (its handshakes), "error <code>" (an error
    # frame), "closed <close code>" (the server closed it before `replayed`) or the exception.
    resume_end: str = ""

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "groups": self.groups,
            "received": self.received,
            "resumed": sorted(self.resumed),
            "frames": self.frames,
            "errors": self.errors,
            "connect_retries": self.connect_retries,
            "resume_end": self.resume_end,
        }


# --- accounting ---------------------------------------------------------------------------------


def expected_ids(groups: Iterable[str], events: Iterable[tuple[str, Iterable[str]]]) -> set[str]:
    """Ids of the recorded events (id, groups) meant for a client that joined `groups`."""
    mine = set(groups)
    return {event_id for event_id, event_groups in events if mine.intersection(event_groups)}


@dataclass(frozen=True)
class Delivery:
    expected: int
    live: int  # expected events received while connected
    after_resume: int  # expected events received live or in the replay

    @property
    def complete_live(self) -> bool:
        return self.live == self.expected

    @property
    def complete_after_resume(self) -> bool:
        return self.after_resume == self.expected


def delivery(expected: set[str], received: Iterable[str], resumed: Iterable[str]) -> Delivery:
    live = expected.intersection(received)
    return Delivery(len(expected), len(live), len(live | expected.intersection(resumed)))


def latencies_ms(commits: dict[str, float], received: dict[str, float]) -> list[float]:
    """Commit-to-frame latency of every recorded event the client received live."""
    return [(at - commits[eid]) * 1000 for eid, at in received.items() if eid in commits]


# --- the clients ------------------------------------------------------------------------------


async def open_with_retries(url: str, log: ClientLog, gate: asyncio.Semaphore):
    """A connection, at most `gate` handshakes at a time (up to the server's accept, which
    comes before its sign-in); a refused or timed-out handshake is retried with backoff (1,
    2, 4, 8 s), as a reconnecting board would. None if it gave up."""
    from websockets.asyncio.client import connect

    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        async with gate:
            try:
                return await connect(url, max_size=2**20, open_timeout=120)
            except Exception as exc:  # the server refused or timed out: back off, try again
                log.connect_retries.append(f"{type(exc).__name__}: {exc}"[:160])
        if attempt < CONNECT_ATTEMPTS:
            await asyncio.sleep(2 ** (attempt - 1))
    log.errors.append(f"connect: gave up after {CONNECT_ATTEMPTS} attempts ({url.split('?')[0]})")
    return None


async def listen(base: str, spec: ClientSpec, log: ClientLog, gate: asyncio.Semaphore, open_):
    """Connect (at most `gate` handshakes at a time), put the connection in `open_`, then
    record event frames until the connection is closed by the caller."""
    from websockets.exceptions import ConnectionClosed

    ws = await open_with_retries((spec.base or base) + spec.path, log, gate)
    if ws is None:
        open_.append(None)  # settled, not connected
        return
    settled = False
    try:
        # The server accepts before it signs the client in and joins its groups; its pong
        # comes after both, so the client counts as connected once it can receive.
        await ws.send(json.dumps({"kind": "ping"}))
        while (frame := json.loads(await ws.recv())).get("kind") != "pong":
            if frame.get("kind") == "error":
                log.errors.append(f"live: {frame.get('code')}")
        open_.append(ws)
        settled = True
        async for raw in ws:
            at = time.time()
            frame = json.loads(raw)
            if frame.get("kind") == "event":
                log.frames += 1
                log.received.setdefault(frame["event"]["id"], at)
            elif frame.get("kind") == "error":
                log.errors.append(f"live: {frame.get('code')}")
    except ConnectionClosed as exc:
        if exc.rcvd is None or exc.rcvd.code != 1000:
            log.errors.append(f"live: closed {exc}")
    except Exception as exc:  # reported per client, not fatal to the others
        log.errors.append(f"live: {type(exc).__name__}: {exc}")
    finally:
        if not settled:  # closed before its pong: settled all the same
            open_.append(ws)


async def resume(base: str, spec: ClientSpec, log: ClientLog, after: int, gate) -> None:
    """Reconnect with `?after=` and read the replay up to `replayed`; `log.resume_end` says
    how it ended, with the server's close code when it closed the socket."""
    from websockets.exceptions import ConnectionClosed

    separator = "&" if "?" in spec.path else "?"
    url = f"{spec.base or base}{spec.path}{separator}after={after}"
    ws = await open_with_retries(url, log, gate)
    if ws is None:
        log.resume_end = "gave up"
        return
    try:
        async with ws:
            # 60 s without a frame is a failure: one timer, pushed back per frame
            # (asyncio.wait_for would start a task per frame, on the clients' CPU).
            async with asyncio.timeout(60) as deadline:
                async for raw in ws:
                    deadline.reschedule(asyncio.get_running_loop().time() + 60)
                    frame = json.loads(raw)
                    if frame.get("kind") == "event":
                        log.resumed.add(frame["event"]["id"])
                    elif frame.get("kind") == "replayed":
                        log.resume_end = "replayed"
                        return
                    elif frame.get("kind") == "error":
                        log.errors.append(f"resume: {frame.get('code')}")
                        log.resume_end = f"error {frame.get('code')}"
                        # A server that closes after its error (4408, 4429) does so at once.
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(5):
                                await ws.wait_closed()
                        if ws.close_code is not None:
                            log.resume_end += f", closed {ws.close_code}"
                        return
    except ConnectionClosed as exc:
        log.resume_end = f"closed {exc.rcvd.code if exc.rcvd else 'without a close frame'}"
        log.errors.append(f"resume: {log.resume_end}")
    except Exception as exc:
        log.resume_end = type(exc).__name__
        log.errors.append(f"resume: {type(exc).__name__}: {exc}")
    if not log.resume_end:  # the server closed with 1000 before `replayed`
        log.resume_end = "closed 1000"
        log.errors.append("resume: closed 1000 before replayed")


async def loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(LAG_INTERVAL)
        samples.append((time.perf_counter() - started - LAG_INTERVAL) * 1000)


async def run_clients(spec: dict) -> dict:
    from websockets.protocol import State

    base = spec["base"]
    clients = [ClientSpec(**c) for c in spec["clients"]]
    logs = [ClientLog(c.name, c.groups) for c in clients]
    stop = asyncio.Event()
    lag: list[float] = []
    lag_task = asyncio.create_task(loop_lag(lag, stop))
    gate = asyncio.Semaphore(spec.get("connect_concurrency", 50))
    open_: list = []
    started = time.perf_counter()
    tasks = [
        asyncio.create_task(listen(base, client, log, gate, open_))
        for client, log in zip(clients, logs, strict=True)
    ]
    while len(open_) < len(tasks):
        await asyncio.sleep(0.05)
    connect_seconds = time.perf_counter() - started
    connected = [ws for ws in open_ if ws is not None]
    still_open = sum(ws.state is State.OPEN for ws in connected)
    retries = [reason for log in logs for reason in log.connect_retries]
    Path(spec["ready"]).write_text(
        json.dumps(
            {"connected": still_open, "retries": len(retries), "why": sorted(set(retries))[:5]}
        )
    )
    stop_file = Path(spec["stop"])
    while not stop_file.exists():
        await asyncio.sleep(0.1)
    live_lag = list(lag)
    stop.set()
    await asyncio.gather(*(ws.close() for ws in connected))
    await asyncio.gather(*tasks, lag_task)
    started = time.perf_counter()
    cpu_started = time.process_time()
    if spec.get("after") is not None:
        # The reconnect may have a gate of its own (scenario `reconnect`: none to speak of).
        concurrency = spec.get("resume_concurrency") or spec.get("connect_concurrency", 50)
        resume_gate = asyncio.Semaphore(concurrency)

        async def one(client: ClientSpec, log: ClientLog) -> None:
            after = spec["after"] if client.after is None else client.after
            await resume(base, client, log, after, resume_gate)

        await asyncio.gather(*(one(c, log) for c, log in zip(clients, logs, strict=True)))
    return {
        "clients": [log.as_json() for log in logs],
        "connected": still_open,
        "connect_seconds": connect_seconds,
        "resume_seconds": time.perf_counter() - started,
        # This process's CPU during the resume: near its wall time, the clients were the limit.
        "resume_cpu_seconds": time.process_time() - cpu_started,
        "loop_lag_ms": live_lag,
    }


# --- driving them from a scenario (no Django in this process) ------------------------------------


def peak_rss_mib(pid: int) -> float:
    """VmHWM of a live process: its peak resident set size."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a live process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_daphne(cluster: "BenchCluster", name: str, **env: str) -> tuple["Process", str]:
    """daphne on a free port of the cluster's stores; returns it and its ws:// base address.
    Every websocket scenario's daphne waits WS_CONNECT_TIMEOUT for a handshake's accept."""
    import urllib.error
    import urllib.request

    from devtools.processes import free_port, wait_until

    port = free_port()
    daphne = cluster.spawn(
        name,
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "--websocket_connect_timeout", WS_CONNECT_TIMEOUT,
         "smartscheduler.asgi:application"],
        **env,
    )  # fmt: skip

    def answers() -> bool:
        if not daphne.alive():
            raise RuntimeError("daphne exited\n" + daphne.describe())
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    wait_until(answers, timeout=60, message="daphne to answer /healthz")
    return daphne, f"ws://127.0.0.1:{port}"


class ClientGroup:
    """`python -m bench.wsclients` processes sharing the clients round-robin."""

    def __init__(self, cluster: "BenchCluster", name: str, base: str, clients: list[dict],
                 *, processes: int = 1, after: int | None = None,
                 connect_concurrency: int = 50,
                 resume_concurrency: int | None = None) -> None:  # fmt: skip
        self.dir = cluster.workdir / name
        self.dir.mkdir(exist_ok=True)
        self.procs: list[Process] = []
        self.outs: list[Path] = []
        self.readies: list[Path] = []
        for index in range(processes):
            spec = {
                "base": base,
                "clients": clients[index::processes],
                "ready": str(self.dir / f"ready-{index}"),
                "stop": str(self.dir / "stop"),
                "after": after,
                "connect_concurrency": connect_concurrency,
                "resume_concurrency": resume_concurrency,
            }
            spec_path = self.dir / f"spec-{index}.json"
            spec_path.write_text(json.dumps(spec))
            self.outs.append(self.dir / f"out-{index}.json")
            self.readies.append(Path(spec["ready"]))
            self.procs.append(
                cluster.spawn(
                    f"{name}-{index}",
                    [sys.executable, "-m", "bench.wsclients", str(spec_path), str(self.outs[-1])],
                )
            )

    def wait_connected(self, timeout: float = 300) -> int:
        from devtools.processes import wait_until

        def ready() -> bool:
            for proc in self.procs:
                if not proc.alive() and proc.proc.returncode != 0:
                    raise RuntimeError("websocket clients failed\n" + proc.describe())
            return all(path.exists() for path in self.readies)

        wait_until(ready, timeout=timeout, message="websocket clients to connect")
        self.ready = [json.loads(path.read_text()) for path in self.readies]
        return sum(ready["connected"] for ready in self.ready)

    def finish(self, timeout: float = 600) -> list[dict]:
        """Stop listening, let every client resume, and return the processes' reports."""
        (self.dir / "stop").write_text("")
        reports = []
        for proc, out in zip(self.procs, self.outs, strict=True):
            try:
                proc.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RuntimeError("websocket clients did not finish\n" + proc.describe()) from None
            if proc.proc.returncode != 0:
                raise RuntimeError("websocket clients failed\n" + proc.describe())
            reports.append(json.loads(out.read_text()))
        return reports


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    spec = json.loads(Path(spec_path).read_text())
    report = asyncio.run(run_clients(spec))
    Path(out_path).write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
