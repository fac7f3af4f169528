"""The EventLog, which is also the transactional outbox.

Invariant: a row is written in the same database transaction as the change it describes (see
`events.recorder.record_event`), so an event exists if and only if its change committed. Rows are
never updated except for their delivery state; `sequence` orders events but may commit out of
order, so delivery claims rows by state, never by an `id > last_seen` cursor.
"""

import uuid

from django.db import models


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    DEAD = "dead", "Dead"


class Event(models.Model):
    sequence = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=64)
    version = models.PositiveSmallIntegerField(default=1)
    aggregate_type = models.CharField(max_length=32)
    aggregate_id = models.CharField(max_length=64)
    payload = models.JSONField()
    groups = models.JSONField(default=list, help_text="Logical group names, e.g. dispatch/north.")
    occurred_at = models.DateTimeField()

    # Delivery state, owned by the relay.
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    available_at = models.DateTimeField(help_text="Not claimed before this time (retry backoff).")
    claimed_by = models.CharField(max_length=128, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["sequence"]
        indexes = [
            models.Index(
                fields=["available_at", "sequence"],
                name="event_pending_idx",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["aggregate_type", "aggregate_id", "sequence"]),
            models.Index(fields=["type", "sequence"]),
            # Resume (events.resume) looks for events delivered after a point in time.
            models.Index(fields=["delivered_at"], name="event_delivered_at_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.type} {self.aggregate_type}:{self.aggregate_id}"

    @property
    def aggregate(self) -> str:
        return f"{self.aggregate_type}:{self.aggregate_id}"


class EventGroup(models.Model):
    """One row per (event, logical group): what the EventLog is filtered and resumed by."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="group_rows")
    group = models.CharField(max_length=100)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "event"], name="event_group_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.group} <- #{self.event_id}"


class HandlerReceipt(models.Model):
    """A handler has processed an event. Committed in the same transaction as the handler's
    database effects, so a redelivered event never applies a handler twice."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="receipts")
    handler = models.CharField(max_length=100)
    processed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "handler"], name="receipt_once_per_handler"),
        ]

    def __str__(self) -> str:
        return f"{self.handler} <- #{self.event_id}"
