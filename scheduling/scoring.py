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
from django.db.models import Expression, FloatField, Value

from contractors.geo import EARTH_RADIUS_MILES
from contractors.models import RATING_KEY, UNRATED_AVERAGE, Contractor

UNRATED = UNRATED_AVERAGE / 5.0
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
    if (
        set(configured) != {"availability", "rating", "distance"}
        or not math.isclose(sum(configured.values()), 1.0, abs_tol=1e-9)
        or min(configured.values()) < 0
    ):
        raise ImproperlyConfigured(
            "SCHEDULING['WEIGHTS'] needs availability, rating and distance, none negative, "
            "summing to 1."
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


class BestTotalSQL(Expression):
    """`best_total` of a contractor row for a job, in SQL: the haversine of `contractors.geo`
    and the formula above, unrounded. Written as one expression instead of a tree of Django's
    math functions: a ranking orders by it, and resolving and hashing that tree for each
    query cost more than the query itself (a re-ranking step ranks hundreds of lists). The
    names are PostgreSQL's; SQLite has Django's math functions and MIN/MAX for LEAST/GREATEST.
    It names the contractors' table itself, so it is for a query on that table, not inside a
    subquery (whose aliases Django renames)."""

    output_field = FloatField()

    def __init__(self, lat: float, lng: float, availability: float, rating: float, distance: float):
        super().__init__()
        self.params = (lat, lng, availability, rating, distance)

    def as_sql(self, compiler, connection, least: str = "LEAST", greatest: str = "GREATEST"):
        table = compiler.quote_name_unless_alias(Contractor._meta.db_table)

        def column(name: str) -> str:
            return f"{table}.{connection.ops.quote_name(name)}"

        lat, lng, availability, rating, distance = self.params
        phi = f"RADIANS({column('lat')})"
        half_dphi = f"(%s - {phi}) / 2.0"
        half_dlmb = f"RADIANS(%s - {column('lng')}) / 2.0"
        a = f"POWER(SIN({half_dphi}), 2) + COS({phi}) * %s * POWER(SIN({half_dlmb}), 2)"
        miles = f"%s * ASIN({least}(1.0, SQRT({a})))"
        score_of_distance = f"{greatest}(0.0, {least}(1.0, 1.0 - {miles} / %s))"
        score_of_rating = f"COALESCE({column('average_rating')} / 5.0, %s)"
        sql = f"(%s + %s * {score_of_rating} + %s * {score_of_distance})"
        # in the order of the placeholders above
        params = [
            availability,
            rating,
            UNRATED,
            distance,
            2 * EARTH_RADIUS_MILES,
            math.radians(lat),
            math.cos(math.radians(lat)),
            lng,
            DISTANCE_ZERO_MILES,
        ]
        return sql, params

    def as_sqlite(self, compiler, connection):
        return self.as_sql(compiler, connection, least="MIN", greatest="MAX")


def best_total_sql(*, lat: float, lng: float, w: dict[str, float]) -> BestTotalSQL:
    """`best_total` of a contractor row for a job at (lat, lng), as an SQL expression.
    Floating point in the database may differ from Python's in the last bits: use it to
    order and filter with a margin, never as the score."""
    return BestTotalSQL(lat, lng, w["availability"], w["rating"], w["distance"])


def rating_bound_sql(w: dict[str, float]):
    """`best_total` of a contractor row farther than DISTANCE_ZERO_MILES from the job (its
    distance scores nothing), as an SQL expression: its rating's alone, rising with
    `RATING_KEY`."""
    rating = RATING_KEY / Value(5.0)
    return Value(w["availability"]) + Value(w["rating"]) * rating


def rating_key_at_least(bound: float, w: dict[str, float]) -> float | None:
    """The least `RATING_KEY` whose rating bound (`rating_bound_sql`) reaches `bound`, a
    hair lower for floating point; None when every rating does (rating weight 0, and the
    availability weight alone reaches it) and +inf when none does."""
    if w["rating"] > 0:
        return (bound - w["availability"]) * 5.0 / w["rating"] - 1e-9
    return None if w["availability"] >= bound else math.inf


def _rating(average_rating: float | None) -> float:
    return UNRATED if average_rating is None else average_rating / 5.0


def _distance(miles: float) -> float:
    return min(1.0, max(0.0, 1.0 - miles / DISTANCE_ZERO_MILES))


def _total(w: dict[str, float], availability: float, rating: float, distance: float) -> float:
    total = w["availability"] * availability + w["rating"] * rating + w["distance"] * distance
    return round(total, 4)
