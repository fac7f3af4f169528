"""What operators do with the EventLog: look at each subscriber's state, inspect dead events,
replay them.

Dead is dead for one subscriber: every listing and replay here names the subscriber (or all of
them). A replay never moves a position; it schedules the chosen events again as failed
deliveries due now, which the owning relay retries like any other (handlers are idempotent).
Every query here reads only the lag, the failures and index look-ups, so its cost does not
grow with the size of the log.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Min
from django.utils import timezone

from events import handlers
from events.models import Event, FailedDelivery, Subscriber
from events.publisher import head as published_head

# A range replay writes one row per event and subscriber: past this, narrow the range.
MAX_REPLAY = 100_000


@dataclass(frozen=True)
class SubscriberStatus:
    name: str
    registered: bool  # subscribed in this process (a row left by a removed one is not)
    position: int
    lag: int  # published sequences after the position
    pending: int  # of those, events of the types it takes
    retrying: int
    dead: int
    oldest_pending_age: timedelta | None
    owner: str
    lease_expires_at: datetime | None
    outage_since: datetime | None
    outage_error: str


@dataclass(frozen=True)
class Status:
    head: int
    unpublished: int
    oldest_unpublished_age: timedelta | None
    subscribers: list[SubscriberStatus]

    @property
    def dead(self) -> int:
        return sum(sub.dead for sub in self.subscribers)


def status() -> Status:
    now = timezone.now()
    end = published_head()
    unpublished = Event.objects.filter(sequence=None)
    oldest_unpublished = unpublished.aggregate(first=Min("occurred_at"))["first"]
    registered = {sub.name: sub for sub in handlers.subscriptions()}
    counts = {
        (row["subscriber_id"], row["dead"]): row
        for row in FailedDelivery.objects.values("subscriber_id", "dead").annotate(
            n=Count("id"), first=Min("event__occurred_at")
        )
    }
    found = []
    for row in Subscriber.objects.order_by("name"):
        sub = registered.get(row.name)
        after = Event.objects.filter(sequence__gt=row.position)
        if sub is not None and not sub.all_types:
            after = after.filter(type__in=sorted(sub.types))
        lag = max(0, end - row.position)
        pending = lag if sub is None or sub.all_types else after.count()
        first_new = after.order_by("sequence").values_list("occurred_at", flat=True).first()
        retrying = counts.get((row.name, False), {"n": 0, "first": None})
        oldest = min([t for t in (first_new, retrying["first"]) if t is not None], default=None)
        found.append(
            SubscriberStatus(
                name=row.name,
                registered=sub is not None,
                position=row.position,
                lag=lag,
                pending=pending,
                retrying=retrying["n"],
                dead=counts.get((row.name, True), {"n": 0})["n"],
                oldest_pending_age=(now - oldest) if oldest else None,
                owner=row.owner,
                lease_expires_at=row.lease_expires_at,
                outage_since=row.outage_since,
                outage_error=row.outage_error,
            )
        )
    return Status(
        head=end,
        unpublished=unpublished.count(),
        oldest_unpublished_age=(now - oldest_unpublished) if oldest_unpublished else None,
        subscribers=found,
    )


def known_subscriber(name: str) -> None:
    """Raises KeyError (with the known names) unless `name` is a subscriber."""
    if not Subscriber.objects.filter(name=name).exists():
        known = ", ".join(Subscriber.objects.order_by("name").values_list("name", flat=True))
        raise KeyError(f"no subscriber named {name!r}; known: {known or 'none yet'}")


def dead_deliveries(*, subscriber: str | None = None, limit: int = 100) -> list[FailedDelivery]:
    found = FailedDelivery.objects.filter(dead=True).select_related("event")
    if subscriber is not None:
        found = found.filter(subscriber_id=subscriber)
    return list(found.order_by("event__sequence", "subscriber_id")[:limit])


def dead_count(*, subscriber: str | None = None) -> int:
    found = FailedDelivery.objects.filter(dead=True)
    if subscriber is not None:
        found = found.filter(subscriber_id=subscriber)
    return found.count()


@dataclass(frozen=True)
class Delivery:
    subscriber: str
    state: str  # "handled", "pending", "retrying", "dead", "not subscribed"
    attempts: int
    last_error: str


def deliveries_of(event: Event) -> list[Delivery]:
    """Where one event stands with every subscriber."""
    failures = {f.subscriber_id: f for f in FailedDelivery.objects.filter(event=event)}
    registered = {sub.name: sub for sub in handlers.subscriptions()}
    found = []
    for row in Subscriber.objects.order_by("name"):
        sub = registered.get(row.name)
        failure = failures.get(row.name)
        if failure is not None:
            state = "dead" if failure.dead else "retrying"
            found.append(Delivery(row.name, state, failure.attempts, failure.last_error))
            continue
        if sub is not None and not sub.accepts(event.type):
            state = "not subscribed"
        elif event.sequence is None or event.sequence > row.position:
            state = "pending"
        else:
            state = "handled"
        found.append(Delivery(row.name, state, 0, ""))
    return found


@transaction.atomic
def replay(
    *,
    subscriber: str | None = None,
    dead: bool = False,
    first: int | None = None,
    last: int | None = None,
) -> int:
    """Schedule events again for one subscriber or all; returns how many deliveries.

    `dead`: the dead ones. A range (`first`..`last`, sequences): every event in it of the
    types each subscriber takes, handled or not. Raises KeyError for an unknown subscriber,
    ValueError for a range too large.
    """
    if subscriber is not None:
        known_subscriber(subscriber)
    now = timezone.now()
    if dead:
        found = FailedDelivery.objects.filter(dead=True)
        if subscriber is not None:
            found = found.filter(subscriber_id=subscriber)
        if first is not None:
            found = found.filter(event__sequence__gte=first)
        if last is not None:
            found = found.filter(event__sequence__lte=last)
        return found.update(dead=False, attempts=0, next_attempt_at=now)
    registered = {sub.name: sub for sub in handlers.subscriptions()}
    names = [subscriber] if subscriber is not None else list(registered)
    events = Event.objects.exclude(sequence=None)
    if first is not None:
        events = events.filter(sequence__gte=first)
    if last is not None:
        events = events.filter(sequence__lte=last)
    rows = []
    for name in names:
        sub = registered.get(name)
        chosen = events.filter(sequence__lte=Subscriber.objects.get(name=name).position)
        if sub is not None and not sub.all_types:
            chosen = chosen.filter(type__in=sorted(sub.types))
        ids = list(chosen.values_list("id", flat=True)[: MAX_REPLAY + 1])
        if len(rows) + len(ids) > MAX_REPLAY:
            raise ValueError(f"more than {MAX_REPLAY} deliveries: narrow the range")
        rows.extend(
            FailedDelivery(
                subscriber_id=name,
                event_id=pk,
                attempts=0,
                dead=False,
                next_attempt_at=now,
                first_failed_at=now,
                last_failed_at=now,
                last_error="replayed by an operator",
            )
            for pk in ids
        )
    FailedDelivery.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["subscriber", "event"],
        update_fields=["attempts", "dead", "next_attempt_at", "last_error"],
    )
    return len(rows)
