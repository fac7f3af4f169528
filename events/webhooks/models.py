"""Webhook endpoints and every attempt to deliver an event to one.

Invariant: the secret is never returned by a read (only by the create and rotate services);
during a rotation the previous secret signs too, until `previous_secret_expires_at`.
"""

from django.db import models

from events.models import Event


class WebhookEndpoint(models.Model):
    url = models.URLField(max_length=2000)
    event_types = models.JSONField(default=list, blank=True, help_text="Empty: every type.")
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=500, blank=True, default="")
    secret = models.CharField(max_length=100, editable=False)
    previous_secret = models.CharField(max_length=100, blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"webhook #{self.pk} {self.url}"


class WebhookDelivery(models.Model):
    """One HTTP attempt (or one refused before sending: `status_code` null, `error` set)."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="webhook_deliveries")
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    ok = models.BooleanField(default=False)
    manual = models.BooleanField(default=False, help_text="Sent again by an operator.")

    class Meta:
        ordering = ["-attempted_at", "-id"]
        indexes = [models.Index(fields=["endpoint", "-attempted_at"])]

    def __str__(self) -> str:
        return f"{self.endpoint_id} <- #{self.event_id} {self.status_code or self.error[:40]}"
