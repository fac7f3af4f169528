"""The relay in-process, on the real PostgreSQL and Redis: ordering, retries and dead events,
the Channels hop, metrics.

Handlers under test are the project's own plus test handlers subscribed through the public
registry (`test_handlers`); only the clock is ever replaced (`clock`).
"""

import asyncio
import threading
import uuid
from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from events.models import DeliveryStatus, Event, HandlerReceipt
from events.relay import Relay, RelayConfig
from realtime.broadcast import MAX_EVENTS_PER_MESSAGE, groups_with_members
from tests.events.support import counts_by_status, create_jobs, handlers_for, receipts_by_event


def event_of(job) -> Event:
    return Event.objects.get(type="JobCreated", aggregate_id=str(job.pk))


def status_of(event: Event) -> str:
    return Event.objects.values_list("status", flat=True).get(sequence=event.sequence)


# --- ordering ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_transactions_committing_against_sequence_order_are_both_delivered():
    recorded, may_commit = threading.Event(), threading.Event()
    slow: dict = {}

    def slow_writer() -> None:
        """Takes the lower sequence, then holds its transaction open until told to commit."""
        try:
            with transaction.atomic():
                [job] = create_jobs(1)
                slow["sequence"] = event_of(job).sequence
                recorded.set()
                if not may_commit.wait(timeout=20):
                    raise RuntimeError("never told to commit")
        except BaseException as exc:
            slow["error"] = exc
        finally:
            recorded.set()
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    relay = Relay(name="ordering")
    try:
        assert recorded.wait(timeout=10)
        assert "error" not in slow, slow
        [fast_job] = create_jobs(1)  # commits now, with the higher sequence
        fast = event_of(fast_job)
        assert slow["sequence"] < fast.sequence

        assert relay.drain() == 1
        assert status_of(fast) == DeliveryStatus.DELIVERED
        assert not Event.objects.filter(sequence=slow["sequence"]).exists()  # not committed
    finally:
        may_commit.set()
        writer.join(timeout=10)
    assert not writer.is_alive()
    assert "error" not in slow, slow

    # Found by its state, not skipped by a "past the highest delivered sequence" cursor.
    assert relay.drain() == 1
    assert counts_by_status() == {"pending": 0, "delivered": 2, "dead": 0}
    assert receipts_by_event() == {
        slow["sequence"]: handlers_for("JobCreated"),
        fast.sequence: handlers_for("JobCreated"),
    }


@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_rows_another_claim_holds_and_stamps_its_own_in_one_statement(clock):
    jobs = create_jobs(3)
    held, others = event_of(jobs[0]), [event_of(job).sequence for job in jobs[1:]]
    locked, done = threading.Event(), threading.Event()

    def other_relay() -> None:
        try:
            with transaction.atomic():
                Event.objects.select_for_update().get(sequence=held.sequence)
                locked.set()
                done.wait(timeout=20)
        finally:
            locked.set()
            connection.close()

    holder = threading.Thread(target=other_relay)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        with CaptureQueriesContext(connection) as captured:
            batch = Relay(RelayConfig(batch_size=10), name="skipper").claim()
    finally:
        done.set()
        holder.join(timeout=10)

    assert len(captured.captured_queries) == 1
    assert [e.sequence for e in batch] == others  # in sequence order, the held row skipped
    assert [(e.attempts, e.claimed_by) for e in batch] == [(1, "skipper")] * 2
    rows = Event.objects.in_bulk([held.sequence, *others])
    assert [rows[s].claimed_by for s in others] == ["skipper"] * 2
    assert all(rows[s].lease_expires_at == clock.now + RelayConfig().lease for s in others)
    assert (rows[held.sequence].claimed_by, rows[held.sequence].attempts) == ("", 0)


# --- failures: retry with backoff, then dead --------------------------------------------------


