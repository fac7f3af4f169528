"""The Celery alternative's app and its one task (bench/alternatives.py, mode "celery"): what a
Django team reaches for by default. `delay_on_commit` (Celery >= 5.4, DjangoTask) queues one task
per recorded event after the recording transaction commits; a Celery worker runs every subscribed
handler on [event] (`bench.alternatives.deliver`), the broadcast's group_send included.

The broker is the scenario's private redis-server (REDIS_URL of bench.cluster), database 1: the
channel layer keeps database 0. Celery's defaults are kept (early acknowledgement, prefetch 4, no
result backend), as a team starting with Celery would have them; the crash ledger shows what they
cost. Loaded with Django set up (`python -m celery -A bench.celery_app worker`, or imported by
`bench.alternatives` in a recording process)."""

import functools
import os
import time
from urllib.parse import urlsplit, urlunsplit

import django
import django.apps
from celery import Celery

from bench.alternatives import CELERY_DONE, CELERY_FIRST, CELERY_LAST, CELERY_QUEUE


def broker_url() -> str:
    """REDIS_URL with database 1."""
    parts = urlsplit(os.environ["REDIS_URL"])
    return urlunsplit(parts._replace(path="/1"))


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartscheduler.settings")
if not (django.apps.apps.ready or django.apps.apps.loading):  # the worker; else a Django process
    django.setup()

app = Celery("bench", broker=broker_url())
app.conf.update(
    task_default_queue=CELERY_QUEUE, task_ignore_result=True, worker_hijack_root_logger=False
)


@functools.cache
def _stamps():
    """The broker's Redis, for the bench's counters (redis-py reconnects after a fork)."""
    import redis

    return redis.Redis.from_url(broker_url())


@app.task(name="bench.deliver_event")
def deliver_event(event_id: int) -> None:
    from bench.alternatives import deliver
    from events.models import Event

    stamps = _stamps()
    stamps.set(CELERY_FIRST, time.time(), nx=True)
    deliver([Event.objects.get(pk=event_id)])
    with stamps.pipeline() as pipe:
        pipe.incr(CELERY_DONE).set(CELERY_LAST, time.time()).execute()


def _install() -> None:
    """The worker queues a task per event its handlers record (RecommendationsUpdated), as the
    relay delivers those too; a recording process installs the same hook."""
    from bench.alternatives import install

    install("celery")


_install()
