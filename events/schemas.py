"""The JSON Schema of each event type's payload, generated from the catalog.

Invariant: the catalog (`events.catalog`) is the one source of truth. Each type's schema is
derived from its dataclass fields by pydantic (a model with one aliased field per dataclass field,
the alias being the payload key) plus the `timestamp` that `record_event` adds, so a new type in
`EVENT_TYPES` has a schema with no extra work, and a field changed in the catalog changes its
schema. The test suite validates every event it records against the strict form of its schema.

Two forms: the *published* one (AsyncAPI document, `dataschema`) lets payloads grow (unknown
fields are allowed: adding a field is not a breaking change, and does not bump `version`); the
*strict* one (`strict=True`) forbids unknown fields, so a payload that drifts from its dataclass
fails the tests.
"""

import functools
import inspect
import typing
from dataclasses import MISSING, fields
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, create_model

from events.catalog import EVENT_TYPES, DomainEvent, payload_key

DEFS_TEMPLATE = "#/$defs/{model}"


def component_name(event_type: str) -> str:
    """The key of a type's payload schema among the AsyncAPI document's components
    (`JobCreated.v1`): a new version of a type is a new schema, with its own URI."""
    return f"{event_type}.v{EVENT_TYPES[event_type].version}"


def description(cls: type[DomainEvent]) -> str | None:
    doc = cls.__dict__.get("__doc__")
    if not doc or doc.startswith(f"{cls.__name__}("):  # the signature dataclasses write
        return None
    return inspect.cleandoc(doc)


@functools.cache
def _payload_model(event_type: str, strict: bool) -> type:
    cls = EVENT_TYPES[event_type]
    hints = typing.get_type_hints(cls)
    definitions: dict[str, Any] = {}
    for f in fields(cls):
        key = payload_key(f)
        if f.default_factory is not MISSING:
            spec = Field(default_factory=f.default_factory, alias=key, title=key)
        else:
            spec = Field(... if f.default is MISSING else f.default, alias=key, title=key)
        definitions[f.name] = (hints[f.name], spec)
    definitions["recorded_timestamp"] = (
        datetime,
        Field(
            alias="timestamp",
            title="timestamp",
            description="When the change committed, in UTC (the envelope's occurredAt).",
        ),
    )
    return create_model(
        f"{event_type}Payload",
        __config__=ConfigDict(extra="forbid" if strict else "allow", title=event_type),
        __doc__=description(cls),
        **definitions,
    )


def payload_schema(
    event_type: str, *, strict: bool = False, ref_template: str = DEFS_TEMPLATE
) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of `event_type`'s payload, at its current version.

    Nested types the catalog may grow land in `$defs` (or wherever `ref_template` points, for a
    document that keeps them elsewhere). Raises KeyError for an unknown type.
    """
    model = _payload_model(event_type, strict)
    schema = model.model_json_schema(by_alias=True, ref_template=ref_template)
    if not strict:
        schema.pop("additionalProperties", None)  # "allow" writes true: the default anyway
    schema["x-event-type"] = event_type
    schema["x-event-version"] = EVENT_TYPES[event_type].version
    return schema


def payload_schemas(*, strict: bool = False) -> dict[str, dict[str, Any]]:
    """Every catalog type's payload schema, by type."""
    return {name: payload_schema(name, strict=strict) for name in sorted(EVENT_TYPES)}
