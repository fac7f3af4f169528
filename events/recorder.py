"""record_event: the one way a state change becomes a domain event.

Invariant: it writes inside the caller's transaction and nowhere else (no Redis, no relay, no
handler), so the event commits with its change or not at all, and recording never makes the
request wait on anything but the database. The row is unpublished (no `sequence`) until the
publisher numbers it after commit (events.publisher).
"""

from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from events.catalog import DomainEvent
from events.models import Event
from events.publisher import wakeups
from events.timefmt import iso_utc

NOTIFY_CHANNEL = "smartscheduler_events"


class NotInTransaction(RuntimeError):
    pass


def record_event(event: DomainEvent, *, occurred_at: datetime | None = None) -> Event:
    if not transaction.get_connection().in_atomic_block:
        raise NotInTransaction(f"record_event({event.type}) must run inside transaction.atomic")
    now = occurred_at or timezone.now()
    row = Event.objects.create(
        type=event.type,
        version=event.version,
        aggregate_type=event.aggregate_type,
        aggregate_id=event.aggregate_id(),
        payload={**event.payload(), "timestamp": iso_utc(now)},
        groups=event.groups(),
        occurred_at=now,
    )
    if connection.vendor == "postgresql":
        # Delivered by PostgreSQL at commit (and dropped on rollback): wakes the relays.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [NOTIFY_CHANNEL])
    # The publisher of a relay in this process (the embedded default) wakes at once, after
    # commit; the subscribers wake when it has published.
    transaction.on_commit(lambda: wakeups.bump(frozenset()))
    return row
