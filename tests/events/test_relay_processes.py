"""The relay as it runs in production: `python manage.py relay` processes on the test database,
against real PostgreSQL and Redis, killed, raced, cut off from their stores and signalled.

Events are recorded here through the services and committed (transaction=True), so the relay
processes see exactly what a web process would have written.
"""

import re
import signal
import statistics
import subprocess
import sys
import time

import pytest
from django.db import connection

from contractors.models import Contractor
from contractors.selectors import rating_summary
from events.handlers import subscriptions
from events.models import Event, Subscriber
from events.publisher import head
from events.relay import Relay
from tests.events.support import (
    booked_jobs,
    create_jobs,
    delivery_summary,
    failures,
    handlers_for,
    nothing_pending,
    positions,
    rate_rounds,
    wait_delivered,
    wait_until,
)
from tests.support import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def relay_backends() -> list[tuple[int, str]]:
    """(pid, query) of every other session on the test database: the relay's connections."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchall()


def behind() -> bool:
    """Some subscriber has not reached the head yet."""
    return not nothing_pending()


# --- crash, concurrency -----------------------------------------------------------------------


def test_a_relay_killed_mid_delivery_loses_nothing(relays):
    booked = booked_jobs(contractors=6, jobs_each=4)
    total = rate_rounds(booked.jobs, rounds=10)
    assert Event.objects.filter(type="ContractorRated").count() == total == 240

    # SIGKILL while it is part way through the backlog (owning subscribers, not at the head).
    doomed = relays("doomed", "--lease", "2", "--batch-size", "10", "--poll-interval", "0.25")
    wait_until(
        lambda: doomed.handled() > 0 or not doomed.alive(),
        timeout=20,
        interval=0.001,
        message=doomed.describe,
    )
    doomed.kill()
    assert doomed.proc.returncode == -signal.SIGKILL, doomed.describe()
    assert behind(), "the relay drained everything before it could be killed"
    assert Subscriber.objects.filter(owner="doomed").exists()  # its leases outlive it

    survivor = relays("survivor", "--lease", "2", "--batch-size", "10", "--poll-interval", "0.25")
    wait_delivered(survivor, timeout=30)

    assert failures() == []
    # The survivor waited for the dead relay's leases, then took every subscriber over.
    assert set(Subscriber.objects.values_list("owner", flat=True)) == {"survivor"}
    assert survivor.handled("realtime.broadcast") > 0
    # The handler's effects equal what the ratings table says.
    for contractor in Contractor.objects.filter(pk__in=[c.pk for c in booked.contractors]):
        assert (contractor.average_rating, contractor.rating_count) == rating_summary(contractor.pk)
        assert contractor.rating_count == 4


def test_two_relays_split_the_subscribers_and_never_deliver_the_same_batch(relays):
    first = relays("relay-a", "--batch-size", "50", "--poll-interval", "0.25", "--lease", "3")
    second = relays("relay-b", "--batch-size", "50", "--poll-interval", "0.25", "--lease", "3")
    first.wait_started()
    second.wait_started()
    Relay(name="setup").ensure_subscribers(subscriptions())
    wait_until(
        lambda: set(Subscriber.objects.values_list("owner", flat=True)) == {"relay-a", "relay-b"},
        timeout=20,
        message=lambda: (
            f"owners {list(Subscriber.objects.values_list('name', 'owner'))}"
            + first.describe()
            + second.describe()
        ),
    )

    booked = booked_jobs(contractors=4, jobs_each=5)
    total = rate_rounds(booked.jobs, rounds=5)  # ContractorRated: every subscriber takes it

    wait_delivered(first, second, timeout=30)
    wait_until(
        lambda: first.handled("realtime.broadcast") + second.handled("realtime.broadcast") >= total,
        timeout=5,
        message="the relays' step log lines do not add up",
    )
    # Each subscriber's deliveries partition the events: a batch delivered by both relays
    # would make a subscriber's sum exceed the number of events.
    for name in handlers_for("ContractorRated"):
        assert first.handled(name) + second.handled(name) == total, name
    assert {s["relay"] for s in first.steps()} == {"relay-a"}
    assert {s["relay"] for s in second.steps()} == {"relay-b"}
    assert all(s["handled"] <= 50 for s in first.steps() + second.steps())
    assert failures() == []


def owners() -> dict[str, str]:
    return dict(Subscriber.objects.values_list("name", "owner"))


def test_a_relay_dedicated_to_the_broadcast_serves_it_alone_and_others_take_over_if_it_dies(
    relays,
):
    options = ("--batch-size", "50", "--poll-interval", "0.25", "--lease", "2")
    general = relays("general", *options)
    dedicated = relays("broadcaster", *options, "--subscribers", "realtime.broadcast")
    general.wait_started()
    dedicated.wait_started()
    Relay(name="setup").ensure_subscribers(subscriptions())
    others = {sub.name for sub in subscriptions()} - {"realtime.broadcast"}
    expected = {"realtime.broadcast": "broadcaster", **dict.fromkeys(others, "general")}
    wait_until(
        lambda: owners() == expected, timeout=20,
        message=lambda: f"owners {owners()}" + general.describe() + dedicated.describe(),
    )  # fmt: skip

    booked = booked_jobs(contractors=2, jobs_each=3)
    total = rate_rounds(booked.jobs, rounds=2)
    wait_delivered(general, timeout=30)
    assert dedicated.handled("realtime.broadcast") >= total
    assert general.handled("realtime.broadcast") == 0
    assert {s["subscriber"] for s in dedicated.steps()} == {"realtime.broadcast"}

    dedicated.kill()  # its heartbeat goes stale and its lease expires: the general relay takes it
    more = rate_rounds(booked.jobs, rounds=1)
    wait_until(
        lambda: general.handled("realtime.broadcast") >= more and nothing_pending(), timeout=30,
        message=lambda: delivery_summary() + f"owners {owners()}" + general.describe(),
    )  # fmt: skip
    assert set(owners().values()) == {"general"}
    assert failures() == []


def publications(relay) -> int:
    """How many events `relay` published (its DEBUG lines)."""
    return sum(int(n) for n in re.findall(r"published events=(\d+)", relay.output()))


def published() -> bool:
    return not Event.objects.filter(sequence=None).exists()


def test_a_relay_of_every_subscriber_leaves_publication_to_a_live_dedicated_relay(relays):
    """The broadcast's relay publishes (a quiet process holds the publication lock); the
    other looks once a poll interval, so an event is published even while that one stalls."""
    options = ("--poll-interval", "1", "--lease", "2", "--log-level", "DEBUG")
    dedicated = relays("broadcaster", *options, "--subscribers", "realtime.broadcast")
    dedicated.wait_started()
    general = relays("general", *options)
    general.wait_started()
    wait_delivered(timeout=15)  # both are up
    for _ in range(10):
        create_jobs(1)
        wait_until(published, timeout=15, message=lambda: general.describe() + dedicated.describe())
    # The other looks itself only now and then (when is tested in test_relay.py).
    assert publications(general) <= 2, general.describe() + dedicated.describe()
    assert publications(general) + publications(dedicated) == 10

    dedicated.signal(signal.SIGSTOP)
    try:
        create_jobs(1)
        wait_until(published, timeout=10, message=general.describe)
    finally:
        dedicated.signal(signal.SIGCONT)


# --- store outages ----------------------------------------------------------------------------


def test_while_redis_is_down_ratings_stay_current_and_screens_catch_up_after(relays, own_redis):
    relay = relays("redis-outage", "--poll-interval", "0.2", redis_url=own_redis.url)
    booked = booked_jobs(contractors=2, jobs_each=3)
    rate_rounds(booked.jobs, rounds=1)
    wait_delivered(relay, timeout=15)

    own_redis.stop()
    rate_rounds(booked.jobs, rounds=2)
    wait_until(
        lambda: "subscriber realtime.broadcast cannot reach a store" in relay.output(),
        timeout=10,
        message=lambda: "the relay never noticed Redis was gone\n" + relay.describe(),
    )
    # The rating summary needs only PostgreSQL: it keeps up while the broadcast waits.
    wait_until(
        lambda: positions()["contractors.rating_summary"] == head(),
        timeout=10,
        message=lambda: delivery_summary() + relay.describe(),
    )
    for contractor in Contractor.objects.filter(pk__in=[c.pk for c in booked.contractors]):
        assert (contractor.average_rating, contractor.rating_count) == rating_summary(contractor.pk)
    assert positions()["realtime.broadcast"] < head()
    assert failures() == []  # an outage spends no attempt
    assert Subscriber.objects.get(name="realtime.broadcast").outage_since is not None

    own_redis.start()
    restarted = time.monotonic()
    wait_delivered(relay, timeout=20)
    assert time.monotonic() - restarted < 5  # probed every second at most, with jitter
    assert failures() == []
    assert "subscriber realtime.broadcast recovered" in relay.output()
    assert Subscriber.objects.get(name="realtime.broadcast").outage_since is None
    assert relay.alive(), relay.describe()


def test_a_relay_whose_postgres_backends_are_terminated_ten_times_keeps_delivering(relays):
    """The LISTEN connection is the relay's own, outside any pool: reconnecting after each
    termination never runs a pool dry (with a pool of 4, the fifth reconnect used to wedge)."""
    relay = relays("pg-outage", "--poll-interval", "0.5")
    create_jobs(1)
    wait_delivered(relay, timeout=15)
    for round_ in range(10):
        backends = wait_until(
            lambda: (rows := relay_backends()) and any("LISTEN" in q for _, q in rows) and rows,
            timeout=10,
            message=lambda: f"no LISTEN session found: {relay_backends()}" + relay.describe(),
        )
        with connection.cursor() as cursor:
            for pid, _ in backends:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        wait_until(
            lambda: not {pid for pid, _ in backends} & {pid for pid, _ in relay_backends()},  # noqa: B023
            timeout=10,
            message="the terminated backends are still there",
        )
        create_jobs(1)
        wait_until(
            nothing_pending,
            timeout=20,
            message=lambda: f"round {round_}: " + delivery_summary() + relay.describe(),  # noqa: B023
        )
    assert head() == 11
    assert failures() == []
    assert relay.alive(), relay.describe()


# --- wake-up, command line --------------------------------------------------------------------


def test_notify_wakes_the_relay_long_before_its_poll_interval(relays):
    relay = relays("listener", "--poll-interval", "1")
    create_jobs(1)
    wait_delivered(relay, timeout=15)
    time.sleep(0.3)  # idle: blocked on its LISTEN connection

    latencies = []
    for _ in range(7):
        [job] = create_jobs(1)
        started = time.monotonic()
        wait_until(
            lambda: (
                (
                    Event.objects.filter(type="JobCreated", aggregate_id=str(job.pk))  # noqa: B023
                    .exclude(sequence=None)
                    .values_list("sequence", flat=True)
                    .first()
                    or 10**9
                )
                <= positions()["realtime.broadcast"]
            ),
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
        (["--batch-size", "0"], "--batch-size and --lease must be positive"),
        (["--poll-interval", "5"], "--poll-interval must be more than 0 and at most 1 second"),
        (["--lease", "-1"], "--batch-size and --lease must be positive"),
        (["--linger", "2"], "--linger must be from 0 to 1 second"),
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
    wait_delivered(relay, timeout=15)

    relay.signal(signal.SIGTERM)
    try:
        # Its threads finish their waits (at most a poll interval) and exit: a relay that
        # hung would join its threads for 10 s each. The margin is for a loaded machine.
        relay.proc.wait(timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail("relay still running 8 s after SIGTERM\n" + relay.describe())
    assert relay.proc.returncode == 0, relay.describe()
    assert "relay stopping (signal 15)" in relay.output()
    assert "relay stopped name=graceful" in relay.output()
    assert "Traceback" not in relay.output()
    # Its leases are given back, so another relay need not wait for them to expire.
    assert set(Subscriber.objects.values_list("owner", flat=True)) == {""}
