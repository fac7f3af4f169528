"""The websocket streams end to end (docs/events.md, docs/realtime.md):
`smartscheduler.asgi.application` over channels-redis, events recorded through the services and
delivered by the real relay.

Resume is checked the way a client uses it: a replay may repeat events the client already saw
(clients drop them by `id`), but once those are dropped it holds exactly what the client
missed, in sequence order, including events that committed late or that the broadcast
had not reached yet.
"""

import asyncio
import threading
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client

from contractors.models import Contractor, Region
from contractors.services import Location
from events.models import Event, Subscriber
from events.publisher import publish_all
from events.relay import Relay
from events.timefmt import iso_utc
from scheduling.models import Job
from scheduling.services import assign_job, create_job
from tests.conftest import at, make_user, next_weekday, token_for
from tests.contractors.factories import RegionFactory
from tests.realtime.conftest import assert_error

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

NORTH = Location(lat=40.9, lng=-73.9)  # the centre of RegionFactory's "north"
SOUTH = Location(lat=39.95, lng=-75.17)  # the centre of "south" below, ~90 miles away
ELSEWHERE = Location(lat=34.05, lng=-118.24)  # in no region: "default"
DAY = next_weekday(1)


# --- data (sync, committed: the consumers read it from other threads) --------------------------


@pytest.fixture
def regions(transactional_db) -> dict[str, Region]:
    return {
        "north": RegionFactory(slug="north"),
        "south": RegionFactory(slug="south", center_lat=39.95, center_lng=-75.17, radius_miles=25),
    }


@pytest.fixture
def north_watcher(regions) -> User:
    """A dispatcher who watches "north" only."""
    return make_user("nora", role="dispatcher", regions=[regions["north"]])


@pytest.fixture
def any_watcher(regions) -> User:
    """A dispatcher linked to no region: watches every region."""
    return make_user("ada", role="dispatcher")


def dispatch_path(user: User, query: str = "") -> str:
    return f"/ws/dispatch/?token={token_for(user)}" + (f"&{query}" if query else "")


def contractor_path(user: User, query: str = "") -> str:
    return f"/ws/contractor/?token={token_for(user)}" + (f"&{query}" if query else "")


# --- behaviour under test, called from the async tests ----------------------------------------


def new_job(where: Location) -> Job:
    return create_job(
        type="tile",
        location=where,
        desired_date=DAY,
        duration_minutes=120,
        required_skills=["tile"],
    )


@database_sync_to_async
def record_job(where: Location) -> Event:
    """A job created through the service; returns its JobCreated event, committed and
    published (given its sequence, as the relay's publisher does right after commit)."""
    job = new_job(where)
    publish_all()
    return Event.objects.get(type="JobCreated", aggregate_id=str(job.pk))


@database_sync_to_async
def record_assignment(job_event: Event, user: User, hour: int) -> Event:
    """Assigns the job of `job_event` to the contractor of `user`; returns the JobAssigned event."""
    contractor = Contractor.objects.get(user=user)
    assignment = assign_job(
        job_id=int(job_event.aggregate_id),
        contractor_id=contractor.pk,
        start=at(DAY, hour),
        end=at(DAY, hour) + timedelta(minutes=120),
    )
    publish_all()
    return Event.objects.get(type="JobAssigned", payload__assignmentId=assignment.pk)


@database_sync_to_async
def drain(relay: Relay | None = None) -> int:
    return (relay or Relay()).drain()


@database_sync_to_async
def publish_only() -> int:
    return publish_all()


@database_sync_to_async
def broadcast_position() -> int:
    return Subscriber.objects.get(name="realtime.broadcast").position


def sequences(envelopes: list[dict]) -> list[int]:
    return [e["sequence"] for e in envelopes]


async def next_is_a_new_event(stream, where: Location = NORTH) -> Event:
    """Nothing else was on its way to `stream`, without waiting to see: a job recorded now in
    a group the stream is in, broadcast after everything before it, must be its very next
    frame (a channel's messages arrive in the order they were sent). Returns its event."""
    sentinel = await record_job(where)
    await drain()
    assert sequences([await stream.event()]) == [sentinel.sequence]
    return sentinel


async def replay_of(stream) -> tuple[list[dict], dict]:
    """The event frames a resuming client gets up to `replayed`, and the `replayed` frame."""
    events = []
    for _ in range(100):
        frame = await stream.frame()
        if frame["kind"] == "replayed":
            return events, frame
        assert frame["kind"] == "event", frame
        events.append(frame["event"])
    raise AssertionError("no replayed frame after 100 events")


