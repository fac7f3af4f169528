"""`python -m bench all | relay | recommendations | booking | latency | fanout | crash | reconnect |
scale [--keep]`, or
`python -m bench report` to rewrite docs/benchmarks.md and the plots from benchmarks.json,
or `python -m bench plans` to rewrite the query plans in docs/events.md from the last `scale`
run (see bench/__init__.py)."""

import argparse
import importlib
import shlex
import sys
import time
from datetime import UTC, datetime

from bench.cluster import BenchCluster
from bench.harness import (
    MARKDOWN_PATH,
    SCENARIO_ORDER,
    ScenarioResult,
    machine,
    progress,
    table,
    versions,
    write_reports,
)

SCENARIOS = SCENARIO_ORDER  # one list: the report shows them in the same order


def run_scenario(name: str, keep: bool) -> tuple[ScenarioResult, str]:
    module = importlib.import_module(f"bench.{name}")
    cluster = BenchCluster(name, keep=keep)
    try:
        progress(f"{name}: database {cluster.database}, redis-server on {cluster.redis_port}")
        cluster.start()
        with cluster.sql() as conn:
            postgres = conn.execute("SHOW server_version").fetchone()[0]
        return module.run(cluster), postgres
    finally:
        cluster.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenario", choices=["all", "report", "plans", *SCENARIOS])
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    args = parser.parse_args(argv)
    if args.scenario == "plans":
        import json

        from bench.harness import DOCS, JSON_PATH
        from bench.scale import write_plans

        if not write_plans(json.loads(JSON_PATH.read_text()), DOCS):
            progress("no scale run with plans in benchmarks.json")
            return 1
        progress(f"wrote the plans into {DOCS / 'events.md'}")
        return 0
    if args.scenario == "report":
        write_reports([], command="", context={})
        progress(f"wrote {MARKDOWN_PATH} from benchmarks.json")
        return 0
    # `all` leaves out `scale` (a 10-million-event log, ~10 GB and most of an hour).
    names = [s for s in SCENARIOS if s != "scale"] if args.scenario == "all" else [args.scenario]
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    results: list[ScenarioResult] = []
    context: dict = {"machine": machine()}
    started, started_at = time.monotonic(), datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    for name in names:
        result, postgres = run_scenario(name, args.keep)
        context["versions"] = versions(postgres)
        results.append(result)
        if args.scenario == "all":
            context["run"] = {
                "command": command,
                "started": started_at,
                "seconds": time.monotonic() - started,
                "scenarios": [r.scenario for r in results],
            }
        # Written after each scenario, so a later failure keeps what was measured.
        data = write_reports([result], command=command, context=context)
        if name == "scale":
            from bench.harness import DOCS
            from bench.scale import write_plans

            write_plans(data, DOCS)
    print(table([data["scenarios"][r.scenario] for r in results]))
    progress(f"wrote {MARKDOWN_PATH} and benchmarks.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
