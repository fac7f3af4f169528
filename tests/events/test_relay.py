"""The relay in-process, on the real PostgreSQL and Redis: publication order, independent
subscribers, retries and dead events per subscriber, outages, leases, the Channels hop, metrics.

Handlers under test are the project's own plus test handlers subscribed through the public
registry (`test_handlers`); only the clock is ever replaced (`clock`).
"""

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from events import publisher
from events.handlers import (
    Subscription,
    add_provider,
    remove_provider,
    subscribe,
    unsubscribe,
)
from events.models import Event, FailedDelivery, Subscriber
from events.publisher import head, publish, publish_all
from events.relay import LeaseLost, Outage, Relay, RelayConfig
from events.relay_loop import RelayLoop
from realtime.broadcast import MAX_EVENTS_PER_MESSAGE
from tests.events.support import create_jobs, failures, nothing_pending, positions


def event_of(job) -> Event:
    return Event.objects.get(type="JobCreated", aggregate_id=str(job.pk))


def sequence_of(job) -> int | None:
    return event_of(job).sequence


# --- publication order ------------------------------------------------------------------------


class LateWriter:
    """A thread that records a job first (the lower id), then holds its transaction open
    until `commit()`."""

    def __init__(self) -> None:
        self.recorded, self.may_commit = threading.Event(), threading.Event()
        self.job = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._write)
        self.thread.start()
        assert self.recorded.wait(timeout=10)
        assert self.error is None, self.error

    def _write(self) -> None:
        try:
            with transaction.atomic():
                [self.job] = create_jobs(1)
                self.recorded.set()
                if not self.may_commit.wait(timeout=20):
                    raise RuntimeError("never told to commit")
        except BaseException as exc:
            self.error = exc
        finally:
            self.recorded.set()
            connection.close()

    def release(self) -> None:
        self.may_commit.set()

    def commit(self) -> None:
        self.release()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        assert self.error is None, self.error


@pytest.mark.django_db(transaction=True)
def test_a_transaction_that_commits_late_is_published_after_and_delivered_to_everyone():
    slow = LateWriter()
    relay = Relay(name="ordering")
    try:
        [fast_job] = create_jobs(1)  # recorded after the slow one, committed before it
        relay.drain()
        assert sequence_of(fast_job) == 1  # published first: it committed first
        assert positions() == dict.fromkeys(positions(), 1)
    finally:
        slow.release()
    slow.commit()

    # The late commit gets the next sequence: a cursor at 1 cannot skip it.
    relay.drain()
    assert sequence_of(slow.job) == 2
    assert event_of(slow.job).id < event_of(fast_job).id
    assert nothing_pending()
    assert failures() == []


