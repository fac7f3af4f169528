"""The payload schemas (events/schemas.py) and the suite-wide check that every recorded event
matches its type's schema (tests/conftest.py)."""

from dataclasses import dataclass
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from events import catalog
from events.catalog import EVENT_TYPES, JobEvent
from events.schemas import payload_schema, payload_schemas
from tests.conftest import events_of
from tests.contracts.checks import payload_errors
from tests.contracts.samples import instances
from tests.events.support import create_jobs


def test_every_catalog_type_has_a_valid_schema_with_its_version():
    schemas = payload_schemas()

    assert sorted(schemas) == sorted(EVENT_TYPES)
    for event_type, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
        assert schema["x-event-version"] == EVENT_TYPES[event_type].version
        assert "timestamp" in schema["required"]


def test_the_schema_follows_the_payload_keys_and_types():
    schema = payload_schema("JobCreated", strict=True)

    assert schema["required"] == [
        "jobId",
        "region",
        "type",  # job_type, whose payload key is "type"
        "desiredDate",
        "durationMinutes",
        "priority",
        "timestamp",
    ]
    assert schema["properties"]["durationMinutes"]["type"] == "integer"
    assert schema["additionalProperties"] is False
    assert "additionalProperties" not in payload_schema("JobCreated")  # published: may grow


@pytest.mark.django_db
def test_a_payload_that_drifts_from_its_schema_is_reported():
    create_jobs(1)
    [created] = events_of("JobCreated")
    payload = created.payload
    assert payload_errors("JobCreated", 1, payload) == []

    assert payload_errors("JobCreated", 1, {**payload, "colour": "red"}) == [
        "JobCreated payload (root): Additional properties are not allowed ('colour' was unexpected)"
    ]
    assert payload_errors("JobCreated", 1, {**payload, "durationMinutes": "2h"}) == [
        "JobCreated payload durationMinutes: '2h' is not of type 'integer'"
    ]
    missing = {k: v for k, v in payload.items() if k != "priority"}
    assert payload_errors("JobCreated", 1, missing) == [
        "JobCreated payload (root): 'priority' is a required property"
    ]
    assert payload_errors("JobCreated", 2, payload) == [
        "JobCreated v2 recorded, the catalog is at v1"
    ]
    assert payload_errors("JobExploded", 1, payload) == ["JobExploded is not in the event catalog"]


def test_a_new_catalog_type_gets_its_schema_with_no_extra_work(monkeypatch):
    @dataclass(frozen=True, kw_only=True)
    class JobInspected(JobEvent):
        type: ClassVar[str] = "JobInspected"
        version: ClassVar[int] = 3
        inspector_name: str
        passed: bool | None = None

    monkeypatch.setitem(catalog.EVENT_TYPES, "JobInspected", JobInspected)

    schema = payload_schema("JobInspected")
    assert schema["required"] == ["jobId", "region", "inspectorName", "timestamp"]
    assert schema["properties"]["passed"]["anyOf"] == [{"type": "boolean"}, {"type": "null"}]
    assert schema["x-event-version"] == 3


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
@given(data=st.data())
@settings(max_examples=25, deadline=None)
def test_any_instance_of_a_type_has_a_payload_its_schema_accepts(event_type, data):
    event = data.draw(instances(EVENT_TYPES[event_type]))
    payload = {**event.payload(), "timestamp": "2026-01-05T14:00:00Z"}

    assert payload_errors(event_type, EVENT_TYPES[event_type].version, payload) == []