@pytest.mark.django_db
def test_a_failing_handler_is_retried_with_backoff_then_dead_while_other_events_flow(
    clock, test_handlers
):
    relay = Relay(RelayConfig(max_attempts=3, backoff_base=10.0), name="retrying")
    good, bad, also_good = create_jobs(3)
    test_handlers.broken.add(bad.pk)
    bad_event = event_of(bad)

    # Attempt 1: the batch of three; only the bad event fails, the others are delivered.
    first = relay.run_batch()
    assert (first.claimed, first.delivered, first.retried, first.dead) == (3, 2, 1, 0)
    assert (status_of(event_of(good)), status_of(event_of(also_good))) == ("delivered",) * 2
    row = Event.objects.get(sequence=bad_event.sequence)
    assert (row.status, row.attempts, row.claimed_by) == ("pending", 1, "")
    assert f"RuntimeError: tile supplier unreachable for job {bad.pk}" in row.last_error
    assert "handler tests.flaky" in row.last_error
    first_delay = (row.available_at - clock.now).total_seconds()
    assert 10 * 0.5 <= first_delay <= 10 * 1.5

    # Backing off: nothing to claim until the clock passes available_at, but new events flow.
    [late] = create_jobs(1)
    assert relay.run_batch().claimed == 1
    assert status_of(event_of(late)) == "delivered"
    clock.advance(first_delay - 0.5)
    assert relay.run_batch().claimed == 0

    # Attempt 2, in one batch with a fresh event: the delay doubles (within the jitter).
    clock.advance(1.0)
    [fresh] = create_jobs(1)
    second = relay.run_batch()
    assert (second.claimed, second.delivered, second.retried, second.dead) == (2, 1, 1, 0)
    assert status_of(event_of(fresh)) == "delivered"
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 2)
    second_delay = (row.available_at - clock.now).total_seconds()
    assert 20 * 0.5 <= second_delay <= 20 * 1.5

    # Attempt 3 = max_attempts: dead, with the error kept for the operator.
    clock.advance(second_delay)
    [last] = create_jobs(1)
    third = relay.run_batch()
    assert (third.claimed, third.delivered, third.retried, third.dead) == (2, 1, 0, 1)
    assert status_of(event_of(last)) == "delivered"
    row.refresh_from_db()
    assert (row.status, row.attempts, row.claimed_by) == ("dead", 3, "")
    assert f"RuntimeError: tile supplier unreachable for job {bad.pk}" in row.last_error
    assert row.delivered_at is None

    # A dead event is never claimed again.
    clock.advance(3600)
    assert relay.run_batch().claimed == 0
    assert counts_by_status() == {"pending": 0, "delivered": 5, "dead": 1}

    # The handlers that succeeded for the bad event kept their receipts and never ran again
    # (transactional or not); the failing one has no receipt and never succeeded.
    seq = bad_event.sequence
    assert receipts_by_event()[seq] == [h for h in handlers_for("JobCreated") if h != "tests.flaky"]
    assert (test_handlers.runs("tests.counter", seq), test_handlers.runs("tests.sink", seq)) == (
        1,
        1,
    )
    assert test_handlers.runs("tests.flaky", seq) == 0
    for job in (good, also_good, late, fresh, last):
        sequence = event_of(job).sequence
        assert receipts_by_event()[sequence] == handlers_for("JobCreated")
        assert [test_handlers.runs(h, sequence) for h in test_handlers.calls] == [1, 1, 1]


@pytest.mark.django_db
def test_a_batch_bigger_than_the_redis_pool_is_delivered():
    """A backlog, claimed in default-sized batches, goes out through the broadcast handler.

    Regression: realtime.broadcast once started every group_send of a batch at once; past
    redis-py's 100 pooled connections they failed with MaxConnectionsError, which the relay
    took for a Redis outage, retrying the same batch forever. Sends are bounded now.
    """
    create_jobs(250)
    assert Relay(name="backlog").drain() == 250
    assert counts_by_status() == {"pending": 0, "delivered": 250, "dead": 0}


# --- the Channels hop -------------------------------------------------------------------------


def occurred_at_spelling(moment: datetime) -> str:
    """docs/events.md: ISO-8601 in UTC with a Z, milliseconds when there are any."""
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
    assert row.status == DeliveryStatus.DELIVERED
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


@pytest.mark.django_db
def test_an_event_reaches_a_channels_group_member_through_channels_redis(private_channel_layer):
    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer)

    async def scenario() -> tuple[dict, dict]:
        channel = await layer.new_channel()
        await layer.group_add("dispatch.default", channel)
        try:
            expected = await sync_to_async(record_and_deliver_one_job)()
            message = await receive_event(layer, channel, expected["id"])
            return message, expected
        finally:
            await layer.group_discard("dispatch.default", channel)

    message, expected = async_to_sync(scenario)()
    assert message == {"type": "event.message", "event": expected}
    assert uuid.UUID(message["event"]["id"])


