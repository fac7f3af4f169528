"""Contractors' reactions to events: keep derived data equal to what the tables say."""

from contractors.services import refresh_rating_summary
from events.models import Event


def refresh_rating_summaries(events: list[Event]) -> None:
    """ContractorRated: recompute each touched contractor's average and count (idempotent)."""
    for contractor_id in sorted({int(e.payload["contractorId"]) for e in events}):
        refresh_rating_summary(contractor_id=contractor_id)
