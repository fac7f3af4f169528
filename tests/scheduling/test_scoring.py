"""The recommendation score (docs/scheduling.md), with every expected value worked out by hand:

total = 0.40 x availability + 0.35 x rating + 0.25 x distance, where
availability = max(0, 1 - 0.1 x days late), rating = average / 5 (0.5 unrated),
distance = clamp(1 - miles / 50, 0, 1).
"""

import pytest
from django.core.exceptions import ImproperlyConfigured

from scheduling.scoring import score


@pytest.mark.parametrize(
    ("days_late", "average", "miles", "total", "availability", "rating", "distance"),
    [
        # 0.40 x 1 + 0.35 x 0.96 + 0.25 x 0.954 = 0.40 + 0.336 + 0.2385 (docs/scheduling.md)
        pytest.param(0, 4.8, 2.3, 0.9745, 1.0, 0.96, 0.954, id="same-day-4.8-2.3mi"),
        # 0.40 x 0.9 + 0.35 x 0.8 + 0.25 x 0.8 = 0.36 + 0.28 + 0.20
        pytest.param(1, 4.0, 10.0, 0.84, 0.9, 0.8, 0.8, id="one-day-late-4.0-10mi"),
        # 0.40 x 0.7 + 0.35 x 1 + 0.25 x 0 = 0.28 + 0.35
        pytest.param(3, 5.0, 50.0, 0.63, 0.7, 1.0, 0.0, id="three-days-late-5.0-50mi"),
        # distance is clamped at 0 beyond 50 miles, never negative
        pytest.param(3, 5.0, 120.0, 0.63, 0.7, 1.0, 0.0, id="three-days-late-5.0-120mi"),
        # unrated counts as 0.5: 0.40 + 0.35 x 0.5 + 0.25 = 0.40 + 0.175 + 0.25
        pytest.param(0, None, 0.0, 0.825, 1.0, 0.5, 1.0, id="unrated-same-day-same-place"),
        # ten days late reaches 0; 0.35 x 0.2 + 0.25 x 0.5 = 0.07 + 0.125
        pytest.param(10, 1.0, 25.0, 0.195, 0.0, 0.2, 0.5, id="ten-days-late"),
        # availability is floored at 0, not negative: 0.35 + 0.25
        pytest.param(14, 5.0, 0.0, 0.6, 0.0, 1.0, 1.0, id="fourteen-days-late"),
    ],
)
def test_score_matches_the_hand_computed_values(
    days_late, average, miles, total, availability, rating, distance
):
    result = score(days_late=days_late, average_rating=average, miles=miles)

    assert result.total == total
    assert result.breakdown() == {
        "availability": availability,
        "rating": rating,
        "distance": distance,
    }


def test_unrated_contractor_gets_half_the_rating_component():
    result = score(days_late=0, average_rating=None, miles=0.0)

    assert result.rating == 0.5


def test_weights_come_from_settings(settings):
    settings.SCHEDULING = {
        **settings.SCHEDULING,
        "WEIGHTS": {"availability": 0.0, "rating": 0.0, "distance": 1.0},
    }

    # only distance counts now: 1 - 10 / 50 = 0.8
    assert score(days_late=5, average_rating=1.0, miles=10.0).total == 0.8


@pytest.mark.parametrize(
    "weights",
    [
        pytest.param({"availability": 0.5, "rating": 0.35, "distance": 0.25}, id="sums-to-1.1"),
        pytest.param({"availability": 0.3, "rating": 0.35, "distance": 0.25}, id="sums-to-0.9"),
        pytest.param({"availability": 0.65, "rating": 0.35}, id="distance-missing"),
        pytest.param(
            {"availability": 0.4, "rating": 0.35, "distance": 0.25, "priority": 0.0},
            id="unknown-component",
        ),
        pytest.param(
            {"availability": 0.8, "rating": -0.05, "distance": 0.25}, id="negative-weight"
        ),
    ],
)
def test_misconfigured_weights_raise(settings, weights):
    settings.SCHEDULING = {**settings.SCHEDULING, "WEIGHTS": weights}

    with pytest.raises(ImproperlyConfigured):
        score(days_late=0, average_rating=4.0, miles=1.0)
