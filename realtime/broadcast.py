"""The broadcast handler: every event goes to each of its Channels groups.

At least once, and lossy by nature downstream (a channel layer drops past capacity), so clients
resume from the EventLog; this handler only has to have handed every message to the layer.

Most groups of a batch usually have nobody listening (a contractor group while the contractor
is offline, a region nobody watches), and channels_redis's `group_send` spends four Redis round
trips on each group, one after another. The project's layer
(`realtime.layers.RedisChannelLayer.group_send_many`) sends a whole batch in two pipelined round
trips per Redis host: one reads every group's members, one queues every message for the
groups that have any. That changes no outcome: `group_send` itself reads the members first and
sends to those, so a consumer joining after the read misses the message exactly as one joining
after `group_send`'s own read would; consumers join before they replay from the EventLog, so
they find it there (docs/realtime.md).
"""

import asyncio

from channels.layers import get_channel_layer

from events import asyncbridge
from events.envelope import envelope
from events.groups import channels_group_name
from events.models import Event

MESSAGE_TYPE = "event.message"
# Several events for one group in one channel-layer message ({"events": [...]}, in sequence
# order): a region's group gets most of a batch, and one group_send per event made its chain of
# sends the batch's longest wait (with every group listened, about 2,000 events/s, see
# docs/benchmarks.md); each member also unpacks one message instead of many.
BATCH_TYPE = "event.batch"
MAX_EVENTS_PER_MESSAGE = 100  # keeps a message to tens of kilobytes


def group_messages(events: list[Event]) -> dict[str, list[dict]]:
    """Per Channels group, the channel-layer messages that carry `events` to it, in sequence
    order: one `event.message` for a lone event, otherwise `event.batch` messages of at most
    MAX_EVENTS_PER_MESSAGE events."""
    by_group: dict[str, list[dict]] = {}
    for event in events:
        body = envelope(event)
        for group in event.groups:
            by_group.setdefault(channels_group_name(group), []).append(body)
    messages: dict[str, list[dict]] = {}
    for group, bodies in by_group.items():
        if len(bodies) == 1:
            messages[group] = [{"type": MESSAGE_TYPE, "event": bodies[0]}]
        else:
            messages[group] = [
                {"type": BATCH_TYPE, "events": bodies[start : start + MAX_EVENTS_PER_MESSAGE]}
                for start in range(0, len(bodies), MAX_EVENTS_PER_MESSAGE)
            ]
    return messages


async def _send_all(by_group: dict[str, list[dict]]) -> None:
    """Each group gets its messages one after another, in sequence order (so a client sees a
    batch in order); different groups are served together."""
    layer = get_channel_layer()
    send_many = getattr(layer, "group_send_many", None)
    if send_many is not None:
        await send_many(by_group)
        return

    async def send_in_order(group: str, queue: list[dict]) -> None:  # the in-memory layer
        for message in queue:
            await layer.group_send(group, message)

    await asyncio.gather(*(send_in_order(group, queue) for group, queue in by_group.items()))


def broadcast(events: list[Event]) -> None:
    messages = group_messages(events)
    if messages:
        asyncbridge.run(_send_all(messages))