# --- 1. authentication and permission --------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws/dispatch/", "/ws/contractor/"])
async def test_anonymous_client_gets_an_error_frame_then_close_4401(streams, path):
    stream = streams.client(path)

    assert await stream.connect() == (True, None)  # accepted, so the close code reaches it
    assert_error(await stream.frame(), "not_authenticated")
    assert await stream.close_code() == 4401


async def test_bad_token_is_closed_4401(streams, north_watcher):
    await database_sync_to_async(token_for)(north_watcher)
    stream = streams.client("/ws/dispatch/?token=not-a-real-token")

    assert await stream.connect() == (True, None)
    assert_error(await stream.frame(), "not_authenticated")
    assert await stream.close_code() == 4401


async def test_token_of_an_inactive_user_is_closed_4401(streams, north_watcher):
    path = await database_sync_to_async(dispatch_path)(north_watcher)
    await database_sync_to_async(User.objects.filter(pk=north_watcher.pk).update)(is_active=False)
    stream = streams.client(path)

    assert await stream.connect() == (True, None)
    assert_error(await stream.frame(), "not_authenticated")
    assert await stream.close_code() == 4401


async def test_contractor_on_the_dispatch_stream_is_closed_4403(streams, contractor_users):
    stream = streams.client(await database_sync_to_async(dispatch_path)(contractor_users[0]))

    assert await stream.connect() == (True, None)
    assert_error(await stream.frame(), "forbidden")
    assert await stream.close_code() == 4403


async def test_dispatcher_on_the_contractor_stream_is_closed_4403(streams, north_watcher):
    stream = streams.client(await database_sync_to_async(contractor_path)(north_watcher))

    assert await stream.connect() == (True, None)
    assert_error(await stream.frame(), "forbidden")
    assert await stream.close_code() == 4403


@pytest.mark.parametrize("asked", ["south", "north,south", "atlantis"])
async def test_dispatcher_asking_for_a_region_not_watched_is_closed_4403(
    streams, north_watcher, asked
):
    stream = streams.client(
        await database_sync_to_async(dispatch_path)(north_watcher, f"regions={asked}")
    )

    assert await stream.connect() == (True, None)
    assert_error(await stream.frame(), "forbidden")
    assert await stream.close_code() == 4403


@pytest.mark.parametrize("origin", [b"http://evil.example", b"http://testserver.evil.example"])
async def test_an_origin_from_another_host_is_refused_at_the_handshake(
    streams, north_watcher, origin
):
    stream = streams.client(
        await database_sync_to_async(dispatch_path)(north_watcher), headers=[(b"origin", origin)]
    )

    assert await stream.connect() == (False, 1000)  # a valid token does not make it acceptable


