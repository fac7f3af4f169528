"""Ratings of contractors, and the average kept from them."""

from dataclasses import dataclass

from django.db import transaction

from contractors.models import (
    Contractor,
    Rating,
)
from contractors.selectors import rating_summary
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

    Called by scheduling (`rate_job`, and `reschedule_job` when a rated job changes hands),
    which owns the rule about which jobs may be rated and holds the transaction and the job's
    lock. When the rating moves from one contractor to another, the one it leaves gets a
    `ContractorRated` with `rating: null`, so its average is recomputed too.
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
    list(Contractor.objects.select_for_update().filter(pk__in=involved).order_by("pk"))
    previous_average, _ = rating_summary(contractor.pk)
    left_previous = rating_summary(left.pk)[0] if left else None
    created = rating is None
    if created:
        rating = Rating.objects.create(job_id=job_id, contractor=contractor, stars=stars)
    else:
        rating.stars = stars
        rating.contractor = contractor
        rating.save(update_fields=["stars", "contractor", "updated_at"])
    record_event(
        ContractorRated(
            contractor_id=contractor.pk,
            region=contractor.region,
            job_id=job_id,
            rating=stars,
            previous_rating=previous_average,
        )
    )
    if left is not None:
        record_event(
            ContractorRated(
                contractor_id=left.pk,
                region=left.region,
                job_id=job_id,
                rating=None,
                previous_rating=left_previous,
            )
        )
    return RatingResult(rating=rating, created=created, changed=True)


def refresh_rating_summary(*, contractor_id: int) -> Contractor | None:
    """Recompute the stored average and count from the ratings table (idempotent)."""
    with transaction.atomic():
        contractor = Contractor.objects.select_for_update().filter(pk=contractor_id).first()
        if contractor is None:
            return None
        average, count = rating_summary(contractor_id)
        if contractor.average_rating != average or contractor.rating_count != count:
            contractor.average_rating = average
            contractor.rating_count = count
            contractor.save(update_fields=["average_rating", "rating_count", "updated_at"])
        return contractor
