"""In-process work for the websocket scenarios (`latency`, `fanout`), run as
`python -m bench.wsworker COMMAND` with Django set up from the environment the scenario passes
(the mode's, see `bench.alternatives.env`). Prints progress to stderr and one JSON line to
stdout, as `bench.worker` does."""

import argparse
import json
import sys
import time

from bench.worker import log, run_command


def ws_accounts(args) -> dict:
    """Websocket clients for the latency and fan-out scenarios: the demo data set (regions,
    contractors, open jobs), then `args.contractors` contractor logins (the first contractors,
    each on its own stream) and `args.dispatchers` dispatcher logins spread over the regions
    (every `args.watch_all`-th one watches every region). Writes the clients' specs (stream
    path with token, and the logical groups the stream joins) to `args.out`."""
    from django.test import override_settings

    from contractors.access import stream_groups
    from contractors.models import Contractor, Region
    from contractors.services import create_account
    from scheduling.demo import seed_demo

    started = time.perf_counter()
    report = seed_demo(seed=args.seed, contractors=args.seed_contractors, jobs=args.jobs)
    log(report.lines()[0])
    regions = sorted(Region.objects.values_list("slug", flat=True))
    # The demo links one contractor to its own login; the others are free to link.
    unlinked = Contractor.objects.filter(user__isnull=True).order_by("pk")
    contractors = list(unlinked.values_list("pk", flat=True))
    if len(contractors) < args.contractors:
        raise SystemExit(f"{len(contractors)} contractors to link, {args.contractors} wanted")
    clients: list[dict] = []

    def sign_in(role: str, **account) -> None:
        """A login of `role` and the stream it opens (dispatch or contractor)."""
        made = create_account(role=role, password="bench-password", check_password=False, **account)
        stream = "dispatch" if role == "dispatcher" else role
        clients.append(
            {
                "name": made.user.username,
                "path": f"/ws/{stream}/?token={made.token_key}",
                "groups": sorted(stream_groups(made.user, stream, None)),
            }
        )

    # The tokens authenticate the streams; the passwords are never used, so the slow default
    # hasher would only cost minutes here.
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        for index in range(args.dispatchers):
            watches = [] if index % args.watch_all == 0 else [regions[index % len(regions)]]
            sign_in("dispatcher", username=f"bench-dispatcher-{index}", regions=watches)
        for contractor_id in contractors[: args.contractors]:
            sign_in(
                "contractor",
                username=f"bench-contractor-{contractor_id}",
                contractor_id=contractor_id,
            )
            if len(clients) % 200 == 0:
                log(f"{len(clients)} logins")
    with open(args.out, "w") as out:
        json.dump(clients, out)
    return {"clients": len(clients), "regions": regions, "seconds": time.perf_counter() - started}


def settle(args) -> dict:
    """Nothing left from an earlier run: everything recorded is published, every subscriber of
    this environment (with EVENT_BUS_URL: the bus too) exists and is at the head, no failed
    delivery; and (unless `args.keep_lists`) no recommendation list is active."""
    from events import handlers
    from events.models import FailedDelivery, Subscriber
    from events.publisher import head, publish_all
    from events.relay import Relay
    from scheduling.models import ActiveRecommendationList

    published = publish_all()
    Relay().ensure_subscribers(handlers.subscriptions())
    FailedDelivery.objects.all().delete()
    end = head()
    Subscriber.objects.update(
        position=end, owner="", lease_expires_at=None, outage_since=None, outage_error=""
    )
    if not args.keep_lists:
        ActiveRecommendationList.objects.all().delete()
    return {"published": published, "head": end}


LISTS_ADDRESS = "bench active list"


def activate_lists(args) -> dict:
    """`args.jobs` open jobs with an active recommendation list each (what a dispatcher's
    GET /api/jobs/{id}/recommendations leaves): the jobs are created once (through
    `create_job`, in every region, desired dates over the next two weeks), and every call
    requests their recommendations again, so their lists are live for 30 minutes."""
    from datetime import timedelta

    from django.utils import timezone

    from contractors.models import Contractor
    from contractors.services import Location
    from scheduling.models import ActiveRecommendationList, Job, JobStatus
    from scheduling.services import create_job, recommend_for_job

    started = time.perf_counter()
    mine = Job.objects.filter(address=LISTS_ADDRESS, status=JobStatus.OPEN)
    sites = list(Contractor.objects.order_by("pk").values_list("lat", "lng"))
    today = timezone.localdate()
    kinds = ("flooring", "tile", "carpet")
    for index in range(mine.count(), args.jobs):
        lat, lng = sites[index % len(sites)]
        create_job(
            type=kinds[index % len(kinds)],
            location=Location(lat=lat + 0.01, lng=lng + 0.01, address=LISTS_ADDRESS),
            desired_date=today + timedelta(days=1 + index % 14),
            duration_minutes=120,
        )
    created = time.perf_counter() - started
    for job_id in mine.order_by("pk").values_list("pk", flat=True)[: args.jobs]:
        recommend_for_job(job_id=job_id, limit=5)
    active = ActiveRecommendationList.objects.filter(expires_at__gt=timezone.now()).count()
    return {"active": active, "seconds": time.perf_counter() - started, "create_s": created}