@pytest.mark.django_db(transaction=True)
def test_a_notified_publish_finds_rows_committed_out_of_order_and_late_ones_within_a_second(
    monkeypatch,
):
    """The relay's publisher looks past the rows it published a while ago (Floor): a row that
    committed after a newer one was published is found by the next notified publish while it
    is recent, and after the lag by the whole look, due a second later (monotonic clock
    replaced)."""
    now = [1000.0]
    monkeypatch.setattr(publisher.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(publisher, "floor", publisher.Floor())

    # Out of order, within the lag: found by the very next notified publish.
    slow = LateWriter()
    [fast_job] = create_jobs(1)
    assert publish_all(everything=False) == 1  # the first look is a whole one
    now[0] += 0.1
    slow.commit()
    assert publish_all(everything=False) == 1
    assert (sequence_of(fast_job), sequence_of(slow.job)) == (1, 2)

    # Committed later than the lag: not found past the floor, found by the whole look.
    slow = LateWriter()
    [second_fast] = create_jobs(1)
    now[0] += 0.5
    assert publish_all(everything=False) == 1
    for _ in range(3):  # whole looks while it is still open: the start moves past the fast row
        now[0] += publisher.Floor.FULL_SCAN_SECONDS
        assert publish_all(everything=False) == 0
    slow.commit()
    now[0] += 0.1
    assert publish_all(everything=False) == 0  # past the floor, and no whole look due yet
    assert sequence_of(slow.job) is None
    now[0] += publisher.Floor.FULL_SCAN_SECONDS
    assert publish_all(everything=False) == 1
    assert (sequence_of(second_fast), sequence_of(slow.job)) == (3, 4)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_and_publishers_leave_a_gap_free_prefix_at_every_read():
    """Readers never see sequence N+1 published before N, whatever commits and publishes
    race: a reader that remembers the highest sequence it saw never finds a lower one later."""
    stop = threading.Event()
    errors: list[BaseException] = []
    seen_prefixes: list[tuple[int, int]] = []

    def guarded(target):
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        return threading.Thread(target=run)

    def writer() -> None:
        for _ in range(15):
            create_jobs(2)

    def publisher() -> None:
        while not stop.is_set():
            publish(limit=7)

    def reader() -> None:
        while not stop.is_set():
            found = list(Event.objects.exclude(sequence=None).values_list("sequence", flat=True))
            if found:
                seen_prefixes.append((len(found), max(found)))

    writers = [guarded(writer) for _ in range(4)]
    others = [guarded(publisher), guarded(publisher), guarded(reader)]
    for thread in writers + others:
        thread.start()
    for thread in writers:
        thread.join(timeout=60)
    publish_all()
    stop.set()
    for thread in others:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(Event.objects.values_list("sequence", flat=True)) == list(range(1, 121))
    assert seen_prefixes, "the reader never ran"
    assert all(count == highest for count, highest in seen_prefixes)  # never a gap


@pytest.mark.django_db(transaction=True)
def test_a_relay_wakes_its_workers_for_what_other_relays_published_and_not_for_its_own():
    """Its own publications woke their subscribers in-process; another relay's NOTIFY names
    the types it published, so only those subscribers wake (one of an older relay, naming
    none, wakes every subscriber)."""
    loop = RelayLoop(Relay(RelayConfig(poll_interval=0.2), name="notified"), threading.Event())
    listener = loop._listen()

    def elsewhere(action) -> None:  # another relay: another thread, another connection
        thread = threading.Thread(target=lambda: (action(), connection.close()))
        thread.start()
        thread.join(timeout=30)

    def gathered() -> tuple[bool, frozenset[str] | None]:
        """What every look finds until one finds nothing: the NOTIFYs of one burst may reach
        the listener after a look has ended, and the next look takes them."""
        quiet, types = loop._published_elsewhere(listener)
        while not (more := loop._published_elsewhere(listener))[0]:
            types = None if types is None or more[1] is None else types | more[1]
        return quiet, types

    try:
        create_jobs(1)
        assert publish_all() == 1  # on this thread's connection, as this relay's publisher
        assert gathered() == (False, frozenset())  # its own NOTIFYs

        elsewhere(lambda: (create_jobs(2), publish_all()))
        assert gathered() == (False, frozenset({"JobCreated"}))

        elsewhere(lambda: connection.cursor().execute(
            "SELECT pg_notify(%s, '')", [publisher.PUBLISHED_CHANNEL]
        ))  # fmt: skip
        assert loop._published_elsewhere(listener) == (False, None)
        assert loop._published_elsewhere(listener) == (True, frozenset())  # nothing came
    finally:
        listener.close()


@pytest.mark.django_db(transaction=True)
def test_a_relay_that_leaves_publication_to_another_stops_listening_to_commits():
    """It needs only the other relays' publications; commits wake it again once it
    publishes on notice itself (the dedicated relay gone)."""
    loop = RelayLoop(Relay(RelayConfig(poll_interval=0.2), name="general"), threading.Event())
    listener = loop._listen()
    try:
        assert loop._follow_commits(listener, False) is False
        create_jobs(1)  # a commit, unpublished
        assert loop._published_elsewhere(listener) == (True, frozenset())  # nothing came

        assert loop._follow_commits(listener, True) is True
        create_jobs(1)
        assert loop._published_elsewhere(listener) == (False, frozenset())  # the commit's
    finally:
        listener.close()


def test_a_relay_of_every_subscriber_publishes_on_notice_only_without_a_live_dedicated_relay(
    monkeypatch,
):
    """While a dedicated relay lives it publishes on each commit's notification; the others
    look themselves after a quiet poll interval, or two intervals after their last look."""
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])  # the clock, and nothing else
    general = RelayLoop(Relay(RelayConfig(poll_interval=1.0), name="general"), threading.Event())
    dedicated = RelayLoop(
        Relay(RelayConfig(dedicated_to=frozenset({"realtime.broadcast"})), name="broadcaster"),
        threading.Event(),
    )
    assert general._publishes_on_notice() and dedicated._publishes_on_notice()
    general.dedicated_elsewhere = frozenset({"realtime.broadcast"})
    assert not general._publishes_on_notice()
    assert dedicated._publishes_on_notice()

    looked = now[0]
    now[0] += 0.9
    assert not general._look_due(looked, quiet=True)
    now[0] += 0.2  # 1.1 s
    assert general._look_due(looked, quiet=True)
    assert not general._look_due(looked, quiet=False)  # a commit's notice: not a race
    now[0] += 1.0  # 2.1 s: however busy the log, in case the dedicated relay stalled
    assert general._look_due(looked, quiet=False)


