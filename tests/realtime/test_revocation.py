"""Open websockets follow the account (docs/security.md): deactivation, a revoked or expired
token, an ended session, a password change (4401) or losing the role or a region (4403) closes
the affected sockets within 5 s, whichever way the change was made: through the ORM as the
admin saves (signals run), as a queryset update (no signal runs), the API or a command. Sockets
whose access did not change stay open.

Every close is waited for on the real re-check (WEBSOCKET_RECHECK_SECONDS, default 2 s) and
timed from the moment of the change; a socket that must stay open is re-checked once more at
once and must answer a ping next, rather than being watched for a while.
"""

import time
from io import StringIO

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group, User
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from contractors.access import DISPATCHERS_GROUP
from contractors.models import Contractor
from contractors.services import delete_contractor
from realtime.revocation import watch
from tests.conftest import make_user, token_for
from tests.contractors.factories import RegionFactory

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

PROMISE = 5.0  # seconds from the change to the close


@pytest.fixture
def regions(transactional_db):
    return {
        "north": RegionFactory(slug="north"),
        "south": RegionFactory(slug="south", center_lat=39.95, center_lng=-75.17, radius_miles=25),
    }


@pytest.fixture
def nora(regions) -> User:
    """A dispatcher who watches north and south."""
    return make_user("nora", role="dispatcher", regions=[regions["north"], regions["south"]])


async def open_stream(streams, user: User, path: str = "/ws/dispatch/", query: str = ""):
    key = await database_sync_to_async(token_for)(user)
    stream = await streams.open(f"{path}?token={key}" + (f"&{query}" if query else ""))
    assert await stream.ping() == {"kind": "pong"}
    return stream, key


async def assert_closed(stream, code: int, error: str, since: float) -> None:
    frame = await stream.frame(timeout=PROMISE + 1)
    assert (frame["kind"], frame["code"]) == ("error", error), frame
    assert await stream.close_code() == code
    assert time.monotonic() - since < PROMISE


async def still_open(stream) -> None:
    """A re-check of every open socket, now, then a ping: were `stream` to be closed, its
    error frame would come before the pong (a check sends its closes before it returns)."""
    await watch().check()
    assert await stream.ping() == {"kind": "pong"}


@database_sync_to_async
def run(change, *args, **kwargs):
    return change(*args, **kwargs)


# --- 4401: the sign-in is gone ----------------------------------------------------------------


def deactivate_by_save(user: User) -> None:
    user.is_active = False
    user.save()  # as the admin's change form does


def deactivate_by_update(user: User) -> None:
    User.objects.filter(pk=user.pk).update(is_active=False)  # no signal runs


def change_password_by_save(user: User) -> None:
    user.set_password("a-new-password-42")
    user.save()


def change_password_by_update(user: User) -> None:
    fresh = User(pk=user.pk)
    fresh.set_password("a-new-password-42")
    User.objects.filter(pk=user.pk).update(password=fresh.password)


def delete_user(user: User) -> None:
    User.objects.filter(pk=user.pk).delete()


def revoke_with_command(user: User) -> None:
    call_command("revoke_tokens", user.username, stdout=StringIO())


def revoke_in_the_database(user: User) -> None:
    AuthToken.objects.filter(user=user).delete()


def expire_token(user: User) -> None:
    AuthToken.objects.filter(user=user).update(expiry=timezone.now())


@pytest.mark.parametrize(
    "change",
    [
        deactivate_by_save,
        deactivate_by_update,
        change_password_by_save,
        change_password_by_update,
        delete_user,
        revoke_with_command,
        revoke_in_the_database,
        expire_token,
    ],
)
async def test_a_gone_sign_in_closes_the_socket_4401_and_others_stay_open(
    streams, nora, dispatcher, change
):
    stream, _ = await open_stream(streams, nora)
    other, _ = await open_stream(streams, dispatcher)

    since = time.monotonic()
    await run(change, nora)

    await assert_closed(stream, 4401, "revoked", since)
    await still_open(other)


async def test_logout_through_the_api_closes_the_socket_of_that_token_only(streams, nora):
    stream, key = await open_stream(streams, nora)
    other_device, _ = await open_stream(streams, nora)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    since = time.monotonic()
    response = await run(client.post, "/api/auth/logout")

    assert response.status_code == 204
    await assert_closed(stream, 4401, "revoked", since)
    await still_open(other_device)
    assert (await run(client.get, "/api/jobs")).status_code == 401


def session_cookie(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def end_session(user: User, cookie: bytes) -> None:
    Session.objects.filter(session_key=cookie.decode().split("=")[1]).delete()


def change_password(user: User, cookie: bytes) -> None:
    change_password_by_save(user)


@pytest.mark.parametrize("change", [end_session, change_password])
async def test_an_ended_session_or_a_password_change_closes_the_board_socket(streams, nora, change):
    cookie = await run(session_cookie, nora)
    stream = await streams.open(
        "/ws/dispatch/",
        headers=[(b"host", b"testserver"), (b"origin", b"http://testserver"), (b"cookie", cookie)],
    )
    assert await stream.ping() == {"kind": "pong"}

    since = time.monotonic()
    await run(change, nora, cookie)

    await assert_closed(stream, 4401, "revoked", since)


# --- 4403: the permission is gone -------------------------------------------------------------


def leave_dispatchers(user: User) -> None:
    user.groups.remove(Group.objects.get(name=DISPATCHERS_GROUP))  # m2m: no save of the user


@pytest.mark.parametrize("query", ["", "regions=south"])
async def test_losing_the_dispatcher_role_closes_4403(streams, nora, query):
    stream, _ = await open_stream(streams, nora, query=query)

    since = time.monotonic()
    await run(leave_dispatchers, nora)

    await assert_closed(stream, 4403, "forbidden", since)


async def test_losing_a_watched_region_closes_the_sockets_that_joined_it(streams, nora, regions):
    everything = await open_stream(streams, nora)  # joined north and south
    south_only = await open_stream(streams, nora, query="regions=south")
    north_only = await open_stream(streams, nora, query="regions=north")

    since = time.monotonic()
    await run(regions["south"].watchers.remove, nora)

    await assert_closed(everything[0], 4403, "forbidden", since)
    await assert_closed(south_only[0], 4403, "forbidden", since)
    await still_open(north_only[0])


async def test_gaining_a_region_closes_nothing(streams, regions, settings):
    settings.WEBSOCKET_RECHECK_SECONDS = 3600  # the only re-check is still_open's, after the change
    nora = await run(make_user, "nora", role="dispatcher", regions=[regions["north"]])
    stream, _ = await open_stream(streams, nora)

    await run(regions["south"].watchers.add, nora)

    await still_open(stream)


def unlink(user: User) -> None:
    Contractor.objects.filter(user=user).update(user=None)


def delete_the_contractor(user: User) -> None:
    delete_contractor(contractor_id=Contractor.objects.get(user=user).pk)


@pytest.mark.parametrize("change", [unlink, delete_the_contractor])
async def test_a_contractor_login_that_loses_its_contractor_is_closed_4403(
    streams, contractor_user, change
):
    stream, _ = await open_stream(streams, contractor_user, path="/ws/contractor/")

    since = time.monotonic()
    await run(change, contractor_user)

    await assert_closed(stream, 4403, "forbidden", since)