def schedule_change(contractor_id: int, index: int) -> None:
    """A change that re-ranks: the weekly hours toggled between two shapes (even `index`), or
    an hour of time off on one of the next days (odd)."""
    from datetime import time as clock
    from datetime import timedelta

    from django.utils import timezone

    from contractors.services import Window, add_time_off, set_working_hours

    if index % 2 == 0:
        end = clock(17, 0) if (index // 2) % 2 else clock(16, 0)
        set_working_hours(
            contractor_id=contractor_id,
            windows=[Window(weekday=d, start=clock(8, 0), end=end) for d in range(5)],
        )
    else:
        start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(
            days=1 + index % 10, hours=index % 8
        )
        add_time_off(contractor_id=contractor_id, start=start, end=start + timedelta(hours=1))


def schedule_burst(args) -> dict:
    """`args.changes` schedule changes (see schedule_change) as fast as one thread records
    them, over every contractor in turn."""
    from contractors.models import Contractor
    from events.models import Event

    people = list(Contractor.objects.order_by("pk").values_list("pk", flat=True))
    first = (Event.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    started = time.perf_counter()
    for index in range(args.changes):
        schedule_change(people[index % len(people)], index)
    return {"changes": args.changes, "first_id": first, "seconds": time.perf_counter() - started}


def rerank_all(args) -> dict:
    """A re-ranking step at its most costly, `args.repeats` times: every contractor changed on
    every day, so every active list is reached by more contractors than are checked one by
    one (`CHECK_AT_MOST`) and is ranked afresh. Nothing changed in fact, so nothing is
    recorded and each repeat does the same work. CPU and wall seconds of each."""
    from contractors.models import Contractor
    from scheduling.services.active_lists import rerank_active_lists

    everyone = {pk: None for pk in Contractor.objects.values_list("pk", flat=True)}
    cpu, wall, recomputed = [], [], 0
    for _ in range(args.repeats):
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        recomputed = rerank_active_lists(changes=everyone, reason="bench").recomputed
        cpu.append(time.process_time() - cpu_before)
        wall.append(time.perf_counter() - wall_before)
    return {"cpu_s": cpu, "wall_s": wall, "lists": recomputed, "contractors": len(everyone)}


def record_steady(args) -> dict:
    """Record events through the services at a steady `args.rate` per second for
    `args.warmup + args.seconds`, on a schedule that does not drift: event i is due at
    start + i / rate; a late event is recorded at once, never skipped. `args.threads` threads
    (each with its own database connection) take the events round-robin, so one slow commit
    does not hold back the next event. Each event's commit time is `time.time()` taken by the
    first on_commit callback of its transaction, registered before the service runs, so it
    precedes any delivery an alternative hooks on commit.

    Kinds: `jobs` (priority edits of open jobs: JobUpdated to the job's region), `mix` (those,
    alternating with contractor renames: ScheduleUpdated to the region and the contractor's own
    group, over the first `args.contractors` contractors with a bench login), or `schedule`
    (job edits, every 4th event a schedule change that re-ranks, `schedule_change`, over
    every contractor). Writes [event id,
    groups, commit time, warm-up] per event to `args.out`; events of the first `args.warmup`
    seconds are warm-up (connections, caches), not measured."""
    import resource
    import threading

    from django.db import connection, transaction
    from django.db.models.signals import post_save

    from contractors.models import Contractor
    from contractors.services import update_contractor
    from events.models import Event
    from scheduling.models import Job, JobStatus
    from scheduling.services import update_job

    if args.mode != "relay":
        from bench import alternatives

        alternatives.install(args.mode)
    local = threading.local()

    def remember(sender, instance, created, **kwargs):
        if created:
            local.recorded.append(instance)

    post_save.connect(remember, sender=Event, weak=False)
    jobs = list(Job.objects.filter(status=JobStatus.OPEN).values_list("pk", "priority"))
    # Renames go to the contractors with a bench login (ws-accounts), so they reach a client.
    with_login = Contractor.objects.filter(user__username__startswith="bench-contractor-")
    contractors = list(with_login.order_by("pk").values_list("pk", flat=True))
    contractors = contractors[: args.contractors or None]
    if args.kind == "schedule":
        contractors = list(Contractor.objects.order_by("pk").values_list("pk", flat=True))
    connection.close()
    priorities = ["low", "normal", "high", "urgent"]
    total = int(args.rate * (args.warmup + args.seconds))
    warmup = int(args.rate * args.warmup)
    rows: list[list] = []
    late: list[float] = []
    failures: list[str] = []
    started = time.perf_counter() + 0.1

    def recorder(thread: int) -> None:
        # Each thread edits its own jobs and contractors: no two threads wait on one row lock.
        mine = dict(jobs[thread :: args.threads])
        job_ids = list(mine)
        people = contractors[thread :: args.threads]
        local.recorded = []
        try:
            for number, index in enumerate(range(thread, total, args.threads)):
                wait = started + index / args.rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                elif wait < -0.001:
                    late.append(-wait * 1000)
                stamp: list[float] = []
                local.recorded.clear()
                with transaction.atomic():
                    transaction.on_commit(lambda stamp=stamp: stamp.append(time.time()))
                    if args.kind == "mix" and index % 2:
                        contractor_id = people[number % len(people)]
                        update_contractor(contractor_id=contractor_id, name=f"Bench {index}")
                    elif args.kind == "schedule" and index % 4 == 3:
                        schedule_change(people[(number // 4) % len(people)], number // 4)
                    else:
                        job_id = job_ids[number % len(job_ids)]
                        step = priorities.index(mine[job_id]) + 1
                        mine[job_id] = priorities[step % len(priorities)]
                        update_job(job_id=job_id, priority=mine[job_id])
                for event in local.recorded:
                    rows.append([str(event.event_id), list(event.groups), stamp[0], index < warmup])
                if thread == 0 and number and number % int(args.rate * 10 / args.threads) == 0:
                    log(f"recorded {index}/{total}")
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            connection.close()

    threads = [threading.Thread(target=recorder, args=(t,)) for t in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"recording failed: {failures[0]}")
    seconds = time.perf_counter() - started
    rows.sort(key=lambda row: row[2])
    with open(args.out, "w") as out:
        json.dump(rows, out)
    return {
        "events": len(rows),
        "seconds": seconds,
        "rate": len(rows) / seconds,
        "threads": args.threads,
        "late_over_1ms": len(late),
        "max_late_ms": max(late, default=0.0),
        # Peak RSS of this process: with on_commit delivery, the handlers run here.
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wsworker")
    commands = parser.add_subparsers(dest="command", required=True)
    accounts = commands.add_parser("ws-accounts")
    accounts.add_argument("--seed-contractors", type=int, default=40)
    accounts.add_argument("--jobs", type=int, default=200)
    accounts.add_argument("--contractors", type=int, default=0)
    accounts.add_argument("--dispatchers", type=int, default=1)
    accounts.add_argument("--watch-all", type=int, default=1)
    accounts.add_argument("--seed", type=int, default=7)
    accounts.add_argument("--out", required=True)
    steady = commands.add_parser("record-steady")
    steady.add_argument("--mode", default="relay")
    steady.add_argument("--kind", choices=["jobs", "mix", "schedule"], default="jobs")
    steady.add_argument("--rate", type=float, default=200)
    steady.add_argument("--seconds", type=float, default=30)
    steady.add_argument("--warmup", type=float, default=0)
    steady.add_argument("--contractors", type=int, default=0)
    steady.add_argument("--threads", type=int, default=4)
    steady.add_argument("--out", required=True)
    settle_cmd = commands.add_parser("settle")
    settle_cmd.add_argument("--keep-lists", action="store_true")
    lists = commands.add_parser("activate-lists")
    lists.add_argument("--jobs", type=int, default=400)
    burst = commands.add_parser("schedule-burst")
    burst.add_argument("--changes", type=int, default=200)
    every = commands.add_parser("rerank-all")
    every.add_argument("--repeats", type=int, default=5)
    return run_command(
        parser, [ws_accounts, record_steady, settle, activate_lists, schedule_burst, rerank_all]
    )


if __name__ == "__main__":
    sys.exit(main())
