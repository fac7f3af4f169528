"""Plots drawn from a small docs/benchmarks.json-shaped document, and linked from the report."""

from bench.harness import markdown
from bench.plots import write_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def figure(name, unit, samples):
    return {
        "name": name,
        "unit": unit,
        "samples": samples,
        "note": "",
        "budget": "",
        "median": sorted(samples)[len(samples) // 2],
        "min": min(samples),
        "max": max(samples),
    }


def scenario(name, figures, extra):
    return {
        "scenario": name,
        "date": "2026-01-01 00:00 UTC",
        "command": f"python -m bench {name}",
        "machine": {"cpu": "test", "cores": 2, "memory_gib": 1, "os": "test"},
        "versions": {"python": "3"},
        "figures": figures,
        "notes": [],
        "not_measured": [],
        "extra": extra,
    }


DATA = {
    "scenarios": {
        "relay": scenario(
            "relay",
            [
                figure("1 relay, end to end", "events/s", [3100.0, 3300.0, 3200.0]),
                figure("ceiling: bare SQL claim-and-mark", "events/s", [9000.0, 9500.0]),
                figure("relay --once start-up", "s", [1.2]),
            ],
            {},
        ),
        "latency": scenario(
            "latency",
            [figure("relay: commit to frame p50", "ms", [4.0, 5.0, 6.0])],
            {
                "latency_ms_quantiles": {
                    "relay": [1.0, 2.0, 4.0, 8.0, 30.0],
                    "on_commit": [0.5, 1.0, 2.0, 3.0, 9.0],
                }
            },
        ),
        "booking": scenario("booking", [figure("p95", "ms", [40.0])], {"rounds": [{}]}),
        "crash": scenario(
            "crash",
            [figure("relay, web killed: committed, event never reached the client", "events", [0])],
            {
                "runs": {
                    "relay/web": {"lost": 0, "received_twice": 0, "committed": 90, "kills": 5},
                    "on_commit/web": {"lost": 4, "received_twice": 0, "committed": 88, "kills": 5},
                }
            },
        ),
    }
}


def test_plots_are_drawn_for_the_data_present_and_linked_under_their_scenario(tmp_path):
    plots = write_plots(DATA, tmp_path)
    assert {scenario: [name for _, name in made] for scenario, made in plots.items()} == {
        "relay": ["relay_throughput.png"],
        "latency": ["latency.png"],
        "crash": ["crash.png"],
    }
    for name in ("relay_throughput.png", "latency.png", "crash.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_SIGNATURE
    # No raw booking samples: no booking plot, rather than an empty one.
    assert not (tmp_path / "booking.png").exists()
    report = markdown(DATA, plots)
    latency_section = report.split("## latency")[1]
    assert "(benchmarks/latency.png)" in latency_section
    assert "relay_throughput.png" not in latency_section
    assert "(benchmarks/relay_throughput.png)" in report.split("## latency")[0]


def test_a_scenario_measured_is_no_longer_listed_as_pending():
    report = markdown(DATA)
    pending = report.split("## Not yet measured")[1]
    assert "Scenario `fanout` (not run yet)" in pending
    assert "Fan-out to 5,000" in pending
    assert "Commit-to-websocket latency" not in pending
