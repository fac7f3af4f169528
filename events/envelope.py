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


# The frame of an event's envelope (`{"kind": "event", "event": <envelope>}`) as PostgreSQL
# writes it, for the websocket replays (realtime/consumers.py): one text column per row where
# Python would decode two JSON columns, build the envelope and serialise it, and that was most
# of a replay page's work on the server's threads. The same JSON as envelope()'s, keys in the
# same order, the same values; the text differs from json.dumps' in the whitespace inside
# `groups` and `payload` (jsonb's text), in UTF-8 where json.dumps writes \u escapes, and in
# jsonb's spelling of numbers (0.0000001 for 1e-07).
# tests/realtime/test_replay_frames.py holds the two to the same JSON.
FRAME_SQL = """'{"kind":"event","event":{"id":"' || event_id::text
    || '","sequence":' || sequence::text
    || ',"type":' || to_json(type)::text
    || ',"version":' || version::text
    || ',"occurredAt":"' || to_char(occurred_at AT TIME ZONE 'UTC',
           CASE WHEN date_trunc('second', occurred_at) = occurred_at
                THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"' END)
    || '","aggregate":{"type":' || to_json(aggregate_type)::text
    || ',"id":' || to_json(aggregate_id)::text
    || '},"groups":' || groups::text
    || ',"payload":' || payload::text || '}}'"""
