"""Ratings of contractors, and the average kept from them."""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from contractors.models import (
    Contractor,
    Rating,
)
from contractors.selectors import rating_summaries, rating_summary
from events.catalog import ContractorRated
from events.errors import Invalid
from events.recorder import record_event


@dataclass(frozen=True)
class RatingResult:
    rating: Rating
    created: bool
    changed: bool


def record_rating(*, contractor: Contractor, job_id: int, stars: int) -> RatingResult:
    """Create or replace the rating of `job_id`, for the contractor now doing the job.

    Called by scheduling's `rate_job`, which owns the rule about which jobs may be rated
    (completed ones only) and holds the transaction and the job's lock. Should a rating ever
    move from one contractor to another, the one it leaves gets a `ContractorRated` with
    `rating: null`, so its average is recomputed too.

    The average rating and rating count are recomputed here, in the rating's transaction, so
    they are current when `ContractorRated` is published: a subscriber that re-reads the
    contractor (the board, the broadcast) never sees the old average, whichever handler runs
    first. The rating-summary handler recomputes them again (idempotently) from the event.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_rating runs inside the caller's transaction")
    if not 1 <= stars <= 5:
        raise Invalid({"rating": "must be a whole number from 1 to 5."})
    rating = Rating.objects.filter(job_id=job_id).first()
    if rating is not None and rating.stars == stars and rating.contractor_id == contractor.pk:
        return RatingResult(rating=rating, created=False, changed=False)
    left = (
        rating.contractor if rating is not None and rating.contractor_id != contractor.pk else None
    )
    # Serialise ratings per contractor (in id order) so each `previousRating` is the true
    # average before this change.
    involved = sorted({contractor.pk} | ({left.pk} if left else set()))
    locked = list(Contractor.objects.select_for_update().filter(pk__in=involved).order_by("pk"))
    previous_average, _ = rating_summary(contractor.pk)
    left_previous = rating_summary(left.pk)[0] if left else None
    created = rating is None
    if created:
        rating = Rating.objects.create(job_id=job_id, contractor=contractor, stars=stars)
    else:
        rating.stars = stars
        rating.contractor = contractor
        rating.save(update_fields=["stars", "contractor", "updated_at"])
    store_rating_summaries(locked)
    for fresh in locked:
        if fresh.pk == contractor.pk:
            contractor.average_rating, contractor.rating_count = (
                fresh.average_rating,
                fresh.rating_count,
            )
    rated = [(contractor, stars, previous_average)]
    if left is not None:  # the job's rating moved to another contractor: `left` lost it
        rated.append((left, None, left_previous))
    for whom, given, previous in rated:
        record_event(
            ContractorRated(
                contractor_id=whom.pk,
                region=whom.region,
                job_id=job_id,
                rating=given,
                previous_rating=previous,
            )
        )
    return RatingResult(rating=rating, created=created, changed=True)


def store_rating_summaries(contractors: list[Contractor]) -> int:
    """The one recomputation of stored averages and counts: read them from the ratings table
    (one query), write the changed ones (one statement). The caller holds the contractors'
    row locks inside its transaction. Returns how many changed; idempotent."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("store_rating_summaries runs inside the caller's transaction")
    summaries = rating_summaries([c.pk for c in contractors])
    now = timezone.now()
    changed = []
    for contractor in contractors:
        average, count = summaries[contractor.pk]
        if contractor.average_rating != average or contractor.rating_count != count:
            contractor.average_rating, contractor.rating_count = average, count
            contractor.updated_at = now  # bulk_update does not apply auto_now
            changed.append(contractor)
    if changed:
        Contractor.objects.bulk_update(
            changed, ["average_rating", "rating_count", "updated_at"], batch_size=500
        )
    return len(changed)


def refresh_rating_summaries(*, contractor_ids: set[int] | list[int]) -> int:
    """Recompute the stored average and count of these contractors from the ratings table
    (the relay's batches; unknown ids are ignored): lock them in id order (as `record_rating`
    does), read every average in one query, write the changed ones in one statement. Returns
    how many changed. Idempotent."""
    ids = sorted(set(contractor_ids))
    if not ids:
        return 0
    with transaction.atomic():
        contractors = list(Contractor.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
        return store_rating_summaries(contractors)
