"""Operations endpoints and deployment hardening (docs/security.md): /metrics and /healthz's
details for operators only, the admin's event visibility and contractor-login dropdown, 404s
that do not reveal ids, `check --deploy` without warnings under HTTPS=true, the CSP, request
body limits, `seed_demo` in the production shape, and no fallback secret key with a database."""

import json
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from contractors.admin import ContractorForm
from contractors.models import Contractor
from contractors.services import Location, create_account, create_contractor, link_user
from events.errors import Invalid
from events.publisher import publish_all
from scheduling.services import create_job
from smartscheduler.asgi import application
from tests.conftest import client_for, events_of, make_user, next_weekday
from tests.contractors.factories import ContractorFactory, RegionFactory
from tests.scheduling.factories import JobFactory
from tests.support import ROOT

OUTSIDE = "203.0.113.9"  # a client that is not this machine


# --- /metrics, /healthz -----------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_answer_this_machine_only_by_default():
    assert Client(REMOTE_ADDR=OUTSIDE).get("/metrics").status_code == 404
    inside = Client().get("/metrics")  # the test client's 127.0.0.1
    assert inside.status_code == 200
    assert b"smartscheduler_subscriber_pending" in inside.content


@pytest.mark.django_db
def test_metrics_need_the_bearer_token_when_one_is_set(settings):
    settings.METRICS_TOKEN = "scrape-me-42"

    answers = [
        Client().get("/metrics").status_code,
        Client(HTTP_AUTHORIZATION="Bearer wrong").get("/metrics").status_code,
        Client(REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer scrape-me-42")
        .get("/metrics")
        .status_code,
    ]

    assert answers == [404, 404, 200]


@pytest.mark.django_db
def test_metrics_behind_a_trusted_proxy_count_the_forwarded_address(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxied = Client(HTTP_X_FORWARDED_FOR=OUTSIDE)  # the proxy on 127.0.0.1 says who asked

    assert proxied.get("/metrics").status_code == 404


@pytest.fixture
def broken_channel_layer(settings):
    # A channel layer on a port where nothing listens: the check fails, naming the address.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": "redis://10.11.12.13:1", "socket_timeout": 1}]},
        }
    }


@pytest.mark.django_db
def test_healthz_tells_anonymous_callers_only_up_or_down(broken_channel_layer):
    up_or_down = Client(REMOTE_ADDR=OUTSIDE).get("/healthz")

    assert up_or_down.status_code == 503
    assert up_or_down.json() == {"status": "unhealthy"}


