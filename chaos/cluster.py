"""The private cluster a chaos run owns: a fresh PostgreSQL database, a redis-server on a free
port, a RabbitMQ node of its own (chaos.broker, unless `bus=False`), daphne and relay
processes. Everything started here is stopped by `Cluster.close()`, which the caller runs in
`finally` and which is also registered with atexit; the shared Redis (6379), RabbitMQ (5672)
and other databases are never touched."""

import atexit
import contextlib
import os
import re
import sys
from pathlib import Path

import psycopg

from devtools.processes import Process, free_port, run_manage, wait_until
from devtools.stores import OwnStores, product_env

# Our own sessions carry this name so a fault never terminates the observer's connections.
OBSERVER_APP = "chaos-observer"
# The production shape's relays, by the slot a relay's name starts with (`a.1`, `b.2`, and a
# replacement after a SIGKILL, `a.4`, takes its slot's options): the broadcast's own, and two
# of every subscriber, which split the handlers, take a dead one's share over, and take the
# broadcast over while `a` is down.
RELAY_SLOTS = {"a": ("--subscribers", "realtime.broadcast"), "b": (), "c": ()}


class Cluster(OwnStores):
    def __init__(self, workdir: Path, *, keep: bool = False, relay_lease: float = 1.5,
                 bus: bool = True) -> None:  # fmt: skip
        from chaos.broker import Broker

        super().__init__(workdir, f"chaos_{os.getpid()}")
        self.keep = keep
        self.relay_lease = relay_lease
        self.broker = Broker(workdir) if bus else None
        self.web_port = free_port()
        self.web: Process | None = None
        self.relays: dict[str, Process] = {}
        self.relay_starts = 0
        self.closed = False
        atexit.register(self.close)

    # --- addresses -------------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:5432/{self.database}"

    @property
    def redis_starts(self) -> int:
        return self.redis.starts

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.web_port}"

    def env(self) -> dict[str, str]:
        env = product_env(
            database=self.database, redis_url=self.redis_url, secret="chaos-run-not-secret"
        )
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
        self.redis.start()

    def stop_redis(self) -> None:
        self.redis.stop()

    def start_web(self) -> None:
        self.web = Process(
            [
                sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.web_port),
                "smartscheduler.asgi:application",
            ],
            log_path=self.workdir / "daphne.log",
            env=self.env(),
            name="daphne",
        )  # fmt: skip
        wait_until(self._web_answers, timeout=30, message="daphne to answer /healthz")

    def _web_answers(self) -> bool:
        import urllib.error
        import urllib.request

        if self.web is not None and not self.web.alive():
            raise RuntimeError("daphne exited\n" + self.web.describe())
        try:
            with urllib.request.urlopen(self.base_url + "/healthz", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start_relay(self, name: str) -> Process:
        self.relay_starts += 1
        relay = Process(
            [
                sys.executable, "-m", "chaos.relay", "--name", name,
                "--lease", str(self.relay_lease), "--poll-interval", "0.5",
                "--batch-size", "50", *RELAY_SLOTS[name.split(".")[0]],
            ],
            log_path=self.workdir / f"{name}.log",
            env=self.env(),
            name=name,
        )  # fmt: skip
        self.relays[name] = relay
        return relay

    def processes(self) -> list[Process]:
        """Ours, for the soak's memory samples (the broker is not the system under test)."""
        found = [p for p in [self.web, self.redis.process, *self.relays.values()] if p is not None]
        return [p for p in found if p.alive()]

    # --- tear-down -------------------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for process in (*self.relays.values(), self.web, self.redis.process):
            if process is not None:
                with contextlib.suppress(Exception):
                    process.close()
        if self.broker is not None:
            with contextlib.suppress(Exception):
                self.broker.stop()
        if self.created_database and not self.keep:
            self.drop_database()