@pytest.mark.django_db
def test_a_channels_consumer_idle_longer_than_five_seconds_still_receives(private_channel_layer):
    """Known trap: redis-py 8's default 5 s socket_timeout breaks a blocking receive that has
    waited that long (channels_redis issue 422); the layer is configured without it."""
    assert private_channel_layer["hosts"][0]["socket_timeout"] is None
    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer)

    async def scenario() -> tuple[dict, dict]:
        channel = await layer.new_channel()
        await layer.group_add("dispatch.default", channel)
        try:
            waiting = asyncio.ensure_future(layer.receive(channel))
            await asyncio.sleep(6)
            if waiting.done() and waiting.exception() is not None:
                raise AssertionError(f"the idle receive failed: {waiting.exception()!r}")
            expected = await sync_to_async(record_and_deliver_one_job)()
            message = await receive_event(layer, channel, expected["id"], first=waiting)
            return message, expected
        finally:
            await layer.group_discard("dispatch.default", channel)

    message, expected = async_to_sync(scenario)()
    assert message == {"type": "event.message", "event": expected}


@pytest.mark.django_db
def test_a_group_receives_one_batch_in_sequence_order(private_channel_layer):
    """Within a batch, each group's messages go out one after another in sequence order."""
    layer = get_channel_layer()

    async def scenario() -> list[int]:
        channel = await layer.new_channel()
        await layer.group_add("dispatch.default", channel)
        try:
            await sync_to_async(create_jobs)(12)
            await sync_to_async(Relay(name="ordered").drain)()
            return await receive_sequences(layer, channel, 12)
        finally:
            await layer.group_discard("dispatch.default", channel)

    received = async_to_sync(scenario)()
    assert received == sorted(received)
    assert len(set(received)) == 12


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
def test_a_groups_events_of_one_batch_travel_in_one_message(private_channel_layer):
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
    assert len(sequences) == MAX_EVENTS_PER_MESSAGE + 5
    assert sequences == sorted(sequences)


@pytest.mark.django_db
def test_the_broadcast_sends_only_to_groups_with_members(private_channel_layer):
    """Empty groups are found with one pipelined look-up per batch and skipped; the look-up
    reads the keys channels_redis itself keeps, so a member is always found."""
    layer = get_channel_layer()

    async def scenario() -> tuple[set[str], list[int]]:
        channel = await layer.new_channel()
        await layer.group_add("dispatch.default", channel)
        try:
            found = await groups_with_members(
                layer, ["contractor.1", "dispatch.default", "dispatch.nobody"]
            )
            await sync_to_async(create_jobs)(3)
            await sync_to_async(Relay(name="members").drain)()
            received = await receive_sequences(layer, channel, 3)
            return found, received
        finally:
            await layer.group_discard("dispatch.default", channel)

    found, received = async_to_sync(scenario)()
    assert found == {"dispatch.default"}
    assert received == sorted(received) and len(set(received)) == 3


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
def test_metrics_expose_the_event_log_and_what_the_relay_did(clock):
    create_jobs(3)
    clock.advance(42)
    before = scrape()
    assert before[("smartscheduler_events_pending", ())] == 3
    assert before[("smartscheduler_events_oldest_pending_age_seconds", ())] == 42
    assert before[("smartscheduler_events_dead_current", ())] == 0
    in_log = ("smartscheduler_events_in_log", (("status", "pending"), ("type", "JobCreated")))
    assert before[in_log] == 3

    assert Relay(name="metrics").drain() == 3

    after = scrape()
    delivered = ("smartscheduler_events_delivered_total", (("type", "JobCreated"),))
    assert after[delivered] - before.get(delivered, 0) == 3
    batches = ("smartscheduler_relay_batch_seconds_count", ())
    assert after[batches] - before.get(batches, 0) == 1
    assert after[("smartscheduler_relay_batch_seconds_sum", ())] > before.get(
        ("smartscheduler_relay_batch_seconds_sum", ()), 0
    )
    assert after[("smartscheduler_events_pending", ())] == 0
    assert after[("smartscheduler_events_oldest_pending_age_seconds", ())] == 0
    assert (
        after[("smartscheduler_events_in_log", (("status", "delivered"), ("type", "JobCreated")))]
        == 3
    )
    assert HandlerReceipt.objects.count() == 3 * len(handlers_for("JobCreated"))