@pytest.mark.django_db
def test_healthz_details_for_operators(broken_channel_layer, settings):
    settings.METRICS_TOKEN = "scrape-me-42"

    operator = Client(REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer scrape-me-42").get("/healthz")

    assert operator.status_code == 503
    assert operator.json()["checks"]["database"] == "ok"
    assert operator.json()["checks"]["channelLayer"].startswith("error:")


@pytest.mark.django_db
def test_healthz_when_up_is_a_plain_ok_for_anyone():
    response = Client(REMOTE_ADDR=OUTSIDE).get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


# --- the admin --------------------------------------------------------------------------------


@pytest.fixture
def north_dispatcher(db) -> Client:
    RegionFactory(slug="north")
    RegionFactory(slug="south", center_lat=39.95, center_lng=-75.17, radius_miles=25)
    user, _ = create_account(
        username="nora", role="dispatcher", password="long-enough-pw-1", regions=["north"]
    )
    client = Client()
    client.force_login(user)
    return client


def job_at(lat: float, lng: float):
    return create_job(
        type="tile", location=Location(lat=lat, lng=lng), desired_date=next_weekday(1),
        duration_minutes=60, required_skills=["tile"],
    )  # fmt: skip


def test_a_region_limited_dispatcher_sees_only_its_regions_events_in_the_admin(north_dispatcher):
    north, south = job_at(40.9, -73.9), job_at(39.95, -75.17)
    publish_all()  # the admin lists the published log, as the API does

    listed = north_dispatcher.get("/admin/events/event/")
    south_event = events_of("JobCreated")[1]
    detail = north_dispatcher.get(f"/admin/events/event/{south_event.pk}/change/")

    assert listed.status_code == 200
    assert [e.aggregate_id for e in listed.context["cl"].result_list] == [str(north.pk)]
    assert south.pk != north.pk
    assert detail.status_code == 302  # the admin's "does not exist" redirect, like a 404


def test_the_contractor_forms_login_dropdown_offers_only_unlinked_non_staff_accounts(db):
    free = make_user("free")
    linked = make_user("linked", role="contractor", contractor=ContractorFactory())
    make_user("dispatch", role="dispatcher")
    User.objects.filter(username="dispatch").update(is_staff=True)
    make_user("boss", role="admin")
    inactive = make_user("gone")
    User.objects.filter(pk=inactive.pk).update(is_active=False)

    offered = list(ContractorForm().fields["user"].queryset)
    editing = ContractorForm(instance=Contractor.objects.get(user=linked)).fields["user"].queryset

    assert offered == [free]
    assert sorted(u.username for u in editing) == ["free", "linked"]


def test_a_dispatcher_cannot_link_a_staff_account_in_the_admin(north_dispatcher):
    from tests.test_admin import contractor_form

    contractor = ContractorFactory()
    boss = make_user("boss", role="admin")
    before = len(events_of())

    response = north_dispatcher.post(
        f"/admin/contractors/contractor/{contractor.pk}/change/",
        contractor_form(user=str(boss.pk)),
    )

    assert response.status_code == 200  # the form again, with the error
    assert "user" in response.context["adminform"].form.errors
    contractor.refresh_from_db()
    assert contractor.user is None
    assert len(events_of()) == before


def test_linking_a_login_in_the_admin_goes_through_the_service_and_records_its_event(
    north_dispatcher,
):
    from tests.test_admin import contractor_form

    contractor = ContractorFactory(name="Ana Ruiz")
    free = make_user("ana")

    response = north_dispatcher.post(
        f"/admin/contractors/contractor/{contractor.pk}/change/",
        contractor_form(user=str(free.pk), **{"time_off-TOTAL_FORMS": "0"}),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    contractor.refresh_from_db()
    assert contractor.user == free
    linked = [e for e in events_of("ScheduleUpdated") if "user" in e.payload["updatedFields"]]
    assert [e.payload["newValues"]["user"] for e in linked] == [free.pk]


def test_the_services_refuse_to_make_a_staff_account_a_contractors_login(db):
    contractor = ContractorFactory()
    boss = make_user("boss", role="admin")

    with pytest.raises(Invalid):
        link_user(contractor_id=contractor.pk, user=boss)
    with pytest.raises(Invalid):
        create_contractor(
            name="New", type="tile", skills=["tile"], location=Location(lat=40.7, lng=-74.0),
            timezone_name="America/New_York", user=boss,
        )  # fmt: skip

    contractor.refresh_from_db()
    assert contractor.user is None
    assert Contractor.objects.count() == 1
    assert events_of() == []


# --- 404 for what a contractor may not see ----------------------------------------------------


def test_a_contractor_gets_the_same_404_for_anothers_ids_and_missing_ones(db):
    own, other = ContractorFactory(), ContractorFactory()
    client = client_for(make_user("own", role="contractor", contractor=own))
    foreign_job = JobFactory()

    answers = {
        path: (response.status_code, response.json())
        for path in (
            f"/api/contractors/{other.pk}",
            "/api/contractors/999999",
            f"/api/contractors/{other.pk}/availability?from=2030-01-01&to=2030-01-01",
            "/api/contractors/999999/availability?from=2030-01-01&to=2030-01-01",
        )
        for response in [client.get(path)]
    }
    jobs = [client.get(f"/api/jobs/{pk}") for pk in (foreign_job.pk, 999999)]

    assert {code for code, _ in answers.values()} == {404}
    assert len({json.dumps(body) for _, body in answers.values()}) == 1
    assert [r.status_code for r in jobs] == [404, 404]
    assert jobs[0].json() == jobs[1].json()


# --- deployment settings ----------------------------------------------------------------------


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DEBUG"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**clean, "DJANGO_SETTINGS_MODULE": "smartscheduler.settings", **env},
    )  # fmt: skip


PRODUCTION = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/smartscheduler",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SECRET_KEY": "x7$k2!q9" * 8,
    "ALLOWED_HOSTS": "scheduler.example.com",
    "DEBUG": "0",
}


