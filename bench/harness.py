"""Repeats, medians with their spread, progress lines, the results table and the report files.

A `Figure` holds every sample of one measurement; it is reported as the median with the spread
(min to max) over the repeats. Results of one scenario are a `ScenarioResult`; the report files
keep the latest result of every scenario ever run, each with its own date and command."""

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
JSON_PATH = DOCS / "benchmarks.json"
MARKDOWN_PATH = DOCS / "benchmarks.md"
PLOTS_DIR = DOCS / "benchmarks"  # PNGs drawn from the JSON by bench/plots.py
_STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class Figure:
    name: str
    unit: str
    samples: list[float]
    note: str = ""
    budget: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def as_json(self) -> dict:
        return {
            **asdict(self),
            "median": self.median,
            "min": min(self.samples),
            "max": max(self.samples),
        }


@dataclass
class ScenarioResult:
    scenario: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_measured: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def add(self, name: str, unit: str, samples: list[float], **kw) -> Figure:
        figure = Figure(name, unit, list(samples), **kw)
        self.figures.append(figure)
        progress(f"{self.scenario}: {name} = {fmt(figure.median)} {unit} {spread(figure)}")
        return figure


def repeat(times: int, what: str, run: Callable[[int], float]) -> list[float]:
    samples = []
    for index in range(times):
        value = run(index)
        progress(f"{what} {index + 1}/{times}: {fmt(value)}")
        samples.append(value)
    return samples


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def spread(figure: Figure | dict) -> str:
    samples = figure.samples if isinstance(figure, Figure) else figure["samples"]
    if len(samples) < 2:
        return "(1 run)"
    return f"({fmt(min(samples))} to {fmt(max(samples))}, n={len(samples)})"


# --- machine and versions ----------------------------------------------------------------------


