"""The AsyncAPI 3.0 description of what SmartScheduler sends: generated, never hand-kept.

Invariant: every message comes from the catalog (`events.catalog.EVENT_TYPES`) and every payload
schema from `events.schemas`, so a new event type appears here, on the bus channel and the
webhook channel, with its schema, without anyone editing this module. The websocket streams are
added by `realtime.asyncapi` (which knows the routing and frames); `events` imports no app.

One message per event type (`components.messages.JobAssigned`): a structured CloudEvent
(`events.cloudevent`) whose `data` is the type's payload schema
(`components.schemas["JobAssigned.v1"]`, the URI each event's `dataschema` names). The same
message travels on the bus (AMQP bindings) and in webhooks (HTTP bindings: the Standard Webhooks
headers).
"""

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from events.catalog import EVENT_TYPES
from events.cloudevent import CONTENT_TYPE, DATA_CONTENT_TYPE, SEQUENCE_DIGITS
from events.schemas import component_name, description, payload_schema
from events.webhooks.delivery import WEBHOOK_RETRY_SCHEDULE

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING = "0.3.0"
HTTP_BINDING = "0.3.0"
REF_TEMPLATE = "#/components/schemas/{model}"


def schema_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def message_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/messages/{name}"}


def payload_components() -> dict[str, dict[str, Any]]:
    """Each type's payload schema under its component name; nested definitions hoisted."""
    schemas: dict[str, dict[str, Any]] = {}
    for event_type in sorted(EVENT_TYPES):
        schema = payload_schema(event_type, ref_template=REF_TEMPLATE)
        schemas.update(schema.pop("$defs", {}))
        schemas[component_name(event_type)] = schema
    return schemas


def cloudevent_schema(event_type: str) -> dict[str, Any]:
    aggregates = sorted({cls.aggregate_type for cls in EVENT_TYPES.values()})
    return {
        "type": "object",
        "description": f"A CloudEvents 1.0 event (structured JSON mode) of type {event_type}.",
        "required": [
            "specversion",
            "id",
            "source",
            "type",
            "time",
            "subject",
            "datacontenttype",
            "dataschema",
            "sequence",
            "data",
        ],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {
                "type": "string",
                "format": "uuid",
                "description": "The event id: the same on every redelivery; drop duplicates by it.",
            },
            "source": {
                "type": "string",
                "format": "uri-reference",
                "examples": ["/smartscheduler"],
            },
            "type": {"const": event_type},
            "time": {"type": "string", "format": "date-time", "description": "When it committed."},
            "subject": {
                "type": "string",
                "pattern": f"^({'|'.join(aggregates)})/[^/]+$",
                "description": "The aggregate the event is about, e.g. job/17.",
            },
            "datacontenttype": {"const": DATA_CONTENT_TYPE},
            "dataschema": {
                "type": "string",
                "format": "uri-reference",
                "description": f"#/components/schemas/{component_name(event_type)} here.",
            },
            "sequence": {
                "type": "string",
                "pattern": f"^[0-9]{{{SEQUENCE_DIGITS}}}$",
                "description": (
                    "The CloudEvents sequence extension: the event's position in the EventLog, "
                    "zero-padded so it orders as a string and as a number. Events may arrive out "
                    "of order: compare before overwriting newer state."
                ),
            },
            "data": schema_ref(component_name(event_type)),
        },
    }


WEBHOOK_HEADERS = {
    "type": "object",
    "required": ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type"],
    "properties": {
        "webhook-id": {
            "type": "string",
            "description": "The event id (the same on retries and redeliveries).",
        },
        "webhook-timestamp": {"type": "string", "description": "Unix seconds of this attempt."},
        "webhook-signature": {
            "type": "string",
            "description": (
                "Standard Webhooks signatures, space separated (two during a secret rotation): "
                "v1,<base64 HMAC-SHA256 of id.timestamp.body>."
            ),
        },
        "content-type": {"const": CONTENT_TYPE},
    },
}


def event_messages() -> dict[str, dict[str, Any]]:
    messages = {}
    for event_type, cls in sorted(EVENT_TYPES.items()):
        message: dict[str, Any] = {
            "name": event_type,
            "title": event_type,
            "contentType": CONTENT_TYPE,
            "payload": cloudevent_schema(event_type),
            "correlationId": {
                "description": "The event id, also the AMQP message_id and webhook-id.",
                "location": "$message.payload#/id",
            },
            "bindings": {
                "amqp": {
                    "contentEncoding": "utf-8",
                    "messageType": event_type,
                    "bindingVersion": AMQP_BINDING,
                },
                "http": {"headers": WEBHOOK_HEADERS, "bindingVersion": HTTP_BINDING},
            },
            "x-event-version": cls.version,
        }
        if text := description(cls):
            message["summary"] = text.split("\n\n")[0].replace("\n", " ")
            message["description"] = text
        messages[event_type] = message
    return messages


