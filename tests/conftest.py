"""Shared fixtures. Tests run against the real PostgreSQL and Redis (smartscheduler.settings_test);
if either is down the session stops at once with the reason, rather than skipping anything.

`tests/embedded` runs in a session of its own on the embedded default
(smartscheduler.settings_embedded_test: SQLite, in-memory layer, local-memory cache); every other
test needs the real stores, so each kind of session collects only its own tests."""

import copy
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.db import connection, connections
from django.db.models.signals import post_save
from rest_framework.test import APIClient

from contractors.access import DISPATCHERS_GROUP
from contractors.tokens import issue_token
from devtools.stores import ADMIN_DSN, RedisServer
from events.models import Event
from realtime import framecache
from tests.contractors.factories import ContractorFactory
from tests.contracts.checks import payload_errors


def embedded() -> bool:
    return not settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def pytest_ignore_collect(collection_path, config):
    parts = collection_path.relative_to(config.rootpath).parts
    if len(parts) < 2 or parts[0] != "tests" or parts[1] in {"__init__.py", "conftest.py"}:
        return None
    return True if (parts[1] == "embedded") != embedded() else None


def pytest_sessionstart(session):
    if embedded():
        return
    import psycopg

    try:
        psycopg.connect(ADMIN_DSN, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.exit(f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}", returncode=3)
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.exit(f"Redis is not reachable at {settings.REDIS_URL}: {exc}", returncode=3)


# Every event any test records is checked against its type's schema (events.schemas, strict:
# no unknown field) as it is saved; the test fails at teardown with what did not match.
_payload_mismatches: list[str] = []


def _check_recorded_payload(sender, instance: Event, created: bool, **kwargs) -> None:
    if created:
        _payload_mismatches.extend(
            payload_errors(instance.type, instance.version, instance.payload)
        )


post_save.connect(_check_recorded_payload, sender=Event, dispatch_uid="tests.event-schemas")


@pytest.fixture(autouse=True)
def _recorded_events_match_their_schemas():
    _payload_mismatches.clear()
    yield
    mismatches = list(_payload_mismatches)
    _payload_mismatches.clear()
    assert mismatches == [], "recorded events do not match their schemas (events/schemas.py)"


@pytest.fixture(autouse=True)
def _fresh_connection_pool(request):
    """Each committing test starts with a fresh connection pool. In-process servers, relays
    and websocket threads of earlier tests can end a thread without giving its pooled
    connection back; over a long run those slots drain the pool until a test waits 10 s for a
    connection (seen in CI). Which thread leaks is not found yet."""
    marker = request.node.get_closest_marker("django_db")
    if (
        marker is not None
        and marker.kwargs.get("transaction")
        and connection.vendor == "postgresql"
    ):
        connection.close()
        if getattr(connection, "pool", None) is not None:
            connection.close_pool()
    yield


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database, dropped at the end once no session uses it: a pooled connection
    still held by a thread of an in-process server makes the drop fail and leaves the
    database behind (one per xdist worker)."""
    yield
    if embedded():
        return
    import psycopg

    with django_db_blocker.unblock():
        for alias in connections:
            connections[alias].close()
            if getattr(connections[alias], "pool", None) is not None:
                connections[alias].close_pool()
    name = connections["default"].settings_dict["NAME"]
    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            [name],
        )


@pytest.fixture(autouse=True)
def _fresh_frame_cache():
    """Each test's log starts again at sequence 1: a frame cached under a sequence by an
    earlier test is another event's."""
    framecache.frames.clear()
    yield


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Only this run's cache keys (its KEY_PREFIX), not the whole Redis database.
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")
    else:  # the embedded default's local-memory cache is this process's own
        cache.clear()
    yield


@pytest.fixture
def own_redis(tmp_path):
    """A private redis-server the test may stop and restart (never the shared one)."""
    server = RedisServer(tmp_path)
    try:
        server.start()
        yield server
    finally:
        if server.process is not None:
            server.process.close()


@pytest.fixture
def channel_layer(settings):
    """The configured channels-redis layer (its options as settings have them), as a fresh
    instance for this test: each test runs on its own event loop, and a layer instance keeps
    per-loop receive state."""
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    assert layers["default"]["BACKEND"] == "realtime.layers.RedisChannelLayer"
    settings.CHANNEL_LAYERS = layers  # Channels drops its cached layers on setting_changed
    return layers["default"]["CONFIG"]


def next_weekday(weekday: int, *, weeks_ahead: int = 1) -> date:
    """A date in the future falling on `weekday` (0 = Monday), at least a week away."""
    today = datetime.now(UTC).date()
    return today + timedelta(days=(weekday - today.weekday()) % 7 + 7 * weeks_ahead)


def at(day: date, hour: int, minute: int = 0, tz=UTC) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=tz)


