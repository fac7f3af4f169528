"""The budget verdicts of the report's summary table (bench.harness.verdict, budgets)."""

import pytest

from bench.harness import budgets, shortfalls, stale, verdict


@pytest.mark.parametrize(
    ("median", "budget", "expected"),
    [
        (3_100.0, ">= 3,000 events/s", "met"),
        (2_999.0, ">= 3,000 events/s", "not met"),
        (99.9, "p95 < 100 ms", "met"),
        (100.0, "p95 < 100 ms", "not met"),
        (0.0, "0", "met"),
        (0.5, "0", "not met"),
        (100.0, "100%", "met"),
        (99.0, "100%", "not met"),
        (5.0, "as low as possible", ""),
        (5.0, "", ""),
    ],
)
def test_verdict_reads_the_budget(median, budget, expected):
    assert verdict({"median": median, "budget": budget}) == expected


def test_budgets_lists_only_figures_with_a_budget():
    scenarios = [
        {
            "scenario": "booking",
            "date": "2026-12-02 10:00 UTC",
            "figures": [
                {"name": "p95", "median": 60.0, "unit": "ms", "budget": "< 50 ms"},
                {"name": "throughput", "median": 80.0, "unit": "requests/s", "budget": ""},
            ],
        }
    ]
    lines = budgets(scenarios)
    rows = [line for line in lines if line.startswith("| booking")]
    assert rows == ["| booking | p95 | 60.0 ms | < 50 ms | not met | 2026-12-02 |"]
    assert budgets([{"scenario": "x", "figures": []}]) == []


def test_a_scenario_run_before_its_subject_changed_is_marked_stale():
    figure = {"name": "p95", "median": 60.0, "unit": "ms", "budget": "< 50 ms"}
    old = {"scenario": "booking", "date": "2026-11-23 00:10 UTC", "figures": [figure]}
    new = {**old, "date": "2026-12-02 10:00 UTC"}
    assert stale(old) and not stale(new)
    assert not stale({"scenario": "recommendations", "date": "2026-11-22 23:24 UTC"})
    [row] = [line for line in budgets([old]) if line.startswith("| booking")]
    assert row == "| booking | p95 | 60.0 ms | < 50 ms | not met (stale) | 2026-11-23 |"


def test_a_budget_not_met_gets_its_arithmetic_and_profile_and_a_met_one_none():
    scenarios = [
        {
            "scenario": "booking",
            "figures": [
                {"name": "p95", "median": 80.0, "unit": "ms", "budget": "< 50 ms"},
                {"name": "errors", "median": 0.0, "unit": "%", "budget": "0"},
            ],
            "extra": {"arithmetic": ["daphne spends 15 ms of CPU per booking"]},
        },
        {
            "scenario": "relay",
            "figures": [
                {
                    "name": "1 relay",
                    "median": 1000.0,
                    "unit": "events/s",
                    "budget": ">= 5,000 events/s",
                }
            ],
        },
    ]
    lines = shortfalls(scenarios)
    assert lines[0] == "## Budgets not met: the arithmetic"
    assert lines[2] == (
        "- booking, p95: 80.0 ms is 1.60x the limit of 50.0: 30.0 ms (37.5%) must go; "
        "profile: [profiles/booking.md](profiles/booking.md)."
    )
    assert lines[3] == "  - daphne spends 15 ms of CPU per booking"
    assert lines[4].startswith("- relay, 1 relay: 1,000 events/s is 5.00x short of 5,000")
    assert not any("errors" in line for line in lines)
    assert shortfalls([scenarios[0] | {"figures": scenarios[0]["figures"][1:]}]) == []
