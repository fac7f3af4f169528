"""The reads of scenario `scale`, in a Django process against the filled log:
`python -m bench.scaleworker reads|prune --events N --out FILE` (see bench/scale.py). Each
read is timed over many calls, and every query it issues is captured and explained with
EXPLAIN (ANALYZE, BUFFERS); the prune (run while the booking load runs) is timed batch by
batch, its queries explained inside a transaction that is rolled back."""

import argparse
import json
import re
import sys
import time
from collections.abc import Callable

CALLS = 200
WARMUP = 20
BEHIND = 50  # events of the client's groups it missed
STEP_BEHIND = 5000
PRUNE_CAP = 600.0  # seconds: past this the prune is stopped (after the batch in hand)
PLAN_LINE = 240  # a plan line longer than this (a list of 5,000 ids) is cut


def log(message: str) -> None:
    print(f"  [scaleworker] {message}", file=sys.stderr, flush=True)


class Rollback(Exception):
    pass


def percentile(values: list[float], pct: float) -> float:
    from bench.harness import percentile as p

    return p(values, pct)


def explain(sql: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS, WAL) of one captured query, inside a transaction rolled
    back (WAL: what a prune's delete writes)."""
    from django.db import connection, transaction

    lines: list[str] = []
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, WAL) " + sql)
                lines = [row[0] for row in cursor.fetchall()]
            raise Rollback
    except Rollback:
        pass
    return "\n".join(cut(line) for line in lines)


def cut(line: str) -> str:
    return line if len(line) <= PLAN_LINE else line[:PLAN_LINE] + " ..."


def short(sql: str) -> str:
    """The query as shown with its plan: long literal lists cut."""
    sql = re.sub(r"IN \(([^()]{200})[^()]*\)", r"IN (\1 ...)", sql)
    return sql if len(sql) <= 1200 else sql[:1200] + " ..."


