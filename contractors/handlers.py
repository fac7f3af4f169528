"""Contractors' reactions to events: keep derived data equal to what the tables say."""

from contractors.services import refresh_rating_summaries as refresh_summaries
from events.models import Event


def refresh_rating_summaries(events: list[Event]) -> None:
    """ContractorRated: recompute each touched contractor's average and count (idempotent),
    the whole batch in a few queries."""
    refresh_summaries(contractor_ids={int(e.payload["contractorId"]) for e in events})
