"""What an operator does with the EventLog: events_status, events_dead, events_replay.

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
from events.models import DeliveryStatus, Event, HandlerReceipt
from events.relay import Relay, RelayConfig
from scheduling.models import Job
from tests.events.support import (
    ROOT,
    booked_jobs,
    counts_by_status,
    create_jobs,
    handlers_for,
    rate_rounds,
    subprocess_env,
)

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def run_until_dead(relay: Relay, clock, sequence: int) -> Event:
    """Drain again and again, moving the clock to each retry, until `sequence` is dead."""
    for _ in range(relay.config.max_attempts + 1):
        relay.drain()
        event = Event.objects.get(sequence=sequence)
        if event.status == DeliveryStatus.DEAD:
            return event
        clock.now = max(clock.now, event.available_at)
    raise AssertionError(f"event {sequence} never went dead: {event.status}")


@dataclass(frozen=True)
class DeadJob:
    relay: Relay
    delivered: Event  # the other job's JobCreated
    dead: Event
    job: Job  # the job whose JobCreated is dead


@pytest.fixture
def dead_job(clock, test_handlers) -> DeadJob:
    """Two jobs: one delivered, one dead after two failed attempts of `tests.flaky`."""
    relay = Relay(RelayConfig(max_attempts=2, backoff_base=1.0), name="operator")
    good, bad = create_jobs(2)
    test_handlers.broken.add(bad.pk)
    dead = run_until_dead(relay, clock, Event.objects.get(aggregate_id=str(bad.pk)).sequence)
    assert counts_by_status() == {"pending": 0, "delivered": 1, "dead": 1}
    return DeadJob(relay, Event.objects.get(aggregate_id=str(good.pk)), dead, bad)


def event_log_state() -> dict[str, list[dict]]:
    return {
        "events": list(Event.objects.order_by("sequence").values()),
        "receipts": list(HandlerReceipt.objects.order_by("pk").values()),
    }


# --- replay -----------------------------------------------------------------------------------


def test_replaying_a_dead_event_after_the_fix_reruns_only_the_handler_that_failed(
    dead_job, test_handlers
):
    relay, dead = dead_job.relay, dead_job.dead
    before = {name: list(calls) for name, calls in test_handlers.calls.items()}
    receipts_before = list(HandlerReceipt.objects.order_by("pk").values())
    assert "tests.flaky" not in HandlerReceipt.objects.filter(event=dead).values_list(
        "handler", flat=True
    )

    test_handlers.broken.clear()  # the fault is fixed
    assert run("events_replay", "--dead") == "1 event(s) pending again\n"
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.last_error, dead.claimed_by) == ("pending", 0, "", "")

    assert relay.drain() == 1
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.last_error) == ("delivered", 1, "")
    # The fixed handler ran once more, on that event alone; the others not at all.
    assert test_handlers.calls["tests.flaky"] == [*before["tests.flaky"], [dead.sequence]]
    assert test_handlers.calls["tests.counter"] == before["tests.counter"]
    assert test_handlers.calls["tests.sink"] == before["tests.sink"]
    receipts = list(HandlerReceipt.objects.order_by("pk").values())
    assert receipts[: len(receipts_before)] == receipts_before  # untouched, including broadcast
    assert [(r["event_id"], r["handler"]) for r in receipts[len(receipts_before) :]] == [
        (dead.sequence, "tests.flaky")
    ]
    assert counts_by_status() == {"pending": 0, "delivered": 2, "dead": 0}
    # Nothing dead is left to replay.
    assert run("events_replay", "--dead") == "0 event(s) pending again\n"


def test_replaying_a_range_for_one_handler_reruns_only_that_handler(test_handlers):
    booked = booked_jobs(contractors=2, jobs_each=2)
    rate_rounds(booked.jobs, rounds=2)
    relay = Relay(name="replay-range")
    assert relay.drain() == 8
    rated = list(Event.objects.filter(type="ContractorRated").order_by("sequence"))
    assert len(rated) == 8
    # Derived data drifted (say, a bad manual fix): the handler must put it right again.
    Contractor.objects.update(average_rating=None, rating_count=0)
    Rating.objects.filter(job_id=booked.jobs[0].pk).update(stars=1)  # edited behind its back
    others_before = list(
        HandlerReceipt.objects.exclude(handler="contractors.rating_summary").order_by("pk").values()
    )
    counter_before = list(test_handlers.calls["tests.counter"])
    sink_before = list(test_handlers.calls["tests.sink"])
    first, last = rated[0].sequence, rated[-1].sequence

    out = run(
        "events_replay", "--from", str(first), "--to", str(last),
        "--handler", "contractors.rating_summary",
    )  # fmt: skip
    assert out == "8 event(s) pending again\n"
    assert relay.drain() == 8

    for contractor in Contractor.objects.filter(pk__in=[c.pk for c in booked.contractors]):
        assert (contractor.average_rating, contractor.rating_count) == rating_summary(contractor.pk)
        assert contractor.rating_count == 2
    assert (
        list(
            HandlerReceipt.objects.exclude(handler="contractors.rating_summary")
            .order_by("pk")
            .values()
        )
        == others_before
    )
    assert test_handlers.calls["tests.counter"] == counter_before
    assert test_handlers.calls["tests.sink"] == sink_before
    assert sorted(
        HandlerReceipt.objects.filter(handler="contractors.rating_summary").values_list(
            "event_id", flat=True
        )
    ) == [e.sequence for e in rated]
    assert counts_by_status() == {"pending": 0, "delivered": 8, "dead": 0}
    assert set(Event.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--dead", "--handler", "no.such.handler"], "no handler named 'no.such.handler'"),
        (["--from", "1", "--to", "999999", "--handler", "nope"], "no handler named 'nope'"),
        (["--from", "5", "--to", "3"], "--from must not be after --to"),
        ([], "say what to replay: --dead, --sequence N or --from A --to B"),
        (["--handler", "realtime.broadcast"], "say what to replay"),
        (["--sequence", "1", "--from", "1"], "use either --sequence or --from/--to, not both"),
    ],
)
def test_events_replay_rejects_bad_input_and_changes_nothing(dead_job, args, reason):
    before = event_log_state()
    with pytest.raises(CommandError) as error:
        run("events_replay", *args)
    assert reason in str(error.value)
    assert event_log_state() == before


@pytest.mark.django_db(transaction=True)
def test_events_replay_bad_input_exits_non_zero_with_the_reason():
    done = subprocess.run(
        [sys.executable, "manage.py", "events_replay", "--dead", "--handler", "no.such.handler"],
        cwd=ROOT,
        env=subprocess_env(redis_url="redis://127.0.0.1:6379/1"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1, done
    assert done.stdout == ""
    assert done.stderr.startswith("CommandError: no handler named 'no.such.handler'; known: ")
    assert len(done.stderr.strip().splitlines()) == 1


# --- looking --------------------------------------------------------------------------------


def test_events_dead_lists_dead_events_and_shows_one_in_full(dead_job):
    dead, bad = dead_job.dead, dead_job.job

    listing = run("events_dead").splitlines()
    assert listing == [
        f"#{dead.sequence} JobCreated job:{bad.pk} attempts=2 "
        f"RuntimeError: tile supplier unreachable for job {bad.pk}"
    ]

    shown = run("events_dead", "--show", str(dead.sequence))
    envelope_text, rest = shown.split("\nstatus: ", 1)
    envelope = json.loads(envelope_text)
    assert envelope["id"] == str(dead.event_id)
    assert (envelope["sequence"], envelope["type"]) == (dead.sequence, "JobCreated")
    assert envelope["aggregate"] == {"type": "job", "id": str(bad.pk)}
    assert envelope["payload"]["jobId"] == bad.pk
    lines = rest.splitlines()
    assert lines[0] == "dead, attempts: 2"
    processed = [h for h in handlers_for("JobCreated") if h != "tests.flaky"]
    assert lines[1] == f"processed by: {', '.join(processed)}"
    assert lines[2] == "last error:"
    assert lines[3].startswith("handler tests.flaky: Traceback")
    assert f"RuntimeError: tile supplier unreachable for job {bad.pk}" in rest

    # A delivered event can be shown too; an unknown sequence is an error.
    assert "status: delivered, attempts: 1" in run(
        "events_dead", "--show", str(dead_job.delivered.sequence)
    )
    with pytest.raises(CommandError, match="no event with sequence 987654"):
        run("events_dead", "--show", "987654")


def test_events_dead_says_so_when_nothing_is_dead():
    create_jobs(1)
    assert run("events_dead") == "no dead events\n"


def test_events_status_reports_pending_dead_and_lag(dead_job, clock):
    create_jobs(3)
    clock.advance(42)

    out = run("events_status").splitlines()
    assert out[:4] == [
        "pending:   3 (0 in flight)",
        "dead:      1",
        "delivered: 1",
        "relay lag: 42.0s (oldest pending)",
    ]
    assert out[4:] == [
        "",
        f"{'type':<24}{'pending':>9}{'delivered':>11}{'dead':>7}",
        f"{'JobCreated':<24}{3:>9}{1:>11}{1:>7}",
    ]

    dead_job.relay.drain()
    out = run("events_status").splitlines()
    assert out[:4] == [
        "pending:   0 (0 in flight)",
        "dead:      1",
        "delivered: 4",
        "relay lag: 0s",
    ]
