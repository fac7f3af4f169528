"""Probes of the stores subscribers need: each raises when its store does not answer.

The relay calls a subscriber's probe after the subscriber failed: a failing probe makes it an
outage (no attempt spent, probed again within a second or two), a passing one makes it the
events' fault (retried with backoff, then dead).
"""

from channels.layers import get_channel_layer
from django.core.cache import cache

from events import asyncbridge

PROBE_TIMEOUT = 2.0


def cache_store() -> None:
    """The cache (Redis in the production shape) answers a read."""
    cache.get("events:probe")


def channel_layer() -> None:
    """The channel layer answers: one round trip through its public API (a group discard of a
    channel that was never added is a no-op)."""

    async def discard() -> None:
        await get_channel_layer().group_discard("events.probe", "events.probe!none")

    asyncbridge.run(discard(), timeout=PROBE_TIMEOUT)
