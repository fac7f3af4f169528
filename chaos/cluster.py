"""The private cluster a chaos run owns: a fresh PostgreSQL database, a redis-server on a free
port, a RabbitMQ node of its own (chaos.broker, unless `bus=False`), daphne and relay
processes. Everything started here is stopped by `Cluster.close()`, which the caller runs in
`finally` and which is also registered with atexit; the shared Redis (6379), RabbitMQ (5672)
and other databases are never touched."""

import atexit
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Our own sessions carry this name so a fault never terminates the observer's connections.
OBSERVER_APP = "chaos-observer"


def wait_until(predicate: Callable[[], T], *, timeout: float, what: str, interval=0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A child process with its output in a log file; in its own process group so a Ctrl-C
    at the terminal reaches only us, and we stop it in order."""

    def __init__(self, name: str, argv: list[str], *, log_path: Path, env: dict[str, str]):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 (closed in stop())
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

    def tail(self, lines: int = 30) -> str:
        state = "running" if self.alive() else f"exited {self.proc.returncode}"
        text = "\n".join(self.output().splitlines()[-lines:])
        return f"--- {self.name} pid={self.pid} ({state}) {self.log_path}\n{text}"

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, grace: float = 5.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def create_database(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    """Only a database this run created: its name carries the creating process's pid."""
    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


def start_redis_server(port: int, workdir: Path) -> Process:
    """A private redis-server (nothing saved to disk) on `port`, answering when this returns."""
    server = Process(
        "redis",
        [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(workdir),
        ],
        log_path=workdir / "redis.log",
        env=dict(os.environ),
    )  # fmt: skip
    wait_until(lambda: redis_answers(port), timeout=10, what="redis-server to answer")
    return server


def redis_answers(port: int) -> bool:
    import redis

    try:
        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


class Cluster:
    def __init__(self, workdir: Path, *, keep: bool = False, relay_lease: float = 1.5,
                 bus: bool = True) -> None:  # fmt: skip
        from chaos.broker import Broker

        self.workdir = workdir
        self.keep = keep
        self.relay_lease = relay_lease
        self.broker = Broker(workdir) if bus else None
        self.database = f"chaos_{os.getpid()}"
        self.redis_port = free_port()
        self.web_port = free_port()
        self.redis: Process | None = None
        self.web: Process | None = None
        self.relays: dict[str, Process] = {}
        self.relay_starts = 0
        self.redis_starts = 0
        self.created_database = False
        self.closed = False
        atexit.register(self.close)

    # --- addresses -------------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:5432/{self.database}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.web_port}"

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "PYTEST", "TEST_DB"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="smartscheduler.settings",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            SECRET_KEY="chaos-run-not-secret",
            DEBUG="0",
            EMBEDDED_RELAY="0",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="INFO",
        )
        env.pop("EVENT_BUS_URL", None)
        if self.broker is not None:
            env["EVENT_BUS_URL"] = self.broker.url
        return env

    def observer(self, *, autocommit: bool = True) -> psycopg.Connection:
        """A psycopg session on the chaos database that faults leave alone."""
        return psycopg.connect(
            f"postgresql://postgres@127.0.0.1:5432/{self.database}",
            autocommit=autocommit,
            application_name=OBSERVER_APP,
            connect_timeout=5,
        )

    # --- set-up ----------------------------------------------------------------------------

    def create_database(self) -> None:
        create_database(self.database)
        self.created_database = True

    def manage(self, *args: str, timeout: float = 120) -> str:
        return run_manage(self.env(), *args, timeout=timeout)

    def create_token(self, username: str, role: str, *extra: str) -> str:
        out = self.manage(
            "create_user", username, "--role", role, "--password", "chaos-pass-1234", *extra
        )
        match = re.search(r"token: (\S+)", out)
        if not match:
            raise RuntimeError(f"no token in create_user output: {out}")
        return match[1]

    def start_redis(self) -> None:
        self.redis_starts += 1
        self.redis = start_redis_server(self.redis_port, self.workdir)

    def stop_redis(self) -> None:
        if self.redis is not None:
            self.redis.stop()

    def start_web(self) -> None:
        self.web = Process(
            "daphne",
            [
                sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.web_port),
                "smartscheduler.asgi:application",
            ],
            log_path=self.workdir / "daphne.log",
            env=self.env(),
        )  # fmt: skip
        wait_until(self._web_answers, timeout=30, what="daphne to answer /healthz")

    def _web_answers(self) -> bool:
        import urllib.error
        import urllib.request

        if self.web is not None and not self.web.alive():
            raise RuntimeError("daphne exited\n" + self.web.tail())
        try:
            with urllib.request.urlopen(self.base_url + "/healthz", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start_relay(self, name: str) -> Process:
        self.relay_starts += 1
        relay = Process(
            name,
            [
                sys.executable, "-m", "chaos.relay", "--name", name,
                "--lease", str(self.relay_lease), "--poll-interval", "0.5",
                "--batch-size", "50",
            ],
            log_path=self.workdir / f"{name}.log",
            env=self.env(),
        )  # fmt: skip
        self.relays[name] = relay
        return relay

    def processes(self) -> list[Process]:
        """Ours, for the soak's memory samples (the broker is not the system under test)."""
        found = [p for p in [self.web, self.redis, *self.relays.values()] if p is not None]
        return [p for p in found if p.alive()]

    # --- tear-down -------------------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for relay in self.relays.values():
            with contextlib.suppress(Exception):
                relay.stop()
        for process in (self.web, self.redis):
            if process is not None:
                with contextlib.suppress(Exception):
                    process.stop()
        if self.broker is not None:
            with contextlib.suppress(Exception):
                self.broker.stop()
        if self.created_database and not self.keep:
            self.drop_database()

    def drop_database(self) -> None:
        drop_database(self.database)
        self.created_database = False
