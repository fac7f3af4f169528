"""PNG plots of docs/benchmarks.json, regenerated with the report on every run (matplotlib, Agg).

Each plot is drawn from what the JSON holds and skipped when its data is absent, so a partial
run still yields the plots it can: relay throughput against its ceilings and alternatives (every
events/s figure of the `relay` scenario, median with the min-to-max spread); the commit-to-frame
latency distributions of `latency` (per mode) and `fanout`; the recommendation latencies of
`recommendations`; booking latencies if the `booking` scenario stored raw samples (the open
loop's when it ran one); the crash ledger's lost and twice-received events per approach.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after the backend is chosen

DPI = 110


def write_plots(data: dict, out_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """Draw every plot the data allows into `out_dir`; returns per scenario [(title, file
    name)] in the order to show them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scenarios = data.get("scenarios", {})
    drawn: dict[str, list[tuple[str, str]]] = {}
    for scenario, draw in PLOTS:
        if scenario not in scenarios:
            continue
        made = draw(scenarios[scenario], out_dir)
        if made:
            drawn.setdefault(scenario, []).append(made)
    return drawn


def _save(fig, out_dir: Path, name: str, title: str) -> tuple[str, str]:
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=DPI)
    plt.close(fig)
    return title, name


def relay_throughput(result: dict, out_dir: Path) -> tuple[str, str] | None:
    figures = [f for f in result["figures"] if f["unit"] == "events/s"]
    if not figures:
        return None
    names = [f["name"] for f in figures]
    medians = [f["median"] for f in figures]
    low = [f["median"] - f["min"] for f in figures]
    high = [f["max"] - f["median"] for f in figures]
    colours = [
        "#999999" if name.startswith("ceiling") else "#1f77b4" if "relay" in name else "#ff7f0e"
        for name in names
    ]
    fig, ax = plt.subplots(figsize=(11, 0.5 * len(figures) + 1.8))
    positions = range(len(figures))
    ax.barh(positions, medians, xerr=[low, high], color=colours, capsize=3)
    ax.set_yticks(list(positions), names)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(5000, color="red", linestyle="--", linewidth=1, label="budget: 5,000 events/s")
    for position, f in zip(positions, figures, strict=True):
        # Right of the spread's whisker, so the number never sits on it.
        ax.text(f["max"] * 1.08, position, f"{f['median']:,.0f}", va="center", fontsize=8)
    ax.set_xlim(right=max(f["max"] for f in figures) * 3)
    ax.set_xlabel("events/s (log scale; median, bar = min to max)")
    fig.suptitle("Relay throughput against its ceilings and alternatives")
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, out_dir, "relay_throughput.png", "Relay throughput")


def _cdf(ax, quantiles: list[float], label: str, share: float = 1.0) -> None:
    """`share`: the fraction of the measured events that arrived at all, so a curve of a mode
    that lost or never delivered some ends below 100%."""
    steps = len(quantiles) - 1
    ax.plot(quantiles, [100 * share * i / steps for i in range(steps + 1)], label=label)


def _latency_axes(ax, budgets: list[tuple[float, str]]) -> None:
    ax.set_xscale("log")
    ax.set_xlabel("commit to websocket frame, ms (log scale)")
    ax.set_ylabel("% of events received within")
    ax.set_ylim(0, 100)
    ax.grid(True, which="both", alpha=0.3)
    for value, label in budgets:
        ax.axvline(value, color="red", linestyle="--", linewidth=1)
        ax.text(value, 2, f" {label}", color="red", fontsize=8, rotation=90, va="bottom")
    ax.legend(loc="upper left", fontsize=8)


def latency_distribution(result: dict, out_dir: Path) -> tuple[str, str] | None:
    per_mode = result.get("extra", {}).get("latency_ms_quantiles")
    if not per_mode:
        return None
    shares = result["extra"].get("received_share", {})
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for mode, quantiles in per_mode.items():
        share = shares.get(mode, 1.0)
        label = mode if share == 1.0 else f"{mode} ({100 * share:.0f}% arrived)"
        _cdf(ax, quantiles, label, share)
    _latency_axes(ax, [(10, "p50 budget 10 ms"), (50, "p99 budget 50 ms")])
    ax.set_title("Commit to websocket frame, target 200 events/s, per delivery mode (all runs)")
    return _save(fig, out_dir, "latency.png", "Commit-to-frame latency distribution per mode")


