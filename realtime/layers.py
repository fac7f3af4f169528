"""The project's channel layer: channels-redis's `RedisChannelLayer` plus a send to many groups.

The broadcast hands a batch's messages to many groups at once. channels-redis's `group_send`
spends four Redis round trips on each group, one after another (drop stale members, read the
members, drop expired messages, queue), and most groups of a batch have nobody listening. This
subclass does the same for every group of a batch in two pipelined round trips per Redis host:
one reads (and prunes) every group's members, one queues every message.

It is the one place that knows how channels-redis keeps groups and channels:
- a group is a sorted set at `_group_key(group)` of channel names scored by the time they
  joined; members older than `group_expiry` seconds are dropped before a send;
- a channel's queue is a sorted set at `prefix + non_local_name(channel)` of serialized
  messages scored by the time they were queued, expiring after `expiry` seconds; a process's
  channels share one queue, each message naming its channels in `__asgi_channel__`; a queue
  holding `get_capacity(channel)` messages takes no more (the message is dropped, as
  `group_send` drops it).
tests/realtime/test_layers.py checks that layout, and that a receiver gets from
`group_send_many` exactly what `group_send` gives it, against the installed channels-redis, so
an upgrade that changes either fails the tests instead of silently losing messages.
"""

import asyncio
import time

import redis.exceptions
from channels_redis.core import RedisChannelLayer as ChannelsRedisLayer

# Queue messages on channel queues: KEYS are the queues, ARGV their messages, then their
# capacities, then the messages' score (the time) and the queues' expiry. Returns how many
# queues were full.
QUEUE_SCRIPT = """
local count = #KEYS
local now, expiry = tonumber(ARGV[2 * count + 1]), tonumber(ARGV[2 * count + 2])
local full = 0
for i = 1, count do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, math.floor(now) - expiry)
    if redis.call('ZCARD', KEYS[i]) < tonumber(ARGV[count + i]) then
        redis.call('ZADD', KEYS[i], now, ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        full = full + 1
    end
end
return full
"""
# Apart the scores of messages queued one after another (a microsecond: a double holds it at
# today's epoch times, and a batch of thousands of messages runs a few milliseconds ahead).
SCORE_STEP = 1e-6


class RedisChannelLayer(ChannelsRedisLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._last_score = 0.0

    async def group_members(self, groups: list[str]) -> dict[str, list[str]]:
        """Each group's channels that a send would reach, stale members dropped first as
        `group_send` drops them: one pipelined round trip per Redis host."""
        by_host: dict[int, list[str]] = {}
        for group in groups:
            by_host.setdefault(self.consistent_hash(group), []).append(group)
        found: dict[str, list[str]] = {}
        for names, members in zip(
            by_host.values(),
            await asyncio.gather(*(self._read_members(i, names) for i, names in by_host.items())),
            strict=True,
        ):
            found.update(zip(names, members, strict=True))
        return found

    async def _read_members(self, index: int, names: list[str]) -> list[list[str]]:
        """After a Redis restart a pooled connection fails its first command ("Connection
        closed by server") and is disconnected; the read changes nothing a second run would
        not (it drops stale members), so it is run once more, on that connection reconnected
        (a second failure is an outage)."""
        try:
            return await self._members_on(index, names)
        except redis.exceptions.ConnectionError:
            return await self._members_on(index, names)

    async def _members_on(self, index: int, names: list[str]) -> list[list[str]]:
        stale = int(time.time()) - self.group_expiry
        async with self.connection(index).pipeline(transaction=False) as pipe:
            for group in names:
                key = self._group_key(group)
                pipe.zremrangebyscore(key, min=0, max=stale)
                pipe.zrange(key, 0, -1)
            replies = await pipe.execute()
        return [[channel.decode() for channel in reply] for reply in replies[1::2]]

    async def group_send_many(self, messages: dict[str, list[dict]]) -> None:
        """`group_send` of each group's messages, in their order, for every group at once.
        A member gets its groups' messages in the order given; a full queue drops what it
        cannot take, as with `group_send`."""
        members = await self.group_members(list(messages))
        queued: dict[int, list[tuple[list[str], list]]] = {}
        for group, group_messages in messages.items():
            if members.get(group):
                for message in group_messages:
                    for index, send in self._queue_args(members[group], message).items():
                        queued.setdefault(index, []).append(send)
        await asyncio.gather(*(self._queue_on(index, sends) for index, sends in queued.items()))

    def _queue_args(self, channels: list[str], message: dict) -> dict[int, tuple[list[str], list]]:
        """Per Redis host, the queues `message` goes to and QUEUE_SCRIPT's arguments: one
        serialized copy per queue, naming the channels of that queue it is for."""
        for_queue: dict[str, list[str]] = {}
        for channel in channels:
            for_queue.setdefault(self.non_local_name(channel), []).append(channel)
        by_host: dict[int, tuple[list[str], list, list]] = {}
        for queue, named in for_queue.items():
            keys, bodies, capacities = by_host.setdefault(self.consistent_hash(queue), ([], [], []))
            keys.append(self.prefix + queue)
            bodies.append(self.serialize({**message, "__asgi_channel__": named}))
            capacities.append(self.get_capacity(named[0]))
        return {index: (keys, [*b, *c]) for index, (keys, b, c) in by_host.items()}

    def _queue_score(self) -> float:
        """The score of the next queued message: the time, but always above the last one's,
        because a queue gives its lowest score first and equal scores in member order (the
        serialized bytes), and a pipeline queues many messages within one clock tick."""
        self._last_score = max(time.time(), self._last_score + SCORE_STEP)
        return self._last_score

    async def _queue_on(self, index: int, sends: list[tuple[list[str], list]]) -> None:
        async with self.connection(index).pipeline(transaction=False) as pipe:
            for keys, args in sends:
                score = self._queue_score()
                pipe.eval(QUEUE_SCRIPT, len(keys), *keys, *args, score, int(self.expiry))
            await pipe.execute()
