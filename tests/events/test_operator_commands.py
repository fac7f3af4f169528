"""What an operator does with the EventLog: events_status, events_dead, events_replay, each per
subscriber (dead is dead for one subscriber).

Dead events come from a real failing handler (`test_handlers`, subscribed through the public
registry) and the in-process relay; only the clock is replaced, to skip the retry backoff.
"""

import io
import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
from django.core.management import CommandError, call_command

from contractors.models import Contractor, Rating
from contractors.selectors import rating_summary
from events.handlers import subscribe, unsubscribe
from events.models import Event, FailedDelivery, Subscriber
from events.publisher import publish_all
from events.relay import Relay
from scheduling.models import Job
from tests.events.support import (
    booked_jobs,
    create_jobs,
    failures,
    handlers_for,
    nothing_pending,
    positions,
    rate_rounds,
    subprocess_env,
)
from tests.support import ROOT

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@dataclass(frozen=True)
class DeadJob:
    relay: Relay
    delivered: Event  # the other job's JobCreated
    dead: Event
    job: Job  # the job whose JobCreated is dead for tests.flaky


@pytest.fixture
def dead_job(clock, test_handlers) -> DeadJob:
    """Two jobs: one delivered everywhere, one dead for `tests.flaky` after two attempts
    (the handler is re-subscribed with a one-retry schedule)."""
    unsubscribe("tests.flaky")
    subscribe("tests.flaky", ["JobCreated"], test_handlers.flaky, retry_schedule=(1.0,))
    relay = Relay(name="operator")
    good, bad = create_jobs(2)
    test_handlers.broken.add(bad.pk)
    relay.drain()
    clock.advance(2)
    relay.drain()
    dead = Event.objects.get(aggregate_id=str(bad.pk))
    assert failures() == [("tests.flaky", dead.sequence, 2, True)]
    return DeadJob(relay, Event.objects.get(aggregate_id=str(good.pk)), dead, bad)


def delivery_state() -> dict[str, list]:
    return {
        "subscribers": list(Subscriber.objects.order_by("name").values()),
        "failures": list(FailedDelivery.objects.order_by("pk").values()),
    }


# --- replay -----------------------------------------------------------------------------------


def test_replaying_a_dead_event_after_the_fix_reruns_only_the_subscriber_it_was_dead_for(
    dead_job, test_handlers
):
    relay, dead = dead_job.relay, dead_job.dead
    before = {name: list(calls) for name, calls in test_handlers.calls.items()}
    positions_before = positions()

    test_handlers.broken.clear()  # the fault is fixed
    assert run("events_replay", "--dead") == "1 delivery scheduled again\n"
    assert failures() == [("tests.flaky", dead.sequence, 0, False)]

    relay.drain()
    assert failures() == []
    # The fixed handler ran once more, on that event alone; the others not at all.
    assert test_handlers.calls["tests.flaky"] == [*before["tests.flaky"], [dead.sequence]]
    assert test_handlers.calls["tests.counter"] == before["tests.counter"]
    assert test_handlers.calls["tests.sink"] == before["tests.sink"]
    assert positions() == positions_before  # a replay never moves a position
    assert nothing_pending()
    # Nothing dead is left to replay.
    assert run("events_replay", "--dead") == "0 deliveries scheduled again\n"


def test_replaying_dead_events_for_another_subscriber_touches_nothing(dead_job):
    assert run("events_replay", "--dead", "--subscriber", "tests.counter") == (
        "0 deliveries scheduled again\n"
    )
    assert failures() == [("tests.flaky", dead_job.dead.sequence, 2, True)]


