"""Outgoing webhooks (events/webhooks/) against a real HTTP receiver on 127.0.0.1.

The receiver is what a consumer would run: it verifies each request with the Standard Webhooks
library and parses the body with the CloudEvents SDK, validating its data against the AsyncAPI
document's schema. It can fail on purpose (an HTTP status, a slow answer) and go away. Sending
to 127.0.0.1 is allowed only through WEBHOOKS_ALLOW_PRIVATE=true; the address checks themselves
are tested with name resolution mocked (the outside world).
"""

import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from events.catalog import EVENT_TYPES
from events.handlers import ALL_TYPES
from events.publisher import publish_all
from events.relay import Relay
from events.webhooks import services
from events.webhooks.addresses import AddressRefused, check_url
from events.webhooks.delivery import (
    WEBHOOK_RETRY_SCHEDULE,
    WebhookDeliveryFailed,
    send_batch,
    webhook_subscriptions,
)
from events.webhooks.models import WebhookDelivery, WebhookEndpoint
from scheduling.services import assign_job
from tests.conftest import at, client_for, events_of, next_weekday
from tests.contractors.factories import ContractorFactory
from tests.contracts.checks import parse_and_validate
from tests.contracts.samples import record_samples
from tests.events.support import create_jobs, failures, nothing_pending, positions

pytestmark = pytest.mark.django_db

