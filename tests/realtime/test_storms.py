"""Reconnect storms do not hurt the rest of the server (docs/realtime.md): replays run on the
websockets' own bounded pool of database threads (realtime/dbthreads.py), on all but one of
them, so new handshakes and HTTP are answered while every replay is stuck; a replay goes out a
page at a time; a user holds a bounded number of sockets per process (realtime/limits.py).

A replay is made slow for real: another PostgreSQL session holds an exclusive lock on the
EventLog's group index table, which every resume reads and nothing else used here does. (With
Channels' database_sync_to_async, the one thread it runs on was stuck behind the first such
replay, and every other socket's handshake with it; Django's sync views run on a thread per
request, so HTTP itself was not.)
"""

import asyncio
import copy
import time
from contextlib import contextmanager

import psycopg
import pytest
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator
from django.db import connection

from events.models import Event
from events.publisher import publish_all
from realtime.consumers import REPLAY_PAGE
from realtime.dbthreads import pool_fits_threads
from realtime.revocation import watch
from smartscheduler.asgi import application
from tests.conftest import make_user, token_for
from tests.events.support import create_jobs

pytestmark = [pytest.mark.django_db(transaction=True)]

WAIT = 10.0


@contextmanager
def replays_held(table: str = "events_eventgroup"):
    """While inside, every resume (or every read of another `table`) waits on a lock another
    PostgreSQL session holds; yields that session, which counts the sessions waiting on it."""
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
        autocommit=False,
    ) as session:
        session.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield session
        session.rollback()


def waiting_on_locks(session) -> int:
    # The session is inside its transaction (it holds the lock), and PostgreSQL keeps one
    # snapshot of pg_stat_activity per transaction: drop it, or every look sees the first.
    session.execute("SELECT pg_stat_clear_snapshot()")
    return session.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()[0]


