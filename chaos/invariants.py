"""The delivery guarantees (docs/reliability.md), checked after a run against the chaos database,
with Django set up in this process (chaos.run points it at the run's database and Redis).

Each check returns a Check: what it looked at, how many failed, and the offending items."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from chaos.clients import ClientRecord


@dataclass
class Check:
    name: str
    checked: int
    failures: int
    offending: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failures == 0


def delivery() -> tuple[Check, Check, Check]:
    """Every event published, and handled by every subscriber that takes its type: each
    subscriber's position is at the head, and the only failed deliveries are the poison events
    of the poison subscriber, every one of them dead (dead for it alone)."""
    from chaos.subscribers import POISON, is_poison
    from events.handlers import subscriptions
    from events.models import Event, FailedDelivery, Subscriber
    from events.publisher import head

    subs = subscriptions()
    unpublished = [
        f"event id {pk} {event_type} {event_id} unpublished"
        for pk, event_type, event_id in Event.objects.filter(sequence=None).values_list(
            "id", "type", "event_id"
        )
    ]
    end = head()
    positions = dict(Subscriber.objects.values_list("name", "position"))
    lost: list[str] = [
        f"{sub.name} at {positions.get(sub.name)} of {end}"
        for sub in subs
        if positions.get(sub.name, -1) < end
    ]
    dead_poison: set[str] = set()
    for subscriber, sequence, event_type, event_id, dead in FailedDelivery.objects.values_list(
        "subscriber_id", "event__sequence", "event__type", "event__event_id", "dead"
    ):
        if subscriber == POISON and dead and is_poison(event_id):
            dead_poison.add(str(event_id))
            continue
        state = "dead" if dead else "retrying"
        lost.append(f"{subscriber} #{sequence} {event_type} {event_id} {state}")
    published = list(Event.objects.exclude(sequence=None).values_list("event_id", "sequence"))
    poison = {str(event_id): sequence for event_id, sequence in published if is_poison(event_id)}
    not_dead = [
        f"#{sequence} {event_id} not dead for {POISON}"
        for event_id, sequence in sorted(poison.items(), key=lambda kv: kv[1])
        if event_id not in dead_poison
    ]
    total = Event.objects.count()
    return (
        Check("events published", total, len(unpublished), unpublished),
        Check("every subscriber handled every event", total * len(subs), len(lost), lost),
        Check(f"poison events dead for {POISON} alone", len(poison), len(not_dead), not_dead),
    )


def bus(received: Counter[str], first_after: int) -> Check:
    """The broker's audit queue got every event published after the clients' first `after`
    (the bus started before them) at least once."""
    from events.models import Event

    expected = Event.objects.filter(sequence__gt=first_after).values_list("event_id", "sequence")
    missing = [f"#{seq} {event_id} never on the bus" for event_id, seq in expected
               if str(event_id) not in received]  # fmt: skip
    return Check("bus queue got every event", len(expected), len(missing), missing)


def ratings() -> Check:
    from contractors.models import Contractor
    from contractors.selectors import rating_summary

    wrong = []
    contractors = list(Contractor.objects.order_by("pk"))
    for contractor in contractors:
        truth = rating_summary(contractor.pk)
        cached = (contractor.average_rating, contractor.rating_count)
        if cached != truth:
            wrong.append(f"contractor {contractor.pk}: stored {cached}, ratings table {truth}")
    return Check("rating summary = ratings table", len(contractors), len(wrong), wrong)


def availability_cache(days: int = 15) -> Check:
    """Cached entries under each contractor's current schedule_version equal a fresh
    computation from the database (entries lost with a Redis restart are simply absent)."""
    from django.core.cache import cache
    from django.utils import timezone

    from contractors.models import Contractor
    from scheduling.availability_cache import compute_entries, day_key

    today = timezone.now().date()
    contractors = list(Contractor.objects.order_by("pk"))
    wanted = {
        day_key(c.pk, c.schedule_version, today + timedelta(days=n)): (c, today + timedelta(n))
        for c in contractors
        for n in range(days)
    }
    cached = cache.get_many(list(wanted))
    pairs = [wanted[key] for key in cached]
    fresh = compute_entries(pairs) if pairs else {}
    wrong = []
    for key, value in cached.items():
        contractor, day = wanted[key]
        truth = fresh[(contractor.pk, day)].encode()
        if same_entry(truth) != same_entry(value):
            wrong.append(f"{key}: cached {value} != database {truth}")
    return Check("availability cache = database", len(cached), len(wrong), wrong)


def same_entry(entry) -> object:
    """An entry as availability reads it: its bookings are a set (the query that finds them
    has no order, and slots do not depend on it)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("b"), list):
        return entry
    return {**entry, "b": sorted(entry["b"])}