def test_check_deploy_is_clean_with_https_true():
    done = run_manage("check", "--deploy", "--fail-level", "WARNING", HTTPS="true", **PRODUCTION)

    assert done.returncode == 0, done.stderr + done.stdout
    assert "System check identified no issues" in done.stdout


def test_check_deploy_without_https_names_what_is_missing():
    done = run_manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert done.returncode != 0
    for check in ("W004", "W008", "W012", "W016"):
        assert f"security.{check}" in done.stderr


@pytest.mark.parametrize("debug", ["0", "1"])
def test_no_fallback_secret_key_whenever_database_url_is_set(debug):
    env = {**PRODUCTION, "DEBUG": debug, "SECRET_KEY": ""}

    done = run_manage("check", **env)

    assert done.returncode != 0
    assert "SECRET_KEY must be set when DATABASE_URL is set" in done.stderr


@pytest.mark.django_db
def test_pages_carry_a_csp_without_inline_script():
    user = make_user("dana", role="dispatcher")
    client = Client()
    client.force_login(user)

    for path in ("/login/", "/", "/api/docs"):
        response = client.get(path)
        assert response.status_code == 200, path
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        # every <script> loads a file: nothing inline for the policy to block
        for script in re.findall(rb"<script[^>]*>(.*?)</script>", response.content, re.S):
            assert script.strip() == b"", (path, script[:200])


def test_no_template_has_an_inline_script_or_event_handler():
    templates = Path(ROOT, "smartscheduler", "templates").rglob("*.html")
    for template in templates:
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template
        assert not re.search(r"\son[a-z]+=", text), template


@pytest.mark.django_db
def test_a_body_over_the_limit_is_a_json_413(settings):
    client = client_for(make_user("dana", role="dispatcher"))
    big = json.dumps({"type": "tile", "address": "x" * (1024 * 1024)})

    response = client.post("/api/jobs", big, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    settings.REQUEST_MAX_BODY_BYTES = 64
    assert client.post("/api/jobs", {"a": "b" * 100}, format="json").status_code == 413


def http_scope(headers: list[tuple[bytes, bytes]]) -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/api/jobs", "raw_path": b"/api/jobs", "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }  # fmt: skip


async def call_asgi(scope: dict) -> tuple[list[dict], int]:
    """Runs the ASGI application on a body that never ends; returns what it sent and how many
    body chunks it read."""
    sent: list[dict] = []
    reads = 0

    async def receive():
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b" " * 65536, "more_body": True}

    async def send(message):
        sent.append(message)

    await application(scope, receive, send)
    return sent, reads


@pytest.mark.asyncio
async def test_the_server_refuses_a_declared_100_mb_body_before_reading_any_of_it():
    sent, reads = await call_asgi(http_scope([(b"content-length", str(100 << 20).encode())]))

    assert reads == 0
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["code"] == "too_large"


@pytest.mark.asyncio
async def test_the_server_stops_reading_an_undeclared_body_past_the_limit():
    sent, reads = await call_asgi(http_scope([]))

    assert reads == 17  # 16 chunks of 64 KiB make the 1 MiB limit; the 17th passes it
    assert sent[0]["status"] == 413


@pytest.mark.django_db
def test_seed_demo_refuses_the_production_shape_without_force():
    with pytest.raises(CommandError, match="--force"):
        call_command("seed_demo", "--contractors", "2", "--jobs", "0", stdout=StringIO())

    assert not User.objects.exists()
    assert not Contractor.objects.exists()
