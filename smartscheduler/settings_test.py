"""Test settings: the real stores (PostgreSQL and Redis), never the embedded default.

The services must be running; a test that needs one fails loudly when it is missing.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/smartscheduler")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")
os.environ.setdefault("SECRET_KEY", "test-only-secret")
# A test process is server, relay and clients at once (in-process consumers with their own
# database threads, relay threads, request threads): a pool sized for one web process is not.
os.environ.setdefault("DB_POOL_MAX_SIZE", "24")

from smartscheduler.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Several test runs on one machine (say, two checkouts) each get their own test database and
# their own Redis key space (cache clears and channel groups do not reach each other); so does
# each pytest-xdist worker of a run (pytest-django adds the worker's name, gw0, gw1, to the
# database's; the processes a test starts inherit PYTEST_XDIST_WORKER, so they share its keys).
_RUN = os.environ.get("TEST_DB_SUFFIX", "")
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_KEYS = "smartscheduler-test" + _RUN + (f"-{_WORKER}" if _WORKER else "")
DATABASES["default"]["TEST"] = {"NAME": "test_smartscheduler" + _RUN}  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = _KEYS  # noqa: F405
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = _KEYS  # noqa: F405

# Browser tests run daphne without collectstatic.
WHITENOISE_USE_FINDERS = True
