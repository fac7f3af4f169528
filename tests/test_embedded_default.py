"""The embedded default (no DATABASE_URL, no REDIS_URL) migrates, serves, and relays in-process."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded_env(sqlite_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(SQLITE_PATH=str(sqlite_path), PYTHONUNBUFFERED="1")
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def request(url: str, *, token: str | None = None, body: dict | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as response:
        return response.status, response.read().decode()


@pytest.fixture
def embedded_server(tmp_path):
    env = embedded_env(tmp_path / "embedded.sqlite3")
    manage(env, "migrate", "--no-input", "-v", "0")
    output = manage(env, "create_user", "dana", "--role", "dispatcher", "--password", "Xy7!long-pw")
    token = output.split("token:")[1].split()[0]
    port = free_port()
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                request(f"{base}/healthz")
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()
                assert time.monotonic() < deadline, "embedded server did not start in 30 s"
                time.sleep(0.2)
        yield base, token
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_embedded_default_serves_and_delivers_events_in_process(embedded_server):
    base, token = embedded_server

    status, body = request(f"{base}/healthz")
    assert status == 200
    assert json.loads(body)["checks"] == {"database": "ok", "channelLayer": "ok"}

    status, body = request(
        f"{base}/api/jobs",
        token=token,
        body={
            "type": "tile",
            "location": {"lat": 40.72, "lng": -73.99},
            "desiredDate": (date.today() + timedelta(days=7)).isoformat(),
            "durationMinutes": 60,
        },
    )
    assert status == 201
    assert json.loads(body)["status"] == "open"

    # The in-process relay delivers the JobCreated event without any other process.
    deadline = time.monotonic() + 10
    while True:
        _, metrics = request(f"{base}/metrics")
        published = "smartscheduler_events_head 1.0" in metrics
        broadcast = 'smartscheduler_subscriber_pending{subscriber="realtime.broadcast"} 0.0'
        if published and broadcast in pending_lines(metrics):
            break
        assert time.monotonic() < deadline, metrics[-2000:]
        time.sleep(0.2)
    assert "smartscheduler_events_unpublished 0.0" in metrics
    assert pending_lines(metrics) and all(line.endswith(" 0.0") for line in pending_lines(metrics))


def pending_lines(metrics: str) -> list[str]:
    return [
        line
        for line in metrics.splitlines()
        if line.startswith("smartscheduler_subscriber_pending{")
    ]