@database_sync_to_async
def session_cookie(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def test_session_cookie_with_a_same_host_origin_is_accepted(streams, north_watcher):
    headers = [
        (b"host", b"testserver"),
        (b"origin", b"http://testserver"),
        (b"cookie", await session_cookie(north_watcher)),
    ]
    stream = await streams.open("/ws/dispatch/", headers=headers)

    assert await stream.ping() == {"kind": "pong"}
    north = await record_job(NORTH)
    await drain()
    assert sequences([await stream.event()]) == [north.sequence]


@pytest.mark.parametrize(
    "origin",
    [
        b"https://testserver",  # another scheme: an https page is not this http origin
        b"http://testserver:8080",  # another port
        b"http://testserver:80.evil.example",
        b"null",
    ],
)
async def test_an_origin_with_the_same_host_but_another_scheme_or_port_is_refused(
    streams, north_watcher, origin
):
    headers = [
        (b"host", b"testserver"),
        (b"origin", origin),
        (b"cookie", await session_cookie(north_watcher)),
    ]
    stream = streams.client("/ws/dispatch/", headers=headers)

    assert await stream.connect() == (False, 1000)


async def test_the_default_port_may_be_spelled_out_and_trusted_origins_are_accepted(
    streams, north_watcher, settings
):
    settings.CSRF_TRUSTED_ORIGINS = ["https://board.example"]
    cookie = await session_cookie(north_watcher)
    for host, origin in [
        (b"testserver", b"http://testserver:80"),
        (b"testserver:80", b"http://testserver"),
        (b"testserver", b"https://board.example"),
    ]:
        headers = [(b"host", host), (b"origin", origin), (b"cookie", cookie)]
        stream = await streams.open("/ws/dispatch/", headers=headers)
        assert await stream.ping() == {"kind": "pong"}


async def test_a_cross_site_page_cannot_ride_on_the_session_cookie(streams, north_watcher):
    headers = [
        (b"origin", b"https://attacker.example"),
        (b"cookie", await session_cookie(north_watcher)),
    ]
    stream = streams.client("/ws/dispatch/", headers=headers)

    assert await stream.connect() == (False, 1000)


# --- 2. isolation ----------------------------------------------------------------------------


async def test_contractor_receives_its_own_events_and_not_another_contractors(
    streams, contractor_users
):
    first, second = contractor_users
    first_stream = await streams.open(await database_sync_to_async(contractor_path)(first))
    second_stream = await streams.open(await database_sync_to_async(contractor_path)(second))
    jobs = [await record_job(NORTH), await record_job(NORTH)]

    to_first = await record_assignment(jobs[0], first, 14)
    await drain()

    assert sequences([await first_stream.event()]) == [to_first.sequence]  # no JobCreated

    to_second = await record_assignment(jobs[1], second, 14)
    await drain()

    # Its first frame: nothing of the first contractor's came before it.
    assert sequences([await second_stream.event()]) == [to_second.sequence]
    # Each stream's next frame is its own next assignment: nothing else was on its way.
    later = [await record_job(NORTH), await record_job(NORTH)]
    again_first = await record_assignment(later[0], first, 18)
    again_second = await record_assignment(later[1], second, 18)
    await drain()
    assert sequences([await first_stream.event()]) == [again_first.sequence]
    assert sequences([await second_stream.event()]) == [again_second.sequence]


async def test_dispatcher_receives_the_regions_it_watches_only(streams, north_watcher):
    stream = await streams.open(await database_sync_to_async(dispatch_path)(north_watcher))

    await record_job(SOUTH)
    north = await record_job(NORTH)
    await record_job(ELSEWHERE)
    await record_job(SOUTH)
    await drain()

    assert sequences([await stream.event()]) == [north.sequence]
    await next_is_a_new_event(stream)


async def test_dispatcher_watching_every_region_may_ask_for_some(streams, any_watcher):
    stream = await streams.open(
        await database_sync_to_async(dispatch_path)(any_watcher, "regions=south")
    )

    await record_job(NORTH)
    south = await record_job(SOUTH)
    await drain()

    assert sequences([await stream.event()]) == [south.sequence]
    await next_is_a_new_event(stream, SOUTH)


async def test_dispatcher_without_regions_receives_every_regions_events(streams, any_watcher):
    stream = await streams.open(await database_sync_to_async(dispatch_path)(any_watcher))

    recorded = [await record_job(NORTH), await record_job(SOUTH), await record_job(ELSEWHERE)]
    await drain()

    received = await stream.events(3)
    assert sorted(sequences(received)) == [e.sequence for e in recorded]
    assert {group for e in received for group in e["groups"]} == {
        "dispatch/north",
        "dispatch/south",
        "dispatch/default",
    }
    await next_is_a_new_event(stream)


# --- 3. protocol -----------------------------------------------------------------------------


async def test_ping_gets_pong(streams, north_watcher):
    stream = await streams.open(await database_sync_to_async(dispatch_path)(north_watcher))

    assert await stream.ping() == {"kind": "pong"}
    assert await stream.ping() == {"kind": "pong"}
    await next_is_a_new_event(stream)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("this is not json", "malformed"),
        ("[1, 2, 3]", "malformed"),
        ('"ping"', "malformed"),
        ("{}", "malformed"),
        ('{"type": "ping"}', "malformed"),
        ('{"kind": 7}', "malformed"),
        ('{"kind": "dance"}', "unknown_kind"),
        ('{"kind": "' + "x" * 200 + '"}', "unknown_kind"),
        ('{"kind": "ping", "pad": "' + "x" * 5000 + '"}', "frame_too_large"),
        ("[" * 2000 + "]" * 2000, "malformed"),  # deeper than Python's recursion limit
    ],
    ids=[
        "not-json",
        "array",
        "string",
        "no-kind",
        "type-not-kind",
        "kind-not-a-string",
        "unknown-kind",
        "long-unknown-kind",
        "oversized",
        "deeply-nested",
    ],
)
async def test_malformed_text_frame_gets_an_error_and_the_connection_stays_open(
    streams, north_watcher, text, code
):
    stream = await streams.open(await database_sync_to_async(dispatch_path)(north_watcher))

    await stream.send(text)

    assert_error(await stream.frame(), code)
    assert await stream.ping() == {"kind": "pong"}


