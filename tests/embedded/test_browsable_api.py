"""The browsable API answers a browser on every endpoint (`scripts/run` turns it on with DEBUG):
each path of the OpenAPI schema, fetched with `Accept: text/html` by an admin, renders its page
(200, or the page of a 405 for endpoints that take no GET), never a 500."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from events.catalog import EVENT_TYPES
from events.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import make_user
from tests.contractors.factories import ContractorFactory, RegionFactory, TimeOffFactory
from tests.contracts.samples import record_samples
from tests.scheduling.factories import JobFactory

pytestmark = pytest.mark.django_db

QUERIES = {"/api/contractors/{id}/availability": "?from={day}&to={day}&duration=60"}


def schema_paths() -> dict[str, list[str]]:
    paths = SchemaGenerator().get_schema(public=True)["paths"]
    return {path: list(operations) for path, operations in paths.items()}


def test_every_endpoint_renders_its_browsable_page():
    RegionFactory()
    contractor = ContractorFactory()
    job = JobFactory()
    start = datetime.now(UTC) + timedelta(days=30)
    time_off = TimeOffFactory(contractor=contractor, start=start, end=start + timedelta(days=1))
    hook = WebhookEndpoint.objects.create(url="https://hooks.example.com/in", secret="whsec_x")
    [event] = record_samples([EVENT_TYPES["JobCreated"]])
    delivery = WebhookDelivery.objects.create(
        endpoint=hook, event=event, attempted_at=datetime.now(UTC), status_code=204, ok=True
    )
    browser = Client(raise_request_exception=False)
    browser.force_login(make_user("root", role="admin"))
    day = (datetime.now(UTC) + timedelta(days=7)).date().isoformat()

    paths = schema_paths()
    assert {"/api/jobs", "/api/contractors", "/api/regions", "/api/jobs/{id}"} <= set(paths)
    for path, operations in paths.items():
        owner = {"/api/jobs": job.pk, "/api/webhooks": hook.pk}
        ids = {
            "{id}": next((pk for p, pk in owner.items() if path.startswith(p)), contractor.pk),
            "{delivery_id}": delivery.pk,
            "{time_off_id}": time_off.pk,
        }
        url = path
        for name, value in ids.items():
            url = url.replace(name, str(value))
        url += QUERIES.get(path, "").format(day=day)
        response = browser.get(url, HTTP_ACCEPT="text/html")
        if "get" in operations:  # every list and detail endpoint: its page
            assert response.status_code == 200, (url, response.content[:500])
            assert response["Content-Type"].startswith("text/html"), url
            assert b"<html" in response.content.lower(), url
        elif path == "/api/auth/logout":  # token-only: a browser's session is not asked
            assert response.status_code == 401, (url, response.content[:500])
        else:  # write-only endpoints: a 405, as a page or (the token endpoint) as JSON
            assert response.status_code == 405, (url, response.content[:500])
            if response["Content-Type"].startswith("application/json"):
                assert "detail" in json.loads(response.content), url
            else:
                assert b"<html" in response.content.lower(), url
