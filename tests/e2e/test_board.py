"""The board and the contractor's page in a real browser against the production shape: daphne and
a relay as processes over PostgreSQL and Redis (started once for the module), headless Debian
chromium driven by Playwright.

A dispatcher's day: create a job, get recommendations, book, drag the booking along its row and
onto another contractor, lose a booking race (409, stale panel refreshed), cancel with a reason,
start, complete and rate, switch to the week and another time zone; the socket drops meanwhile
and catches up. A contractor's day on a phone: the booking arrives, moves, is started and
completed. The stack fixture is tests/e2e/conftest.py's; screenshots as tests/e2e/browser.py says.
"""

import re
from datetime import UTC, datetime, time, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import make_user, token_for
from tests.contractors.factories import ContractorFactory
from tests.e2e.browser import api, chromium, shoot
from tests.scheduling.factories import AssignmentFactory, JobFactory
from tests.support import wait_until

NY = ZoneInfo("America/New_York")
DASH = "\N{EN DASH}"  # between the start and end of a slot on screen
WAIT = 20_000  # ms: a change reaching the page over the relay and the socket, on a busy CI machine

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(page: Page, base: str, username: str, path: str = "/") -> None:
    page.goto(f"{base}/login/?next={quote(path)}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", f"pw-{username}")
    page.click("button[type=submit]")
    expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
    expect(page.locator("[data-ready=true]")).to_have_count(1, timeout=WAIT)


def box_of(locator) -> dict:
    """Its bounding box; the board redraws a row when an event arrives, so the node a locator
    found may be replaced before its box is read: read again."""
    return wait_until(locator.bounding_box, timeout=5, message=f"no box: {locator}", interval=0.1)


def drag(page: Page, source, dx: float, dy: float = 0.0, *, before_drop=None) -> None:
    """Press on the bar's left part, move by (dx, dy) in steps, release."""
    box = box_of(source)
    x, y = box["x"] + 6, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y + dy / 2, steps=4)
    page.mouse.move(x + dx, y + dy, steps=4)
    if before_drop:
        before_drop()
    page.mouse.up()


def pixels_per_hour(page: Page) -> float:
    """From the hour ticks of the day view's header, read in one go (the board may re-render)."""
    return page.evaluate("""() => {
        const x = (text) => [...document.querySelectorAll(".header .tick")]
            .find((tick) => tick.textContent === text).getBoundingClientRect().x;
        return (x("12:00") - x("10:00")) / 2;
    }""")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def every_day(start: time, end: time) -> list:
    return [(day, start, end) for day in range(7)]


