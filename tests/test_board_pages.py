"""Who gets which page: the board for dispatchers, /me/ for contractors, sign-in for others."""

import re
from pathlib import Path

import pytest
from django.test import Client

from contractors.services import Location
from events.models import Event
from events.publisher import publish_all
from scheduling.services import create_job
from tests.conftest import make_user, next_weekday
from tests.contractors.factories import ContractorFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[1]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_anonymous_visitors_are_sent_to_sign_in():
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"
    assert Client().get("/login/").status_code == 200


def test_a_dispatcher_gets_the_board_with_the_newest_sequence_to_resume_from():
    dispatcher = make_user("dana", role="dispatcher")
    create_job(
        type="tile", location=Location(40.7, -74.0), desired_date=next_weekday(0),
        duration_minutes=60,
    )  # fmt: skip
    publish_all()
    newest = Event.objects.latest("sequence").sequence

    response = signed_in(dispatcher).get("/")

    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-last-sequence="{newest}"' in page  # the socket resumes after it
    assert 'data-stream="/ws/dispatch/"' in page


def test_a_contractor_is_sent_to_its_own_page():
    user = make_user("ben", role="contractor", contractor=ContractorFactory(name="Ben Ortiz"))
    client = signed_in(user)
    assert client.get("/")["Location"] == "/me/"
    page = client.get("/me/")
    assert page.status_code == 200
    assert "Ben Ortiz" in page.content.decode()


def test_a_user_without_a_role_is_told_so():
    response = signed_in(make_user("nobody")).get("/")
    assert response.status_code == 403
    assert "neither a dispatcher nor a contractor" in response.content.decode()


def test_signing_in_with_the_form_lands_on_the_board():
    make_user("dana", role="dispatcher")
    response = Client().post("/login/", {"username": "dana", "password": "pw-dana", "next": "/"})
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_the_pages_carry_no_inline_script_for_a_content_security_policy():
    """Every script is a static file: no inline <script>, no on* handler attributes, no eval."""
    dispatcher = signed_in(make_user("dana", role="dispatcher"))
    contractor = signed_in(
        make_user("ben", role="contractor", contractor=ContractorFactory(name="Ben Ortiz"))
    )
    pages = [dispatcher.get("/"), contractor.get("/me/"), Client().get("/login/")]
    for response in pages:
        assert response.status_code == 200
        html = response.content.decode()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert re.search(r'\bsrc="/static/board/[a-z]+\.js"', tag), tag
        assert re.findall(r"<script\b[^>]*>\s*[^<\s]", html) == []  # nothing between the tags
        assert re.findall(r"\son[a-z]+\s*=", html) == []
    for script in (ROOT / "smartscheduler" / "static" / "board").glob("*.js"):
        source = script.read_text()
        assert "eval(" not in source and "new Function" not in source, script.name
        assert "innerHTML" not in source, script.name  # text only: no markup from data


def test_the_board_has_labelled_controls_for_dates_view_zone_and_filters():
    html = signed_in(make_user("dana", role="dispatcher")).get("/").content.decode()
    for control in ("date", "tz", "f-region", "f-type", "f-status", "f-search"):
        # Each control sits inside its <label>, so a screen reader names it.
        assert re.search(rf"<label[^>]*>[^<]*<(input|select)[^>]*id=\"{control}\"", html), control
    assert 'role="alert"' in html  # conflicts stay on screen, announced


def test_the_contractor_page_names_the_contractors_time_zone():
    contractor = ContractorFactory(name="Ben Ortiz", timezone="America/Chicago")
    user = make_user("ben", role="contractor", contractor=contractor)
    html = signed_in(user).get("/me/").content.decode()
    assert 'data-timezone="America/Chicago"' in html
    assert "Times are in America/Chicago." in html
