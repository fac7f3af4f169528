"""bench/alternatives.py delivers the way each alternative would: on_commit only after the commit
and never after a rollback, through the real channel layer; a procrastinate job per event,
deferred in the recording transaction and rolled back with it."""

import asyncio
import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from bench.alternatives import install, uninstall
from contractors.services import Location
from scheduling.models import Job
from scheduling.services import create_job

ELSEWHERE = Location(lat=34.05, lng=-118.24, address="bench test")  # in no region: "default"
GROUP = "dispatch.default"  # dispatch/default, as Channels spells it


class RolledBack(Exception):
    pass


def new_job() -> Job:
    return create_job(
        type="flooring",
        location=ELSEWHERE,
        desired_date=timezone.localdate() + timedelta(days=3),
        duration_minutes=120,
    )


def new_job_rolled_back() -> None:
    with pytest.raises(RolledBack), transaction.atomic():
        new_job()
        raise RolledBack


@pytest.fixture
def on_commit():
    install("on_commit")
    yield
    uninstall("on_commit")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_on_commit_sends_to_the_group_after_commit_and_never_after_rollback(
    channel_layer, on_commit
):
    layer = get_channel_layer()  # this test's instance of the configured layer
    channel = await layer.new_channel()
    await layer.group_add(GROUP, channel)
    try:
        # First a rolled-back job, then a committed one: the group's first message must be the
        # committed job's JobCreated (a send at record time would put the rolled-back one first).
        await database_sync_to_async(new_job_rolled_back)()
        job = await database_sync_to_async(new_job)()
        message = await asyncio.wait_for(layer.receive(channel), 5)
        assert message["type"] == "event.message"
        assert message["event"]["type"] == "JobCreated"
        assert message["event"]["payload"]["jobId"] == job.pk
        assert await database_sync_to_async(Job.objects.count)() == 1
    finally:
        await layer.group_discard(GROUP, channel)


@pytest.fixture
def job_queue(db, monkeypatch):
    """procrastinate's schema in this test's transaction (gone with its rollback), and the bench
    task deferring through a procrastinate App on Django's connection, as
    procrastinate.contrib.django sets it up (its Django app is not installed in the tests)."""
    from procrastinate import App
    from procrastinate.contrib.django.django_connector import DjangoConnector
    from procrastinate.schema import SchemaManager

    from bench.procrastinate_tasks import deliver_event

    with connection.cursor() as cursor:
        cursor.execute(SchemaManager.get_schema())
    monkeypatch.setattr(deliver_event, "blueprint", App(connector=DjangoConnector()))
    install("procrastinate")
    yield
    uninstall("procrastinate")


def test_procrastinate_defers_one_job_per_event_in_the_recording_transaction(job_queue):
    def jobs() -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT task_name, queue_name, args, status FROM procrastinate_jobs")
            return cursor.fetchall()

    new_job_rolled_back()
    assert jobs() == []
    job = new_job()
    event = job_events(job)
    [(task, queue, args, status)] = jobs()
    assert (task, queue, status) == ("bench.deliver_event", "events", "todo")
    assert json.loads(args) == {"event_id": event.pk}


def job_events(job: Job):
    from events.models import Event

    [event] = Event.objects.filter(aggregate_type="job", aggregate_id=str(job.pk))
    return event


@pytest.fixture
def celery_queue(db, monkeypatch):
    """The Celery alternative on kombu's in-memory transport (no broker process; the shared
    Redis is not touched), its queue empty before and after."""
    from bench.celery_app import app

    monkeypatch.setattr(app.conf, "broker_url", "memory://")
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue("events")
        queue.clear()
        install("celery")
        yield queue
        uninstall("celery")
        queue.clear()


def test_celery_queues_one_task_per_event_after_the_commit_only(
    celery_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        new_job_rolled_back()
    assert celery_queue.qsize() == 0
    with django_capture_on_commit_callbacks(execute=True):
        job = new_job()
        # delay_on_commit: nothing is queued while the transaction is open.
        assert celery_queue.qsize() == 0
    message = celery_queue.get(timeout=1)
    args, kwargs, _ = message.payload
    assert message.headers["task"] == "bench.deliver_event"
    assert (args, kwargs) == ([], {"event_id": job_events(job).pk})
    assert celery_queue.qsize() == 0
