"""Helpers for tests that run real processes: bounded waits, free ports, the environment a
subprocess needs to reach this test run's database, and a process whose output we can read."""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.02,
) -> T:
    """Poll `predicate` until it returns something truthy (returned); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:.1f}s: {text}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def subprocess_database_url() -> str:
    """The URL of the database this test runs against (pytest-django's test database)."""
    settings = connection.settings_dict
    credentials = settings["USER"] or ""
    if settings["PASSWORD"]:
        credentials += f":{settings['PASSWORD']}"
    host = settings["HOST"] or "127.0.0.1"
    port = settings["PORT"] or 5432
    return f"postgres://{credentials}@{host}:{port}/{settings['NAME']}"


def subprocess_env(*, redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "smartscheduler.settings_test",
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "INFO",
    }


# --- processes --------------------------------------------------------------------------------


class Process:
    """A child process whose stdout and stderr go to one file we can read at any time."""

    def __init__(self, argv: list[str], *, log_path: Path, env: dict[str, str] | None = None):
        self.argv = argv
        self.log_path = log_path
        self.terminated = False
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def describe(self, tail: int = 40) -> str:
        state = "running" if self.alive() else f"exited {self.proc.returncode}"
        lines = self.output().splitlines()[-tail:]
        command = " ".join(self.argv[1:])
        return f"\n{command} pid={self.pid} ({state}), last output:\n" + "\n".join(lines)

    def signal(self, signum: int) -> None:
        if self.alive():
            self.proc.send_signal(signum)
            self.terminated |= signum == signal.SIGTERM

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as when a machine loses power."""
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self, grace: float = 3.0) -> None:
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
