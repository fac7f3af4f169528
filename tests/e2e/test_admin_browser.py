"""The Django admin as a dispatcher's tool, in a real browser against the production shape
(daphne and a relay as processes, tests/e2e/conftest.py; headless chromium, tests/e2e/browser.py).

A dispatcher (an account of the dispatcher role: staff, in the dispatchers group, no superuser)
signs in at /admin/, books an open job from its page, moves it to another contractor's slot,
starts, completes and rates it, and cancels another job with a reason. Two refusals keep the
page with a plain-language reason: a slot taken by someone else meanwhile, and a new job wanted
in the past (the form comes back as typed). The outcome is read from the database afterwards.
"""

import re
from datetime import UTC, datetime, time, timedelta

import pytest
from playwright.sync_api import Page, expect

from contractors.models import Contractor, Rating
from contractors.services import create_account
from scheduling.models import Assignment, Job
from tests.conftest import events_of
from tests.contractors.factories import ContractorFactory
from tests.e2e.browser import api, chromium, shoot
from tests.scheduling.factories import AssignmentFactory, JobFactory

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 10_000  # ms


def every_day(start: time, end: time) -> list:
    return [(day, start, end) for day in range(7)]


def job_page(page: Page, base: str, job_id: int) -> None:
    page.goto(f"{base}/admin/scheduling/job/{job_id}/change/")
    expect(page.locator("#job-tools")).to_be_visible()


def slot_form(page: Page, contractor_id: int):
    """The first offered slot of a contractor on the job page: its form, and its start."""
    form = page.locator(f'#recommendations tr[data-contractor-id="{contractor_id}"] form').first
    return form, form.locator("input[name=start]").get_attribute("value")


def said(page: Page, level: str):
    return page.locator(f"ul.messagelist li.{level}")


