"""Sending events to one webhook endpoint, and the relay subscriptions that do it.

Invariants:
- Every attempt is a WebhookDelivery row (sent or refused), written after the HTTP exchange,
  never inside a transaction held across it.
- A batch goes in sequence order and stops at the first failure (the rest are reported failed,
  not attempted), so an endpoint sees its events in order and a dead one costs one timeout.
- Only a 2xx counts. A 410 Gone disables the endpoint: nothing more is sent to it until an
  admin activates it again. An inactive endpoint is sent nothing (its batch counts as done).
- Each endpoint is its own relay subscriber (`webhooks.endpoint.<id>`), so one endpoint's outage
  or slowness delays no other subscriber; retries follow WEBHOOK_RETRY_SCHEDULE.
"""

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from events.cloudevent import CONTENT_TYPE, structured
from events.handlers import ALL_TYPES, PartialFailure, Subscription
from events.models import Event
from events.webhooks.addresses import AddressRefused, check_url
from events.webhooks.models import WebhookDelivery, WebhookEndpoint

# Seconds to wait before each retry of a failed event: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
# (the Standard Webhooks example schedule): 8 attempts over 27 h 35 min, then the event is dead
# for that endpoint (docs/webhooks.md: replay, redeliver).
WEBHOOK_RETRY_SCHEDULE: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
SUBSCRIPTION_PREFIX = "webhooks.endpoint."
USER_AGENT = "SmartScheduler-Webhooks/1"
ERROR_BODY_CHARS = 200

log = logging.getLogger("events.webhooks")


class WebhookDeliveryFailed(PartialFailure):
    """Some events of a batch were not accepted by the endpoint (the relay retries them on the
    endpoint's schedule; the others were delivered)."""

    def __init__(self, endpoint_id: int, failures: dict[int, str]) -> None:
        first = min(failures)
        super().__init__(
            failures,
            f"webhook #{endpoint_id}: {len(failures)} event(s) not delivered; "
            f"#{first}: {failures[first]}",
        )


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def signed_headers(endpoint: WebhookEndpoint, event: Event, body: bytes, now: datetime) -> dict:
    msg_id = str(event.event_id)
    text = body.decode()
    signatures = " ".join(
        Webhook(secret).sign(msg_id=msg_id, timestamp=now, data=text)
        for secret in signing_secrets(endpoint, now)
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
        "content-type": CONTENT_TYPE,
        "user-agent": USER_AGENT,
    }


def attempt(endpoint: WebhookEndpoint, event: Event, *, manual: bool = False) -> WebhookDelivery:
    """POST `event` to `endpoint` once and record the attempt (a 410 disables the endpoint)."""
    now = timezone.now()
    started = time.monotonic()
    status_code, error = None, ""
    try:
        check_url(endpoint.url)  # again at send time: DNS may have changed since it was saved
        body = structured(event)
        timeout = settings.WEBHOOKS_TIMEOUT_SECONDS
        response = httpx.post(
            endpoint.url,
            content=body,
            headers=signed_headers(endpoint, event, body, now),
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
        )
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}: {response.text[:ERROR_BODY_CHARS]}".strip()
    except AddressRefused as exc:
        error = f"refused: {exc}"
    except httpx.TimeoutException as exc:
        error = f"timeout after {settings.WEBHOOKS_TIMEOUT_SECONDS:g}s ({type(exc).__name__})"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event=event,
        attempted_at=now,
        status_code=status_code,
        duration_ms=round((time.monotonic() - started) * 1000),
        error=error,
        ok=not error,
        manual=manual,
    )
    if status_code == 410:
        disable_gone(endpoint)
    return delivery


def disable_gone(endpoint: WebhookEndpoint) -> None:
    reason = f"410 Gone at {timezone.now().isoformat(timespec='seconds')}"
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        active=False, disabled_reason=reason, updated_at=timezone.now()
    )
    endpoint.active, endpoint.disabled_reason = False, reason
    log.warning("webhook #%s disabled: the endpoint answered 410 Gone", endpoint.pk)


def wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    return not endpoint.event_types or event_type in endpoint.event_types


def send_batch(endpoint: WebhookEndpoint, events: Iterable[Event]) -> dict[int, str]:
    """Deliver `events` (sequence order) to `endpoint`, recording each attempt.

    Returns {event.sequence: error} for the events that were not accepted (empty: all 2xx).
    Events of types the endpoint did not ask for are skipped (not failures); an inactive
    endpoint is sent nothing and reports nothing failed. After the first failure the rest are
    not attempted and are reported failed, so the endpoint keeps receiving in order.
    """
    failures: dict[int, str] = {}
    for event in sorted(events, key=lambda e: e.sequence):
        if failures:
            failures[event.sequence] = f"not attempted: #{min(failures)} failed first"
            continue
        if not endpoint.active or not wants(endpoint, event.type):
            continue
        delivery = attempt(endpoint, event)
        if not delivery.ok:
            failures[event.sequence] = delivery.error
    return failures


def subscription_name(endpoint_id: int) -> str:
    return f"{SUBSCRIPTION_PREFIX}{endpoint_id}"


def _handler(endpoint_id: int):
    def deliver(events: list[Event]) -> None:
        endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
        if endpoint is None:  # deleted since the subscriptions were built
            return
        failures = send_batch(endpoint, events)
        if failures:
            raise WebhookDeliveryFailed(endpoint_id, failures)

    deliver.__qualname__ = f"deliver_to_webhook_{endpoint_id}"
    return deliver


def webhook_subscriptions() -> list[Subscription]:
    """One relay subscriber per active endpoint, named `webhooks.endpoint.<id>`, for the types
    it asked for (all when none), non-transactional (an HTTP call is a network effect)."""
    return [
        Subscription(
            name=subscription_name(endpoint.pk),
            types=frozenset(endpoint.event_types or [ALL_TYPES]),
            func=_handler(endpoint.pk),
            transactional=False,
            retry_schedule=tuple(float(delay) for delay in WEBHOOK_RETRY_SCHEDULE),
            starts_at="end",  # a new endpoint gets the events published from then on
        )
        for endpoint in WebhookEndpoint.objects.filter(active=True).order_by("pk")
    ]


def retry_delay(attempts: int) -> timedelta | None:
    """The wait after the `attempts`-th failed attempt (1-based), None when none is left."""
    if attempts < 1 or attempts > len(WEBHOOK_RETRY_SCHEDULE):
        return None
    return timedelta(seconds=WEBHOOK_RETRY_SCHEDULE[attempts - 1])
