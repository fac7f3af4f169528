"""Events as other services receive them: CloudEvents 1.0, structured JSON mode.

Invariant: one event always has one spelling. The message bus and webhooks send the same bytes
for the same event (its id, time, subject and data never change between redeliveries), so a
consumer deduplicates by `id` whichever way an event reached it.

| CloudEvents attribute | value |
|---|---|
| `specversion` | `1.0` |
| `id` | the event's id (a UUID, the same on every redelivery) |
| `source` | setting `EVENT_SOURCE` (`/smartscheduler` by default) |
| `type` | the event type, e.g. `JobAssigned` |
| `time` | when the change committed (`occurredAt`) |
| `subject` | the aggregate, `job/17` or `contractor/42` |
| `datacontenttype` | `application/json` |
| `dataschema` | the payload schema in the AsyncAPI document (`EVENT_SCHEMA_BASE_URL`, then |
|              | `#/components/schemas/JobAssigned.v1`) |
| `sequence` | the CloudEvents `sequence` extension: a string that orders lexicographically |
|            | (zero-padded to 19 digits, so `int()` reads it too) |
| `data` | the payload |
"""

from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from django.conf import settings

from events.catalog import EVENT_TYPES
from events.models import Event
from events.schemas import component_name

CONTENT_TYPE = JSONFormat.CONTENT_TYPE  # application/cloudevents+json
DATA_CONTENT_TYPE = "application/json"
SEQUENCE_DIGITS = 19  # a PostgreSQL bigint has at most 19 digits


def dataschema(event_type: str) -> str:
    """The URI of `event_type`'s payload schema (a JSON Pointer into the AsyncAPI document)."""
    return f"{settings.EVENT_SCHEMA_BASE_URL}#/components/schemas/{component_name(event_type)}"


def sequence_attribute(sequence: int) -> str:
    return str(sequence).zfill(SEQUENCE_DIGITS)


def to_cloudevent(event: Event) -> CloudEvent:
    occurred_at = event.occurred_at.replace(
        microsecond=event.occurred_at.microsecond // 1000 * 1000
    )
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(event.event_id),
        "source": settings.EVENT_SOURCE,
        "type": event.type,
        "time": occurred_at,
        "subject": f"{event.aggregate_type}/{event.aggregate_id}",
        "datacontenttype": DATA_CONTENT_TYPE,
        "sequence": sequence_attribute(event.sequence),
    }
    if event.type in EVENT_TYPES:  # an event of a type since removed has no schema left
        attributes["dataschema"] = dataschema(event.type)
    return CloudEvent(attributes, event.payload)


def structured(event: Event) -> bytes:
    """The event as a structured-mode CloudEvent: UTF-8 JSON, `application/cloudevents+json`."""
    return JSONFormat().write(to_cloudevent(event))
