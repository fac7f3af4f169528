"""The ranking's SQL bound (`scheduling.scoring.BestTotalSQL`, with SQLite's MIN/MAX for
LEAST/GREATEST) is Python's on SQLite too: the test of tests/scheduling, collected again
in this session."""

import pytest

from tests.scheduling.test_recommendation_bound import (  # noqa: F401 (collected here, on SQLite)
    test_the_database_bound_is_the_python_bound,
)

pytestmark = pytest.mark.django_db
