"""Webhook endpoints: every write goes through here. Configuration changes record no domain
event (they change no scheduling state); the secret is returned only by `create_endpoint` and
`rotate_secret`."""

import base64
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from events.catalog import EVENT_TYPES
from events.errors import Invalid, NotFound
from events.models import Subscriber
from events.publisher import head
from events.webhooks.addresses import AddressRefused, check_url
from events.webhooks.delivery import attempt, subscription_name
from events.webhooks.models import WebhookDelivery, WebhookEndpoint

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
UNSET = object()


@dataclass(frozen=True)
class EndpointWithSecret:
    endpoint: WebhookEndpoint
    secret: str


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _validate(url: str | None, event_types: list[str] | None) -> None:
    errors: dict[str, list[str]] = {}
    if url is not None:
        try:
            check_url(url)
        except AddressRefused as exc:
            errors["url"] = [str(exc)]
    if event_types is not None:
        unknown = sorted(set(event_types) - set(EVENT_TYPES))
        if unknown:
            errors["eventTypes"] = [f"Unknown event type(s): {', '.join(unknown)}."]
    if errors:
        raise Invalid(errors)


def _get(endpoint_id: int, *, lock: bool = False) -> WebhookEndpoint:
    qs = WebhookEndpoint.objects.select_for_update() if lock else WebhookEndpoint.objects
    try:
        return qs.get(pk=endpoint_id)
    except WebhookEndpoint.DoesNotExist:
        raise NotFound(f"No webhook endpoint {endpoint_id}.") from None


def create_endpoint(
    *, url: str, event_types: list[str], active: bool = True, description: str = ""
) -> EndpointWithSecret:
    _validate(url, event_types)
    secret = new_secret()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            url=url,
            event_types=sorted(set(event_types)),
            active=active,
            description=description,
            secret=secret,
        )
        # Its own subscriber from now on: every event published after this moment, whenever
        # a relay first picks the endpoint up.
        Subscriber.objects.create(name=subscription_name(endpoint.pk), position=head())
    return EndpointWithSecret(endpoint, secret)


def update_endpoint(
    *,
    endpoint_id: int,
    url: str | None = None,
    event_types: list[str] | None = None,
    active: bool | None = None,
    description: str | None = None,
) -> WebhookEndpoint:
    _validate(url, event_types)
    with transaction.atomic():
        endpoint = _get(endpoint_id, lock=True)
        if url is not None:
            endpoint.url = url
        if event_types is not None:
            endpoint.event_types = sorted(set(event_types))
        if description is not None:
            endpoint.description = description
        if active is not None:
            endpoint.active = active
            if active:
                endpoint.disabled_reason = ""
        endpoint.save()
    return endpoint


def delete_endpoint(*, endpoint_id: int) -> None:
    with transaction.atomic():
        _get(endpoint_id, lock=True).delete()
        # Its position and failed deliveries go with it.
        Subscriber.objects.filter(name=subscription_name(endpoint_id)).delete()


def rotate_secret(*, endpoint_id: int) -> EndpointWithSecret:
    """A new secret; the previous one keeps signing (beside it) for the grace period."""
    with transaction.atomic():
        endpoint = _get(endpoint_id, lock=True)
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = timezone.now() + timedelta(
            hours=settings.WEBHOOKS_ROTATION_GRACE_HOURS
        )
        endpoint.secret = new_secret()
        endpoint.save()
    return EndpointWithSecret(endpoint, endpoint.secret)


def redeliver(*, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    """Send the event of an earlier attempt once more, now (even to an inactive endpoint: an
    operator asked), and return the new attempt. No transaction is held across the request."""
    endpoint = _get(endpoint_id)
    earlier = (
        WebhookDelivery.objects.select_related("event")
        .filter(pk=delivery_id, endpoint=endpoint)
        .first()
    )
    if earlier is None:
        raise NotFound(f"No delivery {delivery_id} for webhook endpoint {endpoint_id}.")
    return attempt(endpoint, earlier.event, manual=True)