def captured(fn: Callable[[], object]) -> tuple[object, list[str]]:
    """What `fn()` returns, and the queries it issued."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        returned = fn()
    return returned, [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE", "INSERT"))
    ]


def timed(fn: Callable[[], object], calls: int, before: Callable[[], object] | None = None):
    for _ in range(WARMUP):
        if before:
            before()
        fn()
    samples = []
    for _ in range(calls):
        if before:
            before()
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def behind(groups: set[str], count: int) -> int:
    """The sequence after which `groups` have exactly `count` published events."""
    from django.db import connection

    newest: list[int] = []
    with connection.cursor() as cursor:
        for group in sorted(groups):  # per group from its index, merged here
            cursor.execute(
                'SELECT sequence FROM events_eventgroup WHERE "group" = %s '
                "ORDER BY sequence DESC LIMIT %s",
                [group, count + 1],
            )
            newest += [row[0] for row in cursor.fetchall()]
    newest.sort(reverse=True)
    # Fewer than `count` (a trial's small log): all of them.
    return newest[count] if len(newest) > count else 0


def main() -> int:
    import django

    parser = argparse.ArgumentParser(prog="python -m bench.scaleworker")
    parser.add_argument("part", choices=["reads", "prune"])
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    django.setup()
    out = reads(args.events) if args.part == "reads" else timed_prune()
    with open(args.out, "w") as fh:
        json.dump(out, fh)
    return 0


def reads(events: int) -> dict:

    from prometheus_client import generate_latest

    from events.access import check_cursor, events_page
    from events.handlers import Subscription
    from events.metrics import registry_with_event_log
    from events.models import Subscriber
    from events.operations import status
    from events.publisher import head
    from events.relay import Relay, RelayConfig
    from events.resume import missed_events
    from scheduling.handlers import RANKING_EVENTS

    end = head()
    dispatcher = {"dispatch/r1", "dispatch/r2"}
    contractor = {"contractor/42"}
    middle = events // 2
    relay = Relay(RelayConfig(batch_size=500), name="bench-scale")
    noop_all = Subscription("bench.noop_all", frozenset(["*"]), lambda events: None, False)
    noop_ranking = Subscription(
        "bench.noop_ranking", frozenset(RANKING_EVENTS), lambda events: None, False
    )
    Subscriber.objects.bulk_create(
        [Subscriber(name=sub.name) for sub in (noop_all, noop_ranking)], ignore_conflicts=True
    )

    def rewind(sub: Subscription) -> Callable[[], None]:
        """Put the subscriber STEP_BEHIND events back; the relay forgets the position it
        keeps while it holds the lease, so the step acquires it again (as the note says)."""

        def call() -> None:
            Subscriber.objects.filter(name=sub.name).update(position=end - STEP_BEHIND)
            relay.forget([sub.name])

        return call

    def page(groups, **kw):
        def call():
            check_cursor(middle)
            return len(events_page(groups, after=middle, limit=101, **kw))

        return call

    # A job of the dispatcher's regions, with events after the middle of the log.
    created = events_page(dispatcher, after=middle, limit=1, event_type="JobCreated")
    job = f"job:{created[0].aggregate_id}"
    after_dispatcher = behind(dispatcher, BEHIND)
    after_contractor = behind(contractor, BEHIND)

    def resume(groups, after):
        def call():
            return len(missed_events(groups, after).events)

        return call

    reads = [
        ("resume", "resume, dispatcher of 2 regions, 50 behind",
         resume(dispatcher, after_dispatcher), None),
        ("resume", "resume, contractor, 50 behind", resume(contractor, after_contractor), None),
        ("board", "board's resume point (head)", head, None),
        ("page", "page, dispatcher of 2 regions", page(dispatcher), None),
        ("page", "page, dispatcher, type=JobAssigned",
         page(dispatcher, event_type="JobAssigned"), None),
        ("page", f"page, dispatcher, aggregate={job}",
         page(dispatcher, aggregate=tuple(job.split(":"))), None),
        ("page", "page, contractor", page(contractor), None),
        ("page", "page, contractor, type=JobCompleted",
         page(contractor, event_type="JobCompleted"), None),
        ("page", "page, contractor, aggregate=contractor:42",
         page(contractor, aggregate=("contractor", "42")), None),
        ("page", "page, sees everything", page(None), None),
        ("page", "page, sees everything, type=ContractorRated",
         page(None, event_type="ContractorRated"), None),
        ("step", "subscriber step, all types, 5,000 behind",
         lambda: relay.step(noop_all), rewind(noop_all)),
        ("step", "subscriber step, re-ranking's types, 5,000 behind",
         lambda: relay.step(noop_ranking), rewind(noop_ranking)),
        ("status", "events_status (status())", status, None),
        ("status", "/metrics collection", lambda: generate_latest(registry_with_event_log()),
         None),
    ]  # fmt: skip
    results, plans = [], []
    for kind, name, fn, before in reads:
        samples = timed(fn, CALLS, before)
        if before:
            before()
        returned, queries = captured(fn)
        if before:
            before()
        plans.append(
            {"read": name, "queries": [{"sql": short(q), "plan": explain(q)} for q in queries]}
        )
        results.append(
            {
                "kind": kind,
                "name": name,
                "p50": percentile(samples, 50),
                "p95": percentile(samples, 95),
                "max": max(samples),
                "queries": len(queries),
                "rows": returned if isinstance(returned, int) else None,
            }
        )
        log(f"{name}: p50 {results[-1]['p50']:.2f} ms, p95 {results[-1]['p95']:.2f} ms")
    Subscriber.objects.filter(name__startswith="bench.noop").delete()
    return {
        "calls": CALLS,
        "warmup": WARMUP,
        "head": end,
        "after": {"dispatcher": after_dispatcher, "contractor": after_contractor},
        "reads": results,
        "plans": plans,
    }


def timed_prune() -> dict:
    """The prune of the old events: its queries explained in a transaction rolled back after
    its first batch, then the real one, timed batch by batch."""
    from django.db import transaction

    from events.retention import prune

    class FirstBatch(Exception):
        pass

    def stop(removed: int) -> None:
        raise FirstBatch

    def first_batch() -> None:
        try:
            with transaction.atomic():
                prune(days=90, progress=stop)
        except FirstBatch:
            pass

    _, queries = captured(first_batch)
    plan = {
        "read": "prune (first batch)",
        "queries": [{"sql": short(q), "plan": explain(q)} for q in queries],
    }
    # Stopped at PRUNE_CAP seconds (the rows it removed stay removed: each batch commits on
    # its own).
    batches: list[tuple[int, float]] = []  # (removed so far, seconds so far)
    started = time.perf_counter()

    def batch_done(removed: int) -> None:
        batches.append((removed, time.perf_counter() - started))
        if len(batches) % 20 == 0:
            log(f"prune: {removed:,} removed after {batches[-1][1]:.0f} s")
        if batches[-1][1] > PRUNE_CAP:
            raise FirstBatch

    capped = False
    try:
        removed = prune(days=90, progress=batch_done).removed
    except FirstBatch:
        capped, removed = True, batches[-1][0]
    seconds = time.perf_counter() - started
    log(f"prune: {removed:,} events in {seconds:.1f} s{' (stopped at the cap)' if capped else ''}")
    return {
        "plan": plan,
        "removed": removed,
        "seconds": seconds,
        "batches": len(batches),
        "capped": capped,
        "cap_s": PRUNE_CAP,
        "progress": batches,
    }


if __name__ == "__main__":
    sys.exit(main())
