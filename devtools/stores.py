"""The stores a harness owns: PostgreSQL databases it creates and drops, a private
redis-server, and the environment a product process runs with on them. The shared Redis
(6379), RabbitMQ (5672) and other people's databases are never touched."""

import os
from pathlib import Path

import psycopg
import redis

from devtools.processes import Process, free_port, wait_until

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def database_url(name: str) -> str:
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def create_database(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    """Only a database this run created: its name carries the creating process's pid."""
    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def product_env(
    *, database: str, redis_url: str, secret: str, log_level: str = "INFO", **extra: str
) -> dict[str, str]:
    """The environment of a production-settings process (daphne, relay, manage.py) on a
    private database and Redis: what this shell says about stores, settings, the bus or a
    test run is dropped, so nothing reaches the shared ones by accident."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "EVENT_BUS_", "PYTEST", "TEST_DB"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="smartscheduler.settings",
        DATABASE_URL=database_url(database),
        REDIS_URL=redis_url,
        SECRET_KEY=secret,
        DEBUG="0",
        EMBEDDED_RELAY="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL=log_level,
    )
    env.update(extra)
    return env


class RedisServer:
    """A private redis-server (nothing saved to disk) on its own port, which its owner may
    stop and start again; each start logs to its own file under `workdir`."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.process: Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server; it answers when this returns."""
        assert self.process is None or not self.process.alive()
        self.starts += 1
        self.process = Process(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", str(self.workdir),
            ],
            log_path=self.workdir / f"redis-{self.starts}.log",
            env=dict(os.environ),
            name="redis",
        )  # fmt: skip
        wait_until(self.ping, timeout=10, message=self.process.describe)

    def ping(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Terminate the server process (its clients see their connections drop)."""
        if self.process is not None:
            self.process.close()
        assert not self.ping()


class OwnStores:
    """A database of this run's own (`database`, created and dropped here) and a private
    redis-server in `workdir`: what bench's and chaos's clusters hold underneath."""

    def __init__(self, workdir: Path, database: str) -> None:
        self.workdir = workdir
        self.database = database
        self.redis = RedisServer(workdir)
        self.created_database = False

    @property
    def redis_port(self) -> int:
        return self.redis.port

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def create_database(self) -> None:
        create_database(self.database)
        self.created_database = True

    def drop_database(self) -> None:
        drop_database(self.database)
        self.created_database = False
