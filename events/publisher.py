"""The publisher: gives committed events their `sequence`, in the order they became visible.

Invariant: publishing transactions run one at a time (a transaction-scoped advisory lock on
PostgreSQL; SQLite serializes writers itself), and each numbers the rows it finds after the
highest sequence already committed. So sequences commit in order: every reader sees the
published events as a gap-free prefix, and `sequence > S` is a cursor that never skips an
event, however late the transaction that recorded it committed.

It costs one UPDATE per event and the insert of its group rows, in batches, one statement each
(docs/events.md weighs this against the alternatives).
"""

import threading

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from events.handlers import ALL_TYPES
from events.models import Event, EventGroup

PUBLISHED_CHANNEL = "smartscheduler_published"
# Any constant: the key of the advisory lock that serializes publishing.
ADVISORY_LOCK_KEY = 0x5353_4556  # "SSEV"
BATCH = 1000


class Wakeups:
    """A counter that waiters watch, bumped whenever this process may have something new to
    deliver, with what was published: a subscriber wakes only for events of its types (or for
    a change it cannot know the types of), so an idle handler costs no queries per publish."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.generation = 0
        self._unknown = 0  # last bump that said nothing of what it published
        self._any = 0  # last bump that published something
        self._by_type: dict[str, int] = {}

    def bump(self, published: frozenset[str] | None = None) -> None:
        """`published`: the types of the events just published; empty: nothing published
        (a commit the publisher must look at); None: unknown (another relay published)."""
        with self._cond:
            self.generation += 1
            if published is None:
                self._unknown = self.generation
            elif published:
                self._any = self.generation
                for event_type in published:
                    self._by_type[event_type] = self.generation
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Wait until the counter passes `seen` or `timeout` passes; returns the counter."""
        with self._cond:
            self._cond.wait_for(lambda: self.generation != seen, timeout)
            return self.generation

    def _relevant(self, seen: int, types: frozenset[str]) -> bool:
        if self._unknown > seen:
            return True
        if ALL_TYPES in types:
            return self._any > seen
        return any(self._by_type.get(event_type, 0) > seen for event_type in types)

    def wait_relevant(self, seen: int, types: frozenset[str], timeout: float) -> int:
        """Wait until something of `types` may have been published since `seen`, or `timeout`
        passes; returns the counter."""
        with self._cond:
            self._cond.wait_for(lambda: self._relevant(seen, types), timeout)
            return self.generation


wakeups = Wakeups()


def head() -> int:
    """The highest published sequence (0 for an empty log)."""
    return Event.objects.aggregate(head=Max("sequence"))["head"] or 0


def publish(limit: int = BATCH) -> int:
    """Publish up to `limit` committed, unpublished events; returns how many."""
    with transaction.atomic():
        postgres = connection.vendor == "postgresql"
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
        rows = list(
            Event.objects.filter(sequence=None)
            .order_by("id")
            .values_list("id", "type", "groups")[:limit]
        )
        if not rows:
            return 0
        base = head()
        now = timezone.now()
        numbered = [(pk, base + n) for n, (pk, _, _) in enumerate(rows, start=1)]
        table = Event._meta.db_table
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} AS e SET sequence = n.seq, published_at = %s "
                    "FROM unnest(%s::bigint[], %s::bigint[]) AS n(id, seq) WHERE e.id = n.id",
                    [now, [pk for pk, _ in numbered], [seq for _, seq in numbered]],
                )
        else:
            Event.objects.bulk_update(
                [Event(id=pk, sequence=seq, published_at=now) for pk, seq in numbered],
                ["sequence", "published_at"],
            )
        EventGroup.objects.bulk_create(
            [
                EventGroup(event_id=pk, group=group, sequence=seq, type=event_type)
                for (pk, event_type, groups), (_, seq) in zip(rows, numbered, strict=True)
                for group in groups
            ]
        )
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, '')", [PUBLISHED_CHANNEL])
    wakeups.bump(frozenset(event_type for _, event_type, _ in rows))
    return len(rows)


def publish_all() -> int:
    total = 0
    while count := publish():
        total += count
    return total
