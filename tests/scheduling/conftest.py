import os

import pytest


@pytest.fixture(autouse=True)
def private_cache(settings) -> str:
    """Cache keys of this test run's own, for every scheduling test; returns the key prefix.

    Test runs on one machine share the Redis database while each has its own PostgreSQL one, and
    contractor ids and schedule versions start from the same numbers in every test database, so
    `avail:{contractor}:{version}:{day}` written by one run would be read by another.
    """
    prefix = f"test-{os.getpid()}"
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": prefix}}
    return prefix