def test_replaying_a_range_for_one_subscriber_reruns_only_that_subscriber(test_handlers):
    booked = booked_jobs(contractors=2, jobs_each=2)
    rate_rounds(booked.jobs, rounds=2)
    relay = Relay(name="replay-range")
    relay.drain()
    rated = list(Event.objects.filter(type="ContractorRated").order_by("sequence"))
    assert len(rated) == 8
    # Derived data drifted (say, a bad manual fix): the handler must put it right again.
    Contractor.objects.update(average_rating=None, rating_count=0)
    Rating.objects.filter(job_id=booked.jobs[0].pk).update(stars=1)  # edited behind its back
    counter_before = list(test_handlers.calls["tests.counter"])
    sink_before = list(test_handlers.calls["tests.sink"])
    first, last = rated[0].sequence, rated[-1].sequence

    out = run(
        "events_replay", "--from", str(first), "--to", str(last),
        "--subscriber", "contractors.rating_summary",
    )  # fmt: skip
    assert out == "8 deliveries scheduled again\n"
    relay.drain()

    for contractor in Contractor.objects.filter(pk__in=[c.pk for c in booked.contractors]):
        assert (contractor.average_rating, contractor.rating_count) == rating_summary(contractor.pk)
        assert contractor.rating_count == 2
    assert test_handlers.calls["tests.counter"] == counter_before
    assert test_handlers.calls["tests.sink"] == sink_before
    assert failures() == []


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--dead", "--subscriber", "no.such.handler"], "no subscriber named 'no.such.handler'"),
        (["--from", "1", "--to", "9", "--subscriber", "nope"], "no subscriber named 'nope'"),
        (["--from", "5", "--to", "3"], "--from must not be after --to"),
        ([], "say what to replay: --dead, --sequence N or --from A --to B"),
        (["--subscriber", "realtime.broadcast"], "say what to replay"),
        (["--sequence", "1", "--from", "1"], "use either --sequence or --from/--to, not both"),
    ],
)
def test_events_replay_rejects_bad_input_and_changes_nothing(dead_job, args, reason):
    before = delivery_state()
    with pytest.raises(CommandError) as error:
        run("events_replay", *args)
    assert reason in str(error.value)
    assert delivery_state() == before


@pytest.mark.django_db(transaction=True)
def test_events_replay_bad_input_exits_non_zero_with_the_reason():
    done = subprocess.run(
        [sys.executable, "manage.py", "events_replay", "--dead", "--subscriber", "no.such"],
        cwd=ROOT,
        env=subprocess_env(redis_url="redis://127.0.0.1:6379/1"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1, done
    assert done.stdout == ""
    assert done.stderr.startswith("CommandError: no subscriber named 'no.such'; known: ")
    assert len(done.stderr.strip().splitlines()) == 1


# --- looking --------------------------------------------------------------------------------


def test_events_dead_lists_dead_deliveries_and_shows_one_event_in_full(dead_job):
    dead, bad = dead_job.dead, dead_job.job

    listing = run("events_dead").splitlines()
    assert listing == [
        f"#{dead.sequence} JobCreated job:{bad.pk} tests.flaky attempts=2 "
        f"RuntimeError: tile supplier unreachable for job {bad.pk}"
    ]
    assert run("events_dead", "--subscriber", "tests.counter") == "no dead events\n"

    shown = run("events_dead", "--show", str(dead.sequence))
    envelope_text, rest = shown.split("\n}\n", 1)
    envelope = json.loads(envelope_text + "\n}")
    assert envelope["id"] == str(dead.event_id)
    assert (envelope["sequence"], envelope["type"]) == (dead.sequence, "JobCreated")
    assert envelope["payload"]["jobId"] == bad.pk
    states = dict(line.split(": ", 1) for line in rest.splitlines() if not line.startswith(" "))
    assert states["tests.flaky"] == "dead attempts=2"
    for name in handlers_for("JobCreated"):
        if name != "tests.flaky":
            assert states[name] == "handled", name
    assert states["contractors.rating_summary"] == "not subscribed"
    assert f"RuntimeError: tile supplier unreachable for job {bad.pk}" in rest

    with pytest.raises(CommandError, match="no event with sequence 987654"):
        run("events_dead", "--show", "987654")
    with pytest.raises(CommandError, match="no subscriber named 'nope'"):
        run("events_dead", "--subscriber", "nope")


def test_events_dead_says_so_when_nothing_is_dead():
    create_jobs(1)
    assert run("events_dead") == "no dead events\n"


def test_events_status_reports_each_subscriber(dead_job, clock):
    create_jobs(3)
    clock.advance(42)
    publish_all()

    out = run("events_status").splitlines()
    assert out[0] == "head:        5 (highest published sequence)"
    assert out[1] == "unpublished: 0 (oldest 0s)"
    rows = {line.split()[0]: line.split() for line in out[4:] if line and line[0] != " "}
    assert rows["tests.flaky"][1:6] == ["2", "3", "0", "1", "42.0s"]
    assert rows["realtime.broadcast"][1:6] == ["2", "3", "0", "0", "42.0s"]
    assert rows["contractors.rating_summary"][2:5] == ["0", "0", "0"]  # takes no JobCreated

    dead_job.relay.drain()
    out = run("events_status").splitlines()
    rows = {line.split()[0]: line.split() for line in out[4:] if line and line[0] != " "}
    assert rows["tests.flaky"][1:6] == ["5", "0", "0", "1", "0s"]
