"""The bench-only URLs (bench/urls.py, loaded by bench/settings_bench.py): the booking scenario's
floor is an authenticated DRF endpoint that does nothing, beside the product's URLs, never among
them."""

import json

import pytest
from django.urls import NoReverseMatch, reverse
from rest_framework.test import APIClient

from tests.conftest import token_for

BODY = json.dumps({"contractorId": 1, "start": "2030-01-01T09:00Z", "end": "2030-01-01T11:00Z"})


@pytest.fixture
def bench_urls(settings):
    settings.ROOT_URLCONF = "bench.urls"


@pytest.mark.django_db
def test_the_bare_endpoint_answers_an_authenticated_post_and_refuses_anonymous(
    bench_urls, dispatcher
):
    client = APIClient()
    anonymous = client.post("/bench/bare/7/assign", BODY, content_type="application/json")
    assert anonymous.status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(dispatcher)}")
    answer = client.post("/bench/bare/7/assign", BODY, content_type="application/json")
    assert answer.status_code == 201
    assert answer.json() == {"jobId": 7, "received": ["contractorId", "end", "start"]}
    # The product's URLs are all there too.
    assert client.get("/healthz").status_code == 200


def test_the_product_urls_have_no_bench_endpoint():
    with pytest.raises(NoReverseMatch):
        reverse("bench-bare", args=[1])
