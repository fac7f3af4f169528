"""The stores a benchmark run owns: a fresh PostgreSQL database and a redis-server on a free
port, plus helpers to run `manage.py` and in-process Django workers against them. `close()`
stops everything and drops the database; it runs in `finally` and is registered with atexit."""

import atexit
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import redis

from devtools.processes import ROOT, Process, run_manage
from devtools.stores import OwnStores, product_env


class BenchCluster(OwnStores):
    def __init__(self, scenario: str, *, keep: bool = False) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="bench-")), f"bench_{os.getpid()}_{scenario}")
        self.keep = keep
        self.processes: list[Process] = []
        self.closed = False
        atexit.register(self.close)

    # --- addresses -------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:5432/{self.database}"

    def env(self, **extra: str) -> dict[str, str]:
        return product_env(
            database=self.database,
            redis_url=self.redis_url,
            secret="bench-run-not-secret",
            log_level="WARNING",
            **extra,
        )

    def sql(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)

    def redis_client(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port)

    def celery_redis(self) -> redis.Redis:
        """Database 1 of the private redis-server: the Celery alternative's broker and its
        counters (bench/celery_app.py)."""
        return redis.Redis(port=self.redis_port, db=1)

    # --- set-up ----------------------------------------------------------------------------

    def start(self) -> None:
        self.create_database()
        self.manage("migrate", "--no-input", timeout=300)
        self.redis.start()

    def manage(self, *args: str, timeout: float = 600) -> str:
        return run_manage(self.env(), *args, timeout=timeout)

    def worker(self, *args: str, timeout: float = 900, env: dict[str, str] | None = None) -> dict:
        """Run `python -m bench.worker ARGS` (Django set up on our stores, plus `env`); its
        last stdout line is JSON. Its stderr (progress) passes through."""
        return self.run_module("bench.worker", *args, timeout=timeout, env=env)

    def run_module(
        self, module: str, *args: str, timeout: float = 900, env: dict[str, str] | None = None
    ) -> dict:
        """`python -m MODULE ARGS` on our stores (plus `env`); its last stdout line, as JSON."""
        done = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=self.env(**(env or {})),
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{module} {' '.join(args)} failed ({done.returncode})")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def booking_plan(self, contractors: int, *plan_args: str) -> tuple[str, Path, dict]:
        """The demo's contractors without jobs, and jobs planned into their free slots
        (`bench.worker booking-plan PLAN_ARGS`): the demo dispatcher's token, the plan's path
        and the worker's summary."""
        out = self.manage("seed_demo", "--force", "--contractors", str(contractors), "--jobs", "0")
        token = re.search(r"dispatcher login: .* token: (\S+)", out)[1]
        path = self.workdir / "plans.json"
        return token, path, self.worker("booking-plan", "--out", str(path), *plan_args)

    def spawn(self, name: str, argv: list[str], **extra_env: str) -> Process:
        process = Process(
            argv, log_path=self.workdir / f"{name}.log", env=self.env(**extra_env), name=name
        )
        self.processes.append(process)
        return process

    # --- tear-down -------------------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for process in [*self.processes, self.redis.process]:
            if process is not None:
                with contextlib.suppress(Exception):
                    process.close()
        if self.created_database and not self.keep:
            self.drop_database()
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
