"""Failed sign-ins are throttled on every login path with one policy (django-axes):
LOGIN_FAILURE_LIMIT (default 10) failures from one client address lock that address out of the
token endpoint, /login/ and /admin/login/ alike for LOGIN_LOCKOUT_MINUTES; a locked-out attempt
is a 429 with Retry-After even with the right password, and an operator lifts it with
`manage.py axes_reset_ip ADDRESS`."""

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import make_user, token_for

pytestmark = pytest.mark.django_db

URL = "/api/auth/token"
ADDRESS = "203.0.113.7"


def attempt(password: str, address: str = ADDRESS, **headers):
    return APIClient().post(
        URL, {"username": "dana", "password": password}, format="json", REMOTE_ADDR=address,
        **headers,
    )  # fmt: skip


def form_login(path: str, password: str, address: str = ADDRESS):
    return Client().post(
        path, {"username": "dana", "password": password, "next": "/"}, REMOTE_ADDR=address
    )


@pytest.fixture
def dana(db):
    user = make_user("dana", role="dispatcher")  # password "pw-dana"; staff, so admin too
    return user


def fail(times: int, address: str = ADDRESS) -> list[int]:
    return [attempt(f"guess-{n}", address).status_code for n in range(times)]


def test_the_default_policy_is_ten_failures_then_fifteen_minutes():
    assert settings.AXES_FAILURE_LIMIT == 10
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60


def test_after_ten_failures_even_the_right_password_is_refused_with_429(dana):
    answers = fail(10)

    refused = attempt("pw-dana")

    assert answers == [400] * 9 + [429]  # the tenth failure locks the address out
    assert refused.status_code == 429
    assert refused.json() == {"detail": refused.json()["detail"], "code": "locked_out"}
    assert int(refused["Retry-After"]) == 15 * 60
    assert "token" not in refused.json()


def test_another_client_address_is_not_affected(dana):
    fail(10)

    elsewhere = attempt("pw-dana", address="198.51.100.20")

    assert attempt("pw-dana").status_code == 429
    assert elsewhere.status_code == 200
    assert set(elsewhere.json()) == {"token", "expiry"}


def test_a_forged_forwarded_for_header_does_not_buy_more_attempts(dana):
    answers = [
        attempt(f"guess-{n}", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code for n in range(11)
    ]

    assert answers == [400] * 9 + [429, 429]


def test_an_authorization_header_neither_blocks_sign_in_nor_changes_the_count(dana):
    """A stale token does not make the sign-in a 401, and a valid one does not exempt it."""
    valid = token_for(make_user("eve", role="dispatcher"))
    headers = [{"HTTP_AUTHORIZATION": "Token stale"}, {"HTTP_AUTHORIZATION": f"Token {valid}"}]

    answers = [attempt(f"guess-{n}", **headers[n % 2]).status_code for n in range(9)]

    assert answers == [400] * 9
    assert attempt("pw-dana", **headers[1]).status_code == 200
    assert attempt("guess-last", **headers[1]).status_code == 429


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_the_login_pages_are_throttled_too(dana, path):
    answers = [form_login(path, f"guess-{n}").status_code for n in range(10)]

    refused = form_login(path, "pw-dana")

    assert answers == [200] * 9 + [429]  # the form again, with its error; then locked out
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) == 15 * 60
    assert "_auth_user_id" not in refused.wsgi_request.session


def test_one_policy_failures_on_one_path_count_on_the_others(dana):
    for n in range(5):
        form_login("/login/", f"guess-{n}")
    for n in range(4):
        form_login("/admin/login/", f"guess-{n}")

    assert attempt("guess-last").status_code == 429
    assert form_login("/login/", "pw-dana").status_code == 429


def test_an_operator_lifts_a_lockout_with_axes_reset_ip(dana):
    fail(10)
    assert attempt("pw-dana").status_code == 429

    call_command("axes_reset_ip", ADDRESS, stdout=open("/dev/null", "w"))  # noqa: SIM115

    assert attempt("pw-dana").status_code == 200
