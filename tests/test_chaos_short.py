"""The short chaos run (python -m chaos run --short) as CI runs it: a private database,
redis-server, RabbitMQ node, daphne and two relays (with a poison and a slow subscriber) under
load, with relays SIGKILLed, Redis restarted and PostgreSQL backends terminated; it must exit 0
with nothing lost and every fault measure within its bound (docs/reliability.md). Broker
restarts are left to the full run (each takes 6 to 15 s here).

The run uses its own database (chaos_<pid>), Redis and RabbitMQ, never this test run's."""

import os
import re
import subprocess
import sys

from tests.support import ROOT


def test_the_short_chaos_run_loses_nothing():
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_"))
    }
    done = subprocess.run(
        [sys.executable, "-m", "chaos", "run", "--short", "--seed", "4242"],
        cwd=ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert re.search(r"^lost = 0$", done.stdout, re.MULTILINE), output
    assert "chaos run: PASSED" in done.stdout, output
    table = done.stdout[done.stdout.index("| invariant") :]
    assert "FAIL" not in table, output
    assert "| fault measure" in table, output  # the measures were taken, and none is out of bounds
    assert "OUT OF BOUNDS" not in done.stdout, output
