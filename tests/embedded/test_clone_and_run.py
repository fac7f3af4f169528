"""The README's run, as a newcomer does it: clone the repository into a temporary folder, run
`scripts/run` there on a free port (no PostgreSQL, no Redis: the embedded default with its demo
data), sign in as the demo dispatcher in Chromium, recommend a job that needs skills, book one
of the offered slots for the demo contractor, and watch the demo contractor's page show it live.

The clone is of the committed HEAD (what CI checks out). Its `.venv` is this checkout's, linked:
installing takes minutes, and `scripts/bootstrap` skips it when the stamp of pyproject.toml
matches, exactly as on a second run (which the test checks it did).
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
STARTUP = 180  # seconds: migrate and seed a fresh SQLite database on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def newcomer_env(**extra: str) -> dict[str, str]:
    """A newcomer's shell: none of the test run's settings (database, Redis, settings module,
    the embedded test settings' DEBUG and EMBEDDED_RELAY), only the basics of a login."""
    kept = {"PATH", "HOME", "USER", "LANG", "LC_ALL", "TERM", "TMPDIR"}
    env = {k: v for k, v in os.environ.items() if k in kept}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def call(base: str, method: str, path: str, body=None, token: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def clone(tmp_path) -> Path:
    here = tmp_path / "smartscheduler"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(here)], check=True, timeout=60)
    stamp = (ROOT / ".venv" / ".installed-pyproject").read_text().strip()
    version = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-VV"], capture_output=True, text=True, check=True
    ).stdout
    want = hashlib.sha256((here / "pyproject.toml").read_bytes() + version.encode()).hexdigest()
    assert stamp == want, "this checkout's .venv is not installed from HEAD's pyproject.toml"
    (here / ".venv").symlink_to(ROOT / ".venv")
    return here


@pytest.fixture
def served(clone, tmp_path):
    port = free_port()
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        run = subprocess.Popen(
            ["scripts/run"], cwd=clone, env=newcomer_env(PORT=str(port)),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP
        while not (_listening(port) and call(base, "GET", "/healthz")[0] == 200):
            assert run.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.5)
        yield base, log_path
    finally:
        os.killpg(run.pid, signal.SIGTERM)  # runserver's reloader and its child
        try:
            run.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=5)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def token_of(base: str, username: str, password: str) -> str:
    login = {"username": username, "password": password}
    status, body = call(base, "POST", "/api/auth/token", login)
    assert status == 200, body
    return body["token"]


def a_skilled_job_offering(base: str, token: str, contractor: dict) -> tuple[int, dict]:
    """An open demo job on the board (today's and tomorrow's, UTC) that needs skills and whose
    recommendations offer `contractor`; failing that, a new one for tomorrow at the
    contractor's yard that needs its skills."""
    today = datetime.now(UTC).date()
    days = [today.isoformat(), (today + timedelta(days=1)).isoformat()]
    status, jobs = call(base, "GET", "/api/jobs?status=open&limit=200", token=token)
    assert status == 200, jobs
    skilled = [j for j in jobs["results"] if j["requiredSkills"]]
    assert skilled, "the demo data has no open job that needs skills"
    candidates = [j["id"] for j in skilled if j["desiredDate"] in days]
    body = {
        "type": contractor["type"] if contractor["type"] != "multi" else "tile",
        "requiredSkills": contractor["skills"],
        "location": contractor["location"],
        "desiredDate": days[1],
        "durationMinutes": 60,
    }
    for job_id in candidates:
        status, recs = call(base, "GET", f"/api/jobs/{job_id}/recommendations?limit=5", token=token)
        assert status == 200, recs  # was a 500 on SQLite for every job that needs skills
        for rec in recs["recommendations"]:
            if rec["contractorId"] == contractor["id"] and rec["slots"]:
                return job_id, rec
    status, job = call(base, "POST", "/api/jobs", body, token=token)
    assert status == 201, job
    status, recs = call(base, "GET", f"/api/jobs/{job['id']}/recommendations?limit=5", token=token)
    assert status == 200, recs
    mine = [r for r in recs["recommendations"] if r["contractorId"] == contractor["id"]]
    assert mine and mine[0]["slots"], recs
    return job["id"], mine[0]


def test_a_fresh_clone_serves_the_board_and_books_live(served):
    base, log_path = served
    dispatcher_token = token_of(base, "dispatcher", "dispatch-demo")
    contractor_token = token_of(base, "contractor", "contractor-demo")
    status, own = call(base, "GET", "/api/contractors", token=contractor_token)
    assert status == 200 and own["count"] == 1, own
    demo_contractor = own["results"][0]
    job_id, offer = a_skilled_job_offering(base, dispatcher_token, demo_contractor)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            me = browser.new_context(timezone_id="UTC").new_page()
            me.goto(f"{base}/login/?next=/me/")
            me.fill("input[name=username]", "contractor")
            me.fill("input[name=password]", "contractor-demo")
            me.click("button[type=submit]")
            me.wait_for_url(f"{base}/me/")
            expect(me.locator("#conn")).to_have_text("live", timeout=20_000)
            booked = me.locator(f'#assignments li[data-job-id="{job_id}"]')
            expect(booked).to_have_count(0)

            board = browser.new_context(timezone_id="UTC").new_page()
            board.goto(f"{base}/")
            board.fill("input[name=username]", "dispatcher")
            board.fill("input[name=password]", "dispatch-demo")
            board.click("button[type=submit]")
            expect(board.locator("#conn")).to_have_text("live", timeout=20_000)
            card = board.locator(f'article[data-job-id="{job_id}"]')
            card.get_by_role("button", name="Recommend").click()
            offered = board.locator(f'#recs-list li[data-contractor-id="{demo_contractor["id"]}"]')
            expect(offered).to_be_visible(timeout=20_000)
            with board.expect_response(lambda r: r.url.endswith(f"/api/jobs/{job_id}/assign")) as r:
                offered.locator(".slots button").first.click()
            assert r.value.status == 201, r.value.text()
            expect(board.locator("#recs-hint")).to_have_text(f"Booked job #{job_id}.")

            # The contractor's page shows the booking without a reload.
            expect(booked).to_have_count(1, timeout=15_000)
        finally:
            browser.close()

    status, job = call(base, "GET", f"/api/jobs/{job_id}", token=dispatcher_token)
    assert job["assignment"]["contractorId"] == demo_contractor["id"]
    assert job["assignment"]["scheduledTimeSlot"] in offer["slots"]
    output = log_path.read_text()
    assert "installing" not in output  # the stamp matched: no reinstall
    assert "sign in as  dispatcher / dispatch-demo" in output
    assert "Traceback" not in output and " 500 [" not in output, output[-3000:]
    # Each log line once: Django's own console handler printed a bare copy of each before.
    assert "INFO django.channels.server HTTP GET /healthz 200" in output
    assert not [line for line in output.splitlines() if line.startswith("HTTP GET ")]


def test_a_busy_port_is_a_one_line_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [str(ROOT / "scripts/run")], env=newcomer_env(PORT=str(port)),
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