def events_of(*types: str) -> list[Event]:
    qs = Event.objects.order_by("id")
    if types:
        qs = qs.filter(type__in=types)
    return list(qs)


def db_state(*models) -> dict[str, list[dict]]:
    """Every row of `models` (and of the EventLog), to prove a rejected call wrote nothing."""
    return {
        model._meta.label: list(model.objects.order_by("pk").values()) for model in (*models, Event)
    }


@contextmanager
def refused(error: type[Exception], touched, *, code: str | None = None, field: str | None = None):
    """The block raises exactly `error` (with `code`, or naming only `field`) and writes nothing:
    the rows of the `touched` models and the EventLog stay as they were, and it holds no event."""
    before = db_state(*touched)
    with pytest.raises(error) as raised:
        yield raised
    assert type(raised.value) is error
    if code is not None:
        assert raised.value.code == code
    if field is not None:
        assert list(raised.value.errors) == [field]
    assert db_state(*touched) == before
    assert events_of() == []


def place(row) -> dict:
    """A contractor's or a job's location, as payloads and request bodies spell it."""
    return {"lat": row.lat, "lng": row.lng, "address": row.address}


def assert_events(*expected: tuple[str, str, list[str], dict]) -> list[Event]:
    """Exactly these events were recorded, in order: (type, aggregate, groups, payload;
    the payload besides its `timestamp`)."""
    events = events_of()
    assert [event.type for event in events] == [type_ for type_, *_ in expected]
    for event, (_, aggregate, groups, payload) in zip(events, expected, strict=True):
        assert event.aggregate == aggregate
        assert event.groups == groups
        assert event.sequence is None  # published after commit, by the relay
        recorded = dict(event.payload)
        assert recorded.pop("timestamp").endswith("Z")
        assert recorded == payload
    return events


def assert_one_event(type_: str, *, aggregate: str, groups: list[str], payload: dict) -> Event:
    return assert_events((type_, aggregate, groups, payload))[0]


def assert_first_page(response, *, count: int, next_url: str, fields: set[str]) -> dict:
    """`response` is the first page of a list (200, no previous page) of `count` rows in all,
    linking to `next_url`, its rows showing exactly `fields`."""
    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert (page["count"], page["next"], page["previous"]) == (count, next_url, None)
    assert set(page["results"][0]) == fields
    return page


def make_user(username: str, *, role: str | None = None, contractor=None, regions=()) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username)
    if role == "dispatcher":
        user.groups.add(Group.objects.get_or_create(name=DISPATCHERS_GROUP)[0])
        for region in regions:
            region.watchers.add(user)
    elif role == "admin":
        user.is_staff = True
        user.is_superuser = True
        user.save()
    elif role == "contractor":
        contractor.user = user
        contractor.save(update_fields=["user"])
    return user


def token_for(user: User) -> str:
    """A new API token of `user` (each call issues another, as each sign-in does)."""
    return issue_token(user=user).key


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


@pytest.fixture
def dispatcher(db) -> User:
    return make_user("dispatch", role="dispatcher")


@pytest.fixture
def admin_user(db) -> User:
    return make_user("boss", role="admin")


@pytest.fixture
def contractor_user(db) -> User:
    return make_user("worker", role="contractor", contractor=ContractorFactory())


@pytest.fixture
def api(dispatcher) -> APIClient:
    """An API client signed in as a dispatcher who watches every region."""
    return client_for(dispatcher)