NY = ZoneInfo("America/New_York")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook consumer on 127.0.0.1: `status` to answer, `delay` before answering."""

    status: int = 204
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    port: int = 0

    def start(self, port: int = 0) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(Received(dict(self.headers.items()), body))
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"no")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def verified(self, secret: str) -> list[dict]:
        """Every request verified with `secret` and parsed as a consumer would."""
        document = client_for(None).get("/api/asyncapi").json()
        out = []
        for request in self.received:
            Webhook(secret).verify(request.body, request.headers)
            assert request.headers["content-type"] == "application/cloudevents+json"
            event = parse_and_validate(request.body, document)
            assert request.headers["webhook-id"] == event["id"]
            out.append(event)
        return out


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    settings.WEBHOOKS_TIMEOUT_SECONDS = 0.5
    server = Receiver().start()
    yield server
    server.stop()


def published(*types: str):
    """The events recorded so far, published (as the relay does right after commit)."""
    publish_all()
    return events_of(*types)


def deliveries(endpoint) -> list[tuple]:
    return [
        (d.event.type, d.status_code, d.ok, d.error[:30])
        for d in WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id")
    ]


# --- sending --------------------------------------------------------------------------------


def test_a_batch_reaches_the_endpoint_signed_as_cloudevents_in_order(receiver):
    created = services.create_endpoint(url=receiver.url, event_types=[])
    create_jobs(3)
    events = published()

    assert send_batch(created.endpoint, events) == {}

    got = receiver.verified(created.secret)
    assert [(e["id"], e["type"], int(e["sequence"])) for e in got] == [
        (str(e.event_id), e.type, e.sequence) for e in events
    ]
    assert [e["data"] for e in got] == [e.payload for e in events]
    assert deliveries(created.endpoint) == [("JobCreated", 204, True, "")] * 3
    assert created.secret.startswith("whsec_")


def test_every_catalog_type_arrives_verifiable_and_valid(receiver):
    created = services.create_endpoint(url=receiver.url, event_types=[])
    recorded = record_samples(EVENT_TYPES.values())

    assert send_batch(created.endpoint, recorded) == {}

    got = receiver.verified(created.secret)
    assert sorted(e["type"] for e in got) == sorted(EVENT_TYPES)
    assert [e["data"] for e in got] == [e.payload for e in recorded]


def test_an_endpoint_receives_only_the_types_it_asked_for(receiver):
    only = services.create_endpoint(url=receiver.url, event_types=["JobAssigned"])
    create_jobs(2)

    assert send_batch(only.endpoint, published()) == {}
    assert receiver.received == []
    assert deliveries(only.endpoint) == []
    [subscription] = webhook_subscriptions()
    assert (subscription.name, subscription.types, subscription.transactional) == (
        f"webhooks.endpoint.{only.endpoint.pk}",
        frozenset({"JobAssigned"}),
        False,
    )


def test_only_2xx_counts_and_the_rest_of_the_batch_waits_behind_the_failure(receiver):
    created = services.create_endpoint(url=receiver.url, event_types=[])
    create_jobs(3)
    first, second, third = published()
    receiver.status = 500

    failures = send_batch(created.endpoint, [third, first, second])  # sent in sequence order

    assert failures == {
        first.sequence: "HTTP 500: no",
        second.sequence: f"not attempted: #{first.sequence} failed first",
        third.sequence: f"not attempted: #{first.sequence} failed first",
    }
    assert deliveries(created.endpoint) == [("JobCreated", 500, False, "HTTP 500: no")]
    receiver.status = 302  # a redirect is not followed, and not a success either
    assert send_batch(created.endpoint, [first]) == {first.sequence: "HTTP 302: no"}


def test_a_slow_endpoint_times_out_in_seconds(receiver):
    created = services.create_endpoint(url=receiver.url, event_types=[])
    create_jobs(1)
    receiver.delay = 2.0

    started = time.monotonic()
    [event] = published()
    failures = send_batch(created.endpoint, [event])

    assert time.monotonic() - started < 1.5
    assert failures == {event.sequence: "timeout after 0.5s (ReadTimeout)"}
    [delivery] = WebhookDelivery.objects.all()
    assert (delivery.status_code, delivery.ok, delivery.duration_ms >= 500) == (None, False, True)


def test_an_endpoint_that_goes_away_fails_then_gets_the_events_when_back(receiver):
    created = services.create_endpoint(url=receiver.url, event_types=[])
    create_jobs(2)
    events = published()
    port = receiver.port
    receiver.stop()

    failures = send_batch(created.endpoint, events)
    assert failures[events[0].sequence].startswith("ConnectError")
    assert len(failures) == 2

    receiver.start(port)  # back, on the same address
    assert send_batch(created.endpoint, events) == {}
    assert [e["id"] for e in receiver.verified(created.secret)] == [str(e.event_id) for e in events]


def test_a_410_disables_the_endpoint_and_nothing_more_is_sent(receiver):
    created = services.create_endpoint(url=receiver.url, event_types=[])
    create_jobs(2)
    first, second = published()
    receiver.status = 410

    failures = send_batch(created.endpoint, [first, second])

    assert list(failures) == [first.sequence, second.sequence]
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.active, endpoint.disabled_reason.startswith("410 Gone")) == (False, True)
    assert webhook_subscriptions() == []
    receiver.received.clear()
    assert send_batch(endpoint, [first, second]) == {}  # inactive: nothing sent, nothing owed
    assert receiver.received == []


def test_the_subscription_raises_when_anything_failed(receiver):
    created = services.create_endpoint(url=receiver.url, event_types=[])
    create_jobs(1)
    [subscription] = webhook_subscriptions()
    receiver.status = 503

    with pytest.raises(WebhookDeliveryFailed, match="1 event\\(s\\) not delivered"):
        subscription.func(published())
    receiver.status = 200
    subscription.func(published())  # returns: all 2xx
    assert [d.ok for d in WebhookDelivery.objects.order_by("id")] == [False, True]
    assert subscription.types == frozenset({ALL_TYPES})
    assert created.endpoint.pk == int(subscription.name.rsplit(".", 1)[1])


def test_during_a_rotation_both_secrets_sign_until_the_grace_period_ends(receiver, settings):
    created = services.create_endpoint(url=receiver.url, event_types=[])
    create_jobs(1)
    rotated = services.rotate_secret(endpoint_id=created.endpoint.pk)
    assert rotated.secret != created.secret

    send_batch(WebhookEndpoint.objects.get(), published())
    [request] = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    receiver.verified(created.secret)  # either secret verifies
    receiver.verified(rotated.secret)

    WebhookEndpoint.objects.update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    receiver.received.clear()
    send_batch(WebhookEndpoint.objects.get(), published())
    receiver.verified(rotated.secret)
    with pytest.raises(WebhookVerificationError):
        receiver.verified(created.secret)


def test_redeliver_sends_one_event_again(receiver):
    created = services.create_endpoint(url=receiver.url, event_types=[])
    create_jobs(1)
    receiver.status = 500
    send_batch(created.endpoint, published())
    [failed] = WebhookDelivery.objects.all()
    receiver.status = 200

    again = services.redeliver(endpoint_id=created.endpoint.pk, delivery_id=failed.pk)

    assert (again.ok, again.manual, again.status_code, again.event_id) == (
        True,
        True,
        200,
        failed.event_id,
    )
    assert len(receiver.verified(created.secret)) == 2


def test_the_retry_schedule_spans_more_than_a_day():
    assert WEBHOOK_RETRY_SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert sum(WEBHOOK_RETRY_SCHEDULE) >= 24 * 3600


# --- where webhooks may go ------------------------------------------------------------------


def fake_dns(monkeypatch, *addresses: str) -> None:
    def getaddrinfo(host, port, *args, **kwargs):
        family = socket.AF_INET6 if ":" in addresses[0] else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",  # loopback
        "10.1.2.3",  # private
        "172.16.0.9",
        "192.168.1.20",
        "169.254.169.254",  # link-local: cloud metadata
        "100.64.0.1",  # shared address space
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:10.0.0.1",  # IPv4-mapped private
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused_by_default(monkeypatch, address):
    fake_dns(monkeypatch, address)

    with pytest.raises(AddressRefused, match="loopback, link-local or private"):
        check_url("https://hooks.example.com/in")


def test_a_name_with_one_private_address_among_public_ones_is_refused(monkeypatch):
    fake_dns(monkeypatch, "93.184.216.34", "10.0.0.7")

    with pytest.raises(AddressRefused, match=r"\(10\.0\.0\.7\)"):
        check_url("https://hooks.example.com/in")
    fake_dns(monkeypatch, "93.184.216.34")
    check_url("https://hooks.example.com/in")  # public: fine


def test_the_check_runs_again_at_send_time(monkeypatch, receiver, settings):
    created = services.create_endpoint(url="https://hooks.example.com/in", event_types=[])
    create_jobs(1)
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    fake_dns(monkeypatch, "10.0.0.8")  # the name now points inside

    [event] = published()
    failures = send_batch(created.endpoint, [event])

    assert failures[event.sequence].startswith("refused: hooks.example.com resolves to")
    [delivery] = WebhookDelivery.objects.all()
    assert (delivery.status_code, delivery.ok) == (None, False)


# --- the API ----------------------------------------------------------------------------------


def test_admins_manage_endpoints_and_see_the_secret_once(admin_user, receiver):
    api = client_for(admin_user)

    created = api.post(
        "/api/webhooks",
        {"url": receiver.url, "eventTypes": ["JobCreated"], "description": "billing"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["secret"].startswith("whsec_")
    pk = body["id"]
    assert {k: body[k] for k in ("url", "eventTypes", "active", "description")} == {
        "url": receiver.url,
        "eventTypes": ["JobCreated"],
        "active": True,
        "description": "billing",
    }
    listed = api.get("/api/webhooks").json()
    assert [e["id"] for e in listed["results"]] == [pk]
    assert "secret" not in listed["results"][0]
    assert "secret" not in api.get(f"/api/webhooks/{pk}").json()

    patched = api.patch(f"/api/webhooks/{pk}", {"active": False, "eventTypes": []}, format="json")
    assert (patched.status_code, patched.json()["active"], patched.json()["eventTypes"]) == (
        200,
        False,
        [],
    )
    rotated = api.post(f"/api/webhooks/{pk}/rotate-secret")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] not in (body["secret"], None)

    create_jobs(1)
    services.update_endpoint(endpoint_id=pk, active=True)
    send_batch(WebhookEndpoint.objects.get(), published())
    attempts = api.get(f"/api/webhooks/{pk}/deliveries").json()["results"]
    assert [(a["eventType"], a["statusCode"], a["ok"]) for a in attempts] == [
        ("JobCreated", 204, True)
    ]
    again = api.post(f"/api/webhooks/{pk}/deliveries/{attempts[0]['id']}/redeliver")
    assert (again.status_code, again.json()["manual"]) == (201, True)

    assert api.delete(f"/api/webhooks/{pk}").status_code == 204
    assert api.get(f"/api/webhooks/{pk}").status_code == 404
    assert WebhookEndpoint.objects.count() == 0


def test_bad_input_gets_field_messages_and_writes_nothing(admin_user, monkeypatch):
    api = client_for(admin_user)
    fake_dns(monkeypatch, "192.168.0.5")

    response = api.post(
        "/api/webhooks",
        {"url": "https://intranet.example.com/x", "eventTypes": ["JobExploded"]},
        format="json",
    )

    assert response.status_code == 400
    assert set(response.json()) == {"eventTypes"}  # the serializer stops at unknown types
    response = api.post("/api/webhooks", {"url": "https://intranet.example.com/x"}, format="json")
    assert response.status_code == 400
    assert "private" in response.json()["url"][0]
    assert api.post("/api/webhooks", {"url": "ftp://x"}, format="json").status_code == 400
    assert api.patch("/api/webhooks/999", {"active": True}, format="json").status_code == 404
    assert WebhookEndpoint.objects.count() == 0


def test_only_admins_reach_the_webhook_endpoints(dispatcher, contractor_user):
    dispatcher.is_staff = True  # staff, but a dispatcher: not an admin (docs/api.md)
    dispatcher.save()
    for user in (None, dispatcher, contractor_user):
        assert client_for(user).get("/api/webhooks").status_code in (401, 403)
        assert client_for(user).post("/api/webhooks", {}, format="json").status_code in (401, 403)


# --- the admin --------------------------------------------------------------------------------


@pytest.fixture
def admin_site(client, admin_user):
    client.force_login(admin_user)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_the_admin_adds_endpoints_through_the_service_and_sends_attempts_again(
    admin_site, receiver
):
    response = admin_site.post(
        "/admin/webhooks/webhookendpoint/add/",
        {"url": receiver.url, "event_types": '["JobCreated"]', "active": "on", "description": ""},
        follow=True,
    )
    assert response.status_code == 200
    [endpoint] = WebhookEndpoint.objects.all()
    assert endpoint.event_types == ["JobCreated"]
    [shown] = [m for m in messages_of(response) if m.startswith("Secret (shown once): ")]
    secret = shown.removeprefix("Secret (shown once): ")
    assert secret == endpoint.secret

    create_jobs(1)
    receiver.status = 500
    send_batch(endpoint, published())
    [failed] = WebhookDelivery.objects.all()
    receiver.status = 200
    response = admin_site.post(
        "/admin/webhooks/webhookdelivery/",
        {"action": "send_again", "_selected_action": [failed.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert [d.ok for d in WebhookDelivery.objects.order_by("id")] == [False, True]
    assert len(receiver.verified(secret)) == 2
    assert admin_site.get("/admin/webhooks/webhookendpoint/").status_code == 200


def test_a_private_url_in_the_admin_is_refused_with_a_message(admin_site, monkeypatch):
    fake_dns(monkeypatch, "10.9.8.7")

    response = admin_site.post(
        "/admin/webhooks/webhookendpoint/add/",
        {"url": "https://hooks.example.com/in", "event_types": "[]", "description": ""},
        follow=True,
    )

    # The form comes back as typed, the reason on its field (or as a message).
    page = response.content.decode()
    assert response.status_code == 200
    assert "private" in page
    assert "https://hooks.example.com/in" in page
    assert WebhookEndpoint.objects.count() == 0


# --- through the relay: each endpoint an independent subscriber -----------------------------


def test_through_the_relay_each_endpoint_gets_its_types_and_a_dead_one_delays_no_one(
    receiver, clock
):
    gone = Receiver().start()
    gone_port = gone.port
    everything = services.create_endpoint(url=gone.url, event_types=[])
    gone.stop()  # this receiver is away for now
    assigned_only = services.create_endpoint(url=receiver.url, event_types=["JobAssigned"])
    monday = next_weekday(0)
    [job] = create_jobs(1, desired_date=monday)
    assign_job(job_id=job.pk, contractor_id=ContractorFactory().pk, start=at(monday, 10, tz=NY))

    relay = Relay(name="webhooks")
    relay.drain()

    events = published()
    [assigned] = [e for e in events if e.type == "JobAssigned"]
    got = receiver.verified(assigned_only.secret)
    assert [(e["type"], e["id"]) for e in got] == [("JobAssigned", str(assigned.event_id))]
    # The receiver that is away delays no one: every subscriber is at the head, and it alone
    # holds its events for a retry (one refused connection, the rest not attempted).
    assert set(positions().values()) == {events[-1].sequence}
    away = f"webhooks.endpoint.{everything.endpoint.pk}"
    assert failures() == [(away, e.sequence, 1, False) for e in events]

    gone.start(gone_port)  # back, on the same address, and past the first retry (5 s +-20%)
    clock.advance(7)
    relay.drain()

    assert [e["id"] for e in gone.verified(everything.secret)] == [str(e.event_id) for e in events]
    assert failures() == []
    assert nothing_pending()
    gone.stop()
