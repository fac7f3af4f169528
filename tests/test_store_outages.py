"""Requests keep working through the store faults the chaos run injects (python -m chaos):
found by it, kept here as fast regression tests against the real stores."""

import psycopg
import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from scheduling.availability_cache import CACHE_OUTAGE, day_entries
from tests.contractors.factories import ContractorFactory
from tests.support import free_port, subprocess_database_url


@pytest.mark.django_db(transaction=True)
def test_a_request_after_its_database_session_was_terminated_reconnects():
    """pg_terminate_backend (or a PostgreSQL restart) kills the persistent connection of a web
    thread; the next request on that thread must not answer 500."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [pid] = cursor.fetchone()
    with psycopg.connect(subprocess_database_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    close_old_connections()  # what Django runs as every request starts
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [new_pid] = cursor.fetchone()
    assert new_pid != pid


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_requests_borrow_pooled_connections_instead_of_opening_one_each():
    """The settings pool connections (docs/profiles/booking.md): a request gives its
    connection back as it ends (close_old_connections), and later requests borrow the pool's
    few sessions again instead of each opening one."""
    assert connection.pool is not None
    sessions = set()
    for _ in range(10):
        sessions.add(_backend_pid())
        close_old_connections()
        assert connection.connection is None  # given back
    assert len(sessions) <= connection.pool.max_size
    assert len(sessions) < 10  # borrowed again, not one session per request


@pytest.mark.django_db(transaction=True)
def test_pooled_sessions_the_database_terminated_are_replaced(api):
    """pg_terminate_backend (or a PostgreSQL restart) kills the idle sessions in the pool; the
    pool checks a connection before lending it, so the next request gets a live one."""
    _backend_pid()
    close_old_connections()  # back in the pool, idle
    with psycopg.connect(subprocess_database_url(), autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    assert killed

    response = api.get("/api/jobs")
    assert response.status_code == 200


@pytest.mark.django_db
def test_readers_answer_from_the_database_while_redis_is_down(settings):
    contractor = ContractorFactory()
    days = [timezone.now().date()]
    expected = day_entries([contractor], {contractor.pk: days}, cache_optional=True)

    # Nothing listens on this port: a real connection refusal, as while Redis restarts.
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {
                **settings.CACHES["default"].get("OPTIONS", {}),
                "SOCKET_CONNECT_TIMEOUT": 0.5,
            },
        }
    }
    assert day_entries([contractor], {contractor.pk: days}, cache_optional=True) == expected
    # The relay's warming handler (the default) still sees the outage, so its batch is retried.
    with pytest.raises(CACHE_OUTAGE):
        day_entries([contractor], {contractor.pk: days})


@pytest.mark.django_db(transaction=True)
def test_a_request_the_database_gives_up_on_midway_answers_503(api):
    """The chaos run saw a few 500s for requests whose session died under them. Whatever the
    database error (a terminated session, a restart, here a lock timeout), the transaction
    rolled back and nothing was written, so the answer is 503 "retry", not a 500."""
    options = connection.settings_dict.setdefault("OPTIONS", {})
    previous = options.get("options")
    options["options"] = "-c lock_timeout=200"
    connection.close()  # the request's connection opens anew, with the lock timeout
    connection.close_pool()  # (a new pool: the old one's sessions lack it)
    holder = psycopg.connect(subprocess_database_url())
    try:
        # Another session holds the token table, so authenticating this request times out.
        holder.execute("LOCK TABLE knox_authtoken IN ACCESS EXCLUSIVE MODE")
        response = api.get("/api/jobs")
    finally:
        holder.rollback()
        holder.close()
        if previous is None:
            options.pop("options", None)
        else:
            options["options"] = previous
        connection.close()
        connection.close_pool()

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json() == {
        "detail": "The database is unavailable; retry shortly.",
        "code": "unavailable",
    }
