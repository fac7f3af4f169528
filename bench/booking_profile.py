"""Profile one booking in-process: `python -m bench.booking_profile [--requests 200]`.

Makes its own bench stores (as `python -m bench booking` does: 300 demo contractors, planned
free slots), then, in a Django process on them, books planned jobs through Django's test client
(the same view and middleware as under daphne, minus the server; connections are closed
as a server's request signals close them): prints
the SQL of one booking, the query count per booking, and the top of a cProfile over the rest.
Settings come from the environment as in production (DB_CONN_MAX_AGE, DB_POOL)."""

import argparse
import json
import os
import subprocess
import sys

from bench.cluster import BenchCluster
from bench.harness import progress
from devtools.processes import ROOT


def inside(plans_path: str, token: str, requests: int, top: int) -> None:
    import cProfile
    import io
    import pstats
    import time

    import django

    django.setup()
    from django.db import close_old_connections, connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    with open(plans_path) as source:
        plans = json.load(source)
    client = Client(HTTP_AUTHORIZATION=f"Token {token}", SERVER_NAME="127.0.0.1")

    def book(plan: dict) -> int:
        body = {k: plan[k] for k in ("contractorId", "start", "end")}
        url = f"/api/jobs/{plan['job']}/assign"
        # The test client leaves connections open across requests; a server closes (or returns
        # to the pool) the request's connection as each request starts and finishes.
        close_old_connections()
        code = client.post(url, body, content_type="application/json").status_code
        close_old_connections()
        return code

    for plan in plans[:5]:  # warm imports and caches
        assert book(plan) == 201
    # New PostgreSQL sessions (a pool's borrowings are not) are not in captured queries.
    import psycopg

    connects = 0
    original_connect = psycopg.Connection.connect.__func__

    def counting_connect(cls, *args, **kwargs):
        nonlocal connects
        connects += 1
        return original_connect(cls, *args, **kwargs)

    psycopg.Connection.connect = classmethod(counting_connect)  # what the pool calls
    psycopg.connect = psycopg.Connection.connect  # what Django calls without a pool
    with CaptureQueriesContext(connection) as captured:
        assert book(plans[5]) == 201
    print(f"one booking: {len(captured)} queries, {connects} new PostgreSQL session(s)")
    connects = 0
    for query in captured.captured_queries:
        print(f"  {query['time']:>6}s  {query['sql'][:150]}")

    def backends_cpu() -> float:
        """CPU seconds of this database's live sessions (local PostgreSQL, Linux /proc): with
        the pool these are the sessions that serve every booking below."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND backend_type = 'client backend'"
            )
            pids = [pid for (pid,) in cursor.fetchall()]
        close_old_connections()
        total = 0.0
        for pid in pids:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    # First without the profiler (its overhead would inflate the CPU), then under it.
    batch, profiled = plans[6 : 6 + requests], plans[6 + requests : 6 + 2 * requests]
    postgres = backends_cpu()
    started, cpu = time.perf_counter(), time.process_time()
    for plan in batch:
        book(plan)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    postgres = backends_cpu() - postgres
    print(
        f"{len(batch)} bookings in one thread: {elapsed / len(batch) * 1000:.2f} ms each wall "
        f"(PostgreSQL included), {cpu / len(batch) * 1000:.2f} ms CPU of this process each, "
        f"{connects} new PostgreSQL sessions"
    )
    if not connects:  # with sessions coming and going, their CPU is not measured here
        print(f"PostgreSQL sessions' CPU: {postgres / len(batch) * 1000:.2f} ms per booking")
    profiler = cProfile.Profile()
    profiler.enable()
    for plan in profiled:
        book(plan)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.booking_profile", description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--inside", nargs=2, metavar=("PLANS", "TOKEN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        inside(*args.inside, requests=args.requests, top=args.top)
        return 0
    cluster = BenchCluster("bookingprofile")
    try:
        cluster.start()
        token, plans, _ = cluster.booking_plan(300, "--jobs", str(2 * args.requests + 6))
        progress("booking profile: planned; booking in-process")
        argv = [sys.executable, "-m", "bench.booking_profile", "--inside", str(plans), token]
        argv += ["--requests", str(args.requests), "--top", str(args.top)]
        env = cluster.env(**{k: v for k, v in os.environ.items() if k.startswith("DB_")})
        return subprocess.run(argv, cwd=ROOT, env=env).returncode
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
