"""What a Django team would otherwise build instead of the EventLog and its relay, delivering the
same events to the same handlers and groups (issue 6, scenario 1; the latency scenario too):

- "relay": ours. `record_event` writes the event in the caller's transaction; `manage.py relay`
  publishes it and delivers it to every subscriber from its own position (with retries).
- "on_commit": `transaction.on_commit` in the recording process runs every subscribed handler on
  [event] right after the commit, including the broadcast's `group_send`. No durability: an
  event whose delivery fails or whose process dies after the commit is lost (the callback is
  `robust`, so a failed delivery is logged and does not fail the committed request).
- "procrastinate": a PostgreSQL job queue. One job per event is deferred in the recording
  transaction (procrastinate's Django connector uses Django's connection), and a procrastinate
  worker runs every subscribed handler on [event] per job.
- "celery": what a Django team reaches for first. One Celery task per event, queued with
  `delay_on_commit` (Celery >= 5.4: `delay` in `transaction.on_commit`) on a Redis broker (the
  scenario's private redis-server, database 1), and a Celery worker runs every subscribed
  handler on [event] per task (bench/celery_app.py). Celery's defaults: the task is
  acknowledged when the worker takes it, so a worker killed mid-task loses it, and a process
  killed between the commit and the `delay` never queues it.

The hook is Django's `post_save` signal on `events.models.Event` (public; `record_event` creates
the row with `Event.objects.create` in the caller's transaction), so product code is unchanged.
Handlers run as the relay runs them, minus receipts: a transactional handler in its own
transaction, the others outside any. Events recorded by the handlers (RecommendationsUpdated) are
delivered the same way, as the relay delivers them.

This module imports Django models only inside functions: the bench orchestrator imports it
without Django set up.
"""

import functools
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.cluster import BenchCluster
    from devtools.processes import Process
    from events.models import Event

MODES = ("relay", "on_commit", "procrastinate", "celery")
PROCRASTINATE_SETTINGS = "bench.settings_procrastinate"
RELAY_BATCH = 500
PROCRASTINATE_QUEUE = "events"
CELERY_QUEUE = "events"
# The Celery task's counters in the broker's Redis (bench/celery_app.py), for the drain checks:
CELERY_DONE = "bench:celery:done"  # tasks finished
CELERY_FIRST = "bench:celery:first"  # time.time() of the first task started
CELERY_LAST = "bench:celery:last"  # time.time() of the last task finished
# The worker's database connections are kept between jobs (the product's default, 0, is for
# ASGI requests); without it every job would open a new PostgreSQL connection.
WORKER_CONN_MAX_AGE = "600"
# Handlers in flight in a job-queue worker: procrastinate's --concurrency, Celery's prefork
# processes. Their defaults are 1 and one per CPU (2 here); each job spends most of its few
# milliseconds waiting on PostgreSQL and Redis, so 4 overlaps those waits (on a 1,500-event trial
# procrastinate at 4 was 1.2x to 2.4x faster than at 1), and both queues get the same 4.
QUEUE_CONCURRENCY = 4