def fanout_distribution(result: dict, out_dir: Path) -> tuple[str, str] | None:
    quantiles = result.get("extra", {}).get("latency_ms_quantiles")
    if not quantiles:
        return None
    runs = result["extra"].get("runs", [])
    expected = sum(r.get("deliveries_expected", 0) for r in runs)
    share = sum(r.get("deliveries_live", 0) for r in runs) / expected if expected else 1.0
    fig, ax = plt.subplots(figsize=(8, 4.5))
    _cdf(ax, quantiles, f"every (client, event) pair ({100 * share:.0f}% arrived live)", share)
    _latency_axes(ax, [(250, "p99 budget 250 ms")])
    ax.set_title("Fan-out to 1,000 websocket clients: commit to frame (all runs)")
    return _save(fig, out_dir, "fanout.png", "Fan-out latency distribution")


def recommendation_latency(result: dict, out_dir: Path) -> tuple[str, str] | None:
    series: list[tuple[str, list[float]]] = []
    for size, run in result.get("extra", {}).items():
        rounds = run.get("rounds") if isinstance(run, dict) else None
        if not rounds:
            continue
        for kind in ("cold", "warm"):
            samples = [v for r in rounds for v in r.get(f"{kind}_ms", [])]
            if samples:
                series.append((f"{int(size):,} contractors, {kind}", samples))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.boxplot([s for _, s in series], vert=False, whis=(5, 95), showfliers=True)
    ax.set_yticks(range(1, len(series) + 1), [name for name, _ in series])
    ax.set_xscale("log")
    ax.set_xlabel("recommend_for_job, ms (log scale; box = p25 to p75, whiskers p5 to p95)")
    ax.axvline(100, color="red", linestyle="--", linewidth=1, label="p95 budget, 1,000: 100 ms")
    ax.axvline(500, color="darkred", linestyle=":", linewidth=1, label="p95 budget, 10,000: 500 ms")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Recommendation latency (all rounds)")
    return _save(fig, out_dir, "recommendations.png", "Recommendation latency distribution")


def booking_latency(result: dict, out_dir: Path) -> tuple[str, str] | None:
    extra = result.get("extra", {})
    opened = extra.get("open_loop") or []
    rounds = opened or extra.get("rounds") or []
    samples = [v for r in rounds if isinstance(r, dict) for v in r.get("latencies_ms", [])]
    if not samples:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.hist(samples, bins=60)
    ax.axvline(50, color="red", linestyle="--", linewidth=1, label="p95 budget 50 ms")
    ax.set_xlabel("POST /api/jobs/{id}/assign, ms")
    ax.set_ylabel("requests")
    ax.legend(fontsize=8)
    load = f"open loop at {opened[0]['rate']:.0f} bookings/s" if opened else "20 concurrent clients"
    ax.set_title(f"Booking latency, {load} (all rounds)")
    return _save(fig, out_dir, "booking.png", "Booking latency distribution")


def crash_ledger(result: dict, out_dir: Path) -> tuple[str, str] | None:
    runs = result.get("extra", {}).get("runs") or {}
    if not runs:
        return None
    keys = list(runs)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(keys) + 1.8))
    positions = range(len(keys))
    lost = [runs[k]["lost"] for k in keys]
    twice = [runs[k]["received_twice"] for k in keys]
    ax.barh([p - 0.2 for p in positions], lost, height=0.4, color="#d62728", label="lost")
    ax.barh([p + 0.2 for p in positions], twice, height=0.4, color="#ff7f0e",
            label="received twice")  # fmt: skip
    labels = [f"{k} ({runs[k]['committed']} committed, {runs[k]['kills']} kills)" for k in keys]
    ax.set_yticks(list(positions), labels)
    ax.invert_yaxis()
    ax.set_xlabel("events")
    ax.legend(fontsize=8)
    ax.set_title("Crash ledger: approach / process killed")
    return _save(fig, out_dir, "crash.png", "Crash ledger")


PLOTS = [
    ("relay", relay_throughput),
    ("recommendations", recommendation_latency),
    ("booking", booking_latency),
    ("latency", latency_distribution),
    ("fanout", fanout_distribution),
    ("crash", crash_ledger),
]
