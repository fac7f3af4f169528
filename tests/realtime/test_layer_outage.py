"""Websockets and their channel layer over time, against a private redis-server: memberships
expire unless renewed (a dead consumer drops out, a live one stays), and a Redis restart is a
pause for the client, not a disconnect (realtime/link.py, docs/realtime.md).
"""

import asyncio
import logging

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import User

from contractors.models import Contractor
from contractors.services import Location
from events.groups import channels_group_name, contractor_group
from events.models import Event
from events.publisher import publish_all
from events.relay import Outage, Relay
from scheduling.services import create_job
from tests.conftest import next_weekday, token_for

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

ELSEWHERE = Location(lat=34.05, lng=-118.24)  # in no region: "default"
GROUP_EXPIRY = 2  # seconds; the consumers re-join every third of it
# redis-py 8's default socket_timeout (5 s) would break an idle consumer's blocking receive
# (docs/realtime.md): the idle test outlasts it.
IDLE = 6.0


@database_sync_to_async
def path_for(user: User, stream: str) -> str:
    return f"/ws/{stream}/?token={token_for(user)}"


@database_sync_to_async
def group_of(user: User) -> str:
    return channels_group_name(contractor_group(Contractor.objects.get(user=user).pk))


@database_sync_to_async
def record_job() -> Event:
    """A job created through the service; its JobCreated event, published (given its
    sequence, as the relay's publisher does right after commit), not yet broadcast."""
    job = create_job(
        type="tile",
        location=ELSEWHERE,
        desired_date=next_weekday(1),
        duration_minutes=120,
        required_skills=["tile"],
    )
    publish_all()
    return Event.objects.get(type="JobCreated", aggregate_id=str(job.pk))


@database_sync_to_async
def drain() -> int:
    """The relay's pass; after a restart its first send may find a pooled connection the old
    server closed, and the relay retries the batch, as here (a few times at most)."""
    for _ in range(3):
        try:
            return Relay(name="outage").drain()
        except Outage:
            continue
    return Relay(name="outage").drain()


def link_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("layer-link ")]


async def listened(layer, groups: list[str]) -> set[str]:
    """The groups that a send would reach someone in."""
    return {group for group, members in (await layer.group_members(groups)).items() if members}


async def frames_until(stream, kind: str, limit: int = 50) -> list[dict]:
    """The frames up to and including the first of `kind`."""
    frames = []
    for _ in range(limit):
        frames.append(await stream.frame(timeout=15))
        if frames[-1]["kind"] == kind:
            return frames
    raise AssertionError(f"no {kind!r} frame in {frames}")


# --- memberships expire unless renewed --------------------------------------------------------


async def test_a_dead_consumer_leaves_its_group_and_a_live_idle_one_keeps_receiving(
    streams, private_layer, contractor_users
):
    config = private_layer(group_expiry=GROUP_EXPIRY)
    assert config["hosts"][0]["socket_timeout"] is None  # as settings configure it
    layer = get_channel_layer()
    live_group, dead_group = [await group_of(user) for user in contractor_users]
    live = await streams.open(await path_for(contractor_users[0], "contractor"))
    dead = await streams.open(await path_for(contractor_users[1], "contractor"))
    assert await listened(layer, [live_group, dead_group]) == {live_group, dead_group}

    # As a killed server: the application stops, its disconnect never runs.
    dead.communicator.future.cancel()
    await asyncio.wait([dead.communicator.future])
    dead.connected = False
    assert len(link_tasks()) == 1  # the live consumer's; the dead one's went with it

    await asyncio.sleep(IDLE)  # idle for three expiry periods, and past redis-py's timeout
    assert await listened(layer, [live_group, dead_group]) == {live_group}
    await layer.group_send(live_group, {"type": "event.message", "event": {"sequence": 1}})
    assert await live.frame() == {"kind": "event", "event": {"sequence": 1}}
    assert await live.ping() == {"kind": "pong"}
    assert len(link_tasks()) == 1  # the renewals did not pile up tasks


# --- a Redis restart is a pause ---------------------------------------------------------------


async def test_a_redis_restart_pauses_the_stream_and_replays_what_it_missed(
    streams, private_layer, own_redis, dispatcher, caplog
):
    private_layer()
    caplog.set_level(logging.DEBUG, logger="realtime")
    stream = await streams.open(await path_for(dispatcher, "dispatch"))
    before = await record_job()
    await drain()
    assert (await stream.event())["sequence"] == before.sequence

    own_redis.stop()
    assert await stream.frame() == {
        "kind": "degraded",
        "reason": "channel_layer_unavailable",
        "message": (
            "Live events are paused; they resume, missed ones included, once the server's "
            "channel layer is back."
        ),
    }
    assert await stream.ping() == {"kind": "pong"}  # the socket is open
    during = await record_job()  # recorded, not broadcast: the relay cannot reach Redis
    await asyncio.sleep(2.5)
    retries = caplog.text.count("still degraded")
    # Backoff from a quarter second doubling to two, not a busy loop; one task per consumer.
    assert 1 <= retries <= 6, caplog.text
    assert len(link_tasks()) == 1

    own_redis.start()  # empty: every membership is gone
    frames = await frames_until(stream, "recovered")
    replayed = [f["event"]["sequence"] for f in frames if f["kind"] == "event"]
    assert during.sequence in replayed and set(replayed) <= {before.sequence, during.sequence}
    assert frames[-1] == {"kind": "recovered", "through": during.sequence}

    after = await record_job()
    await drain()  # the broadcast reaches the re-joined groups
    live = [await stream.event() for _ in range(2)]
    assert {e["sequence"] for e in live} == {during.sequence, after.sequence}
    assert len(link_tasks()) == 1


async def test_a_handshake_while_redis_is_down_succeeds_and_gets_its_events_once_it_is_back(
    streams, private_layer, own_redis, dispatcher
):
    private_layer()
    path = await path_for(dispatcher, "dispatch")
    own_redis.stop()

    stream = streams.client(path)
    assert await stream.connect() == (True, None)
    assert (await stream.frame())["kind"] == "degraded"  # signed in: that needs PostgreSQL only
    during = await record_job()

    own_redis.start()
    frames = await frames_until(stream, "recovered")
    assert [f["event"]["sequence"] for f in frames if f["kind"] == "event"] == [during.sequence]
    assert frames[-1] == {"kind": "recovered", "through": during.sequence}

    after = await record_job()
    await drain()
    live = [await stream.event() for _ in range(2)]
    assert {e["sequence"] for e in live} == {during.sequence, after.sequence}


async def test_every_consumer_of_the_server_is_degraded_and_rejoins_after_a_restart(
    streams, private_layer, own_redis, contractor_users
):
    """A restarted Redis has lost every membership: each consumer, not only the one whose
    receive saw the error, re-joins its groups."""
    private_layer()
    first = await streams.open(await path_for(contractor_users[0], "contractor"))
    second = await streams.open(await path_for(contractor_users[1], "contractor"))
    own_redis.stop()
    assert (await first.frame())["kind"] == "degraded"
    assert (await second.frame())["kind"] == "degraded"
    own_redis.start()
    assert (await frames_until(first, "recovered"))[-1]["kind"] == "recovered"
    assert (await frames_until(second, "recovered"))[-1]["kind"] == "recovered"
    layer = get_channel_layer()
    groups = [await group_of(user) for user in contractor_users]
    assert await listened(layer, groups) == set(groups)
