"""Settings for the benchmark's job-queue alternative: the product's settings plus procrastinate's
Django app (its tables come from its own migrations, `manage.py migrate procrastinate`). Used only
by bench processes of the "procrastinate" mode (`bench.alternatives.env`); the product never
loads it."""

from smartscheduler.settings import *  # noqa: F403
from smartscheduler.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "procrastinate.contrib.django"]
# The worker imports the task from here; no `tasks` module autodiscovery in the product's apps.
PROCRASTINATE_AUTODISCOVER_MODULE_NAME = ""
PROCRASTINATE_IMPORT_PATHS = ["bench.procrastinate_tasks"]
# Every process of this mode defers one job per recorded event (including the worker, whose
# handlers record events too, as the relay delivers those).
PROCRASTINATE_ON_APP_READY = "bench.alternatives.on_procrastinate_ready"