LIVE = "('scheduled', 'in_progress')"


def assignments() -> tuple[Check, Check]:
    from django.conf import settings
    from django.db import connection

    from scheduling.models import Assignment

    buffer = timedelta(minutes=settings.SCHEDULING["BUFFER_MINUTES"])
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT a.id, b.id, a.contractor_id, a.start, a."end", b.start, b."end"
            FROM scheduling_assignment a JOIN scheduling_assignment b
              ON a.contractor_id = b.contractor_id AND a.id < b.id
             AND a.status IN {LIVE} AND b.status IN {LIVE}
             AND a.start < b."end" + %s AND b.start < a."end" + %s
            """,
            [buffer, buffer],
        )
        close = cursor.fetchall()
        cursor.execute(
            f"SELECT job_id, count(*) FROM scheduling_assignment WHERE status IN {LIVE} "
            "GROUP BY job_id HAVING count(*) > 1"
        )
        doubled = cursor.fetchall()
    live = Assignment.objects.filter(status__in=["scheduled", "in_progress"]).count()
    overlaps = [
        f"assignments {a} and {b} of contractor {c}: [{s1}, {e1}) vs [{s2}, {e2})"
        for a, b, c, s1, e1, s2, e2 in close
        if s1 < e2 and s2 < e1
    ]
    too_close = [
        f"assignments {a} and {b} of contractor {c} closer than the buffer"
        for a, b, c, s1, e1, s2, e2 in close
        if not (s1 < e2 and s2 < e1)
    ]
    doubled_jobs = [f"job {job} has {n} live assignments" for job, n in doubled]
    return (
        Check("no overlapping live assignments", live, len(overlaps) + len(doubled_jobs),
              overlaps + doubled_jobs),
        Check("buffer between live assignments", live, len(too_close), too_close),
    )  # fmt: skip


def clients(records: list[ClientRecord]) -> tuple[Check, Check]:
    """Each client holds every event of its groups after its first `after`, and nothing
    from other groups. A missed event says whether the client was connected when it was
    published and got later events live on that connection (then the live message was lost
    between the relay and the socket, and no resume brings it back: the client's next `after`
    is past it), or was between connections."""
    from events.models import Event, EventGroup

    missing: list[str] = []
    leaked: list[str] = []
    expected_total = 0
    for record in records:
        expected = {
            str(event_id): (sequence, published_at)
            for event_id, sequence, published_at in Event.objects.filter(
                sequence__gt=record.first_after,
                pk__in=EventGroup.objects.filter(group__in=record.groups).values("event_id"),
            ).values_list("event_id", "sequence", "published_at")
        }
        expected_total += len(expected)
        for event_id, (sequence, published_at) in sorted(expected.items(), key=lambda kv: kv[1][0]):
            if event_id not in record.received:
                how = while_connected(record, sequence, published_at.timestamp())
                missing.append(f"{record.name} missed #{sequence} {event_id} ({how})")
        for event_id, groups in record.groups_seen.items():
            if not set(groups) & record.groups:
                leaked.append(f"{record.name} got {event_id} of groups {groups}")
    return (
        Check("clients hold every event of their groups", expected_total, len(missing), missing),
        Check("clients get no other group's event", expected_total, len(leaked), leaked),
    )


def while_connected(record: ClientRecord, sequence: int, published: float) -> str:
    """Where the client was when event `sequence` was published (see clients())."""
    start = None
    for at, what, value in record.timeline:
        if what == "connect":
            if start is not None and start <= published < at:
                break
            start = None
        elif what == "connected":
            start = at
        elif what == "event" and start is not None and start <= published and value > sequence:
            return "connected, later events came live: the live message was lost"
    return "not connected, or no later live event on that connection"


def run_all(
    records: list[ClientRecord], bus_received: Counter[str] | None = None, first_after: int = 0
) -> list[Check]:
    checks = [*delivery(), ratings(), availability_cache(), *assignments(), *clients(records)]
    if bus_received is not None:
        checks.append(bus(bus_received, first_after))
    return checks