@pytest.mark.django_db
def test_a_relay_gives_back_a_subscriber_served_elsewhere_and_then_spends_no_statement_on_it():
    """Beside a live relay dedicated to the broadcast, a relay of every subscriber gives the
    broadcast's lease back if it holds it, and otherwise leaves it without a statement (its
    worker looked at every publication, hundreds of times a second)."""
    name = "realtime.broadcast"
    general = RelayLoop(Relay(RelayConfig(), name="general"), threading.Event())
    general.relay.ensure_subscribers([Subscription(name, frozenset({"*"}), lambda events: None)])
    assert general.relay.acquire(name) is not None
    general.dedicated_elsewhere = frozenset({name})

    assert not general._fair_to_own(name)
    assert Subscriber.objects.get(name=name).owner == ""  # given back

    with CaptureQueriesContext(connection) as queries:
        assert not general._fair_to_own(name)
    assert len(queries) == 0


@pytest.mark.django_db
def test_a_step_line_says_where_its_time_went(caplog):
    """read (the batch), deliver (the handler) and advance (the position), in milliseconds."""
    slow = subscribe(
        "tests.slow", ["JobCreated"], lambda events: time.sleep(0.2), transactional=False
    )
    try:
        create_jobs(1)
        publish_all()
        relay = Relay(name="phases")
        with caplog.at_level("INFO", logger="events.relay"):
            relay.step(slow)
    finally:
        unsubscribe("tests.slow")
    [line] = [r.getMessage() for r in caplog.records if "subscriber=tests.slow" in r.getMessage()]
    fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
    total, read, deliver, advance = (
        float(fields[key]) for key in ("ms", "read", "deliver", "advance")
    )
    assert 200 <= deliver < total
    assert read > 0 and advance > 0
    assert read + deliver + advance <= total + 0.3  # each rounded to 0.1 ms


# --- independent subscribers --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_poison_event_fails_for_its_subscriber_alone_then_goes_dead(clock, test_handlers):
    subscribe("tests.short", ["JobCreated"], test_handlers.flaky, retry_schedule=(10.0, 20.0))
    try:
        good, bad, also_good = create_jobs(3)
        test_handlers.broken.add(bad.pk)
        relay = Relay(name="poison")

        relay.drain()
        bad_seq = sequence_of(bad)
        # Every subscriber is past all three; the failing ones hold a retry for the bad event.
        assert set(positions().values()) == {3}
        assert failures() == [
            ("tests.flaky", bad_seq, 1, False),
            ("tests.short", bad_seq, 1, False),
        ]
        row = FailedDelivery.objects.get(subscriber_id="tests.short")
        assert f"RuntimeError: tile supplier unreachable for job {bad.pk}" in row.last_error
        delay = (row.next_attempt_at - clock.now).total_seconds()
        assert 10 * 0.8 <= delay <= 10 * 1.2
        # (tests.short runs the flaky handler's code, so it counts under tests.flaky too.)
        for seq in (sequence_of(good), sequence_of(also_good)):
            assert [test_handlers.runs(h, seq) for h in test_handlers.calls] == [2, 1, 1]
        assert test_handlers.runs("tests.counter", bad_seq) == 1  # others handled it at once

        # New events flow while the retry waits.
        [late] = create_jobs(1)
        relay.drain()
        assert test_handlers.runs("tests.flaky", sequence_of(late)) == 2  # flaky and short
        assert len(failures()) == 2

        # Due: the second attempt fails; on its short schedule the third is the last.
        clock.advance(delay)
        relay.drain()
        row.refresh_from_db()
        assert (row.attempts, row.dead) == (2, False)
        clock.advance(25)
        relay.drain()
        row.refresh_from_db()
        assert (row.attempts, row.dead) == (3, True)
        assert f"job {bad.pk}" in row.last_error

        # Dead for tests.short only: tests.flaky (default schedule) keeps retrying it.
        clock.advance(3600)
        relay.drain()
        assert FailedDelivery.objects.get(subscriber_id="tests.short").attempts == 3
        flaky = FailedDelivery.objects.get(subscriber_id="tests.flaky")
        assert (flaky.dead, flaky.attempts) == (False, 4)

        # Mended: the next retry succeeds and the failure row is gone.
        test_handlers.broken.clear()
        clock.advance(3600)
        relay.drain()
        assert failures() == [("tests.short", bad_seq, 3, True)]
        assert test_handlers.runs("tests.flaky", bad_seq) == 1  # the retry of tests.flaky
    finally:
        unsubscribe("tests.short")


@pytest.mark.django_db
def test_an_event_that_always_raises_a_database_error_still_goes_dead(clock):
    """An OperationalError is not an outage when the database answers the probe: a poison
    event raising one (a statement timeout, a deadlock) spends its attempts like any other."""
    calls: list[int] = []

    def times_out(events: list[Event]) -> None:
        calls.append(len(events))
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = 1")
            cursor.execute("SELECT pg_sleep(0.2)")

    subscribe("tests.timeout", ["JobCreated"], times_out, retry_schedule=(1.0,))
    try:
        [job] = create_jobs(1)
        relay = Relay(name="timeouts")
        relay.drain()
        assert failures() == [("tests.timeout", sequence_of(job), 1, False)]
        assert (
            "canceling statement due to statement timeout"
            in FailedDelivery.objects.get().last_error
        )
        clock.advance(5)
        relay.drain()
        assert failures() == [("tests.timeout", sequence_of(job), 2, True)]
        assert positions()["tests.timeout"] == head()
        assert calls == [1, 1]
    finally:
        unsubscribe("tests.timeout")


@pytest.mark.django_db(transaction=True)
def test_an_event_whose_backend_was_terminated_under_it_is_run_again_at_once(clock):
    """PostgreSQL terminates the backend while a handler's transaction runs: Django drops the
    connection when the rollback fails, so the probe that follows reconnects and passes. The
    store failed, not the event: it runs again in the same step (a first delivery and a retry
    alike) instead of waiting out a backoff. Once only: an event that loses its connection
    every time still spends its attempts."""
    kills = {"left": 0}
    calls: list[int] = []

    def books(events: list[Event]) -> None:
        calls.extend(e.sequence for e in events)
        with transaction.atomic(), connection.cursor() as cursor:
            if kills["left"]:
                kills["left"] -= 1
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            cursor.execute("SELECT 1")

    subscribe("tests.booked", ["JobCreated"], books, transactional=False, retry_schedule=(1.0,))
    try:
        relay = Relay(name="terminated")
        kills["left"] = 1
        [first] = create_jobs(1)
        relay.drain()
        assert failures() == []
        assert calls == [sequence_of(first)] * 2
        assert positions()["tests.booked"] == head()

        kills["left"] = 2  # both runs of this one lose their connection
        [second] = create_jobs(1)
        relay.drain()
        assert failures() == [("tests.booked", sequence_of(second), 1, False)]
        assert calls[2:] == [sequence_of(second)] * 2

        kills["left"] = 1  # its retry loses it once more, then succeeds at once
        clock.advance(5)
        relay.drain()
        assert failures() == []
        assert calls[4:] == [sequence_of(second)] * 2
    finally:
        unsubscribe("tests.booked")


