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
from django.db import transaction
from django.db.models import Exists, Min, OuterRef, QuerySet
from django.utils import timezone

from events.access import pruned_through
from events.envelope import envelope
from events.models import Event, EventGroup, FailedDelivery, PrunedThrough, Subscriber

BATCH = 5000


@dataclass(frozen=True)
class PruneResult:
    removed: int
    kept_failed: int  # older than the horizon, kept because a delivery failed
    through: int  # the highest sequence removed so far (ever)
    archives: list[str]


def retention_days() -> int:
    return int(getattr(settings, "EVENTS_RETENTION_DAYS", 90))


def removable(floor: int, horizon) -> QuerySet[Event]:
    failed = FailedDelivery.objects.filter(event_id=OuterRef("pk"))
    return (
        Event.objects.filter(sequence__lte=floor, occurred_at__lt=horizon)
        .exclude(Exists(failed))
        .order_by("sequence")
    )


def lowest_position() -> int:
    return Subscriber.objects.aggregate(low=Min("position"))["low"] or 0


def prune(
    *,
    days: int | None = None,
    archive: Path | None = None,
    dry_run: bool = False,
    batch: int = BATCH,
    progress: Callable[[int], None] = lambda removed: None,
) -> PruneResult:
    days = retention_days() if days is None else days
    horizon = timezone.now() - timedelta(days=days)
    floor = lowest_position()
    kept = Event.objects.filter(occurred_at__lt=horizon, failures__isnull=False).distinct().count()
    if dry_run:
        return PruneResult(removable(floor, horizon).count(), kept, pruned_through(), [])
    removed, archives = 0, []
    while True:
        with transaction.atomic():
            rows = list(removable(floor, horizon).select_for_update(skip_locked=True)[:batch])
            if not rows:
                break
            if archive is not None:
                archives.append(str(write_archive(archive, rows)))
            ids = [row.pk for row in rows]
            EventGroup.objects.filter(event_id__in=ids).delete()
            Event.objects.filter(pk__in=ids).delete()
            top = max(row.sequence for row in rows)
            mark, _ = PrunedThrough.objects.select_for_update().get_or_create(pk=1)
            if top > mark.sequence:
                mark.sequence, mark.pruned_at = top, timezone.now()
                mark.save()
        removed += len(rows)
        progress(removed)
    return PruneResult(removed, kept, pruned_through(), archives)


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
