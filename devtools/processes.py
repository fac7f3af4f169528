"""Child processes with their output in a log file, free ports and bounded waits."""

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.05,
) -> T:
    """Poll `predicate` until it returns something truthy (returned); TimeoutError after
    `timeout` s, with `message` (called then, if callable: a process's log, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise TimeoutError(f"timed out after {timeout:.1f}s: {text}")
        time.sleep(interval)


# Below Linux's ephemeral range (32768-60999), so no outgoing connection of this machine takes a
# port between our choosing it and a server binding it; 25672 is RabbitMQ's distribution port.
PORTS = range(10_000, 32_000)
TAKEN = {25672}


def free_port() -> int:
    """A port nothing listens on now, from this process's own share of PORTS: each
    pytest-xdist worker draws from its own slice, so two workers never pick the same one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") else 0
    share = len(PORTS) // max(workers, 1)
    ports = PORTS[index * share : (index + 1) * share]
    for port in random.sample(ports, 100):
        if port in TAKEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports}")


class Process:
    """A child process whose stdout and stderr go to one log file we can read at any time.

    It runs in its own session, so a Ctrl-C at the terminal reaches only us and we stop our
    children in order (and a node's helpers can be killed as a group)."""

    def __init__(
        self,
        argv: list[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        self.argv = argv
        self.name = name or " ".join(argv[1:])
        self.log_path = log_path
        self.terminated = False
        self._log = open(log_path, "ab")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def describe(self, tail: int = 40) -> str:
        """Its state and the last `tail` lines of its log, for a failure message."""
        state = "running" if self.alive() else f"exited {self.proc.returncode}"
        lines = self.output().splitlines()[-tail:]
        return f"\n--- {self.name} pid={self.pid} ({state}) {self.log_path}\n" + "\n".join(lines)

    def signal(self, signum: int) -> None:
        if self.alive():
            self.proc.send_signal(signum)
            self.terminated |= signum == signal.SIGTERM

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as when a machine loses power."""
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self, grace: float = 5.0) -> None:
        """Stop the process if it still runs (SIGTERM unless already sent; SIGKILL after
        `grace` seconds) and release the log file."""
        if self.alive():
            if not self.terminated:
                self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def run_manage(env: dict[str, str], *args: str, timeout: float) -> str:
    """`python manage.py ARGS` against the stores named in `env`; its stdout, or a RuntimeError
    carrying both outputs."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout
