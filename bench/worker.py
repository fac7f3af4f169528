"""In-process work against the benchmark's stores, run as `python -m bench.worker COMMAND`
by `bench.cluster.BenchCluster.worker` (Django is set up from the environment it passes).
Prints progress to stderr and one JSON line to stdout."""

import argparse
import json
import random
import sys
import time


def log(message: str) -> None:
    print(f"  [worker] {message}", file=sys.stderr, flush=True)


def run_command(parser: argparse.ArgumentParser, commands: list) -> int:
    """Parses the command line, sets Django up and runs the chosen command, each named after
    its function (`seed_relay` is `seed-relay`); prints what it returns as one JSON line, which
    is what the scenario driving this process reads."""
    import django

    args = parser.parse_args()
    django.setup()
    [run] = [command for command in commands if command.__name__.replace("_", "-") == args.command]
    print(json.dumps(run(args)), flush=True)
    return 0


def seed_relay(args) -> dict:
    """Record exactly `args.events` events through the services: the demo data set (contractors,
    time off, jobs, bookings, ratings, cancellations), topped up with job edits and new jobs."""
    from django.db import transaction
    from django.db.models import Count

    from contractors.services import Location
    from events.models import Event
    from scheduling.demo import seed_demo
    from scheduling.models import Job, JobStatus
    from scheduling.services import create_job, update_job

    started = time.perf_counter()
    report = seed_demo(
        seed=args.seed,
        contractors=args.contractors,
        jobs=args.jobs,
        progress=lambda phase, done, total: (
            log(f"{phase} {done}/{total}") if total and done in (total, total // 2) else None
        ),
    )
    log(report.lines()[0])
    count = Event.objects.count()
    log(f"the seed recorded {count} events; topping up to {args.events}")
    if count > args.events:
        raise SystemExit(f"the seed recorded {count} events, more than {args.events}")
    rng = random.Random(args.seed)
    open_jobs = list(Job.objects.filter(status=JobStatus.OPEN).values_list("pk", "lat", "lng"))
    current = dict(Job.objects.filter(status=JobStatus.OPEN).values_list("pk", "priority"))
    priorities = ["low", "normal", "high", "urgent"]
    with transaction.atomic():
        while count < args.events:
            job_id, lat, lng = rng.choice(open_jobs)
            if count % 2:
                # A different priority, so the edit records JobUpdated.
                new = rng.choice([p for p in priorities if p != current.get(job_id, "normal")])
                update_job(job_id=job_id, priority=new)
                current[job_id] = new
            else:
                job = create_job(
                    type="flooring",
                    location=Location(lat=lat, lng=lng, address="bench"),
                    desired_date=Job.objects.get(pk=job_id).desired_date,
                    duration_minutes=120,
                )
                open_jobs.append((job.pk, job.lat, job.lng))
            count += 1
    mix = dict(Event.objects.values_list("type").annotate(n=Count("id")).order_by("-n"))
    last = Event.objects.order_by("-id").values_list("id", flat=True).first()
    return {
        "events": Event.objects.count(),
        "last_id": last,
        "mix": mix,
        "seconds": time.perf_counter() - started,
    }


def redis_ceiling(args) -> dict:
    """A bare redis-py pipeline PUBLISH loop: every event's broadcast message (the same JSON
    envelope, to each of its groups), `batch` events per pipeline round trip."""
    import redis
    from django.conf import settings

    from events.envelope import envelope
    from events.groups import channels_group_name
    from events.models import Event

    batches: list[list[tuple[str, bytes]]] = []
    events = list(Event.objects.exclude(sequence=None).order_by("sequence")[: args.events])
    for start in range(0, len(events), args.batch):
        batches.append(
            [
                (
                    channels_group_name(group),
                    json.dumps({"type": "event.message", "event": envelope(event)}).encode(),
                )
                for event in events[start : start + args.batch]
                for group in event.groups
            ]
        )
    client = redis.Redis.from_url(settings.REDIS_URL)
    samples = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        for batch in batches:
            pipe = client.pipeline(transaction=False)
            for channel, message in batch:
                pipe.publish(channel, message)
            pipe.execute()
        samples.append(len(events) / (time.perf_counter() - started))
    messages = sum(len(batch) for batch in batches)
    size = sum(len(m) for batch in batches for _, m in batch) / max(messages, 1)
    return {"samples": samples, "events": len(events), "messages": messages, "bytes": size}


def listen_groups(args) -> dict:
    """One channel joined to every group the recorded events name, as if a browser watched each
    one: the relay's broadcast then sends to every group instead of skipping unlistened ones."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer
    from django.db import connection

    from events.groups import channels_group_name

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    # From the events themselves: the group rows exist only once the events are published.
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT jsonb_array_elements_text(groups) FROM events_event")
        groups = [row[0] for row in cursor.fetchall()]

    async def join() -> None:
        for group in groups:
            await layer.group_add(channels_group_name(group), channel)

    async_to_sync(join)()
    return {"groups": len(groups), "channel": channel}


def subscribers(args) -> dict:
    """The subscribers of this environment (EVENT_BUS_URL set: the bus too): name, the types it
    takes (None: all) and whether it is transactional, for the SQL ceiling and the wait."""
    from events.handlers import subscriptions

    return {
        "subscribers": [
            {
                "name": sub.name,
                "types": None if sub.all_types else sorted(sub.types),
                "transactional": sub.transactional,
            }
            for sub in subscriptions()
        ]
    }


def bus_ceiling(args) -> dict:
    """A bare kombu loop publishing the first `args.events` published events as the bus does
    (the CloudEvent bytes, persistent, publisher confirms, one message at a time), on one
    connection, to the configured exchange: what the bus subscriber cannot beat."""
    import kombu
    from django.conf import settings

    from events.bus import PERSISTENT, bus_connection, bus_exchange
    from events.cloudevent import CONTENT_TYPE, structured
    from events.models import Event

    events = list(Event.objects.exclude(sequence=None).order_by("sequence")[: args.events])
    bodies = [(structured(event), event.type, str(event.event_id)) for event in events]
    exchange = bus_exchange(settings.EVENT_BUS_URL, settings.EVENT_BUS_EXCHANGE)
    samples = []
    with bus_connection(settings.EVENT_BUS_URL) as connection:
        producer = kombu.Producer(connection.default_channel, exchange=exchange)
        for _ in range(args.repeats):
            started = time.perf_counter()
            for body, routing_key, message_id in bodies:
                producer.publish(
                    body, routing_key=routing_key, message_id=message_id,
                    delivery_mode=PERSISTENT, content_type=CONTENT_TYPE,
                    content_encoding="utf-8", retry=False,
                )  # fmt: skip
            samples.append(len(bodies) / (time.perf_counter() - started))
    return {
        "samples": samples,
        "batch_confirm_samples": batch_confirms(bodies, exchange.name, args),
        "events": len(bodies),
    }


def batch_confirms(bodies: list[tuple[bytes, str, str]], exchange: str, args) -> list[float]:
    """The same messages, persistent, on a channel in confirm mode, but confirmed once per
    batch of `args.batch`: publish the batch, then wait for the broker's acks of all of it
    (py-amqp directly; kombu's confirm_publish waits after every message). What the bus could
    reach if it confirmed per batch."""
    from urllib.parse import urlsplit

    import amqp
    from django.conf import settings

    url = urlsplit(settings.EVENT_BUS_URL)
    samples = []
    connection = amqp.Connection(
        host=f"{url.hostname}:{url.port or 5672}", userid=url.username, password=url.password
    )
    connection.connect()
    try:
        channel = connection.channel()
        channel.confirm_select()
        acked = [0]

        def on_ack(delivery_tag: int, multiple: bool) -> None:
            acked[0] = max(acked[0], delivery_tag)

        channel.events["basic_ack"].add(on_ack)
        sent = 0
        for _ in range(args.repeats):
            started = time.perf_counter()
            for first in range(0, len(bodies), args.batch):
                for body, routing_key, message_id in bodies[first : first + args.batch]:
                    channel.basic_publish(
                        amqp.Message(body, delivery_mode=2, message_id=message_id,
                                     content_type="application/cloudevents+json"),
                        exchange=exchange, routing_key=routing_key,
                    )  # fmt: skip
                    sent += 1
                while acked[0] < sent:
                    connection.drain_events(timeout=10)
            samples.append(len(bodies) / (time.perf_counter() - started))
    finally:
        connection.close()
    return samples


def recommend(args) -> dict:
    """p50/p95 of `recommend_for_job` (what GET /api/jobs/{id}/recommendations runs) for one
    open job, in rounds of `samples` calls: cold (own Redis flushed before every call) and
    warm (after one call that fills the cache)."""
    from datetime import timedelta

    from django.core.cache import cache
    from django.utils import timezone

    from bench.harness import percentile
    from contractors.models import Contractor, ContractorStatus
    from contractors.services import Location, update_contractor
    from scheduling.demo_plan import AREAS
    from scheduling.services import create_job, recommend_for_job

    # The budgets are per active contractor: the demo's inactive ones are made active (through
    # the service, as a dispatcher would).
    for contractor_id in Contractor.objects.exclude(status=ContractorStatus.ACTIVE).values_list(
        "pk", flat=True
    ):
        update_contractor(contractor_id=contractor_id, status=ContractorStatus.ACTIVE)
    area = AREAS[0]
    job = create_job(
        type="flooring",
        location=Location(lat=area.lat, lng=area.lng, address="bench"),
        desired_date=timezone.localdate() + timedelta(days=2),
        duration_minutes=120,
    )
    active = Contractor.objects.filter(status=ContractorStatus.ACTIVE).count()
    out: dict = {"active_contractors": active, "job_id": job.pk, "rounds": []}
    for round_no in range(args.rounds):
        cold, warm = [], []
        for _ in range(args.samples):
            cache.clear()
            started = time.perf_counter()
            found = recommend_for_job(job_id=job.pk, limit=5)
            cold.append((time.perf_counter() - started) * 1000)
        recommend_for_job(job_id=job.pk, limit=5)
        for _ in range(args.samples):
            started = time.perf_counter()
            recommend_for_job(job_id=job.pk, limit=5)
            warm.append((time.perf_counter() - started) * 1000)
        out["rounds"].append(
            {
                "cold_ms": cold,
                "warm_ms": warm,
                "cold_p50": percentile(cold, 50),
                "cold_p95": percentile(cold, 95),
                "warm_p50": percentile(warm, 50),
                "warm_p95": percentile(warm, 95),
                "found": len(found),
            }
        )
        log(
            f"round {round_no + 1}/{args.rounds}: cold p50 {percentile(cold, 50):.1f} ms, "
            f"warm p50 {percentile(warm, 50):.1f} ms, {len(found)} recommended"
        )
    return out


def booking_plan(args) -> dict:
    """Open jobs with a free slot each, for the booking load: one job per active contractor and
    local day (so no two planned bookings compete for a contractor's day), at the contractor's
    own site, in the first free slot the availability engine reports (one availability call per
    contractor over all the days). The jobs are created through `create_job`, so each records
    its JobCreated like any other; the load waits for the relay to deliver them."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from contractors.models import ContractorStatus
    from contractors.selectors import live_contractors
    from contractors.services import Location
    from scheduling.availability import Site
    from scheduling.selectors import availability
    from scheduling.services import create_job

    crew = list(live_contractors().filter(status=ContractorStatus.ACTIVE).order_by("pk"))
    duration = timedelta(minutes=120)
    today = timezone.localdate()
    first, last = today + timedelta(days=2), today + timedelta(days=1 + args.days)
    by_day: dict = {}  # local day -> [(contractor, start, end)], contractors in id order
    for contractor in crew:
        site = Site(contractor.lat, contractor.lng)
        seen: set = set()
        for start, end in availability(contractor, first, last, duration, site).slots:
            day = start.astimezone(contractor.tz).date()
            if day not in seen:
                seen.add(day)
                by_day.setdefault(day, []).append((contractor, start, end))
    picked = [entry for day in sorted(by_day) for entry in by_day[day]][: args.jobs]
    with transaction.atomic():
        jobs = [
            create_job(
                type=next(t for t in ("flooring", "tile", "carpet") if contractor.matches_type(t)),
                location=Location(lat=contractor.lat, lng=contractor.lng, address="bench"),
                desired_date=start.astimezone(contractor.tz).date(),
                duration_minutes=120,
            )
            for contractor, start, _ in picked
        ]
    plans = [
        {
            "job": job.pk,
            "contractorId": contractor.pk,
            "start": start.isoformat(),
            "end": end.isoformat(),
        }
        for job, (contractor, start, end) in zip(jobs, picked, strict=True)
    ]
    with open(args.out, "w") as out:
        json.dump(plans, out)
    return {"planned": len(plans), "contractors": len(crew)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("listen-groups")
    commands.add_parser("subscribers")
    for name in ("bus-ceiling", "redis-ceiling"):
        ceiling = commands.add_parser(name)
        ceiling.add_argument("--events", type=int, default=20_000)
        ceiling.add_argument("--batch", type=int, default=500)
        ceiling.add_argument("--repeats", type=int, default=3)
    seed = commands.add_parser("seed-relay")
    seed.add_argument("--events", type=int, default=20_000)
    seed.add_argument("--contractors", type=int, default=300)
    seed.add_argument("--jobs", type=int, default=5000)
    seed.add_argument("--seed", type=int, default=7)
    rec = commands.add_parser("recommend")
    rec.add_argument("--samples", type=int, default=30)
    rec.add_argument("--rounds", type=int, default=3)
    plan = commands.add_parser("booking-plan")
    plan.add_argument("--jobs", type=int, default=10_000)
    plan.add_argument("--days", type=int, default=150)
    plan.add_argument("--out", required=True)
    return run_command(
        parser,
        [
            listen_groups,
            subscribers,
            bus_ceiling,
            seed_relay,
            redis_ceiling,
            recommend,
            booking_plan,
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
