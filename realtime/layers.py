"""The project's channel layer: channels-redis's `RedisChannelLayer` plus one public query.

The broadcast wants to know which of a batch's groups have members before it sends, because
`group_send` spends two Redis round trips on a group only to find it empty, and most groups
of a batch usually are (docs/realtime.md). channels-redis offers no such query, so this
subclass is the one place that knows how channels-redis keeps a group: a sorted set at
`_group_key(group)` of channel names scored by the time they joined, whose members older than
`group_expiry` seconds `group_send` ignores (it drops them first). tests/realtime/test_layers.py
checks that layout against the installed channels-redis, so an upgrade that changes it fails
the tests instead of silently losing messages.
"""

import time

import redis.exceptions
from channels_redis.core import RedisChannelLayer as ChannelsRedisLayer


class RedisChannelLayer(ChannelsRedisLayer):
    async def groups_with_members(self, groups: list[str]) -> set[str]:
        """The groups that have at least one member `group_send` would send to: one
        pipelined round trip per Redis host, whatever the number of groups."""
        by_host: dict[int, list[str]] = {}
        for group in groups:
            by_host.setdefault(self.consistent_hash(group), []).append(group)
        # group_send first drops the members that joined (or last re-joined) before this.
        fresh = f"({int(time.time()) - self.group_expiry}"
        found: set[str] = set()
        for index, names in by_host.items():
            counts = await self._member_counts(index, names, fresh)
            found.update(group for group, count in zip(names, counts, strict=True) if count)
        return found

    async def _member_counts(self, index: int, names: list[str], fresh: str) -> list[int]:
        """After a Redis restart a pooled connection fails its first command ("Connection
        closed by server") and is disconnected; the query only reads, so it is asked once more,
        on that connection reconnected (a second failure is an outage)."""
        try:
            return await self._count_members(index, names, fresh)
        except redis.exceptions.ConnectionError:
            return await self._count_members(index, names, fresh)

    async def _count_members(self, index: int, names: list[str], fresh: str) -> list[int]:
        async with self.connection(index).pipeline(transaction=False) as pipe:
            for group in names:
                pipe.zcount(self._group_key(group), fresh, "+inf")
            return await pipe.execute()