@pytest.mark.django_db
def test_a_subscriber_whose_store_is_down_waits_without_spending_attempts(own_redis):
    """A real store stopped: its subscriber's step is an outage (nothing moves, no failure
    row); every other subscriber carries on; once the store is back nothing is lost."""
    store = redis.Redis(port=own_redis.port, socket_connect_timeout=0.5, socket_timeout=1)

    def mirror(events: list[Event]) -> None:
        for event in events:
            store.sadd("mirrored", str(event.event_id))

    subscribe("tests.mirror", ["JobCreated"], mirror, transactional=False, probe=store.ping)
    try:
        relay = Relay(name="outage")
        create_jobs(2)
        relay.drain()
        own_redis.stop()
        create_jobs(3)
        with pytest.raises(Outage, match=r"tests\.mirror"):
            relay.drain()
        # Everyone else got all five; the mirror is still at two, with no failure counted.
        others = {name: at for name, at in positions().items() if name != "tests.mirror"}
        assert set(others.values()) == {5}
        assert positions()["tests.mirror"] == 2
        assert failures() == []
        with pytest.raises(Outage):
            relay.step(
                Subscription("tests.mirror", frozenset(["JobCreated"]), mirror, False, store.ping)
            )

        own_redis.start()
        relay.drain()
        assert positions()["tests.mirror"] == 5
        assert store.scard("mirrored") == 3  # the server restarted empty: the three since
        assert failures() == []
    finally:
        unsubscribe("tests.mirror")


