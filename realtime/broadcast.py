"""The broadcast handler: every event goes to each of its Channels groups.

At least once, and lossy by nature downstream (a channel layer drops past capacity), so clients
resume from the EventLog; this handler only has to have handed every message to the layer.
"""

import asyncio

from channels.layers import get_channel_layer

from events import asyncbridge
from events.envelope import envelope
from events.groups import channels_group_name
from events.models import Event

MESSAGE_TYPE = "event.message"
# Sends in flight at once: well under the channel layer's Redis connection pool, which raises
# "Too many connections" (and stalls the relay on a retried batch) when exceeded.
MAX_CONCURRENT_SENDS = 32


async def _send_all(messages: list[tuple[str, dict]]) -> None:
    """Each group gets its messages one after another, in sequence order (so a client sees a
    batch in order); different groups are served concurrently, a bounded number at a time."""
    layer = get_channel_layer()
    limit = asyncio.Semaphore(MAX_CONCURRENT_SENDS)
    by_group: dict[str, list[dict]] = {}
    for group, message in messages:
        by_group.setdefault(group, []).append(message)

    async def send_in_order(group: str, queue: list[dict]) -> None:
        async with limit:
            for message in queue:
                await layer.group_send(group, message)

    await asyncio.gather(*(send_in_order(group, queue) for group, queue in by_group.items()))


def broadcast(events: list[Event]) -> None:
    messages = []
    for event in events:
        message = {"type": MESSAGE_TYPE, "event": envelope(event)}
        messages.extend((channels_group_name(group), message) for group in event.groups)
    if messages:
        asyncbridge.run(_send_all(messages))