async def until(predicate, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return value


@database_sync_to_async
def published_jobs(count: int) -> list[int]:
    create_jobs(count)
    publish_all()
    return list(Event.objects.order_by("sequence").values_list("sequence", flat=True))


@database_sync_to_async
def dispatcher_path(name: str = "ada", query: str = "after=0") -> str:
    return f"/ws/dispatch/?token={token_for(make_user(name, role='dispatcher'))}&{query}"


async def get(path: str) -> tuple[int, float]:
    started = time.monotonic()
    request = HttpCommunicator(application, "GET", path, headers=[(b"host", b"testserver")])
    response = await request.get_response(timeout=WAIT)
    return response["status"], time.monotonic() - started


async def replayed(stream) -> tuple[list[int], dict]:
    sequences = []
    while (frame := await stream.frame(timeout=WAIT))["kind"] == "event":
        sequences.append(frame["event"]["sequence"])
    return sequences, frame


# --- the accept first -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_handshake_is_accepted_before_its_sign_in_is_read(streams):
    """daphne drops a handshake its application has not accepted within its timeout: the
    sign-in is read after the accept, so a slow one costs no handshake (the client's ping is
    answered once it is through)."""
    path = await dispatcher_path(query="regions=default")
    with replays_held(table="knox_authtoken") as session:
        stream = streams.client(path)
        assert await stream.connect() == (True, None)  # accepted while its sign-in waits
        await until(lambda: waiting_on_locks(session) == 1)
        await stream.send_json({"kind": "ping"})
        assert await stream.nothing(0.5)
    assert await stream.frame() == {"kind": "pong"}


@pytest.mark.asyncio
async def test_a_socket_cut_short_during_its_replay_is_no_longer_followed(streams):
    """A connect() that never returns (the client left during a replay the database held
    up, and its application was stopped) leaves the account watch."""
    await published_jobs(1)
    path = await dispatcher_path()
    with replays_held() as session:
        stream = streams.client(path)
        assert await stream.connect() == (True, None)
        await until(lambda: waiting_on_locks(session) == 1)  # followed, replaying
        assert len(watch().held) == 1
        await stream.disconnect()  # the communicator stops the application, as daphne does
        assert watch().held == {}


# --- replays on their own threads ------------------------------------------------------------


@pytest.mark.asyncio
async def test_http_is_answered_while_every_replay_thread_waits(streams, settings):
    assert settings.WEBSOCKET_DB_THREADS == 4  # the default
    log = await published_jobs(3)
    path = await dispatcher_path()

    with replays_held() as session:
        resuming = [await streams.open(path) for _ in range(6)]  # accepted, then replaying
        # Three replays wait on the lock, on three of the four threads; the others wait for
        # a thread, and the fourth thread is kept for handshakes.
        await until(lambda: waiting_on_locks(session) == 3)
        await asyncio.sleep(0.5)
        assert waiting_on_locks(session) == 3
        fresh = await streams.open(await dispatcher_path("bea", query="regions=default"))
        assert await fresh.ping() == {"kind": "pong"}

        status, seconds = await get("/healthz")  # a sync view reading the database
        assert status == 200
        assert seconds < 2, seconds
        for stream in resuming:  # still replaying: nothing sent yet (a look, not a wait)
            assert await stream.nothing(0)

    for stream in resuming:  # the lock is gone: every replay completes
        assert await replayed(stream) == (log, {"kind": "replayed", "through": log[-1]})


@pytest.mark.asyncio
async def test_a_replay_of_several_pages_arrives_whole_and_in_order(streams):
    log = await published_jobs(2 * REPLAY_PAGE + 30)
    stream = await streams.open(await dispatcher_path(query=f"after={log[4]}"))

    assert await replayed(stream) == (log[5:], {"kind": "replayed", "through": log[-1]})
    assert await stream.ping() == {"kind": "pong"}  # the next frame: no page came after it


# --- at most so many sockets per user --------------------------------------------------------


@pytest.mark.asyncio
async def test_a_socket_over_the_users_limit_gets_an_error_then_close_4429(streams, settings):
    settings.WEBSOCKET_MAX_CONNECTIONS_PER_USER = 2
    ada = await dispatcher_path("ada", query="regions=default")
    bea = await dispatcher_path("bea", query="regions=default")
    first, second = await streams.open(ada), await streams.open(ada)

    third = streams.client(ada)
    assert await third.connect() == (True, None)  # accepted, so the close code reaches it
    frame = await third.frame()
    assert (frame["kind"], frame["code"]) == ("error", "too_many_connections")
    assert "At most 2 open streams" in frame["message"]
    assert await third.close_code() == 4429

    assert await (await streams.open(bea)).ping() == {"kind": "pong"}  # another user's own
    assert await second.ping() == {"kind": "pong"}  # the two open ones are untouched

    await first.disconnect()  # gives its slot back; the refused one took none
    fourth = await streams.open(ada)
    assert await fourth.ping() == {"kind": "pong"}
    fifth = streams.client(ada)
    await fifth.connect()
    assert (await fifth.frame())["code"] == "too_many_connections"
    assert await fifth.close_code() == 4429


@pytest.mark.asyncio
async def test_a_refused_handshake_takes_no_slot(streams, settings):
    settings.WEBSOCKET_MAX_CONNECTIONS_PER_USER = 1
    path = await dispatcher_path("ada", query="regions=default")
    refused = streams.client(path.replace("/ws/dispatch/", "/ws/contractor/"))
    await refused.connect()  # a dispatcher on the contractor stream
    assert (await refused.frame())["code"] == "forbidden"
    assert await refused.close_code() == 4403

    assert await (await streams.open(path)).ping() == {"kind": "pong"}


# --- the connection pool fits the threads ----------------------------------------------------


@pytest.mark.django_db(transaction=False)
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_a_pool_smaller_than_the_threads_and_one_is_reported(settings):
    assert settings.WEBSOCKET_DB_THREADS == 4  # the default
    database = copy.deepcopy(settings.DATABASES)
    database["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": 4}
    settings.DATABASES = database
    [warning] = pool_fits_threads()
    assert warning.id == "realtime.W001"
    assert "DB_POOL_MAX_SIZE is 4, below WEBSOCKET_DB_THREADS + 1 (5)" in warning.msg

    database["default"]["OPTIONS"]["pool"]["max_size"] = 5
    assert pool_fits_threads() == []
    del database["default"]["OPTIONS"]["pool"]  # no pool: a connection per call
    assert pool_fits_threads() == []