@pytest.mark.django_db(transaction=True)
def test_a_slow_subscriber_does_not_hold_back_the_others():
    """A subscriber stuck inside a batch in one thread; another relay thread delivers the
    broadcast and the handlers meanwhile."""
    entered, release = threading.Event(), threading.Event()

    def slow(events: list[Event]) -> None:
        entered.set()
        if not release.wait(timeout=30):
            raise RuntimeError("never released")

    subscribe("tests.slow", ["JobCreated"], slow, transactional=False)
    errors: list[BaseException] = []

    def run_slow() -> None:
        try:
            Relay(name="slow-relay").step(
                next(s for s in handlers_subscriptions() if s.name == "tests.slow")
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    try:
        relay = Relay(name="fast-relay")
        relay.ensure_subscribers(handlers_subscriptions())
        create_jobs(1)
        publish_all()
        stuck = threading.Thread(target=run_slow)
        stuck.start()
        assert entered.wait(timeout=10)
        others = [s for s in handlers_subscriptions() if s.name != "tests.slow"]
        relay.drain(others)
        at = positions()
        assert all(at[s.name] == 1 for s in others)
        assert at["tests.slow"] == 0
    finally:
        release.set()
        stuck.join(timeout=10)
        unsubscribe("tests.slow")
    assert errors == []
    assert positions()["tests.slow"] == 1


def handlers_subscriptions() -> list[Subscription]:
    from events.handlers import subscriptions

    return subscriptions()


# --- ownership: leases, fencing ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_lease_is_stamped_with_the_database_clock_and_held_against_other_relays():
    first, second = Relay(name="first"), Relay(name="second")
    first.ensure_subscribers(handlers_subscriptions())
    assert first.acquire("realtime.broadcast") == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        (db_now,) = cursor.fetchone()
    row = Subscriber.objects.get(name="realtime.broadcast")
    assert row.owner == "first"
    assert abs((row.lease_expires_at - db_now) - RelayConfig().lease) < timedelta(seconds=2)
    assert second.acquire("realtime.broadcast") is None

    # Expired (by the database's clock): the other relay takes over.
    Subscriber.objects.filter(name="realtime.broadcast").update(
        lease_expires_at=db_now - timedelta(seconds=1)
    )
    assert second.acquire("realtime.broadcast") == 0
    assert first.acquire("realtime.broadcast") is None


@pytest.mark.django_db(transaction=True)
def test_a_relay_that_lost_its_lease_mid_batch_rolls_its_transactional_effects_back():
    """Exactly once: a transactional handler's effects commit with the position, fenced on
    the owner; the relay that lost the lease changes nothing."""
    touched: list[int] = []

    def steal_then_touch(events: list[Event]) -> None:
        with connection.cursor() as cursor:  # another relay takes over meanwhile
            cursor.execute("SELECT 1")
        taken.set()
        assert stolen.wait(timeout=10)
        for event in events:
            Event.objects.filter(pk=event.pk).update(version=event.version + 1)
            touched.append(event.pk)

    taken, stolen = threading.Event(), threading.Event()
    sub = subscribe("tests.fenced", ["JobCreated"], steal_then_touch)
    errors: list[BaseException] = []

    def thief() -> None:
        try:
            assert taken.wait(timeout=10)
            Subscriber.objects.filter(name="tests.fenced").update(owner="thief")
        except BaseException as exc:
            errors.append(exc)
        finally:
            stolen.set()
            connection.close()

    try:
        relay = Relay(name="victim")
        relay.ensure_subscribers([sub])
        [job] = create_jobs(1)
        publish_all()
        thread = threading.Thread(target=thief)
        thread.start()
        with pytest.raises(LeaseLost):
            relay.step(sub)
        thread.join(timeout=10)
    finally:
        unsubscribe("tests.fenced")
    assert errors == []
    assert touched  # the handler ran...
    assert event_of(job).version == 1  # ...and its effect rolled back with the lost lease
    assert Subscriber.objects.get(name="tests.fenced").position == 0


@pytest.mark.django_db
def test_a_subscriber_added_later_may_start_at_the_end_of_the_log():
    create_jobs(2)
    Relay(name="first").drain()
    seen: list[int] = []
    late = Subscription(
        "tests.latecomer", frozenset(["JobCreated"]), lambda events: seen.extend(
            e.sequence for e in events
        ), transactional=False, starts_at="end",
    )  # fmt: skip
    add_provider("tests", lambda: [late])
    try:
        [job] = create_jobs(1)  # recorded, not yet published when the subscriber appears
        Relay(name="second").drain()
        assert seen == [sequence_of(job)]
    finally:
        remove_provider("tests")


# --- the Channels hop -------------------------------------------------------------------------


def occurred_at_spelling(moment: datetime) -> str:
    """ISO-8601 in UTC with a Z, milliseconds when there are any."""
    utc = moment.astimezone(UTC)
    if utc.microsecond == 0:
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def record_and_deliver_one_job() -> dict:
    """JobCreated for a job in the default region, delivered; returns its envelope as the
    EventLog row spells it (built here, independently of events.envelope)."""
    [job] = create_jobs(1)
    Relay(name="channels").drain()
    row = event_of(job)
    assert positions()["realtime.broadcast"] >= row.sequence
    return {
        "id": str(row.event_id),
        "sequence": row.sequence,
        "type": "JobCreated",
        "version": 1,
        "occurredAt": occurred_at_spelling(row.occurred_at),
        "aggregate": {"type": "job", "id": str(job.pk)},
        "groups": ["dispatch/default"],
        "payload": {
            "jobId": job.pk,
            "type": "tile",
            "region": "default",
            "desiredDate": job.desired_date.isoformat(),
            "durationMinutes": 120,
            "priority": "normal",
            "timestamp": row.payload["timestamp"],
        },
    }


async def receive_event(layer, channel: str, event_id: str, first=None, timeout=10.0) -> dict:
    """Receive until the message carrying `event_id` (others may share the Redis database)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = first
    while True:
        if pending is None:
            pending = asyncio.ensure_future(layer.receive(channel))
        try:
            message = await asyncio.wait_for(pending, max(0.0, deadline - loop.time()))
        except TimeoutError:
            raise AssertionError(f"event {event_id} not received within {timeout}s") from None
        pending = None
        if message.get("event", {}).get("id") == event_id:
            return message


def one_event_to_a_group_member(layer, idle_seconds: float = 0) -> tuple[dict, dict]:
    """A member of `dispatch.default`, its receive waiting `idle_seconds` first (it must not
    fail meanwhile), gets the event of one job recorded and delivered: (message, envelope)."""

    async def scenario() -> tuple[dict, dict]:
        channel = await layer.new_channel()
        await layer.group_add("dispatch.default", channel)
        try:
            waiting = asyncio.ensure_future(layer.receive(channel))
            await asyncio.sleep(idle_seconds)
            if waiting.done() and waiting.exception() is not None:
                raise AssertionError(f"the idle receive failed: {waiting.exception()!r}")
            expected = await sync_to_async(record_and_deliver_one_job)()
            message = await receive_event(layer, channel, expected["id"], first=waiting)
            return message, expected
        finally:
            await layer.group_discard("dispatch.default", channel)

    return async_to_sync(scenario)()


@pytest.mark.django_db
def test_an_event_reaches_a_channels_group_member_through_channels_redis(private_channel_layer):
    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer)

    message, expected = one_event_to_a_group_member(layer)
    assert message == {"type": "event.message", "event": expected}
    assert uuid.UUID(message["event"]["id"])


@pytest.mark.django_db
def test_a_channels_consumer_idle_longer_than_five_seconds_still_receives(private_channel_layer):
    """redis-py 8's default 5 s socket_timeout breaks a blocking receive that has waited that
    long (channels_redis issue 422); the layer is configured without it."""
    assert private_channel_layer["hosts"][0]["socket_timeout"] is None
    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer)

    message, expected = one_event_to_a_group_member(layer, idle_seconds=6)
    assert message == {"type": "event.message", "event": expected}


async def receive_sequences(layer, channel: str, count: int) -> list[int]:
    """The sequences of the next `count` events on `channel`, whether they come one per
    message (`event.message`) or several per message (`event.batch`)."""
    sequences: list[int] = []
    while len(sequences) < count:
        message = await asyncio.wait_for(layer.receive(channel), 10)
        bodies = message["events"] if message["type"] == "event.batch" else [message["event"]]
        sequences += [body["sequence"] for body in bodies]
    return sequences


@pytest.mark.django_db
def test_a_groups_events_of_one_batch_travel_in_order_in_few_messages(private_channel_layer):
    """A batch's events for one group go in `event.batch` messages (at most
    MAX_EVENTS_PER_MESSAGE each, in sequence order), not one group_send per event."""
    layer = get_channel_layer()

    async def scenario() -> list[dict]:
        channel = await layer.new_channel()
        await layer.group_add("dispatch.default", channel)
        try:
            await sync_to_async(create_jobs)(MAX_EVENTS_PER_MESSAGE + 5)
            await sync_to_async(Relay(RelayConfig(batch_size=500), name="batched").drain)()
            return [await asyncio.wait_for(layer.receive(channel), 10) for _ in range(2)]
        finally:
            await layer.group_discard("dispatch.default", channel)

    first, second = async_to_sync(scenario)()
    assert first["type"] == second["type"] == "event.batch"
    sequences = [body["sequence"] for body in first["events"] + second["events"]]
    assert len(first["events"]) == MAX_EVENTS_PER_MESSAGE
    assert sequences == list(range(1, MAX_EVENTS_PER_MESSAGE + 6))


@pytest.mark.django_db
def test_the_broadcast_reaches_the_members_of_its_groups_and_skips_empty_ones(
    private_channel_layer,
):
    layer = get_channel_layer()

    async def scenario() -> tuple[dict[str, list[str]], str, list[int]]:
        channel = await layer.new_channel()
        await layer.group_add("dispatch.default", channel)
        try:
            members = await layer.group_members(
                ["contractor.1", "dispatch.default", "dispatch.nobody"]
            )
            await sync_to_async(create_jobs)(3)
            await sync_to_async(Relay(name="members").drain)()
            return members, channel, await receive_sequences(layer, channel, 3)
        finally:
            await layer.group_discard("dispatch.default", channel)

    members, channel, received = async_to_sync(scenario)()
    assert members == {"contractor.1": [], "dispatch.default": [channel], "dispatch.nobody": []}
    assert received == [1, 2, 3]


@pytest.mark.django_db
def test_a_backlog_bigger_than_the_redis_pool_is_broadcast():
    """Sends are bounded: past redis-py's pooled connections they once failed as an outage."""
    create_jobs(250)
    Relay(name="backlog").drain()
    assert nothing_pending()
    assert failures() == []


