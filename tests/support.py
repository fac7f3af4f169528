"""Helpers for tests that run real processes: the harness the chaos run and the benchmarks
use too (devtools: bounded waits, free ports, a process whose output we can read), and the
environment a subprocess needs to reach this test run's database."""

import os

from django.db import connection

from devtools.processes import (  # noqa: F401 (re-exported for the tests)
    ROOT,
    Process,
    free_port,
    wait_until,
)


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
