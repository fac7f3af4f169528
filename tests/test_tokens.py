"""API tokens (docs/security.md): stored hashed, expiring after API_TOKEN_TTL_DAYS, several per
user, revocable (`POST /api/auth/logout`, the admin, `manage.py revoke_tokens`); a password
change or a deactivation revokes them at once, however the user is saved."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from knox.models import AuthToken

from contractors.tokens import authenticate_key, issue_token
from tests.conftest import client_for, make_user, token_for

pytestmark = pytest.mark.django_db


def sign_in(username: str, password: str):
    return Client().post(
        "/api/auth/token",
        {"username": username, "password": password},
        content_type="application/json",
    )


def with_token(key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {key}")


@pytest.fixture
def dana(db) -> User:
    return make_user("dana", role="dispatcher")  # password "pw-dana"


def test_the_token_is_stored_only_as_a_digest(dana):
    key = sign_in("dana", "pw-dana").json()["token"]

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM knox_authtoken")
        [row] = cursor.fetchall()
    assert not any(isinstance(value, str) and key in value for value in row)
    assert AuthToken.objects.get().token_key == key[:15]  # only the lookup prefix
    assert with_token(key).get("/api/jobs").status_code == 200


def test_a_token_expires_after_thirty_days_by_default(dana):
    before = timezone.now()

    answer = sign_in("dana", "pw-dana").json()

    expiry = parse_datetime(answer["expiry"])
    assert (
        timedelta(days=30) - timedelta(seconds=2)
        <= expiry - before
        <= timedelta(days=30, seconds=2)
    )
    assert abs(AuthToken.objects.get().expiry - expiry) < timedelta(seconds=1)


def test_api_token_ttl_days_sets_the_lifetime(dana, settings):
    settings.API_TOKEN_TTL_DAYS = 2

    issued = issue_token(user=dana)

    assert abs(issued.expiry - (timezone.now() + timedelta(days=2))) < timedelta(seconds=2)


def test_an_expired_token_is_refused(dana):
    key = token_for(dana)
    AuthToken.objects.update(expiry=timezone.now() - timedelta(seconds=1))

    response = with_token(key).get("/api/jobs")

    assert response.status_code == 401
    assert authenticate_key(key) is None


def test_each_sign_in_is_its_own_token_and_logout_revokes_only_the_one_used(dana):
    laptop = sign_in("dana", "pw-dana").json()["token"]
    phone = sign_in("dana", "pw-dana").json()["token"]

    assert laptop != phone
    assert AuthToken.objects.filter(user=dana).count() == 2
    assert with_token(laptop).post("/api/auth/logout").status_code == 204
    assert with_token(laptop).get("/api/jobs").status_code == 401
    assert with_token(phone).get("/api/jobs").status_code == 200


def test_logout_needs_a_token(db):
    assert Client().post("/api/auth/logout").status_code == 401


def test_past_the_per_user_limit_the_oldest_token_is_revoked(dana, settings):
    settings.API_TOKENS_PER_USER = 3
    keys = [issue_token(user=dana).key for _ in range(4)]

    assert [authenticate_key(key) is not None for key in keys] == [False, True, True, True]


def test_a_password_change_revokes_every_token_and_a_new_sign_in_gets_a_new_one(dana):
    old = [token_for(dana), token_for(dana)]
    dana.set_password("a-better-password-42")
    dana.save()

    assert [with_token(key).get("/api/jobs").status_code for key in old] == [401, 401]
    new = sign_in("dana", "a-better-password-42").json()["token"]
    assert new not in old
    assert with_token(new).get("/api/jobs").status_code == 200


def test_a_password_changed_in_the_admin_revokes_the_tokens(dana):
    key = token_for(dana)
    admin = Client()
    admin.force_login(make_user("root", role="admin"))

    response = admin.post(
        f"/admin/auth/user/{dana.pk}/password/",
        {"password1": "a-better-password-42", "password2": "a-better-password-42"},
    )

    assert response.status_code == 302
    assert with_token(key).get("/api/jobs").status_code == 401


def test_changepassword_command_revokes_the_tokens(dana, monkeypatch):
    key = token_for(dana)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "a-better-password-42")

    call_command("changepassword", "dana", stdout=StringIO())

    assert with_token(key).get("/api/jobs").status_code == 401


def test_deactivation_revokes_the_tokens(dana):
    key = token_for(dana)
    dana.is_active = False
    dana.save()

    assert with_token(key).get("/api/jobs").status_code == 401
    assert AuthToken.objects.filter(user=dana).count() == 0


def test_deactivation_by_a_queryset_update_refuses_the_token_too(dana):
    key = token_for(dana)
    User.objects.filter(pk=dana.pk).update(is_active=False)  # no signal runs

    assert with_token(key).get("/api/jobs").status_code == 401


def test_signing_in_on_the_board_keeps_the_api_tokens(dana):
    key = token_for(dana)

    assert Client().post("/login/", {"username": "dana", "password": "pw-dana"}).status_code == 302

    assert with_token(key).get("/api/jobs").status_code == 200


def test_revoke_tokens_command(dana):
    key = token_for(dana)
    other = token_for(make_user("eve", role="dispatcher"))
    out = StringIO()

    call_command("revoke_tokens", "dana", stdout=out)

    assert "dana: 1 token(s) revoked." in out.getvalue()
    assert authenticate_key(key) is None
    assert authenticate_key(other) is not None


def test_revoke_tokens_command_refuses_unknown_names_and_revokes_nothing(dana):
    key = token_for(dana)

    with pytest.raises(CommandError, match="No such user: nobody"):
        call_command("revoke_tokens", "dana", "nobody", stdout=StringIO())

    assert authenticate_key(key) is not None


def test_revoke_tokens_expired_removes_only_expired_tokens(dana):
    live = token_for(dana)
    token_for(dana)
    AuthToken.objects.filter(token_key__in=[t.token_key for t in AuthToken.objects.all()]).exclude(
        token_key=live[:15]
    ).update(expiry=timezone.now() - timedelta(days=1))

    call_command("revoke_tokens", "--expired", stdout=StringIO())

    assert list(AuthToken.objects.values_list("token_key", flat=True)) == [live[:15]]


def test_the_admin_revokes_tokens_by_token_and_by_user(dana):
    first, second = token_for(dana), token_for(dana)
    admin = Client()
    admin.force_login(make_user("root", role="admin"))
    first_row = AuthToken.objects.get(token_key=first[:15])

    by_token = admin.post(
        "/admin/knox/authtoken/",
        {"action": "revoke_selected_tokens", "_selected_action": [first_row.pk]},
    )
    assert by_token.status_code == 302
    assert (authenticate_key(first), authenticate_key(second) is not None) == (None, True)

    by_user = admin.post(
        "/admin/auth/user/", {"action": "revoke_users_tokens", "_selected_action": [dana.pk]}
    )
    assert by_user.status_code == 302
    assert authenticate_key(second) is None


def test_api_answers_are_not_stored_by_browsers_or_proxies(dana):
    token_answer = sign_in("dana", "pw-dana")
    jobs = client_for(dana).get("/api/jobs")

    for response in (token_answer, jobs):
        assert "no-store" in response["Cache-Control"]
