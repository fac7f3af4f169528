"""The relay as it runs in production: `python manage.py relay` processes on the test database,
against real PostgreSQL and Redis, killed, raced, cut off from their stores and signalled.

Events are recorded here through the services and committed (transaction=True), so the relay
processes see exactly what a web process would have written.
"""

import signal
import statistics
import subprocess
import sys
import time

import pytest
from django.db import connection

from contractors.models import Contractor
from contractors.selectors import rating_summary
from events.models import DeliveryStatus, Event, HandlerReceipt
from tests.events.support import (
    ROOT,
    booked_jobs,
    counts_by_status,
    create_jobs,
    handlers_for,
    nothing_pending,
    rate_rounds,
    receipts_by_event,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)


def in_flight() -> list[int]:
    """Sequences a relay has claimed and not yet marked."""
    return list(
        Event.objects.filter(status=DeliveryStatus.PENDING)
        .exclude(claimed_by="")
        .values_list("sequence", flat=True)
    )


def pending_summary() -> str:
    return f"status counts {counts_by_status()}, in flight {len(in_flight())}"


def relay_backends() -> list[tuple[int, str]]:
    """(pid, query) of every other session on the test database: the relay's connections."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchall()


# --- crash, concurrency -----------------------------------------------------------------------


def test_a_relay_killed_mid_batch_loses_nothing_and_applies_each_handler_once(relays):
    booked = booked_jobs(contractors=6, jobs_each=4)
    total = rate_rounds(booked.jobs, rounds=10)
    assert Event.objects.filter(type="ContractorRated").count() == total == 240

    # SIGKILL while a batch is claimed. The kill can land between two batches, which proves
    # less, so try again (the backlog is far from drained after one attempt).
    stuck: list[int] = []
    for attempt in range(5):
        doomed = relays(
            f"doomed-{attempt}", "--lease", "2", "--batch-size", "10", "--poll-interval", "0.25"
        )
        wait_until(
            lambda: in_flight() or nothing_pending() or not doomed.alive(),  # noqa: B023
            timeout=20,
            interval=0.001,
            message=doomed.describe,
        )
        doomed.kill()
        assert doomed.proc.returncode == -signal.SIGKILL, doomed.describe()
        assert not nothing_pending(), "the relay drained everything before it could be killed"
        stuck = in_flight()
        if stuck:
            break
    assert stuck, "never caught a relay with a claimed batch"
    assert set(Event.objects.filter(sequence__in=stuck).values_list("attempts", flat=True)) == {1}

    survivor = relays("survivor", "--lease", "2", "--batch-size", "10", "--poll-interval", "0.25")
    wait_until(nothing_pending, timeout=20, message=lambda: pending_summary() + survivor.describe())

    assert counts_by_status() == {"pending": 0, "delivered": total, "dead": 0}
    # The orphaned batch waited for its lease, then was claimed once more, by the survivor.
    assert set(Event.objects.filter(sequence__in=stuck).values_list("attempts", flat=True)) == {2}
    assert not Event.objects.exclude(claimed_by="").exists()
    # Exactly one receipt per (event, handler): every handler ran once per event, including the
    # events whose handlers had already committed when the first relay died.
    expected = handlers_for("ContractorRated")
    assert {"contractors.rating_summary", "realtime.broadcast"} <= set(expected)
    receipts = receipts_by_event()
    assert len(receipts) == total
    assert {tuple(handlers) for handlers in receipts.values()} == {tuple(expected)}
    assert HandlerReceipt.objects.count() == len(expected) * total
    # The handler's effects equal what the ratings table says.
    for contractor in Contractor.objects.filter(pk__in=[c.pk for c in booked.contractors]):
        assert (contractor.average_rating, contractor.rating_count) == rating_summary(contractor.pk)
        assert contractor.rating_count == 4


def test_two_relays_share_the_work_and_never_deliver_the_same_claimed_batch(relays):
    first = relays("relay-a", "--batch-size", "50", "--poll-interval", "0.25")
    second = relays("relay-b", "--batch-size", "50", "--poll-interval", "0.25")
    first.wait_started()
    second.wait_started()

    create_jobs(2000)  # one commit, one NOTIFY: both relays wake to the same backlog

    wait_until(
        nothing_pending,
        timeout=30,
        message=lambda: pending_summary() + first.describe() + second.describe(),
    )
    wait_until(
        lambda: first.claimed() + second.claimed() >= 2000,
        timeout=5,
        message="the relays' batch log lines do not add up to 2000 claimed events",
    )
    assert counts_by_status() == {"pending": 0, "delivered": 2000, "dead": 0}
    # Both worked, and their claims partition the events: no lease expired (60 s), so any
    # event claimed twice would make the sum exceed 2000 and its attempts exceed 1.
    assert first.claimed() > 0, first.describe()
    assert second.claimed() > 0, second.describe()
    assert first.claimed() + second.claimed() == 2000
    assert {b["relay"] for b in first.batches()} == {"relay-a"}
    assert {b["relay"] for b in second.batches()} == {"relay-b"}
    assert all(b["claimed"] <= 50 for b in first.batches() + second.batches())
    assert set(Event.objects.values_list("attempts", flat=True)) == {1}
    expected = handlers_for("JobCreated")
    assert {tuple(handlers) for handlers in receipts_by_event().values()} == {tuple(expected)}
    assert HandlerReceipt.objects.count() == len(expected) * 2000


# --- store outages ----------------------------------------------------------------------------


def test_events_recorded_while_redis_is_down_wait_unharmed_and_flow_after_it_returns(
    relays, own_redis
):
    relay = relays("redis-outage", "--poll-interval", "0.2", redis_url=own_redis.url)
    before = create_jobs(5)
    wait_until(nothing_pending, timeout=15, message=lambda: pending_summary() + relay.describe())

    own_redis.stop()
    during = create_jobs(5)
    wait_until(
        lambda: "relay cannot reach a store" in relay.output(),
        timeout=10,
        message=lambda: "the relay never noticed Redis was gone\n" + relay.describe(),
    )
    # The failed batch was given back: still pending, no error, no attempt spent (a row may be
    # claimed again right now by the next try, which then counts one).
    waiting = Event.objects.filter(aggregate_id__in=[str(j.pk) for j in during])
    assert {(e.status, e.last_error, e.attempts - bool(e.claimed_by)) for e in waiting} == {
        ("pending", "", 0)
    }
    assert relay.alive(), relay.describe()

    own_redis.start()
    wait_until(nothing_pending, timeout=20, message=lambda: pending_summary() + relay.describe())
    assert counts_by_status() == {"pending": 0, "delivered": 10, "dead": 0}
    # Each event was claimed once for good; the outage spent none of its attempts.
    assert set(waiting.values_list("attempts", flat=True)) == {1}
    assert HandlerReceipt.objects.filter(handler="realtime.broadcast").count() == 10
    assert "relay recovered" in relay.output()
    assert relay.alive(), relay.describe()
    assert len(before) == 5


def test_a_relay_whose_postgres_backends_are_terminated_reconnects_and_keeps_delivering(relays):
    relay = relays("pg-outage", "--poll-interval", "0.5")
    create_jobs(3)
    wait_until(nothing_pending, timeout=15, message=lambda: pending_summary() + relay.describe())
    # Its session and its LISTEN session (idle, waiting for a notification).
    backends = wait_until(
        lambda: (rows := relay_backends()) and any("LISTEN" in q for _, q in rows) and rows,
        timeout=10,
        message=lambda: f"no LISTEN session found: {relay_backends()}",
    )
    assert len(backends) >= 2, backends

    with connection.cursor() as cursor:
        for pid, _ in backends:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    wait_until(
        lambda: not {pid for pid, _ in backends} & {pid for pid, _ in relay_backends()},
        timeout=10,
        message="the terminated backends are still there",
    )
    create_jobs(3)

    wait_until(nothing_pending, timeout=20, message=lambda: pending_summary() + relay.describe())
    assert counts_by_status() == {"pending": 0, "delivered": 6, "dead": 0}
    assert relay.alive(), relay.describe()
    assert set(Event.objects.values_list("attempts", flat=True)) == {1}
    # It is connected again, with new sessions (and still listening).
    assert wait_until(
        lambda: any("LISTEN" in q for _, q in relay_backends()),
        timeout=10,
        message=lambda: f"the relay did not LISTEN again: {relay_backends()}",
    )


# --- wake-up, command line --------------------------------------------------------------------


def test_notify_wakes_the_relay_long_before_its_poll_interval(relays):
    relay = relays("listener", "--poll-interval", "1")
    create_jobs(1)
    wait_until(nothing_pending, timeout=15, message=lambda: pending_summary() + relay.describe())
    time.sleep(0.3)  # idle: blocked on its LISTEN connection

    latencies = []
    for _ in range(7):
        [job] = create_jobs(1)
        started = time.monotonic()
        event = Event.objects.get(type="JobCreated", aggregate_id=str(job.pk))
        wait_until(
            lambda: Event.objects.filter(
                sequence=event.sequence,  # noqa: B023
                status=DeliveryStatus.DELIVERED,
            ).exists(),
            timeout=5,
            interval=0.005,
            message=relay.describe,
        )
        latencies.append(time.monotonic() - started)
        time.sleep(0.15)
    # Polling alone would average 0.5 s; a notified relay answers in milliseconds. The median of
    # seven keeps one slow sample on a busy machine from deciding.
    assert statistics.median(latencies) < 0.25, latencies


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize(
    ("option", "reason"),
    [
        (["--batch-size", "0"], "--batch-size, --max-attempts and --lease must be positive"),
        (["--poll-interval", "5"], "--poll-interval must be more than 0 and at most 1 second"),
        (["--lease", "-1"], "--batch-size, --max-attempts and --lease must be positive"),
    ],
)
def test_the_relay_command_rejects_bad_options_with_a_one_line_reason(option, reason):
    done = subprocess.run(
        [sys.executable, "manage.py", "relay", *option],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "smartscheduler.settings_test",
            "PYTHONUNBUFFERED": "1",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [f"CommandError: {reason}"]


def test_sigterm_stops_a_running_relay_cleanly(relays):
    relay = relays("graceful", "--poll-interval", "1")
    relay.wait_started()
    create_jobs(2)
    wait_until(nothing_pending, timeout=15, message=lambda: pending_summary() + relay.describe())

    stopped = time.monotonic()
    relay.signal(signal.SIGTERM)
    try:
        relay.proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        pytest.fail("relay still running 3 s after SIGTERM\n" + relay.describe())
    assert time.monotonic() - stopped < 3
    assert relay.proc.returncode == 0, relay.describe()
    assert "relay stopping (signal 15)" in relay.output()
    assert "relay stopped name=graceful" in relay.output()
    assert "Traceback" not in relay.output()
