"""What another service would check, written with that service's tools only: the CloudEvents
SDK's parser, the JSON Schemas of the AsyncAPI document and jsonschema.

`recorded_payload_errors` also backs the suite-wide check (tests/conftest.py): every Event row
saved during any test is validated against the strict schema of its type, so a payload that
drifts from the catalog fails CI wherever it is recorded.
"""

import functools
import json
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from events.catalog import EVENT_TYPES
from events.schemas import payload_schema


@functools.cache
def strict_validator(event_type: str) -> Draft202012Validator:
    return Draft202012Validator(payload_schema(event_type, strict=True))


def payload_errors(event_type: str, version: int, payload: Any) -> list[str]:
    if event_type not in EVENT_TYPES:
        return [f"{event_type} is not in the event catalog"]
    if version != EVENT_TYPES[event_type].version:
        current = EVENT_TYPES[event_type].version
        return [f"{event_type} v{version} recorded, the catalog is at v{current}"]
    return [
        f"{event_type} payload {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in strict_validator(event_type).iter_errors(payload)
    ]


def document_validator(document: dict, pointer: str) -> Draft202012Validator:
    """A validator for the schema at `pointer` in `document`, its `$ref`s resolved there."""
    uri = "urn:smartscheduler:asyncapi"
    registry = Registry().with_resource(uri, DRAFT202012.create_resource(document))
    return Draft202012Validator({"$ref": f"{uri}{pointer}"}, registry=registry)


def parse_and_validate(body: bytes | str, document: dict) -> dict:
    """Parse a structured CloudEvent with the SDK; validate the whole event against its type's
    message in `document` and its data against the schema its `dataschema` names; return its
    attributes with `data`."""
    event = JSONFormat().read(None, body)
    attributes = dict(event.get_attributes())
    message = document_validator(document, f"#/components/messages/{attributes['type']}/payload")
    errors = [e.message for e in message.iter_errors(json.loads(body))]
    _, fragment = attributes["dataschema"].split("#", 1)
    data = document_validator(document, "#" + fragment)
    errors += [e.message for e in data.iter_errors(event.get_data())]
    assert errors == [], (attributes["type"], errors)
    return {**attributes, "data": event.get_data()}
