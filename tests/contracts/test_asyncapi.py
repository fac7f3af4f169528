"""`GET /api/asyncapi` against the official AsyncAPI 3.0.0 JSON Schema (vendored from npm's
@asyncapi/specs, Apache-2.0: see LICENSE and NOTICE beside it), and what it promises."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7

from events.catalog import EVENT_TYPES
from events.cloudevent import structured
from tests.conftest import client_for
from tests.contracts.checks import parse_and_validate
from tests.contracts.samples import record_samples

ASYNCAPI_SCHEMA = json.loads((Path(__file__).parent / "asyncapi" / "3.0.0.json").read_text())

pytestmark = pytest.mark.django_db


def asyncapi_errors(document: dict) -> list[str]:
    # Every definition carries its own $id (http://asyncapi.com/definitions/3.0.0/...), found
    # inside the one file: nothing is fetched.
    registry = Registry().with_resource(
        ASYNCAPI_SCHEMA["$id"], DRAFT7.create_resource(ASYNCAPI_SCHEMA)
    )
    validator = Draft7Validator(ASYNCAPI_SCHEMA, registry=registry)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
        for e in validator.iter_errors(document)
    ]


@pytest.fixture
def document(settings):
    settings.EVENT_BUS_URL = "amqp://user:pw-4711@rabbitmq.internal:5672//"
    response = client_for(None).get("/api/asyncapi")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/json"
    return response.json()


def test_the_document_is_valid_asyncapi_3(document):
    assert document["asyncapi"] == "3.0.0"
    assert asyncapi_errors(document) == []


def test_an_invalid_document_is_caught_by_the_official_schema(document):
    del document["channels"]["bus"]["address"]
    document["operations"]["publishEvents"]["action"] = "publish"  # AsyncAPI 2's word

    assert asyncapi_errors(document) != []


def test_every_catalog_type_is_a_message_on_the_bus_and_the_webhooks(document):
    types = sorted(EVENT_TYPES)
    messages = document["components"]["messages"]
    for name in ("bus", "webhooks"):
        assert sorted(document["channels"][name]["messages"]) == types
    for event_type in types:
        message = messages[event_type]
        assert message["contentType"] == "application/cloudevents+json"
        assert message["x-event-version"] == EVENT_TYPES[event_type].version
        data = message["payload"]["properties"]["data"]["$ref"]
        assert data == f"#/components/schemas/{event_type}.v{EVENT_TYPES[event_type].version}"
        assert message["bindings"]["amqp"]["messageType"] == event_type
    assert document["channels"]["bus"]["parameters"]["eventType"]["enum"] == types
    amqp = document["channels"]["bus"]["bindings"]["amqp"]
    assert (amqp["is"], amqp["exchange"]["type"]) == ("routingKey", "topic")
    # The password of EVENT_BUS_URL never appears.
    assert document["servers"]["bus"]["host"] == "rabbitmq.internal:5672"
    assert "pw-4711" not in json.dumps(document)


def test_the_websocket_streams_their_query_and_frames(document):
    channels = document["channels"]
    assert channels["dispatchStream"]["address"] == "/ws/dispatch/"
    assert channels["contractorStream"]["address"] == "/ws/contractor/"
    query = {
        name: sorted(channels[name]["bindings"]["ws"]["query"]["properties"])
        for name in ("dispatchStream", "contractorStream")
    }
    assert query == {
        "dispatchStream": ["after", "regions", "token"],
        "contractorStream": ["after", "token"],
    }
    messages = document["components"]["messages"]
    kinds = {
        key: messages[key]["payload"]["properties"]["kind"]["const"]
        for key in ("eventFrame", "replayedFrame", "errorFrame", "pongFrame", "pingFrame")
    }
    assert kinds == {
        "eventFrame": "event",
        "replayedFrame": "replayed",
        "errorFrame": "error",
        "pongFrame": "pong",
        "pingFrame": "ping",
    }
    operations = document["operations"]
    assert operations["dispatchPing"]["action"] == "receive"
    assert operations["dispatchFrames"]["action"] == "send"
    assert document["servers"]["api"]["protocol"] == "ws"


def test_the_document_is_public_like_the_openapi_schema():
    response = client_for(None).get("/api/asyncapi")

    assert response.status_code == 200
    assert client_for(None).post("/api/asyncapi").status_code == 405


def test_the_api_docs_link_to_the_asyncapi_document():
    schema = client_for(None).get("/api/schema", HTTP_ACCEPT="application/json").json()

    assert schema["externalDocs"]["url"] == "/api/asyncapi"
    assert "(/api/asyncapi)" in schema["info"]["description"]


@pytest.mark.django_db
def test_a_cloudevent_that_breaks_its_message_schema_is_caught(document):
    [event] = record_samples([EVENT_TYPES["JobCreated"]])
    body = json.loads(structured(event))
    assert parse_and_validate(json.dumps(body), document)["type"] == "JobCreated"

    for broken in (
        {**body, "sequence": "12"},  # not zero-padded
        {**body, "subject": "invoice/3"},
        {**body, "data": {**body["data"], "durationMinutes": "long"}},
    ):
        with pytest.raises(AssertionError):
            parse_and_validate(json.dumps(broken), document)
