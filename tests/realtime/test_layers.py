"""The project's channel layer (realtime/layers.py) against the installed channels-redis.

`groups_with_members` reads how channels-redis keeps a group; these tests pin that layout and
check that the query agrees with what `group_send` actually does, so an upgrade that changes
either fails here rather than making the broadcast skip groups that have members.
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


async def test_groups_with_members_agrees_with_what_group_send_delivers(private_layer):
    private_layer(group_expiry=2)
    layer = get_channel_layer()
    try:
        stale, fresh, gone = [await layer.new_channel() for _ in range(3)]
        await layer.group_add("contractor.1", stale)
        await layer.group_add("contractor.2", gone)
        await layer.group_discard("contractor.2", gone)
        await asyncio.sleep(3.1)  # more than group_expiry: the first membership is stale
        await layer.group_add("dispatch.north", fresh)

        found = await layer.groups_with_members(
            ["contractor.1", "contractor.2", "dispatch.north", "dispatch.nobody"]
        )
        assert found == {"dispatch.north"}

        for group in ("contractor.1", "dispatch.north"):
            await layer.group_send(group, {"type": "event.message", "group": group})
        assert (await asyncio.wait_for(layer.receive(fresh), 5))["group"] == "dispatch.north"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(stale), 0.5)  # group_send skipped it too
    finally:
        await layer.flush()