def bus_server() -> dict[str, Any]:
    url = settings.EVENT_BUS_URL
    parts = urlsplit(url) if url else None
    if parts is not None and parts.scheme.lower() == "sqs":
        return {
            "host": "sns.amazonaws.com",
            "protocol": "sns",
            "description": (
                f"Amazon SNS topic {settings.EVENT_BUS_EXCHANGE.replace('.', '-')}, fanned out "
                "to SQS queues; each SQS message body is the CloudEvent JSON itself."
            ),
        }
    host = f"{parts.hostname}:{parts.port or 5672}" if parts and parts.hostname else "{broker}"
    server: dict[str, Any] = {
        "host": host,
        "protocol": "amqp",
        "protocolVersion": "0.9.1",
        "description": "RabbitMQ, set by EVENT_BUS_URL"
        + ("" if url else " (not configured on this deployment)."),
        "security": [{"$ref": "#/components/securitySchemes/amqpUser"}],
    }
    if host == "{broker}":
        server["variables"] = {"broker": {"description": "host:port of EVENT_BUS_URL"}}
    return server


def document(
    *, servers: dict, channels: dict, operations: dict, security: dict, messages: dict
) -> dict:
    """The whole document; `servers`, `channels`, `operations`, `security` (schemes) and
    `messages` add what other layers describe (the websocket streams)."""
    extra_messages = messages
    messages = event_messages()
    exchange = settings.EVENT_BUS_EXCHANGE
    type_refs = {name: message_ref(name) for name in messages}
    all_channels = {
        **channels,
        "bus": {
            "address": "{eventType}",
            "title": "The message bus",
            "description": (
                f"Every event, published at least once to the exchange {exchange} (RabbitMQ: a "
                "durable topic exchange; SNS: the topic of that name, '.' becoming '-'). The "
                "routing key is the event type: bind a queue with the types you want, or # for "
                "all."
            ),
            "servers": [{"$ref": "#/servers/bus"}],
            "parameters": {
                "eventType": {"enum": sorted(messages), "description": "The routing key."}
            },
            "messages": type_refs,
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": exchange,
                        "type": "topic",
                        "durable": True,
                        "autoDelete": False,
                        "vhost": "/",
                    },
                    "bindingVersion": AMQP_BINDING,
                }
            },
        },
        "webhooks": {
            "address": None,
            "title": "Outgoing webhooks",
            "description": (
                "POSTed to each endpoint registered at /api/webhooks (admins), for the types it "
                "subscribed to (all when none), signed per the Standard Webhooks specification. "
                f"Only a 2xx counts; {len(WEBHOOK_RETRY_SCHEDULE)} retries over "
                f"{sum(WEBHOOK_RETRY_SCHEDULE) / 3600:.1f} hours; a 410 disables the endpoint."
            ),
            "servers": [{"$ref": "#/servers/webhookReceiver"}],
            "messages": type_refs,
        },
    }
    all_operations = {
        **operations,
        "publishEvents": {
            "action": "send",
            "channel": {"$ref": "#/channels/bus"},
            "summary": "Publish every event to the bus (persistent, publisher-confirmed).",
            "messages": [{"$ref": f"#/channels/bus/messages/{name}"} for name in messages],
            "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": AMQP_BINDING}},
        },
        "sendWebhooks": {
            "action": "send",
            "channel": {"$ref": "#/channels/webhooks"},
            "summary": "POST each event to the endpoints subscribed to its type.",
            "messages": [{"$ref": f"#/channels/webhooks/messages/{name}"} for name in messages],
            "bindings": {"http": {"method": "POST", "bindingVersion": HTTP_BINDING}},
        },
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "SmartScheduler events",
            "version": "1",
            "description": (
                "Every change in SmartScheduler is a domain event. Screens follow them on the "
                "websocket streams; other services on the message bus or through webhooks, as "
                "CloudEvents whose data is validated by the schemas below. Each message says "
                "its type's payload version (x-event-version); fields may be added without a "
                "new version, so ignore the ones you do not know."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            **servers,
            "bus": bus_server(),
            "webhookReceiver": {
                "host": "{receiver}",
                "protocol": "https",
                "description": "Your endpoint, as registered (http is allowed too).",
                "variables": {"receiver": {"description": "The endpoint URL's host."}},
            },
        },
        "channels": all_channels,
        "operations": all_operations,
        "components": {
            "schemas": payload_components(),
            "messages": {**extra_messages, **messages},
            "securitySchemes": {
                **security,
                "amqpUser": {"type": "userPassword", "description": "The broker's credentials."},
            },
        },
    }