# --- metrics ----------------------------------------------------------------------------------


def scrape() -> dict[tuple[str, tuple], float]:
    response = Client().get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.mark.django_db
def test_metrics_show_each_subscribers_pending_lag_and_failures(clock, test_handlers):
    relay = Relay(name="metrics")
    relay.ensure_subscribers(handlers_subscriptions())
    jobs = create_jobs(3)
    test_handlers.broken.add(jobs[1].pk)
    publish_all()
    clock.advance(42)
    before = scrape()
    broadcast = (("subscriber", "realtime.broadcast"),)
    assert before[("smartscheduler_subscriber_pending", broadcast)] == 3
    assert before[("smartscheduler_subscriber_oldest_pending_age_seconds", broadcast)] == 42
    assert before[("smartscheduler_events_head", ())] == 3

    relay.drain()

    after = scrape()
    delivered = ("smartscheduler_events_delivered_total", broadcast)
    assert after[delivered] - before.get(delivered, 0) == 3
    assert after[("smartscheduler_subscriber_pending", broadcast)] == 0
    assert after[("smartscheduler_subscriber_oldest_pending_age_seconds", broadcast)] == 0
    flaky = (("subscriber", "tests.flaky"),)
    assert after[("smartscheduler_subscriber_retrying", flaky)] == 1
    assert after[("smartscheduler_subscriber_pending", flaky)] == 1
    assert after[("smartscheduler_subscriber_oldest_pending_age_seconds", flaky)] == 42
    assert after[("smartscheduler_subscriber_outage", flaky)] == 0
    steps = ("smartscheduler_relay_step_seconds_count", broadcast)
    assert after[steps] - before.get(steps, 0) >= 1