async def test_binary_frame_gets_an_error_and_the_connection_stays_open(streams, north_watcher):
    stream = await streams.open(await database_sync_to_async(dispatch_path)(north_watcher))

    await stream.send(data=b'{"kind": "ping"}')

    assert_error(await stream.frame(), "binary_not_supported")
    assert await stream.ping() == {"kind": "pong"}


# --- 4. the event frame ----------------------------------------------------------------------


async def test_event_frame_carries_the_envelope(streams, north_watcher):
    stream = await streams.open(await database_sync_to_async(dispatch_path)(north_watcher))
    event = await record_job(NORTH)
    job = await database_sync_to_async(Job.objects.get)(pk=int(event.aggregate_id))

    await drain()

    assert await stream.frame() == {
        "kind": "event",
        "event": {
            "id": str(event.event_id),
            "sequence": event.sequence,
            "type": "JobCreated",
            "version": 1,
            "occurredAt": iso_utc(event.occurred_at),
            "aggregate": {"type": "job", "id": str(job.pk)},
            "groups": ["dispatch/north"],
            "payload": {
                "jobId": job.pk,
                "region": "north",
                "type": "tile",
                "desiredDate": DAY.isoformat(),
                "durationMinutes": 120,
                "priority": "normal",
                "timestamp": iso_utc(event.occurred_at),
            },
        },
    }
    assert event.occurred_at.tzinfo is not None
    assert iso_utc(event.occurred_at).endswith("Z")


# --- 5. resume -------------------------------------------------------------------------------


async def test_resume_replays_what_was_missed_in_order_then_goes_live(streams, north_watcher):
    path = await database_sync_to_async(dispatch_path)(north_watcher)
    stream = await streams.open(path)
    before = [await record_job(NORTH), await record_job(SOUTH), await record_job(NORTH)]
    await drain()
    seen = await stream.events(2)
    # Live events of one batch go out concurrently (broadcast gathers its group_sends), so
    # their order is not promised; a replay's is.
    assert sorted(sequences(seen)) == [before[0].sequence, before[2].sequence]
    await next_is_a_new_event(stream)
    await stream.disconnect()

    missed_north = [await record_job(NORTH), await record_job(SOUTH), await record_job(NORTH)]
    missed = [missed_north[0], missed_north[2]]
    await drain()

    again = await streams.open(path + f"&after={max(sequences(stream.seen))}")
    replayed, done = await replay_of(again)

    assert sequences(replayed) == sorted(set(sequences(replayed)))  # in order, no repeats
    seen_ids = {e["id"] for e in stream.seen}
    assert [e["id"] for e in replayed if e["id"] not in seen_ids] == [
        str(e.event_id) for e in missed
    ]
    assert all(e["groups"] == ["dispatch/north"] for e in replayed)  # no other group's events
    assert done == {"kind": "replayed", "through": missed[-1].sequence}

    live = await record_job(NORTH)
    await drain()
    assert sequences([await again.event()]) == [live.sequence]
    await next_is_a_new_event(again)


async def test_resume_on_the_contractor_stream_replays_its_own_events_only(
    streams, contractor_users
):
    first, second = contractor_users
    path = await database_sync_to_async(contractor_path)(first)
    stream = await streams.open(path)
    jobs = [await record_job(NORTH) for _ in range(4)]
    seen_event = await record_assignment(jobs[0], first, 14)
    await drain()
    seen = await stream.events(1)
    assert sequences(seen) == [seen_event.sequence]
    await stream.disconnect()

    await record_assignment(jobs[1], second, 14)
    missed = await record_assignment(jobs[2], first, 17)
    await record_assignment(jobs[3], second, 17)
    await drain()

    again = await streams.open(path + f"&after={seen_event.sequence}")
    replayed, done = await replay_of(again)

    assert [e["id"] for e in replayed if e["id"] != seen[0]["id"]] == [str(missed.event_id)]
    assert done == {"kind": "replayed", "through": missed.sequence}


async def test_resume_from_zero_replays_every_event_of_the_groups(streams, north_watcher):
    recorded = [
        await record_job(NORTH),
        await record_job(SOUTH),
        await record_job(NORTH),
        await record_job(ELSEWHERE),
    ]
    await drain()
    pending = await record_job(NORTH)  # not delivered yet: replayed all the same
    north = [recorded[0], recorded[2], pending]

    stream = await streams.open(
        await database_sync_to_async(dispatch_path)(north_watcher, "after=0")
    )
    replayed, done = await replay_of(stream)

    assert [e["id"] for e in replayed] == [str(e.event_id) for e in north]
    assert done == {"kind": "replayed", "through": pending.sequence}
    # The replay is sent by the handshake, before the socket reads anything: the next frame.
    assert await stream.ping() == {"kind": "pong"}


