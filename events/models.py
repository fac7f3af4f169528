"""The EventLog, which is also the transactional outbox, and each subscriber's progress through it.

Invariants:
- An event row is written in the same database transaction as the change it describes
  (`events.recorder.record_event`), so an event exists if and only if its change committed.
- `id` is the order of recording, which is *not* the order of commit. `sequence` is the order of
  publication: it is null when the row is written and is assigned after commit by the publisher
  (`events.publisher.publish`), one transaction at a time, in the order rows became visible. So
  any reader sees published sequences as a gap-free prefix, and a cursor `sequence > S` (a
  subscriber's position, a websocket resume, `/api/events?after=`) can never skip an event
  that commits late.
- An event's payload, groups and sequence never change once written; rows are only removed by
  retention (`events.retention`), never while a subscriber still needs them.
- Each subscriber (a handler, the broadcast, the message bus, a webhook endpoint) keeps its own
  `position`: every published event up to it has been handled, or has a `FailedDelivery` row
  for that subscriber. Subscribers never wait for one another.
"""

import uuid

from django.db import models


class Event(models.Model):
    id = models.BigAutoField(primary_key=True)
    sequence = models.BigIntegerField(
        null=True, blank=True, unique=True, help_text="Publication order; null until published."
    )
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=64)
    version = models.PositiveSmallIntegerField(default=1)
    aggregate_type = models.CharField(max_length=32)
    aggregate_id = models.CharField(max_length=64)
    payload = models.JSONField()
    groups = models.JSONField(default=list, help_text="Logical group names, e.g. dispatch/north.")
    occurred_at = models.DateTimeField()
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["sequence"]
        indexes = [
            # The publisher's work list: only rows not yet published are in this index.
            models.Index(
                fields=["id"], name="event_unpublished_idx", condition=models.Q(sequence=None)
            ),
            models.Index(
                fields=["aggregate_type", "aggregate_id", "sequence"],
                name="event_aggregate_seq_idx",
            ),
            models.Index(fields=["type", "sequence"], name="event_type_seq_idx"),
            # Retention walks the oldest events first.
            models.Index(fields=["occurred_at"], name="event_occurred_at_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence or '-'} {self.type} {self.aggregate_type}:{self.aggregate_id}"

    @property
    def aggregate(self) -> str:
        return f"{self.aggregate_type}:{self.aggregate_id}"


class EventGroup(models.Model):
    """One row per (published event, logical group), written when the event is published.

    What the EventLog is filtered and resumed by: `(group, sequence)` serves a resume and a
    page of `/api/events` for a group with one index range scan, `(group, type, sequence)` the
    same with a type filter, whatever the size of the log.
    """

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="group_rows")
    group = models.CharField(max_length=100)
    sequence = models.BigIntegerField()
    type = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "event"], name="event_group_unique"),
        ]
        indexes = [
            models.Index(fields=["group", "sequence"], name="event_group_seq_idx"),
            models.Index(fields=["group", "type", "sequence"], name="event_group_type_seq_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.group} <- #{self.sequence}"


class Subscriber(models.Model):
    """One consumer of the EventLog and how far it got (a Kafka consumer group's offset).

    `owner` holds a lease stamped with the database's clock; only the owner delivers, and it
    advances `position` only while it still owns the lease (the update is fenced on both), so
    two relays never both advance one subscriber.
    """

    name = models.CharField(max_length=100, primary_key=True)
    position = models.BigIntegerField(default=0)
    owner = models.CharField(max_length=128, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    progressed_at = models.DateTimeField(null=True, blank=True)
    outage_since = models.DateTimeField(
        null=True, blank=True, help_text="Its store has been unreachable since then."
    )
    outage_error = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"


class FailedDelivery(models.Model):
    """An event one subscriber failed to handle: retried with backoff, then dead.

    Dead is dead for this subscriber only; every other subscriber has moved on.
    """

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="failures")
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="failures")
    attempts = models.PositiveIntegerField(default=1)
    dead = models.BooleanField(default=False)
    next_attempt_at = models.DateTimeField()
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    last_error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "event"], name="failed_delivery_once_per_subscriber"
            ),
        ]
        indexes = [
            models.Index(
                fields=["subscriber", "next_attempt_at"],
                name="failed_delivery_due_idx",
                condition=models.Q(dead=False),
            ),
        ]
        verbose_name_plural = "failed deliveries"

    def __str__(self) -> str:
        state = "dead" if self.dead else f"retry {self.attempts}"
        return f"{self.subscriber_id} #{self.event_id} ({state})"


class RelayInstance(models.Model):
    """A running relay process, seen by its heartbeat: relays split the subscribers between
    the live ones. A relay dedicated to some subscribers (`serves`) delivers only those, and
    the others leave them to it while it lives."""

    name = models.CharField(max_length=128, primary_key=True)
    heartbeat_at = models.DateTimeField()
    started_at = models.DateTimeField()
    serves = models.JSONField(
        default=list, blank=True, help_text="The subscribers it is dedicated to; empty: all."
    )

    def __str__(self) -> str:
        return self.name


class PrunedThrough(models.Model):
    """The highest sequence retention has removed (one row): a cursor below it may have
    missed removed events, so it gets 410 / `unknown_sequence` instead of a silent gap."""

    sequence = models.BigIntegerField(default=0)
    pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "pruned through"

    def __str__(self) -> str:
        return f"pruned through #{self.sequence}"
