"""Retention: delivered events older than the horizon are removed, oldest first, in batches.

Invariant: an event is removed only if it is published, older than `EVENTS_RETENTION_DAYS`,
at or below every subscriber's position (every subscriber is past it), and has no failed
delivery for any subscriber (pending retries and dead events stay, whatever their age). The
highest removed sequence is recorded (`PrunedThrough`), so a cursor older than it is refused
(410 on HTTP, `unknown_sequence` on a websocket) rather than silently missing what was removed.
With `archive`, each batch is written as gzipped JSON lines (one envelope a line) and flushed
to disk before the batch is deleted.
"""

import gzip
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Exists, Min, OuterRef
from django.utils import timezone

from events.access import pruned_through
from events.envelope import envelope
from events.models import Event, FailedDelivery, PrunedThrough, Subscriber

BATCH = 5000
EVENT = Event._meta.db_table
FAILED = FailedDelivery._meta.db_table
PRUNED = PrunedThrough._meta.db_table


@dataclass(frozen=True)
class PruneResult:
    removed: int
    kept_failed: int  # older than the horizon, kept because a delivery failed
    through: int  # the highest sequence removed so far (ever)
    archives: list[str]


def retention_days() -> int:
    return int(getattr(settings, "EVENTS_RETENTION_DAYS", 90))


def removable_count(floor: int, horizon) -> int:
    failed = FailedDelivery.objects.filter(event_id=OuterRef("pk"))
    return (
        Event.objects.filter(sequence__lte=floor, occurred_at__lt=horizon)
        .exclude(Exists(failed))
        .count()
    )


def lowest_position() -> int:
    return Subscriber.objects.aggregate(low=Min("position"))["low"] or 0


def newest_old_id(horizon) -> int:
    """The id of the newest event older than the horizon (one probe of `occurred_at`): the
    batches walk ids up to it. `id` follows recording time up to the few concurrent
    transactions at the horizon's edge; one of those left over is taken by the next run."""
    newest = (
        Event.objects.filter(occurred_at__lt=horizon)
        .order_by("-occurred_at")
        .values_list("id", flat=True)
        .first()
    )
    return newest or 0


def prune(
    *,
    days: int | None = None,
    archive: Path | None = None,
    dry_run: bool = False,
    batch: int = BATCH,
    progress: Callable[[int], None] = lambda removed: None,
) -> PruneResult:
    """Batches of plain SQL DELETEs, keyset by id (each batch starts where the last ended, so
    no batch re-reads what earlier ones removed): Django's delete() collects each row's
    related rows first and ran at about 2,000 events/s (docs/events.md, Retention)."""
    days = retention_days() if days is None else days
    horizon = timezone.now() - timedelta(days=days)
    floor = lowest_position()
    kept = Event.objects.filter(occurred_at__lt=horizon, failures__isnull=False).distinct().count()
    if dry_run:
        return PruneResult(removable_count(floor, horizon), kept, pruned_through(), [])
    bound, last = newest_old_id(horizon), 0
    removed, archives = 0, []
    while True:
        with transaction.atomic():
            ids = claim_batch(last, bound, floor, horizon, batch)
            if not ids:
                break
            if archive is not None:
                rows = list(Event.objects.filter(pk__in=ids).order_by("sequence"))
                archives.append(str(write_archive(archive, rows)))
            record_pruned(delete_batch(ids))
        last = ids[-1]
        removed += len(ids)
        progress(removed)
    return PruneResult(removed, kept, pruned_through(), archives)


def claim_batch(last: int, bound: int, floor: int, horizon, batch: int) -> list[int]:
    """The ids (ascending) of the next `batch` removable events after id `last`, locked: at or
    below every subscriber's position (`floor`), older than the horizon, and with no failed
    delivery (pending retries and dead events stay)."""
    sql = f"""
        SELECT e.id FROM {EVENT} e
        WHERE e.id > %s AND e.id <= %s AND e.sequence <= %s AND e.occurred_at < %s
          AND NOT EXISTS (SELECT 1 FROM {FAILED} f WHERE f.event_id = e.id)
        ORDER BY e.id LIMIT %s FOR UPDATE SKIP LOCKED"""
    with connection.cursor() as cursor:
        cursor.execute(sql, [last, bound, floor, horizon, batch])
        return [row[0] for row in cursor.fetchall()]


def dependents() -> list[tuple[str, str]]:
    """(table, column) of the rows that refer to an event and go with it (`on_delete=CASCADE`:
    its group rows, its webhook delivery log), from the models, so an app that adds one is
    covered without `events` importing it. Failed deliveries PROTECT: those events stay."""
    return [
        (rel.related_model._meta.db_table, rel.field.column)
        for rel in Event._meta.related_objects
        if rel.on_delete is models.CASCADE
    ]


def delete_batch(ids: list[int]) -> int:
    """Remove the events after the rows that refer to them; returns the highest sequence
    removed."""
    with connection.cursor() as cursor:
        for table, column in dependents():
            cursor.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", [ids])
        cursor.execute(f"DELETE FROM {EVENT} WHERE id = ANY(%s) RETURNING sequence", [ids])
        return max(row[0] for row in cursor.fetchall())


def record_pruned(top: int) -> None:
    """Raise the pruned horizon to `top` (never lower it), stamped now."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {PRUNED} (id, sequence, pruned_at) VALUES (1, %s, %s)
                ON CONFLICT (id) DO UPDATE
                SET sequence = GREATEST({PRUNED}.sequence, EXCLUDED.sequence),
                    pruned_at = EXCLUDED.pruned_at""",
            [top, timezone.now()],
        )


def write_archive(folder: Path, rows: list[Event]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"events-{rows[0].sequence:012d}-{rows[-1].sequence:012d}.jsonl.gz"
    with open(path, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb") as gz:
            for row in rows:
                gz.write(json.dumps(envelope(row), separators=(",", ":")).encode() + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    return path