async def test_resume_with_nothing_missed_says_replayed_through_the_same_sequence(
    streams, north_watcher
):
    await record_job(NORTH)
    south = await record_job(SOUTH)
    await drain()
    # The north event was published before the last sequence the client saw: not replayed.

    stream = await streams.open(
        await database_sync_to_async(dispatch_path)(north_watcher, f"after={south.sequence}")
    )

    assert await stream.frame() == {"kind": "replayed", "through": south.sequence}
    await next_is_a_new_event(stream)


@pytest.mark.parametrize("after", ["x", "-1", "1.5", "1e3", "%C2%B2", "9" * 19])
async def test_resume_with_a_bad_after_gets_an_error_and_stays_open(streams, north_watcher, after):
    await record_job(NORTH)
    await drain()
    stream = await streams.open(
        await database_sync_to_async(dispatch_path)(north_watcher, f"after={after}")
    )

    assert_error(await stream.frame(), "bad_after")
    assert await stream.ping() == {"kind": "pong"}
    live = await record_job(NORTH)
    await drain()
    assert sequences([await stream.event()]) == [live.sequence]  # still in its groups


async def test_resume_from_a_sequence_beyond_the_log_gets_unknown_sequence(streams, north_watcher):
    last = await record_job(NORTH)
    await drain()
    stream = await streams.open(
        await database_sync_to_async(dispatch_path)(north_watcher, f"after={last.sequence + 1000}")
    )

    assert_error(await stream.frame(), "unknown_sequence")
    assert await stream.ping() == {"kind": "pong"}
    await next_is_a_new_event(stream)


# --- 6. a transaction that commits after a later one was published ---------------------------


async def test_event_committed_late_is_replayed_after_the_sequence_seen(streams, north_watcher):
    path = await database_sync_to_async(dispatch_path)(north_watcher)
    recorded, commit = threading.Event(), threading.Event()
    late: dict = {}

    def slow_transaction() -> None:
        try:
            with transaction.atomic():
                job = new_job(NORTH)
                late["job"] = job.pk
                recorded.set()
                if not commit.wait(20):
                    raise TimeoutError("never told to commit")
        except BaseException as exc:
            late["error"] = exc
            recorded.set()
        finally:
            connection.close()

    writer = threading.Thread(target=slow_transaction, name="T1")
    writer.start()
    try:
        stream = await streams.open(path)
        assert await asyncio.to_thread(recorded.wait, 10)
        assert "error" not in late, late
        early_commit = await record_job(NORTH)  # T2: recorded after T1, committed first

        await drain()  # T1's row is invisible until it commits
        assert sequences([await stream.event()]) == [early_commit.sequence]
        seen = await next_is_a_new_event(stream)  # T1's event was not sent before it
        await stream.disconnect()

        commit.set()
        await asyncio.to_thread(writer.join, 10)
        assert "error" not in late, late
        await drain()  # published after T2's event, broadcast to nobody: the client is away
        late_event = await database_sync_to_async(Event.objects.get)(
            type="JobCreated", aggregate_id=str(late["job"])
        )
        assert late_event.sequence == seen.sequence + 1

        again = await streams.open(path + f"&after={seen.sequence}")
        replayed, done = await replay_of(again)

        assert [e["id"] for e in replayed] == [str(late_event.event_id)]
        assert done == {"kind": "replayed", "through": late_event.sequence}
    finally:
        commit.set()
        await asyncio.to_thread(writer.join, 10)


# --- 7. an event published but not broadcast yet --------------------------------------------


async def test_an_event_the_broadcast_has_not_reached_is_replayed_then_arrives_live(
    streams, north_watcher
):
    path = await database_sync_to_async(dispatch_path)(north_watcher)
    stream = await streams.open(path)
    seen = await record_job(NORTH)
    await drain()
    assert sequences([await stream.event()]) == [seen.sequence]
    await stream.disconnect()

    behind = await record_job(NORTH)  # published; the broadcast has not run since
    assert await broadcast_position() == seen.sequence

    again = await streams.open(path + f"&after={seen.sequence}")
    replayed, done = await replay_of(again)
    assert sequences(replayed) == [behind.sequence]
    assert done == {"kind": "replayed", "through": behind.sequence}

    await drain()  # the broadcast catches up: the same event again, live (dropped by id)
    assert [e["id"] for e in [await again.event()]] == [str(behind.event_id)]
    await next_is_a_new_event(again)
