"""The websocket streams in AsyncAPI 3.0 terms, for `GET /api/asyncapi` (events.asyncapi).

Channel addresses come from `realtime.routing`; the frames are those of `realtime.consumers`.
An event frame carries the envelope of `events.envelope`, whose `payload` is the type's schema.
"""

from typing import Any

from events.asyncapi import schema_ref
from events.catalog import EVENT_TYPES
from events.schemas import component_name
from realtime.routing import websocket_urlpatterns

WS_BINDING = "0.1.0"
ERROR_CODES = [
    "not_authenticated",
    "forbidden",
    "malformed",
    "unknown_kind",
    "binary_not_supported",
    "frame_too_large",
    "bad_after",
    "unknown_sequence",
    "too_far_behind",
]
QUERY = {
    "dispatch": {
        "regions": {
            "type": "string",
            "description": "Comma-separated region names; none: every region the user may watch.",
            "examples": ["north,south"],
        },
    },
    "contractor": {},
}
AFTER = {
    "type": "string",
    "pattern": "^[0-9]{1,18}$",
    "description": "Resume: replay the events after this sequence, then a replayed frame.",
}
TOKEN = {"type": "string", "description": "An API token (or use the session cookie)."}
SUMMARIES = {
    "dispatch": "Dispatchers and admins: the events of their regions (dispatch/{region}).",
    "contractor": "A contractor login: the events of its own contractor/{id} group.",
}


def envelope_schema(event_type: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [
            "id",
            "sequence",
            "type",
            "version",
            "occurredAt",
            "aggregate",
            "groups",
            "payload",
        ],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "sequence": {"type": "integer"},
            "type": {"const": event_type},
            "version": {"const": EVENT_TYPES[event_type].version},
            "occurredAt": {"type": "string", "format": "date-time"},
            "aggregate": {
                "type": "object",
                "properties": {"type": {"type": "string"}, "id": {"type": "string"}},
                "required": ["type", "id"],
            },
            "groups": {"type": "array", "items": {"type": "string"}},
            "payload": schema_ref(component_name(event_type)),
        },
    }


def frame_messages() -> dict[str, dict[str, Any]]:
    def frame(kind: str, **properties: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["kind", *properties],
            "properties": {"kind": {"const": kind}, **properties},
        }

    return {
        "eventFrame": {
            "name": "event",
            "summary": "One event, in the envelope (drop duplicates by event.id).",
            "payload": frame(
                "event", event={"oneOf": [envelope_schema(t) for t in sorted(EVENT_TYPES)]}
            ),
        },
        "replayedFrame": {
            "name": "replayed",
            "summary": "The resume is complete up to this sequence; live events follow.",
            "payload": frame("replayed", through={"type": "integer"}),
        },
        "errorFrame": {
            "name": "error",
            "summary": "A refused frame or stream (4401/4403 close the connection after it).",
            "payload": frame("error", code={"enum": ERROR_CODES}, message={"type": "string"}),
        },
        "pongFrame": {"name": "pong", "payload": frame("pong")},
        "pingFrame": {"name": "ping", "summary": "Client frame.", "payload": frame("ping")},
    }


def websocket_parts(*, host: str, secure: bool) -> dict[str, dict[str, Any]]:
    """servers, channels, operations and securitySchemes for events.asyncapi.document."""
    frames = frame_messages()
    channels, operations = {}, {}
    for pattern in websocket_urlpatterns:
        address = "/" + str(pattern.pattern).lstrip("^").rstrip("$")
        stream = address.strip("/").split("/")[-1]
        name = f"{stream}Stream"
        query = {**QUERY.get(stream, {}), "after": AFTER, "token": TOKEN}
        channels[name] = {
            "address": address,
            "summary": SUMMARIES.get(stream, ""),
            "servers": [{"$ref": "#/servers/api"}],
            "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in frames},
            "bindings": {
                "ws": {
                    "method": "GET",
                    "query": {"type": "object", "properties": query},
                    "bindingVersion": WS_BINDING,
                }
            },
        }
        sent = ["eventFrame", "replayedFrame", "errorFrame", "pongFrame"]
        operations[f"{stream}Frames"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/{key}"} for key in sent],
        }
        operations[f"{stream}Ping"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/pingFrame"}],
        }
    servers = {
        "api": {
            "host": host,
            "protocol": "wss" if secure else "ws",
            "description": "The websocket streams of this server.",
            "security": [
                {"$ref": "#/components/securitySchemes/token"},
                {"$ref": "#/components/securitySchemes/session"},
            ],
        }
    }
    security = {
        "token": {"type": "httpApiKey", "name": "token", "in": "query"},
        "session": {"type": "httpApiKey", "name": "sessionid", "in": "cookie"},
    }
    return {
        "servers": servers,
        "channels": channels,
        "operations": operations,
        "security": security,
        "messages": frames,
    }
