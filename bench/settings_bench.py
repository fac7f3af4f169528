"""Settings for bench web servers: the product's settings (procrastinate's too when
BENCH_DELIVERY is "procrastinate", bench/settings_procrastinate.py), plus the bench app, which
installs the run's delivery in every process (bench/apps.py), and the bench's URLs (the
product's plus a bare authenticated endpoint, bench/urls.py). The product never loads it."""

import os

if os.environ.get("BENCH_DELIVERY") == "procrastinate":
    from bench.settings_procrastinate import *  # noqa: F403
    from bench.settings_procrastinate import INSTALLED_APPS
else:
    from smartscheduler.settings import *  # noqa: F403
    from smartscheduler.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.apps.BenchConfig"]
ROOT_URLCONF = "bench.urls"
