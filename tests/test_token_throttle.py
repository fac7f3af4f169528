"""`POST /api/auth/token` is throttled per client address against password guessing
(scope `token`, `TOKEN_THROTTLE_RATE`, default 10/min), counted in the shared Redis cache."""

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import make_user

pytestmark = pytest.mark.django_db

URL = "/api/auth/token"


def attempt(password: str, address: str = "203.0.113.7", **headers):
    return APIClient().post(
        URL, {"username": "dana", "password": password}, format="json", REMOTE_ADDR=address,
        **headers,
    )  # fmt: skip


@pytest.fixture
def dana(db):
    return make_user("dana", role="dispatcher")  # password "pw-dana"


def test_the_default_rate_is_ten_attempts_a_minute():
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["token"] == "10/min"


def test_the_eleventh_attempt_in_a_minute_is_refused_even_with_the_right_password(dana):
    wrong = [attempt(f"guess-{n}").status_code for n in range(10)]

    refused = attempt("pw-dana")

    assert wrong == [400] * 10
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "token" not in refused.json()


def test_another_client_address_is_not_affected(dana):
    for n in range(11):
        attempt(f"guess-{n}")

    elsewhere = attempt("pw-dana", address="198.51.100.20")

    assert attempt("pw-dana").status_code == 429
    assert elsewhere.status_code == 200
    assert set(elsewhere.json()) == {"token"}


def test_a_forged_forwarded_for_header_does_not_buy_more_attempts(dana):
    answers = [
        attempt(f"guess-{n}", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code for n in range(11)
    ]

    assert answers == [400] * 10 + [429]


def test_successful_sign_ins_count_too(dana):
    """The limit is on attempts, not failures: a script holding the password is throttled too."""
    answers = [attempt("pw-dana").status_code for _ in range(11)]

    assert answers == [200] * 10 + [429]


def test_an_authorization_header_neither_blocks_sign_in_nor_changes_the_count(dana):
    """A stale token does not make the sign-in a 401, and a valid one does not move the count
    from the client's address to its user."""
    other = make_user("eve", role="dispatcher")
    valid = Token.objects.create(user=other).key
    headers = [{"HTTP_AUTHORIZATION": "Token stale"}, {"HTTP_AUTHORIZATION": f"Token {valid}"}]

    answers = [attempt(f"guess-{n}", **headers[n % 2]).status_code for n in range(10)]

    assert answers == [400] * 10
    assert attempt("pw-dana", **headers[1]).status_code == 429
