"""The short chaos run (python -m chaos run --short) as CI runs it: a private database,
redis-server, daphne and two relays under load, with relays SIGKILLed, Redis restarted and
PostgreSQL backends terminated; it must exit 0 with nothing lost (docs/reliability.md).

The run uses its own database (chaos_<pid>) and Redis, never this test run's."""

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
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert re.search(r"^lost = 0$", done.stdout, re.MULTILINE), output
    assert "chaos run: PASSED" in done.stdout, output
    table = done.stdout[done.stdout.index("| invariant") :]
    assert "FAIL" not in table, output
