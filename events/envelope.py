"""The envelope every event travels in (websocket frames, /api/events, the relay)."""

from typing import Any

from events.models import Event
from events.timefmt import iso_utc


def envelope(event: Event) -> dict[str, Any]:
    return {
        "id": str(event.event_id),
        "sequence": event.sequence,
        "type": event.type,
        "version": event.version,
        "occurredAt": iso_utc(event.occurred_at),
        "aggregate": {"type": event.aggregate_type, "id": event.aggregate_id},
        "groups": list(event.groups),
        "payload": event.payload,
    }