def test_a_dispatchers_day_in_the_admin(stack):
    account = create_account(
        username="dana", role="dispatcher", password="pw-dana", check_password=False
    )
    assert (account.user.is_staff, account.user.is_superuser) == (True, False)
    ana = ContractorFactory(
        name="Ana Ruiz", timezone="UTC", hours=every_day(time(8), time(18)), lat=40.7, lng=-74.0
    )
    ben = ContractorFactory(
        name="Ben Ortiz", timezone="America/New_York", hours=every_day(time(7), time(19)),
        lat=40.8, lng=-74.1,
    )  # fmt: skip
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    first = JobFactory(
        type="tile", required_skills=["tile"], desired_date=tomorrow, duration_minutes=120,
        address="12 Admin St, New York", priority="high",
    )  # fmt: skip
    doomed = AssignmentFactory(
        contractor=ana,
        start=datetime.combine(tomorrow, time(15), tzinfo=UTC),
        job=JobFactory(type="tile", required_skills=["tile"], desired_date=tomorrow,
                       duration_minutes=60, status="assigned", address="3 Rain Rd"),
    ).job  # fmt: skip
    raced, rival = (
        JobFactory(type="tile", required_skills=["tile"], desired_date=tomorrow,
                   duration_minutes=60, address=address)
        for address in ("5 Race Ave", "7 Rival Ave")
    )  # fmt: skip

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
        page.set_default_timeout(WAIT)
        page.goto(f"{stack}/admin/")
        page.fill("#id_username", "dana")
        page.fill("#id_password", "pw-dana")
        page.click("input[type=submit]")
        expect(page.locator("#site-name")).to_be_visible()
        expect(page.get_by_role("link", name="Jobs", exact=True)).to_be_visible()

        # Open jobs, then the first one: its ranked contractors, each slot a Book button.
        page.get_by_role("link", name="Jobs", exact=True).click()
        page.get_by_role("link", name="Open", exact=True).click()
        expect(page.locator("#result_list tbody tr")).to_have_count(3)
        page.locator(f'#result_list a[href*="/job/{first.pk}/change/"]').click()
        expect(page.locator("#recommendations")).to_be_visible()
        book, booked_at = slot_form(page, ana.pk)
        expect(book.get_by_role("button")).to_contain_text("Book")
        expect(book.get_by_role("button")).to_contain_text("UTC")
        shoot(page, "admin-recommend", full_page=True)
        book.get_by_role("button").click()
        expect(said(page, "success")).to_have_text("Booked with Ana Ruiz.")

        # Reschedule: the page now offers moves; take Ben's first slot (his New York time).
        expect(
            page.get_by_role("heading", name="Reschedule: move it to another slot")
        ).to_be_visible()
        move, moved_to = slot_form(page, ben.pk)
        expect(move.get_by_role("button")).to_contain_text("Move to")
        expect(move.get_by_role("button")).to_contain_text(re.compile(r"\bE[SD]T\b"))
        move.get_by_role("button").click()
        expect(said(page, "success")).to_contain_text("Moved to Ben Ortiz")
        expect(page.locator("td.field-contractor").first).to_contain_text("Ben Ortiz")
        shoot(page, "admin-moved", full_page=True)

        # Start, complete with notes, rate.
        page.get_by_role("button", name="Start the job").click()
        expect(said(page, "success")).to_have_text("Started.")
        page.fill("#id_notes", "Grout sealed")
        page.get_by_role("button", name="Complete the job").click()
        expect(said(page, "success")).to_have_text("Completed.")
        page.select_option("#id_rating", "4")
        page.get_by_role("button", name="Rate the contractor").click()
        expect(said(page, "success")).to_have_text("Rated.")
        expect(page.locator("label[for=id_rating]")).to_have_text("Rating (now 4)")
        shoot(page, "admin-rated", full_page=True)

        # Cancel another (booked) job with a reason.
        job_page(page, stack, doomed.pk)
        page.fill("#id_reason", "Customer away")
        page.get_by_role("button", name="Cancel the job").click()
        expect(said(page, "success")).to_have_text("Cancelled.")
        expect(page.locator(".field-cancel_reason")).to_contain_text("Customer away")
        expect(page.locator("#job-tools")).to_contain_text("Cancelled: nothing more to do.")

        # Refused: while this page is open, another dispatcher books its slot for another job.
        job_page(page, stack, raced.pk)
        stale, taken_at = slot_form(page, ana.pk)
        taken = datetime.fromisoformat(taken_at)
        api(stack, account.token_key, "POST", f"/api/jobs/{rival.pk}/assign", {
            "contractorId": ana.pk, "start": taken.isoformat(),
            "end": (taken + timedelta(minutes=60)).isoformat(),
        })  # fmt: skip
        stale.get_by_role("button").click()
        expect(said(page, "error")).to_have_text(
            "The slot overlaps another live assignment of this contractor."
        )
        expect(said(page, "success")).to_have_count(0)
        expect(page.locator("#recommendations")).to_be_visible()  # still bookable elsewhere
        _, offered = slot_form(page, ana.pk)
        assert offered != taken_at  # the taken slot is no longer offered
        shoot(page, "admin-conflict", full_page=True)

        # Refused: a new job wanted three days ago comes back as typed, with the reason.
        page.goto(f"{stack}/admin/scheduling/job/add/")
        expect(page.locator(".field-status, #assignments-group")).to_have_count(0)  # not yet
        page.select_option("#id_type", "tile")
        page.fill("#id_required_skills", "tile")
        page.fill("#id_lat", "40.71")
        page.fill("#id_lng", "-74.0")
        page.fill("#id_address", "1 Late Ln")
        past = datetime.now(UTC).date() - timedelta(days=3)
        page.fill("#id_desired_date", past.isoformat())
        page.fill("#id_duration_minutes", "90")
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator(".errornote")).to_be_visible()
        expect(page.locator(".field-desired_date .errorlist")).to_have_text("is in the past.")
        expect(page.locator("#id_address")).to_have_value("1 Late Ln")
        expect(page.locator("#id_duration_minutes")).to_have_value("90")
        shoot(page, "admin-refused", full_page=True)

    done = Job.objects.get(pk=first.pk)
    booking = Assignment.objects.get(job=done)
    assert done.status == "completed"
    assert (booking.contractor_id, booking.start, booking.status, booking.notes) == (
        ben.pk, datetime.fromisoformat(moved_to), "completed", "Grout sealed"
    )  # fmt: skip
    assert booked_at != moved_to
    assert Rating.objects.get(job_id=done.pk).stars == 4
    assert Contractor.objects.get(pk=ben.pk).average_rating == 4.0
    mine = [e.type for e in events_of() if e.payload.get("jobId") == first.pk]
    assert mine == [
        "JobAssigned",
        "JobRescheduled",
        "JobStarted",
        "JobCompleted",
        "ContractorRated",
    ]
    cancelled = Job.objects.get(pk=doomed.pk)
    assert (cancelled.status, cancelled.cancel_reason) == ("cancelled", "Customer away")
    assert Job.objects.get(pk=raced.pk).status == "open"
    assert not Assignment.objects.filter(job=raced).exists()
    assert Assignment.objects.get(job=rival).start == datetime.fromisoformat(taken_at)
    assert not Job.objects.filter(address="1 Late Ln").exists()
