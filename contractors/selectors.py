"""Reads worth naming."""

from django.db.models import Avg, Count, QuerySet

from contractors.geo import haversine_miles
from contractors.models import DEFAULT_REGION, Contractor, Rating, Region


def region_for(lat: float, lng: float) -> str:
    """The nearest region whose radius covers the point, else `default`."""
    best: tuple[float, str] | None = None
    for region in Region.objects.only("slug", "center_lat", "center_lng", "radius_miles"):
        miles = haversine_miles(lat, lng, region.center_lat, region.center_lng)
        if miles <= region.radius_miles and (best is None or miles < best[0]):
            best = (miles, region.slug)
    return best[1] if best else DEFAULT_REGION


def live_contractors() -> QuerySet[Contractor]:
    """Contractors that have not been deleted (any status)."""
    return Contractor.objects.filter(deleted_at__isnull=True)


def rating_summary(contractor_id: int) -> tuple[float | None, int]:
    """Average stars and count, straight from the ratings table."""
    row = Rating.objects.filter(contractor_id=contractor_id).aggregate(
        average=Avg("stars"), count=Count("id")
    )
    average = row["average"]
    return (round(float(average), 3) if average is not None else None, row["count"])


def rating_summaries(contractor_ids: list[int]) -> dict[int, tuple[float | None, int]]:
    """`rating_summary` for many contractors in one query; a contractor without ratings is
    `(None, 0)`."""
    summaries: dict[int, tuple[float | None, int]] = dict.fromkeys(contractor_ids, (None, 0))
    rows = (
        Rating.objects.filter(contractor_id__in=contractor_ids)
        .values("contractor_id")
        .annotate(average=Avg("stars"), count=Count("id"))
        .order_by()
    )
    for row in rows:
        summaries[row["contractor_id"]] = (round(float(row["average"]), 3), row["count"])
    return summaries