@pytest.mark.django_db(transaction=True)
def test_a_lingering_subscriber_gathers_a_stream_into_one_step_but_drains_a_backlog_at_once():
    """After an idle spell a step starts at once; the next waits for the linger, then takes
    what gathered; a full batch is followed at once. A subscriber with linger 0 (the
    broadcast's way) takes each commit as it comes, meanwhile."""
    steps: list[tuple[str, float, list[int]]] = []

    def recorder(name: str):
        return lambda events: steps.append((name, time.monotonic(), [e.sequence for e in events]))

    def calls(name: str) -> list[tuple[float, list[int]]]:
        return [(at, seqs) for who, at, seqs in steps if who == name]

    def wait_for(name: str, count: int, *, events: bool = False) -> None:
        """Wait for `count` steps of `name` (or, with `events`, for `count` events handled in
        however many steps: commits that land together may share one)."""

        def done() -> int:
            return sum(len(seqs) for _, seqs in calls(name)) if events else len(calls(name))

        deadline = time.monotonic() + 20
        while done() < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert done() >= count, steps

    linger = 3.0
    subscribe("tests.gathered", ["JobCreated"], recorder("tests.gathered"), transactional=False)
    subscribe(
        "tests.prompt", ["JobCreated"], recorder("tests.prompt"), transactional=False, linger=0
    )
    stop = threading.Event()
    relay = Relay(RelayConfig(batch_size=2, linger=linger, poll_interval=0.2), name="linger")
    runner = threading.Thread(target=relay.run_forever, args=(stop,))
    try:
        runner.start()
        create_jobs(1)
        wait_for("tests.gathered", 1)
        for _ in range(4):  # four commits, well within the linger
            create_jobs(1)
        wait_for("tests.gathered", 3)
        wait_for("tests.prompt", 5, events=True)
    finally:
        stop.set()
        runner.join(timeout=20)
        unsubscribe("tests.gathered")
        unsubscribe("tests.prompt")
    assert not runner.is_alive()

    (first_at, first), (second_at, second), (third_at, third) = calls("tests.gathered")[:3]
    assert (first, second, third) == ([1], [2, 3], [4, 5])
    # The stream waited for the linger (counted from the first step's start, before its
    # handler ran)...
    assert second_at - first_at >= linger - 0.5
    assert third_at - second_at < linger / 2  # ...the rest of a full batch's backlog did not
    prompt = calls("tests.prompt")
    assert [seq for _, seqs in prompt for seq in seqs] == [1, 2, 3, 4, 5]
    assert prompt[-1][0] < second_at  # none of it waited for the lingering subscriber


@pytest.mark.django_db(transaction=True)
def test_a_batch_longer_than_the_lease_keeps_it_by_the_heartbeat():
    """The running relay renews the leases it holds (every third of the lease), so a slow
    batch is never taken over, and delivered twice, by another relay meanwhile."""
    entered, release = threading.Event(), threading.Event()

    def slow(events: list[Event]) -> None:
        entered.set()
        release.wait(timeout=30)

    subscribe("tests.long", ["JobCreated"], slow, transactional=False)
    stop = threading.Event()
    relay = Relay(RelayConfig(lease=timedelta(seconds=1), poll_interval=0.2), name="holder")
    runner = threading.Thread(target=relay.run_forever, args=(stop,))
    try:
        create_jobs(1)
        runner.start()
        assert entered.wait(timeout=15)
        thief = Relay(name="thief")
        for _ in range(6):  # three lease lengths
            time.sleep(0.5)
            assert thief.acquire("tests.long") is None
        assert Subscriber.objects.get(name="tests.long").owner == "holder"
    finally:
        release.set()
        stop.set()
        runner.join(timeout=20)
        unsubscribe("tests.long")
    assert not runner.is_alive()
    assert positions()["tests.long"] == 1
