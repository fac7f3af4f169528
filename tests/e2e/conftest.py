import sys
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from tests.support import Process, free_port, subprocess_env, wait_until


def pytest_collection_modifyitems(config, items):
    """A browser module's tests stay on one pytest-xdist worker (`--dist loadgroup`), so its
    stack starts once."""
    for item in items:
        if item.path.parent == Path(__file__).parent:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


@pytest.fixture(scope="module")
def stack(django_db_setup, tmp_path_factory):
    """daphne + one relay, both real processes, for the whole module; yields the base URL."""
    logs = tmp_path_factory.mktemp("stack")
    port = free_port()
    env = subprocess_env(redis_url=settings.REDIS_URL)
    daphne = Path(sys.executable).parent / "daphne"
    processes = [
        Process(
            [str(daphne), "-b", "127.0.0.1", "-p", str(port), "smartscheduler.asgi:application"],
            log_path=logs / "daphne.log",
            env=env,
        ),
        Process(
            [sys.executable, "manage.py", "relay", "--poll-interval", "0.2"],
            log_path=logs / "relay.log",
            env=env,
        ),
    ]
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        for process in processes:
            assert process.alive(), process.describe()
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        wait_until(up, timeout=30, message="daphne did not answer /healthz", interval=0.2)
        yield base
    finally:
        for process in processes:
            process.close(grace=10)
