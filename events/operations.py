"""What operators do with the EventLog: look at its state, inspect dead events, replay.

Replaying resets delivery state only; receipts decide what re-runs. A dead event re-runs just
the handlers that had not processed it; `--handler` (or a sequence range) also clears receipts
so the named handlers run again, which is safe because handlers are idempotent.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from events import handlers
from events.models import DeliveryStatus, Event, HandlerReceipt


@dataclass(frozen=True)
class Status:
    pending: int
    in_flight: int
    dead: int
    delivered: int
    oldest_pending_age: timedelta | None
    by_type: dict[str, dict[str, int]]


def status() -> Status:
    now = timezone.now()
    by_type: dict[str, dict[str, int]] = {}
    totals = {s: 0 for s in DeliveryStatus.values}
    for row in Event.objects.values("type", "status").annotate(n=Count("sequence")):
        by_type.setdefault(row["type"], {})[row["status"]] = row["n"]
        totals[row["status"]] += row["n"]
    pending = Event.objects.filter(status=DeliveryStatus.PENDING)
    oldest = pending.aggregate(first=Min("occurred_at"))["first"]
    in_flight = pending.filter(claimed_by__gt="", lease_expires_at__gt=now).count()
    return Status(
        pending=totals[DeliveryStatus.PENDING],
        in_flight=in_flight,
        dead=totals[DeliveryStatus.DEAD],
        delivered=totals[DeliveryStatus.DELIVERED],
        oldest_pending_age=(now - oldest) if oldest else None,
        by_type=by_type,
    )


def dead_events(limit: int = 100) -> list[Event]:
    return list(Event.objects.filter(status=DeliveryStatus.DEAD).order_by("sequence")[:limit])


def receipts_of(event: Event) -> list[str]:
    return sorted(event.receipts.values_list("handler", flat=True))


@transaction.atomic
def replay(
    *,
    dead: bool = False,
    first: int | None = None,
    last: int | None = None,
    handler: str | None = None,
) -> int:
    """Make events pending again; returns how many. Raises KeyError for an unknown handler."""
    if handler is not None:
        handlers.subscription(handler)
    selection = Q()
    if dead:
        selection &= Q(status=DeliveryStatus.DEAD)
    if first is not None:
        selection &= Q(sequence__gte=first)
    if last is not None:
        selection &= Q(sequence__lte=last)
    chosen = Event.objects.filter(selection).exclude(
        # Never steal a batch a live relay is delivering right now.
        status=DeliveryStatus.PENDING,
        lease_expires_at__gt=timezone.now(),
    )
    sequences = list(chosen.values_list("sequence", flat=True))
    if not sequences:
        return 0
    receipts = HandlerReceipt.objects.filter(event_id__in=sequences)
    if handler is not None:
        receipts.filter(handler=handler).delete()
    elif not dead:
        receipts.delete()  # a range replay re-runs every handler
    Event.objects.filter(sequence__in=sequences).update(
        status=DeliveryStatus.PENDING,
        attempts=0,
        available_at=timezone.now(),
        claimed_by="",
        lease_expires_at=None,
        last_error="",
        delivered_at=None,
    )
    return len(sequences)
