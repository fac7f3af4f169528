"""The recommendation score: 0.40 x availability + 0.35 x rating + 0.25 x distance.

availability = max(0, 1 - 0.1 x days between the desired date and the slot),
rating = average / 5 (0.5 unrated), distance = clamp(1 - miles / 50, 0, 1).
Weights come from settings and must sum to 1. A score never rises as the slot gets later, so
the score for a slot on the desired day bounds every score a contractor can get (the ranking
uses that to skip contractors who cannot make the list).
"""

import math
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import F, FloatField, Value
from django.db.models.functions import (
    ASin,
    Coalesce,
    Cos,
    Greatest,
    Least,
    Power,
    Radians,
    Sin,
    Sqrt,
)

from contractors.geo import EARTH_RADIUS_MILES

UNRATED = 0.5
DISTANCE_ZERO_MILES = 50.0


@dataclass(frozen=True)
class Score:
    total: float
    availability: float
    rating: float
    distance: float

    def breakdown(self) -> dict[str, float]:
        return {
            "availability": round(self.availability, 4),
            "rating": round(self.rating, 4),
            "distance": round(self.distance, 4),
        }


def weights() -> dict[str, float]:
    configured = settings.SCHEDULING["WEIGHTS"]
    if set(configured) != {"availability", "rating", "distance"} or not math.isclose(
        sum(configured.values()), 1.0, abs_tol=1e-9
    ):
        raise ImproperlyConfigured(
            "SCHEDULING['WEIGHTS'] needs availability, rating and distance summing to 1."
        )
    return configured


def score(
    *,
    days_late: int,
    average_rating: float | None,
    miles: float,
    w: dict[str, float] | None = None,
) -> Score:
    """`w`: the checked `weights()`, for callers scoring many contractors at once."""
    w = weights() if w is None else w
    availability = max(0.0, 1.0 - 0.1 * max(0, days_late))
    rating, distance = _rating(average_rating), _distance(miles)
    return Score(_total(w, availability, rating, distance), availability, rating, distance)


def best_total(*, average_rating: float | None, miles: float, w: dict[str, float]) -> float:
    """`score(days_late=0, ...).total`, the most this contractor can score for any slot:
    the same arithmetic, and rounding never reverses an order."""
    return _total(w, 1.0, _rating(average_rating), _distance(miles))


def best_total_sql(*, lat: float, lng: float, w: dict[str, float]):
    """`best_total` of a contractor row for a job at (lat, lng), as a PostgreSQL expression,
    unrounded: the haversine of `contractors.geo` and the formula above. Floating point in
    the database may differ from Python's in the last bits: use it to order and filter with
    a margin, never as the score."""

    def num(x: float) -> Value:
        return Value(float(x), output_field=FloatField())

    phi = Radians(F("lat"))
    half_dphi = (num(math.radians(lat)) - phi) / num(2)
    half_dlmb = Radians(num(lng) - F("lng")) / num(2)
    a = Power(Sin(half_dphi), num(2)) + Cos(phi) * num(math.cos(math.radians(lat))) * Power(
        Sin(half_dlmb), num(2)
    )
    miles = num(2 * EARTH_RADIUS_MILES) * ASin(Least(num(1.0), Sqrt(a)))
    distance = Greatest(num(0.0), Least(num(1.0), num(1.0) - miles / num(DISTANCE_ZERO_MILES)))
    rating = Coalesce(F("average_rating") / num(5.0), num(UNRATED))
    return num(w["availability"]) + num(w["rating"]) * rating + num(w["distance"]) * distance


def _rating(average_rating: float | None) -> float:
    return UNRATED if average_rating is None else average_rating / 5.0


def _distance(miles: float) -> float:
    return min(1.0, max(0.0, 1.0 - miles / DISTANCE_ZERO_MILES))


def _total(w: dict[str, float], availability: float, rating: float, distance: float) -> float:
    total = w["availability"] * availability + w["rating"] * rating + w["distance"] * distance
    return round(total, 4)
