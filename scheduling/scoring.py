"""The recommendation score: 0.40 x availability + 0.35 x rating + 0.25 x distance.

availability = max(0, 1 - 0.1 x days between the desired date and the slot),
rating = average / 5 (0.5 unrated), distance = clamp(1 - miles / 50, 0, 1).
Weights come from settings and must sum to 1.
"""

import math
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

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


def score(*, days_late: int, average_rating: float | None, miles: float) -> Score:
    w = weights()
    availability = max(0.0, 1.0 - 0.1 * max(0, days_late))
    rating = UNRATED if average_rating is None else average_rating / 5.0
    distance = min(1.0, max(0.0, 1.0 - miles / DISTANCE_ZERO_MILES))
    total = w["availability"] * availability + w["rating"] * rating + w["distance"] * distance
    return Score(round(total, 4), availability, rating, distance)