def test_a_dispatchers_day_on_the_board(stack):
    make_user("dana", role="dispatcher")
    omar = make_user("omar", role="dispatcher")  # another dispatcher, at another desk
    omar_token = token_for(omar)
    # Both work 08:00-18:00 UTC every day (Ben in New York time), so tomorrow always has room.
    ana = ContractorFactory(
        name="Ana Ruiz", timezone="UTC", hours=every_day(time(8), time(18)), lat=40.7, lng=-74.0
    )
    ben = ContractorFactory(
        name="Ben Ortiz", timezone="America/New_York", hours=every_day(time(0), time(23, 45)),
        lat=40.8, lng=-74.1,
    )  # fmt: skip
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    eight = datetime.combine(tomorrow, time(8), tzinfo=UTC)
    # Two more crews with a booking each and an open carpet job: a board with something on it.
    for name, kind, hour, minutes in (
        ("Chen Floors", "flooring", 13, 180),
        ("Dee Ivanova", "carpet", 9, 120),
    ):
        crew = ContractorFactory(
            name=name, type=kind, skills=[kind], timezone="UTC", hours=every_day(time(7), time(18))
        )
        job = JobFactory(
            type=kind, required_skills=[kind], desired_date=tomorrow, duration_minutes=minutes,
            status="assigned", address=f"{hour} Elm St, New York",
        )  # fmt: skip
        AssignmentFactory(
            job=job, contractor=crew, start=datetime.combine(tomorrow, time(hour), tzinfo=UTC)
        )
    JobFactory(type="carpet", required_skills=["carpet"], desired_date=tomorrow, priority="low")

    with chromium() as browser:
        page = browser.new_page(
            viewport={"width": 1440, "height": 900}, timezone_id="UTC", locale="en-US"
        )
        sign_in(page, stack, "dana", f"/?date={tomorrow}&view=day&tz=UTC")
        expect(page.locator("#range-title")).to_contain_text("UTC")
        expect(page.locator(f'.row[data-contractor-id="{ana.pk}"]')).to_contain_text("Ana Ruiz")

        # Create a job from the dialog; it lands in the tray and its recommendations open.
        page.click("#new-job")
        form = page.locator("#create-form")
        form.locator("[name=type]").select_option("tile")
        form.locator("[name=requiredSkills]").fill("tile")
        form.locator("[name=address]").fill("12 Board St, New York")
        form.locator("[name=lat]").fill("40.71")
        form.locator("[name=lng]").fill("-74.0")
        form.locator("[name=durationMinutes]").select_option("120")
        form.locator("[name=priority]").select_option("high")
        shoot(page, "board-create")
        page.click("#create-submit")
        expect(page.locator("#create")).to_be_hidden()
        job_id = int(page.locator("#details").get_attribute("data-job-id"))
        expect(page.locator(f'#tray-list li[data-job-id="{job_id}"]')).to_be_visible()
        first = page.locator("#recs-list li").first
        expect(first).to_have_attribute("data-contractor-id", str(ana.pk), timeout=WAIT)
        expect(first.locator("button.book").first).to_have_attribute("data-start", iso(eight))
        shoot(page, "board-recommend")

        # Book the first slot: the job leaves the tray and sits on Ana's row at 08:00.
        first.locator("button.book").first.click()
        bar = page.locator(f'.bar[data-job-id="{job_id}"]')
        expect(bar).to_have_attribute("data-start", iso(eight), timeout=WAIT)
        expect(page.locator(f'.track[data-contractor-id="{ana.pk}"] .bar')).to_have_count(1)
        expect(page.locator(f'#tray-list li[data-job-id="{job_id}"]')).to_have_count(0)
        expect(page.locator("#recs-hint")).to_have_text(f"Booked job #{job_id}.")
        expect(page.locator('#feed li[data-type="JobAssigned"]')).to_have_count(1, timeout=WAIT)

        # Drag it two hours later along the row, then down onto Ben's row.
        drag(page, bar, 2 * pixels_per_hour(page))
        expect(bar).to_have_attribute("data-start", iso(eight + timedelta(hours=2)), timeout=WAIT)
        ben_track = box_of(page.locator(f'.track[data-contractor-id="{ben.pk}"]'))
        bar_box = box_of(bar)
        dy = ben_track["y"] + ben_track["height"] / 2 - (bar_box["y"] + bar_box["height"] / 2)
        drag(page, bar, 0, dy, before_drop=lambda: shoot(page, "board-drag"))
        moved = page.locator(f'.track[data-contractor-id="{ben.pk}"] .bar[data-job-id="{job_id}"]')
        expect(moved).to_have_attribute("data-start", iso(eight + timedelta(hours=2)), timeout=WAIT)
        expect(page.locator('#feed li[data-type="JobRescheduled"]')).to_have_count(2, timeout=WAIT)

        # A second job; while its recommendations are on screen (and our socket is down),
        # Omar books it. Our stale "Book" gets a 409 that stays; the panel refreshes.
        second = api(stack, omar_token, "POST", "/api/jobs", {
            "type": "tile", "requiredSkills": ["tile"], "desiredDate": tomorrow.isoformat(),
            "location": {"lat": 40.72, "lng": -73.99, "address": "2 Race Ave"},
            "durationMinutes": 60, "priority": "urgent",
        })  # fmt: skip
        tray_item = page.locator(f'#tray-list li[data-job-id="{second["id"]}"]')
        expect(tray_item).to_be_visible(timeout=WAIT)
        tray_item.get_by_role("button", name="Recommend").click()
        stale = page.locator("#recs-list button.book").first
        expect(stale).to_be_visible(timeout=WAIT)
        page.evaluate("window.boardStream.drop(6000)")  # long enough for two API calls
        expect(page.locator("#conn")).to_have_text("reconnecting", timeout=5_000)
        ranked = api(stack, omar_token, "GET", f"/api/jobs/{second['id']}/recommendations")
        taken = ranked["recommendations"][0]
        api(stack, omar_token, "POST", f"/api/jobs/{second['id']}/assign",
            {"contractorId": taken["contractorId"], **taken["slots"][0]})  # fmt: skip
        stale.click()
        expect(page.locator("#alert")).to_be_visible()
        expect(page.locator("#alert-text")).to_contain_text("Conflict")
        expect(page.locator("#recs-list button.book")).to_have_count(0)
        # Back online: the missed booking arrives, announced as someone else's.
        expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
        expect(page.locator("#recs-hint")).to_contain_text("booked by someone else", timeout=WAIT)
        expect(page.locator("#alert")).to_be_visible()  # a conflict stays until dismissed
        shoot(page, "board-conflict")
        page.click("#alert-close")
        expect(page.locator("#alert")).to_be_hidden()

        # Move it without dragging: choose Ben in the picker, take his first free time. The
        # look-up of the contractor the picker opens on answers late, after Ben's: his times
        # must stay (once, under load, the late answer put the other's times under his name).
        held = []
        availability = "**/api/contractors/*/availability*"
        page.route(availability, lambda route: (
            route.continue_() if f"/contractors/{ben.pk}/" in route.request.url
            else held.append(route)
        ))  # fmt: skip
        page.locator(f'.bar[data-job-id="{second["id"]}"]').click()
        page.click("#act-reschedule")
        page.select_option("#move-contractor", str(ben.pk))
        choice = page.locator(f'#move-slots[data-contractor-id="{ben.pk}"] button.slot').first
        expect(choice).to_be_visible(timeout=WAIT)
        picked = choice.get_attribute("data-start")
        assert held, "the picker opened on Ben: nothing answered late"
        with page.expect_request_finished(lambda request: "/availability" in request.url):
            for route in held:
                route.continue_()
        page.unroute(availability)
        choice.click()
        ben_row = page.locator(f'.track[data-contractor-id="{ben.pk}"]')
        on_ben = ben_row.locator(f'[data-job-id="{second["id"]}"]')
        expect(on_ben).to_have_attribute("data-start", picked, timeout=WAIT)

        # Cancel it with a reason: it leaves the timeline, the log says why.
        page.locator(f'.bar[data-job-id="{second["id"]}"]').click()
        page.click("#act-cancel")
        page.fill("#cancel-reason", "Customer away")
        page.click("#cancel-confirm")
        expect(page.locator(f'.bar[data-job-id="{second["id"]}"]')).to_have_count(0, timeout=WAIT)
        cancelled = page.locator('#feed li[data-type="JobCancelled"]')
        expect(cancelled).to_contain_text("Customer away", timeout=WAIT)

        # Start, complete and rate the first job.
        bar.click()
        page.click("#act-start")
        details = page.locator("#details")
        expect(details).to_have_attribute("data-status", "in_progress", timeout=WAIT)
        expect(bar).to_have_attribute("data-status", "in_progress")
        page.fill("#complete-notes", "Grout sealed")
        page.click("#act-complete")
        expect(details).to_have_attribute("data-status", "completed", timeout=WAIT)
        page.click('.stars button[data-stars="4"]')
        rating = page.locator(f'.row[data-contractor-id="{ben.pk}"] .rating')
        expect(rating).to_have_text("★ 4.00 (1)", timeout=WAIT)
        for kind in ("JobStarted", "JobCompleted", "ContractorRated"):
            expect(page.locator(f'#feed li[data-type="{kind}"]')).to_have_count(1, timeout=WAIT)
        # Replays after the drop may repeat events; the page shows each once.
        sequences = page.locator("#feed li").evaluate_all("els => els.map(e => e.dataset.sequence)")
        assert len(sequences) == len(set(sequences))
        shoot(page, "board-rated")

        # The week, then New York time: the same booking, five (or four) hours earlier.
        page.click("#view-week")
        expect(page.locator("#range-title")).to_contain_text("Week of")
        expect(bar).to_be_visible()
        shoot(page, "board-week")
        page.click("#view-day")
        page.select_option("#tz", "America/New_York")
        local = (eight + timedelta(hours=2)).astimezone(NY)
        expect(bar.locator(".bar-time")).to_have_text(
            f"{local:%H:%M}{DASH}{local + timedelta(hours=2):%H:%M}"
        )
        expect(page.locator("#range-title")).to_contain_text("America/New_York")