def _command_output(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_note(before: float) -> str:
    """How busy the machine was over a scenario (its 1-minute load average at the start,
    `before`, and now): a figure taken on a loaded machine is not one to hold to a budget."""
    return (
        f"Machine load: 1-minute load average {before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores shared with other work."
    )


def machine() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kb = int(meminfo.readline().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
    }


def versions(postgres: str) -> dict:
    packages = {}
    for name in (
        "Django", "channels", "channels-redis", "daphne", "psycopg", "redis", "celery",
        "procrastinate",
    ):  # fmt: skip
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "not installed"
    redis_server = _command_output(["redis-server", "--version"])
    return {
        "python": platform.python_version(),
        "postgresql": postgres,
        "redis-server": redis_server.split(" v=")[1].split()[0] if " v=" in redis_server else "?",
        **packages,
    }


# --- output -----------------------------------------------------------------------------------


def table(results: list[dict]) -> str:
    rows = [("scenario", "measurement", "median", "spread (min to max, n)", "unit", "budget")]
    for result in results:
        for figure in result["figures"]:
            rows.append(
                (
                    result["scenario"],
                    figure["name"],
                    fmt(figure["median"]),
                    spread(figure),
                    figure["unit"],
                    figure.get("budget", ""),
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    header = "  ".join(cell.ljust(width) for cell, width in zip(rows[0], widths, strict=True))
    lines = [header.rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows[1:]
    ]
    return "\n".join(lines)


def write_reports(results: list[ScenarioResult], *, command: str, context: dict) -> dict:
    """Merge this run's scenarios into docs/benchmarks.json and regenerate docs/benchmarks.md
    (under a lock: scenarios run side by side merge one after the other)."""
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / "smartscheduler-bench-report.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _write_reports(results, command=command, context=context)


def _write_reports(results: list[ScenarioResult], *, command: str, context: dict) -> dict:
    existing = json.loads(JSON_PATH.read_text()) if JSON_PATH.exists() else {"scenarios": {}}
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    context = dict(context)
    if "run" in context:  # `python -m bench all`: when it started, how long it has taken
        existing["last_run"] = context.pop("run")
    for result in results:
        existing["scenarios"][result.scenario] = {
            "scenario": result.scenario,
            "date": now,
            "command": command,
            **context,
            "figures": [figure.as_json() for figure in result.figures],
            "notes": result.notes,
            "not_measured": result.not_measured,
            "extra": result.extra,
        }
    JSON_PATH.write_text(json.dumps(existing, indent=2, sort_keys=False) + "\n")
    from bench.plots import write_plots

    plots = write_plots(existing, PLOTS_DIR)
    MARKDOWN_PATH.write_text(markdown(existing, plots))
    return existing


SCENARIO_ORDER = [
    "relay",
    "recommendations",
    "booking",
    "latency",
    "fanout",
    "crash",
    "reconnect",
    "scale",
]
# Scenarios whose last run predates a change of what they measure: shown with this warning (and
# "(stale)" in the budgets table) until they are run again. A run newer than the date clears it.
STALE = {
    "booking": (
        "2026-12-01",
        "Measured with the shared-state relay, before the delivery core became per-subscriber "
        "positions with sequences given at publication; not re-measured since.",
    ),
    "fanout": (
        "2026-12-01",
        "Measured with the shared-state relay, before the delivery core became per-subscriber "
        "positions with sequences given at publication; not re-measured since.",
    ),
}


def stale(result: dict) -> str:
    """The warning for a scenario last run before what it measures changed, else ''."""
    since, why = STALE.get(result["scenario"], ("", ""))
    return why if since and result["date"] < since else ""


PENDING = {
    "latency": "Commit-to-websocket latency at 200 events/s (budget: p50 < 10 ms, p99 < 50 ms).",
    "fanout": "Fan-out to 5,000 websocket clients (budget: p99 < 500 ms).",
    "crash": "The crash ledger: events lost and received twice per approach when the web "
    "process or the worker is SIGKILLed under load (budget for the relay: 0).",
    "reconnect": "1,000 websocket clients reconnecting at once, 500 events behind each "
    "(budget: the last replayed within 10 s, HTTP p95 < 200 ms meanwhile).",
}
# Hand-written: how each hot path was profiled and made faster, before and after.
PROFILES = [
    ("relay", "profiles/relay.md"),
    ("recommendations", "profiles/recommendations.md"),
    ("booking", "profiles/booking.md"),
    ("latency and fanout", "profiles/websockets.md"),
]
_BUDGET = re.compile(r"(>=|<|^)\s*([\d,.]+)")


def verdict(figure: dict) -> str:
    """'met' or 'not met' for a figure whose budget reads `>= N ...`, `< N ...` or `N` (exactly,
    e.g. 0 errors, 100% delivered); '' for any other budget."""
    found = _BUDGET.search(figure.get("budget", ""))
    if not found:
        return ""
    limit = float(found[2].replace(",", ""))
    median = figure["median"]
    met = {">=": median >= limit, "<": median < limit, "": median == limit}[found[1]]
    return "met" if met else "not met"


# The profile that explains a scenario's budget not met (a scenario not listed: its notes).
PROFILE_OF = {
    "relay": "profiles/relay.md",
    "recommendations": "profiles/recommendations.md",
    "booking": "profiles/booking.md",
    "latency": "profiles/websockets.md",
    "fanout": "profiles/websockets.md",
}


def arithmetic(figure: dict) -> str:
    """How far a figure is from its budget, in the budget's own terms: '' when it is met or
    has no numeric budget."""
    found = _BUDGET.search(figure.get("budget", ""))
    if not found or verdict(figure) != "not met":
        return ""
    limit = float(found[2].replace(",", ""))
    median, unit = figure["median"], figure["unit"]
    if found[1] == ">=":
        return (
            f"{fmt(median)} {unit} is {fmt(limit / median if median else float('inf'))}x short "
            f"of {fmt(limit)}: the work per item must fall to {fmt(median / limit * 100)}% of "
            "today's, or run that many times wider"
        )
    if found[1] == "<":
        return (
            f"{fmt(median)} {unit} is {fmt(median / limit)}x the limit of {fmt(limit)}: "
            f"{fmt(median - limit)} {unit} ({fmt((median - limit) / median * 100)}%) must go"
        )
    return f"{fmt(median)} {unit}, budget exactly {fmt(limit)}: {fmt(abs(median - limit))} off"


def shortfalls(scenarios: list[dict]) -> list[str]:
    """For every budget not met: the arithmetic of what it would take, and where the profile
    is."""
    rows = []
    for result in scenarios:
        missed = False
        for figure in result["figures"]:
            gap = arithmetic(figure)
            if gap:
                missed = True
                profile = PROFILE_OF.get(result["scenario"])
                where = f"profile: [{profile}]({profile})" if profile else "see its notes"
                rows.append(f"- {result['scenario']}, {figure['name']}: {gap}; {where}.")
        # The scenario's own arithmetic (e.g. CPU per event times the rate), when it has any.
        if missed:
            rows += [f"  - {line}" for line in result.get("extra", {}).get("arithmetic", [])]
    if not rows:
        return []
    return ["## Budgets not met: the arithmetic", "", *rows, ""]


def last_run(data: dict) -> list[str]:
    """The last `python -m bench all`: when, how long, which scenarios."""
    run = data.get("last_run")
    if not run:
        return []
    return [
        f"Last full run: `{run['command']}`, started {run['started']}, took "
        f"{run['seconds'] / 60:.0f} min ({', '.join(run['scenarios'])}).",
        "",
    ]


def budgets(scenarios: list[dict]) -> list[str]:
    """The performance budgets at a glance: every figure that has one, with its verdict."""
    rows = [
        f"| {result['scenario']} | {figure['name']} | {fmt(figure['median'])} {figure['unit']} "
        f"| {figure['budget']} | {verdict(figure)}{' (stale)' if stale(result) else ''} "
        f"| {result.get('date', '')[:10]} |"
        for result in scenarios
        for figure in result["figures"]
        if figure.get("budget")
    ]
    if not rows:
        return []
    return [
        "## Budgets at a glance",
        "",
        "| scenario | measurement | median | budget | | measured |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "Where a budget is not met, the scenario's notes and the profile linked below say why. "
        "(stale): last measured before a change to what it measures (see its section).",
        "",
    ]


def markdown(data: dict, plots: dict[str, list[tuple[str, str]]] | None = None) -> str:
    """The report; `plots` (per scenario [(title, file name in PLOTS_DIR)]) are linked under
    their scenario."""
    plots = plots or {}
    scenarios = [data["scenarios"][name] for name in SCENARIO_ORDER if name in data["scenarios"]]
    out = [
        "# Benchmarks",
        "",
        "Generated by `python -m bench` (see `bench/__init__.py`); do not edit by hand. Each",
        "scenario creates its own PostgreSQL database (`bench_<pid>_<scenario>`, migrated,",
        "dropped afterwards) and its own redis-server on a free port. Every figure is the median",
        "of the repeats, with the spread (min to max) and the number of repeats. Raw samples:",
        "`docs/benchmarks.json`.",
        "",
        "Run all: `python -m bench all`; one scenario: `python -m bench relay` (or",
        "`recommendations`, `booking`, `latency`, `fanout`, `crash`, `reconnect`, `scale`; `all` "
        "leaves out `scale`, a 10-million-event log). Budgets: the table below,",
        "checked on the 2-core development machine. `python -m bench report` rewrites this file",
        "and the plots from the JSON.",
        "",
        *last_run(data),
        *budgets(scenarios),
        *shortfalls(scenarios),
        "## Profiles",
        "",
        *[f"- {name}: [{path}]({path})" for name, path in PROFILES],
        "",
    ]
    for result in scenarios:
        out += [f"## {result['scenario']}", ""]
        if stale(result):
            out += [f"**Not re-measured this session.** {stale(result)}", ""]
        out += [
            f"- Date: {result['date']}",
            f"- Command: `{result['command']}`",
            f"- Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
            f"{result['machine']['memory_gib']} GiB, {result['machine']['os']}",
            "- Versions: "
            + ", ".join(f"{name} {version}" for name, version in result["versions"].items()),
            "",
            table([result]),
            "",
        ]
        # The table is plain text: indent it as a code block.
        out[-2] = "\n".join("    " + line for line in out[-2].splitlines())
        out += [f"- {note}" for note in result["notes"]]
        for title, name in plots.get(result["scenario"], []):
            out += ["", f"![{title}]({PLOTS_DIR.name}/{name})"]
        if result["not_measured"]:
            out += ["", "Not yet measured:", ""]
            out += [f"- {item}" for item in result["not_measured"]]
        out.append("")
    missing = [name for name in SCENARIO_ORDER if name not in data["scenarios"]]
    out += ["## Not yet measured", ""]
    out += [f"- Scenario `{name}` (not run yet)." for name in missing]
    out += [f"- {text}" for key, text in PENDING.items() if key not in data["scenarios"]]
    out.append("")
    return "\n".join(out)
