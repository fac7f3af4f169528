"""The board in a real browser against the production shape: daphne and a relay as processes
over PostgreSQL and Redis, headless Debian chromium driven by Playwright.

A screenshot of the board is kept in artifacts/board.png.
"""

import json
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, time
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect, sync_playwright
from rest_framework.authtoken.models import Token

from contractors.services import Location
from scheduling.services import create_job
from tests.conftest import make_user
from tests.contractors.factories import ContractorFactory
from tests.support import Process, free_port, subprocess_env, wait_until

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stack(tmp_path):
    """daphne + one relay, both real processes; yields the base URL."""
    port = free_port()
    env = subprocess_env(redis_url=settings.REDIS_URL)
    daphne = Path(sys.executable).parent / "daphne"
    processes = [
        Process(
            [str(daphne), "-b", "127.0.0.1", "-p", str(port), "smartscheduler.asgi:application"],
            log_path=tmp_path / "daphne.log",
            env=env,
        ),
        Process(
            [sys.executable, "manage.py", "relay", "--poll-interval", "0.2"],
            log_path=tmp_path / "relay.log",
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


def api(base: str, token: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{base}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{method} {path}: {error.code} {error.read().decode()}") from error


def test_the_board_shows_changes_live_and_catches_up_after_a_drop(stack):
    dispatcher = make_user("dana", role="dispatcher")
    token = Token.objects.create(user=dispatcher).key
    # Works every day of the week, all day, so a slot exists whatever day the test runs.
    contractor = ContractorFactory(
        name="Ana Ruiz", timezone="UTC", hours=[(d, time(0), time(23, 45)) for d in range(7)]
    )
    today = datetime.now(UTC).date()
    first = create_job(
        type="tile", location=Location(40.72, -73.99, "1 Board St"), desired_date=today,
        duration_minutes=60, required_skills=["tile"],
    )  # fmt: skip

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900}, timezone_id="UTC")
        try:
            page.goto(f"{stack}/")
            page.fill("input[name=username]", "dana")
            page.fill("input[name=password]", "pw-dana")
            page.click("button[type=submit]")
            expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
            card = page.locator(f'article[data-job-id="{first.pk}"]')
            expect(card).to_have_attribute("data-status", "open")

            # Booked through the API: the card moves to Assigned without a reload.
            slots = api(stack, token, "GET", f"/api/jobs/{first.pk}/recommendations")
            slot = slots["recommendations"][0]["slots"][0]
            api(stack, token, "POST", f"/api/jobs/{first.pk}/assign",
                {"contractorId": contractor.pk, **slot})  # fmt: skip
            expect(card).to_have_attribute("data-status", "assigned", timeout=10_000)
            expect(card).to_contain_text("Ana Ruiz")

            # Started and completed (only a completed job can be rated): the card follows.
            api(stack, token, "POST", f"/api/jobs/{first.pk}/start", {})
            expect(card).to_have_attribute("data-status", "in_progress", timeout=10_000)
            api(stack, token, "POST", f"/api/jobs/{first.pk}/complete", {"notes": "Done"})
            expect(card).to_have_attribute("data-status", "completed", timeout=10_000)

            # A rating reaches the contractor list: the average stored with the rating.
            api(stack, token, "PUT", f"/api/jobs/{first.pk}/rating", {"rating": 4})
            rating = page.locator(f'#contractors li[data-contractor-id="{contractor.pk}"] .rating')
            expect(rating).to_have_text(" ★ 4.00 (1)", timeout=10_000)

            # The socket drops for 3 s while things happen; the board catches up on its own.
            page.evaluate("window.boardStream.drop(3000)")
            expect(page.locator("#conn")).to_have_text("reconnecting", timeout=5_000)
            second = api(stack, token, "POST", "/api/jobs", {
                "type": "tile", "requiredSkills": ["tile"], "desiredDate": today.isoformat(),
                "location": {"lat": 40.73, "lng": -73.98, "address": "2 Board St"},
                "durationMinutes": 90, "priority": "urgent",
            })  # fmt: skip
            cancel = f"/api/jobs/{second['id']}/cancel"
            api(stack, token, "POST", cancel, {"reason": "Customer away"})
            expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
            new_card = page.locator(f'article[data-job-id="{second["id"]}"]')
            expect(new_card).to_have_attribute("data-status", "cancelled", timeout=10_000)
            expect(card).to_have_attribute("data-status", "completed")
            expect(page.locator('#feed li[data-type="JobCancelled"]')).to_have_count(1)
            # Replays may repeat events; the page shows each once.
            expect(page.locator('#feed li[data-type="JobCreated"]')).to_have_count(2)

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "board.png"))
        finally:
            browser.close()
    assert (ARTIFACTS / "board.png").stat().st_size > 10_000


def test_the_contractor_page_shows_a_new_booking_live(stack):
    dispatcher = make_user("dana", role="dispatcher")
    token = Token.objects.create(user=dispatcher).key
    contractor = ContractorFactory(
        name="Ben Ortiz", timezone="UTC", hours=[(d, time(0), time(23, 45)) for d in range(7)]
    )
    make_user("ben", role="contractor", contractor=contractor)
    job = create_job(
        type="tile",
        location=Location(40.72, -73.99, "9 Live Ave"),
        desired_date=datetime.now(UTC).date(),
        duration_minutes=60,
        required_skills=["tile"],
    )

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(timezone_id="UTC")
        try:
            page.goto(f"{stack}/")  # a contractor landing on the board is sent to /me/
            page.fill("input[name=username]", "ben")
            page.fill("input[name=password]", "pw-ben")
            page.click("button[type=submit]")
            page.wait_for_url(f"{stack}/me/")
            expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
            expect(page.locator("#empty")).to_be_visible()

            recommendations = api(stack, token, "GET", f"/api/jobs/{job.pk}/recommendations")
            slot = recommendations["recommendations"][0]["slots"][0]
            api(stack, token, "POST", f"/api/jobs/{job.pk}/assign",
                {"contractorId": contractor.pk, **slot})  # fmt: skip

            booked = page.locator(f'#assignments li[data-job-id="{job.pk}"]')
            expect(booked).to_contain_text("9 Live Ave", timeout=10_000)
            expect(page.locator("#empty")).to_be_hidden()
        finally:
            browser.close()
