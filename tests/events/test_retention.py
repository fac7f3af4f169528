"""Retention on the real PostgreSQL: `events_prune` removes delivered events older than the
horizon, oldest first, and never one that is still pending or dead for any subscriber; cursors
older than what it removed are refused rather than silently missing events."""

import gzip
import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from events.access import pruned_through
from events.handlers import subscribe, subscription, unsubscribe
from events.models import Event, EventGroup, PrunedThrough
from events.relay import Relay
from events.resume import ResumeError, missed_events
from events.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import client_for, make_user
from tests.events.support import create_jobs, failures

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("events_prune", *args, stdout=out)
    return out.getvalue()


def age(days: int) -> None:
    """Every event recorded so far happened `days` ago."""
    Event.objects.update(occurred_at=timezone.now() - timedelta(days=days))


@pytest.fixture
def old_and_new(test_handlers):
    """Ten events 100 days old, the third of them dead for tests.flaky; five new ones."""
    unsubscribe("tests.flaky")
    subscribe("tests.flaky", ["JobCreated"], test_handlers.flaky, retry_schedule=())
    jobs = create_jobs(10)
    test_handlers.broken.add(jobs[2].pk)
    relay = Relay(name="retention")
    relay.drain()  # jobs[2] is dead for tests.flaky at once (no retries on its schedule)
    age(100)
    create_jobs(5)
    relay.drain()
    return jobs


def test_prune_removes_old_delivered_events_and_keeps_dead_ones(old_and_new, tmp_path):
    dead_job = old_and_new[2]
    assert failures()[0][0] == "tests.flaky" and failures()[0][3] is True

    assert run("--dry-run").startswith("would remove 9 event(s); kept 1 older one(s)")
    assert Event.objects.count() == 15  # a dry run removes nothing

    out = run("--archive", str(tmp_path), "--batch-size", "4")
    assert out.splitlines()[0] == (
        "removed 9 event(s); kept 1 older one(s) still pending or dead for a subscriber; "
        "pruned through sequence 10"
    )
    left = sorted(Event.objects.values_list("sequence", flat=True))
    assert left == [3, 11, 12, 13, 14, 15]  # the dead one stays, with its group rows
    assert EventGroup.objects.filter(event__sequence=3).exists()
    assert not EventGroup.objects.filter(sequence__in=[1, 2, 4, 10]).exists()
    assert Event.objects.get(sequence=3).aggregate_id == str(dead_job.pk)
    assert pruned_through() == 10

    archived = []
    for path in sorted(tmp_path.glob("events-*.jsonl.gz")):
        with gzip.open(path, "rt") as lines:
            archived += [json.loads(line) for line in lines]
    assert [e["sequence"] for e in archived] == [1, 2, 4, 5, 6, 7, 8, 9, 10]
    assert {e["type"] for e in archived} == {"JobCreated"}
    assert len(out.splitlines()) == 1 + 3  # batches of four: three archive files

    assert run().startswith("removed 0 event(s)")  # nothing more to do


def test_prune_keeps_what_a_subscriber_has_not_reached(test_handlers):
    create_jobs(4)
    Relay(name="ahead").drain()
    seen: list[int] = []
    subscribe("tests.behind", ["JobCreated"], lambda events: seen.extend(events))
    try:
        Relay(name="ahead").ensure_subscribers([subscription("tests.behind")])
        age(100)
        assert run().startswith("removed 0 event(s)")  # tests.behind is still at 0
        Relay(name="ahead").drain()
        assert len(seen) == 4
        assert run().startswith("removed 4 event(s)")
    finally:
        unsubscribe("tests.behind")


def test_cursors_older_than_the_pruned_horizon_are_refused(old_and_new):
    run()
    admin = client_for(make_user("root", role="admin"))

    assert admin.get("/api/events?after=9").status_code == 410
    assert admin.get("/api/events?after=9").json()["code"] == "gone"
    page = admin.get("/api/events?after=10").json()
    assert [e["sequence"] for e in page["results"]] == [11, 12, 13, 14, 15]
    assert [e["sequence"] for e in admin.get("/api/events").json()["results"]] == [
        3, 11, 12, 13, 14, 15,
    ]  # fmt: skip

    with pytest.raises(ResumeError) as refused:
        missed_events({"dispatch/default"}, 4)
    assert refused.value.code == "unknown_sequence"
    assert [e.sequence for e in missed_events({"dispatch/default"}, 10).events] == [
        11, 12, 13, 14, 15,
    ]  # fmt: skip


def test_prune_rejects_bad_options_and_removes_nothing(old_and_new, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    for args, reason in [
        (["--days", "0"], "--days must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--archive", str(a_file)], "exists and is not a folder"),
    ]:
        with pytest.raises(CommandError, match=reason):
            run(*args)
    assert Event.objects.count() == 15


def test_nothing_younger_than_the_horizon_is_removed(test_handlers):
    create_jobs(3)
    Relay(name="young").drain()
    age(89)
    assert run().startswith("removed 0 event(s)")
    assert run("--days", "30").startswith("removed 3 event(s)")


def test_prune_in_sql_keeps_retrying_and_unpublished_events_and_stamps_the_horizon(
    test_handlers, tmp_path
):
    """The batches are plain SQL: an event still being retried for one subscriber and an
    event not yet published stay, whatever their age; the removed events' group rows and
    webhook delivery log go with them, the archive holds exactly what went, and a dry run
    writes nothing."""
    jobs = create_jobs(6)
    test_handlers.broken.add(jobs[1].pk)
    Relay(name="sql").drain()  # jobs[1] failed once for tests.flaky: retried later, not dead
    retrying = Event.objects.get(type="JobCreated", aggregate_id=str(jobs[1].pk))
    unpublished = Event.objects.create(  # committed, its publication not yet run
        type="JobCreated", aggregate_type="job", aggregate_id=str(jobs[0].pk),
        payload=retrying.payload, groups=retrying.groups, occurred_at=timezone.now(),
    )  # fmt: skip
    gone = Event.objects.get(type="JobCreated", aggregate_id=str(jobs[0].pk), sequence__gt=0)
    endpoint = WebhookEndpoint.objects.create(url="https://example.com/hook", secret="s")
    WebhookDelivery.objects.create(endpoint=endpoint, event=gone, attempted_at=timezone.now())
    age(100)
    assert failures() == [("tests.flaky", retrying.sequence, 1, False)]

    assert run("--dry-run", "--archive", str(tmp_path / "dry")).startswith(
        "would remove 5 event(s); kept 1 older one(s)"
    )
    assert not (tmp_path / "dry").exists() and Event.objects.count() == 7

    before = timezone.now()
    out = run("--archive", str(tmp_path / "archive"), "--batch-size", "2")
    assert out.startswith("removed 5 event(s); kept 1 older one(s)")
    assert set(Event.objects.values_list("pk", flat=True)) == {retrying.pk, unpublished.pk}
    assert set(EventGroup.objects.values_list("event_id", flat=True)) == {retrying.pk}
    assert not WebhookDelivery.objects.exists()  # an event's delivery log goes with it
    archived = []
    for path in sorted((tmp_path / "archive").glob("events-*.jsonl.gz")):
        with gzip.open(path, "rt") as lines:
            archived += [json.loads(line)["sequence"] for line in lines]
    assert archived == [s for s in range(1, 7) if s != retrying.sequence]
    mark = PrunedThrough.objects.get()
    assert mark.sequence == 6 and mark.pruned_at >= before