def _check(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")


def env(mode: str) -> dict[str, str]:
    """Extra environment for every Django process of this mode (e.g. a bench settings module
    that adds procrastinate's Django app). {} for "relay" and "on_commit"."""
    _check(mode)
    if mode == "procrastinate":
        return {"DJANGO_SETTINGS_MODULE": PROCRASTINATE_SETTINGS}
    return {}


def prepare(cluster: "BenchCluster", mode: str) -> None:
    """Once per database, before use: e.g. apply procrastinate's schema/migrations. No-op for
    the others. Idempotent."""
    _check(mode)
    if mode == "procrastinate":
        from devtools.processes import run_manage

        run_manage(cluster.env(**env(mode)), "migrate", "procrastinate", "--no-input", timeout=300)


def deliver(events: "list[Event]") -> None:
    """Run every subscribed handler on `events`, here and now: a transactional handler in its
    own transaction, the others outside any. No receipts, no retries: an exception propagates.

    The alternatives have no publication, so an event has no sequence; the frame format needs
    one (the websocket consumer keeps the last it sent, for a resume), so the event's id, the
    order of recording, stands in for it, on this copy only (nothing is written)."""
    from django.db import transaction

    from events.handlers import subscriptions

    for event in events:
        if event.sequence is None:
            event.sequence = event.id
    for sub in subscriptions():
        accepted = [event for event in events if sub.accepts(event.type)]
        if not accepted:
            continue
        if sub.transactional:
            with transaction.atomic():
                sub.func(accepted)
        else:
            sub.func(accepted)


def _deliver_on_commit(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    from django.db import transaction

    if created and not raw:
        transaction.on_commit(functools.partial(deliver, [instance]), robust=True)


def _defer_job(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        from bench.procrastinate_tasks import deliver_event

        # By id: an event gets its sequence only at publication, after this commit.
        deliver_event.defer(event_id=instance.pk)


def _delay_on_commit(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        from bench.celery_app import deliver_event

        deliver_event.delay_on_commit(event_id=instance.pk)


_RECEIVERS = {
    "on_commit": _deliver_on_commit,
    "procrastinate": _defer_job,
    "celery": _delay_on_commit,
}


def install(mode: str) -> None:
    """In a process where Django is set up (with env(mode)): make every event recorded from now
    on (record_event writes an events.Event row in the caller's transaction) be delivered the
    alternative's way: "on_commit": transaction.on_commit -> run the same subscribed handlers
    (events.handlers.subscriptions()) on [event], including the broadcast's group_send, in this
    process, no durability; "procrastinate": defer one procrastinate job per event in the same
    transaction; "celery": queue one Celery task per event after the commit (`delay_on_commit`).
    "relay": nothing (the relay process delivers). Idempotent."""
    _check(mode)
    if mode == "relay":
        return
    if mode == "celery":
        import bench.celery_app  # noqa: F401 (the app, before the first request needs it)
    from django.db.models.signals import post_save

    from events.models import Event

    post_save.connect(
        _RECEIVERS[mode], sender=Event, weak=False, dispatch_uid=f"bench.alternatives.{mode}"
    )


def uninstall(mode: str) -> None:
    """Undo `install(mode)` (tests)."""
    _check(mode)
    if mode == "relay":
        return
    from django.db.models.signals import post_save

    from events.models import Event

    post_save.disconnect(sender=Event, dispatch_uid=f"bench.alternatives.{mode}")


def on_procrastinate_ready(app) -> None:
    """PROCRASTINATE_ON_APP_READY of bench.settings_procrastinate: every process of the
    "procrastinate" mode defers jobs, the worker included (its handlers record events too)."""
    install("procrastinate")


def procrastinate_holds(cluster: "BenchCluster", *statuses: str) -> bool:
    """Whether the procrastinate queue has a job in one of `statuses` ("todo", "doing", ...)."""
    with cluster.sql() as conn:
        return (
            conn.execute(
                "SELECT 1 FROM procrastinate_jobs"
                " WHERE status = ANY(%s::procrastinate_job_status[]) LIMIT 1",
                [list(statuses)],
            ).fetchone()
            is not None
        )


def worker_argv(mode: str, *, concurrency: int = 1, one_shot: bool = False) -> list[str]:
    """The command line of what delivers outside the recording process (see start_worker)."""
    _check(mode)
    if mode == "relay":
        argv = [sys.executable, "manage.py", "relay", "--batch-size", str(RELAY_BATCH)]
        return [*argv, "--once"] if one_shot else argv
    if mode == "procrastinate":
        argv = [
            sys.executable, "manage.py", "procrastinate", "worker",
            "--concurrency", str(concurrency), "--queues", PROCRASTINATE_QUEUE,
        ]  # fmt: skip
        return [*argv, "--one-shot"] if one_shot else argv
    if mode == "celery":
        return [
            sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker", "--pool",
            "prefork", "--concurrency", str(concurrency), "--queues", CELERY_QUEUE,
            "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
    raise ValueError("on_commit delivers in the recording process: no worker")


def worker_env(mode: str) -> dict[str, str]:
    """env(mode) plus what the worker process needs (kept database connections)."""
    extra = env(mode)
    if mode in ("procrastinate", "celery"):
        extra["DB_CONN_MAX_AGE"] = WORKER_CONN_MAX_AGE
    return extra


def start_worker(
    cluster: "BenchCluster",
    mode: str,
    *,
    concurrency: int | None = None,
    name: str = "",
    **extra_env: str,
) -> "Process | None":
    """Start what delivers outside the recording process: "relay" -> `manage.py relay` (batch
    500), "procrastinate" -> a procrastinate worker running the handlers (`concurrency` jobs at
    once), "celery" -> a Celery worker (`concurrency` prefork processes), default
    QUEUE_CONCURRENCY for both; "on_commit" -> None. Returns the devtools Process (via
    cluster.spawn, so cluster.close() stops it)."""
    _check(mode)
    if mode == "on_commit":
        return None
    if concurrency is None:
        concurrency = QUEUE_CONCURRENCY
    name = name or ("relay" if mode == "relay" else f"{mode}-worker")
    argv = worker_argv(mode, concurrency=concurrency)
    return cluster.spawn(name, argv, **{**worker_env(mode), **extra_env})


# --- throughput runs (bench/relay.py), as `python -m bench.alternatives COMMAND` --------------


def _recorded(last: int, every: int) -> "list[Event]":
    """Events with ids 1..last, every `every`-th of them: a systematic sample keeps the
    recorded mix of types and the order, and keeps the slow alternatives' runs to minutes."""
    from events.models import Event

    return list(Event.objects.filter(id__lte=last).order_by("id"))[::every]


def deliver_on_commit(args) -> dict:
    """What the requests that recorded events 1..last (every `every`-th) would have done after
    their commits: per event, every subscribed handler on [event], one event after another, in
    this one process.
    Events the handlers record are delivered the same way (on_commit installed). Timed: the
    deliveries only (the events are loaded before)."""
    from events.models import Event

    install("on_commit")
    events = _recorded(args.last, args.every)
    started = time.perf_counter()
    for event in events:
        deliver([event])
    seconds = time.perf_counter() - started
    recorded = Event.objects.filter(id__gt=args.last).count()
    return {"events": len(events), "seconds": seconds, "handler_events": recorded}


def defer_jobs(args) -> dict:
    """One procrastinate job per event 1..last (every `every`-th), deferred as
    `install("procrastinate")` defers it (one INSERT through Django's connection), `chunk`
    events per transaction. Timed."""
    from django.db import transaction

    from bench.procrastinate_tasks import deliver_event

    ids = [event.pk for event in _recorded(args.last, args.every)]
    started = time.perf_counter()
    for start in range(0, len(ids), args.chunk):
        with transaction.atomic():
            for event_id in ids[start : start + args.chunk]:
                deliver_event.defer(event_id=event_id)
    return {"jobs": len(ids), "seconds": time.perf_counter() - started}


def queue_tasks(args) -> dict:
    """One Celery task per event 1..last (every `every`-th), queued as `delay_on_commit` queues
    it once the commit is done (`delay`: one LPUSH to the broker). Timed."""
    from bench.celery_app import deliver_event

    ids = [event.pk for event in _recorded(args.last, args.every)]
    started = time.perf_counter()
    for event_id in ids:
        deliver_event.delay(event_id=event_id)
    return {"tasks": len(ids), "seconds": time.perf_counter() - started}


def main() -> int:
    import argparse
    import json
    import resource

    import django

    parser = argparse.ArgumentParser(prog="python -m bench.alternatives")
    commands = parser.add_subparsers(dest="command", required=True)
    on_commit = commands.add_parser("deliver-on-commit")
    defer = commands.add_parser("defer-jobs")
    queue = commands.add_parser("queue-tasks")
    for command in (on_commit, defer, queue):
        command.add_argument("--last", type=int, required=True)
        command.add_argument("--every", type=int, default=1)
    defer.add_argument("--chunk", type=int, default=500)
    args = parser.parse_args()
    django.setup()
    commands = {"deliver-on-commit": deliver_on_commit, "defer-jobs": defer_jobs}
    run = {**commands, "queue-tasks": queue_tasks}[args.command]
    done = run(args)
    done["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(done), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
