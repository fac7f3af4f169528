"""The publisher: gives committed events their `sequence`, in the order they became visible.

Invariant: publishing transactions run one at a time (a transaction-scoped advisory lock on
PostgreSQL; SQLite serializes writers itself), and each numbers the rows it finds after the
highest sequence already committed. So sequences commit in order: every reader sees the
published events as a gap-free prefix, and `sequence > S` is a cursor that never skips an
event, however late the transaction that recorded it committed.

It costs one UPDATE per event and the insert of its group rows, in one statement per batch
on PostgreSQL (docs/events.md weighs this against the alternatives).
"""

import logging
import threading
import time
from collections import deque

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from events.handlers import ALL_TYPES
from events.models import Event, EventGroup

log = logging.getLogger("events.relay")

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


class Floor:
    """Where this process's publisher starts looking for unpublished rows.

    An event row is updated when published, and its entry in the partial index of
    unpublished rows stays until VACUUM (in the latency benchmark's database a publish read
    thousands of table blocks through them for one unpublished row; at 10,000 events a
    minute a big table goes millions of updates between autovacuums). A publish that starts
    past the rows it published a while ago (LAG_SECONDS) descends the index straight to the
    rows recorded since, so its cost is that of the entries of the last few seconds,
    whatever the size of the log. Concurrent writers commit out of id order all the time, so
    the start lags: a row whose transaction committed within LAG_SECONDS of its insert is
    found at once. One that took longer (a late commit) is found by a look through the whole
    index, due once per FULL_SCAN_SECONDS (and whenever a caller asks for everything), and
    gets a later sequence, as every late commit does.
    """

    LAG_SECONDS = 2.0
    FULL_SCAN_SECONDS = 1.0

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.passed_at: deque[tuple[float, int]] = deque()  # (monotonic time, newest id)
        self.above = 0  # the newest id published at least LAG_SECONDS ago
        self.scanned_at = float("-inf")  # monotonic time of the last whole look

    def start(self, everything: bool) -> int:
        """The id to look after: 0 for a whole look (asked for, or due)."""
        now = time.monotonic()
        with self.lock:
            if everything or now - self.scanned_at >= self.FULL_SCAN_SECONDS:
                self.scanned_at = now
                return 0
            while self.passed_at and now - self.passed_at[0][0] >= self.LAG_SECONDS:
                self.above = max(self.above, self.passed_at.popleft()[1])
            return self.above

    def passed(self, newest: int) -> None:
        with self.lock:
            self.passed_at.append((time.monotonic(), newest))


floor = Floor()


def publish(limit: int = BATCH, *, everything: bool = True) -> int:
    """Publish up to `limit` committed, unpublished events; returns how many. Without
    `everything`, look only past the rows this process published a while ago, unless a whole
    look is due (Floor): the relay's publisher does so on each commit notification."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            types = _publish_postgresql(limit, floor.start(everything))
        else:
            types = _publish_orm(limit)
    if types:
        log.debug("published events=%d", sum(types.values()))
        wakeups.bump(frozenset(types))
    return sum(types.values())


# After the lock, in a statement of its own (so its snapshot sees every publication that
# committed before this one took the lock): number the oldest unpublished rows after the head
# and write their group rows, all in one round trip. A data-modifying CTE runs to completion
# whether or not the outer query reads it.
PUBLISH_SQL = f"""
WITH next AS (
    SELECT id, type, groups FROM {Event._meta.db_table}
    WHERE sequence IS NULL AND id > %(after)s ORDER BY id LIMIT %(limit)s
),
numbered AS (
    SELECT next.*, head.seq + row_number() OVER (ORDER BY next.id) AS seq
    FROM next, (SELECT coalesce(max(sequence), 0) AS seq FROM {Event._meta.db_table}) AS head
),
stamped AS (
    UPDATE {Event._meta.db_table} AS e SET sequence = numbered.seq, published_at = %(now)s
    FROM numbered WHERE e.id = numbered.id
),
grouped AS (
    INSERT INTO {EventGroup._meta.db_table} (event_id, "group", sequence, type)
    SELECT numbered.id, g.name, numbered.seq, numbered.type
    FROM numbered, jsonb_array_elements_text(numbered.groups) AS g(name)
)
SELECT type, count(*), max(id) FROM numbered GROUP BY type
"""


# The row of the highest sequence (the unique index, read backwards).
HEAD_ROW_SQL = (
    f"SELECT id FROM {Event._meta.db_table} WHERE sequence IS NOT NULL "
    "ORDER BY sequence DESC LIMIT 1"
)


def _publish_postgresql(limit: int, after: int) -> dict[str, int]:
    """{type: events published} (the caller's transaction is open)."""
    with connection.cursor() as cursor:
        # With the lock, for this transaction: an index scan, never a bitmap scan (only an
        # index scan marks the entries of rows published meanwhile as dead, so the next scan
        # skips them without reading the table). One round trip for both.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s), set_config('enable_bitmapscan', 'off', true)",
            [ADVISORY_LOCK_KEY],
        )
        cursor.execute(PUBLISH_SQL, {"limit": limit, "after": after, "now": timezone.now()})
        rows = cursor.fetchall()
        if rows:
            # The types published, so that another relay wakes only their subscribers.
            published = ",".join(sorted({event_type for event_type, _, _ in rows}))
            cursor.execute("SELECT pg_notify(%s, %s)", [PUBLISHED_CHANNEL, published])
            newest = max(newest for _, _, newest in rows)
        else:  # another relay published them: start past its newest row too
            cursor.execute(HEAD_ROW_SQL)
            found = cursor.fetchone()
            newest = found[0] if found else 0
    transaction.on_commit(lambda: floor.passed(newest))
    return {event_type: count for event_type, count, _ in rows}


def _publish_orm(limit: int) -> dict[str, int]:
    """The embedded default (SQLite serializes writers itself): the same, in four statements."""
    rows = list(
        Event.objects.filter(sequence=None)
        .order_by("id")
        .values_list("id", "type", "groups")[:limit]
    )
    if not rows:
        return {}
    base = head()
    now = timezone.now()
    numbered = [(pk, base + n) for n, (pk, _, _) in enumerate(rows, start=1)]
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
    types: dict[str, int] = {}
    for _, event_type, _ in rows:
        types[event_type] = types.get(event_type, 0) + 1
    return types


def publish_all(*, everything: bool = True) -> int:
    """Publish everything committed so far (without `everything`: see publish); returns how
    many."""
    total = 0
    while (count := publish(everything=everything)) == BATCH:
        total += count
    return total + count
