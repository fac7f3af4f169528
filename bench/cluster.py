"""The stores a benchmark run owns: a fresh PostgreSQL database and a redis-server on a free
port, plus helpers to run `manage.py` and in-process Django workers against them. `close()`
stops everything and drops the database; it runs in `finally` and is registered with atexit."""

import atexit
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import redis

from chaos.cluster import (
    ROOT,
    Process,
    create_database,
    drop_database,
    free_port,
    run_manage,
    start_redis_server,
)


class BenchCluster:
    def __init__(self, scenario: str, *, keep: bool = False) -> None:
        self.keep = keep
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-"))
        self.database = f"bench_{os.getpid()}_{scenario}"
        self.redis_port = free_port()
        self.redis: Process | None = None
        self.processes: list[Process] = []
        self.created_database = False
        self.closed = False
        atexit.register(self.close)

    # --- addresses -------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:5432/{self.database}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "PYTEST", "TEST_DB"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="smartscheduler.settings",
            DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{self.database}",
            REDIS_URL=self.redis_url,
            SECRET_KEY="bench-run-not-secret",
            DEBUG="0",
            EMBEDDED_RELAY="0",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="WARNING",
        )
        env.update(extra)
        return env

    def sql(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)

    def redis_client(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port)

    # --- set-up ----------------------------------------------------------------------------

    def start(self) -> None:
        create_database(self.database)
        self.created_database = True
        self.manage("migrate", "--no-input", timeout=300)
        self.redis = start_redis_server(self.redis_port, self.workdir)

    def manage(self, *args: str, timeout: float = 600) -> str:
        return run_manage(self.env(), *args, timeout=timeout)

    def worker(self, *args: str, timeout: float = 900, env: dict[str, str] | None = None) -> dict:
        """Run `python -m bench.worker ARGS` (Django set up on our stores, plus `env`); its
        last stdout line is JSON. Its stderr (progress) passes through."""
        done = subprocess.run(
            [sys.executable, "-m", "bench.worker", *args],
            cwd=ROOT,
            env=self.env(**(env or {})),
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"bench.worker {' '.join(args)} failed ({done.returncode})")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def spawn(self, name: str, argv: list[str], **extra_env: str) -> Process:
        process = Process(
            name, argv, log_path=self.workdir / f"{name}.log", env=self.env(**extra_env)
        )
        self.processes.append(process)
        return process

    # --- tear-down -------------------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for process in [*self.processes, self.redis]:
            if process is not None:
                with contextlib.suppress(Exception):
                    process.stop()
        if self.created_database and not self.keep:
            drop_database(self.database)
            self.created_database = False
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