def test_a_contractors_day_on_a_phone(stack):
    dispatcher = make_user("dana", role="dispatcher")
    token = token_for(dispatcher)
    cleo = ContractorFactory(name="Cleo Park", timezone="UTC", hours=every_day(time(8), time(18)))
    make_user("cleo", role="contractor", contractor=cleo)
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    job = api(stack, token, "POST", "/api/jobs", {
        "type": "tile", "requiredSkills": ["tile"], "desiredDate": tomorrow.isoformat(),
        "location": {"lat": 40.72, "lng": -73.99, "address": "9 Live Ave, New York"},
        "durationMinutes": 90, "priority": "normal",
    })  # fmt: skip

    with chromium() as browser:
        page = browser.new_page(
            viewport={"width": 390, "height": 844},  # a phone
            timezone_id="UTC",
            locale="en-US",  # the change lines are compared as text
            is_mobile=True,
            has_touch=True,
        )
        sign_in(page, stack, "cleo", "/")  # a contractor landing on the board goes to /me/
        assert page.url.endswith("/me/")
        expect(page.locator("#empty")).to_be_visible()

        # Booked by the dispatcher: it arrives, with a line saying so.
        start = datetime.combine(tomorrow, time(9), tzinfo=UTC)
        api(stack, token, "POST", f"/api/jobs/{job['id']}/assign", {
            "contractorId": cleo.pk, "start": iso(start), "end": iso(start + timedelta(minutes=90)),
        })  # fmt: skip
        visit = page.locator(f'#assignments li.visit[data-job-id="{job["id"]}"]')
        expect(visit).to_contain_text(f"09:00{DASH}10:30", timeout=WAIT)
        expect(visit).to_contain_text("9 Live Ave, New York")
        assert "openstreetmap.org" in visit.locator("a", has_text="Map").get_attribute("href")
        expect(page.locator("#changes li").first).to_have_text(
            f"New: #{job['id']} on {tomorrow:%a}, {tomorrow:%b} {tomorrow.day} 09:00"
        )

        # Moved to 12:30: the line says where to, the visit is highlighted where it now is.
        later = datetime.combine(tomorrow, time(12, 30), tzinfo=UTC)
        api(stack, token, "POST", f"/api/jobs/{job['id']}/reschedule", {
            "start": iso(later), "end": iso(later + timedelta(minutes=90)),
        })  # fmt: skip
        expect(visit).to_contain_text(f"12:30{DASH}14:00", timeout=WAIT)
        expect(page.locator("#changes li").first).to_contain_text(f"#{job['id']} moved to")
        expect(page.locator("#changes li").first).to_contain_text("12:30")
        expect(visit).to_have_class(re.compile(r"\bflash\b"))
        shoot(page, "me-moved")

        # Start, then complete with a note, from the phone.
        visit.locator("button.start").click()
        expect(visit).to_have_attribute("data-status", "in_progress", timeout=WAIT)
        visit.locator("textarea").fill("Done, customer happy")
        visit.locator("button.complete").click()
        expect(visit).to_have_attribute("data-status", "completed", timeout=WAIT)
        expect(visit.locator("button")).to_have_count(0)
        shoot(page, "me-done")
