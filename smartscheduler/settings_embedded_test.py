"""Test settings for the embedded default, as `scripts/run` configures it: SQLite, the in-memory
channel layer, the local-memory cache and DEBUG (so the browsable API is on). Used by
`tests/embedded` (scripts/test runs it after the main suite), so every feature keeps working
without PostgreSQL or Redis.

The one difference from `scripts/run`: the tests drive the relay themselves
(`Relay().drain()`), so the in-process relay thread is off.
"""

import os

for _name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY"):
    os.environ.pop(_name, None)
os.environ["DEBUG"] = "1"
os.environ["EMBEDDED_RELAY"] = "0"

from smartscheduler.settings import *  # noqa: E402, F403

assert DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_USE_FINDERS = True
