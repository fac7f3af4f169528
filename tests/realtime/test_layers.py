"""The project's channel layer (realtime/layers.py) against the installed channels-redis.

`group_members` and `group_send_many` read and write channels-redis's groups and channel queues
themselves; these tests pin that layout and check that a receiver gets from them exactly what
`group_send` gives it, so an upgrade that changes either fails here rather than making the
broadcast skip members or lose messages.
"""

import asyncio
import time

import pytest
import redis.asyncio
from channels.layers import get_channel_layer

from realtime.layers import RedisChannelLayer

pytestmark = [pytest.mark.asyncio]


async def test_a_group_is_a_sorted_set_of_channels_scored_by_join_time(private_layer, own_redis):
    config = private_layer()
    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer)
    raw = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        channel = await layer.new_channel()
        before = time.time()
        await layer.group_add("dispatch.north", channel)
        key = f"{config['prefix']}:group:dispatch.north".encode()
        assert layer._group_key("dispatch.north") == key
        assert await raw.type(key) == b"zset"
        [(member, joined)] = await raw.zrange(key, 0, -1, withscores=True)
        assert member.decode() == channel
        assert before - 1 <= joined <= time.time() + 1
        # Re-joining moves the score: how a live consumer keeps its membership fresh.
        await raw.zadd(key, {channel: joined - 100})
        await layer.group_add("dispatch.north", channel)
        assert await raw.zscore(key, channel) >= before - 1
        assert 0 < await raw.ttl(key) <= config["group_expiry"]

        await layer.group_discard("dispatch.north", channel)
        assert await raw.zrange(key, 0, -1) == []
    finally:
        await raw.aclose()
        await layer.flush()


async def test_group_members_agrees_with_what_group_send_delivers(private_layer):
    private_layer(group_expiry=2)
    layer = get_channel_layer()
    try:
        stale, fresh, gone = [await layer.new_channel() for _ in range(3)]
        await layer.group_add("contractor.1", stale)
        await layer.group_add("contractor.2", gone)
        await layer.group_discard("contractor.2", gone)
        await asyncio.sleep(3.1)  # more than group_expiry: the first membership is stale
        await layer.group_add("dispatch.north", fresh)

        found = await layer.group_members(
            ["contractor.1", "contractor.2", "dispatch.north", "dispatch.nobody"]
        )
        assert found == {
            "contractor.1": [], "contractor.2": [],
            "dispatch.north": [fresh], "dispatch.nobody": [],
        }  # fmt: skip

        for group in ("contractor.1", "dispatch.north"):
            await layer.group_send(group, {"type": "event.message", "group": group})
        assert (await asyncio.wait_for(layer.receive(fresh), 5))["group"] == "dispatch.north"
        # group_send skipped the stale member too: the next message it gets is a later one.
        await layer.send(stale, {"type": "sentinel"})
        assert (await asyncio.wait_for(layer.receive(stale), 5))["type"] == "sentinel"
    finally:
        await layer.flush()


async def received(layer, channel: str, count: int) -> list[dict]:
    return [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(count)]


async def test_group_send_many_gives_each_member_what_group_send_gives_it(private_layer):
    """Members in several groups and several members of one process (one queue): each gets
    its groups' messages, each group's in order, as group_send would give them."""
    config = private_layer()
    layer = get_channel_layer()
    elsewhere = RedisChannelLayer(**config)  # as in another process: a queue of its own
    try:
        both, north_only = await layer.new_channel(), await layer.new_channel()
        other_process = await elsewhere.new_channel()
        for group, channel in [
            ("dispatch.north", both), ("contractor.7", both),
            ("dispatch.north", north_only), ("dispatch.north", other_process),
        ]:  # fmt: skip
            await layer.group_add(group, channel)
        assert layer.non_local_name(both) == layer.non_local_name(north_only)  # one queue
        north = [{"type": "event.message", "n": n} for n in range(3)]
        seven = [{"type": "event.batch", "events": [{"sequence": 9}]}]
        await layer.group_send_many({"dispatch.north": north, "contractor.7": seven, "x.y": north})

        got = await received(layer, both, 4)
        assert [m for m in got if m["type"] == "event.message"] == north
        assert [m for m in got if m["type"] == "event.batch"] == seven
        assert await received(layer, north_only, 3) == north
        assert await received(elsewhere, other_process, 3) == north

        # group_send's own delivery of the same messages reads the same.
        for message in north:
            await layer.group_send("dispatch.north", message)
        assert await received(layer, north_only, 3) == north
        # And nothing more was queued for anyone: the next message is a later one.
        await layer.send(north_only, {"type": "sentinel"})
        assert (await received(layer, north_only, 1))[0]["type"] == "sentinel"
    finally:
        await elsewhere.close_pools()
        await layer.flush()


async def test_group_send_many_drops_past_capacity_and_keeps_queues_expiring(
    private_layer, own_redis
):
    config = private_layer(capacity=2, expiry=30)
    layer = get_channel_layer()
    raw = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        channel = await layer.new_channel()
        await layer.group_add("dispatch.north", channel)
        await layer.group_send_many(
            {"dispatch.north": [{"type": "event.message", "n": n} for n in range(3)]}
        )
        queue = f"{config['prefix']}{layer.non_local_name(channel)}".encode()
        assert await raw.zcard(queue) == 2  # the third did not fit, as with group_send
        assert 0 < await raw.ttl(queue) <= 30
        assert [m["n"] for m in await received(layer, channel, 2)] == [0, 1]
        await layer.group_send("dispatch.north", {"type": "event.message", "n": 3})
        assert [m["n"] for m in await received(layer, channel, 1)] == [3]
    finally:
        await raw.aclose()
        await layer.flush()
