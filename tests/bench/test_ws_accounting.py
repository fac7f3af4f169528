"""The websocket scenarios' accounting: which recorded events a client should get, what it got
live and after resume, and the latency samples kept for the report."""

import pytest

from bench.fanout import account
from bench.harness import percentile
from bench.latency import quantiles
from bench.wsclients import delivery, expected_ids, latencies_ms

EVENTS = [
    ("e1", ["dispatch/north"]),
    ("e2", ["dispatch/south", "contractor/7"]),
    ("e3", ["dispatch/north", "contractor/8"]),
    ("e4", ["dispatch/east"]),
]


def test_an_event_is_meant_for_a_client_when_their_groups_intersect():
    assert expected_ids(["dispatch/north"], EVENTS) == {"e1", "e3"}
    assert expected_ids(["contractor/7"], EVENTS) == {"e2"}
    assert expected_ids(["dispatch/west"], EVENTS) == set()


def test_delivery_counts_live_and_after_resume_only_for_expected_events():
    expected = {"e1", "e3"}
    got = delivery(expected, received=["e1", "e4"], resumed=["e3", "e2"])
    assert (got.expected, got.live, got.after_resume) == (2, 1, 2)
    assert not got.complete_live
    assert got.complete_after_resume


def test_delivery_is_incomplete_when_the_replay_misses_an_event_too():
    got = delivery({"e1", "e3"}, received=[], resumed=["e1"])
    assert (got.live, got.after_resume, got.complete_after_resume) == (0, 1, False)


def test_latencies_only_for_recorded_events():
    commits = {"e1": 100.0, "e2": 100.5}
    received = {"e1": 100.004, "e2": 100.52, "other": 101.0}
    assert sorted(round(v, 3) for v in latencies_ms(commits, received)) == [4.0, 20.0]


def test_fanout_account_ignores_warm_up_events_and_counts_each_client():
    rows = [
        ["w", ["dispatch/north"], 99.0, True],
        ["e1", ["dispatch/north"], 100.0, False],
        ["e2", ["dispatch/south", "contractor/7"], 100.1, False],
    ]
    clients = [
        {"name": "d-north", "groups": ["dispatch/north"]},
        {"name": "c-7", "groups": ["contractor/7"]},
        {"name": "d-all", "groups": ["dispatch/north", "dispatch/south"]},
    ]
    reports = [
        {
            "clients": [
                {"name": "d-north", "received": {"e1": 100.01}, "resumed": [], "errors": []},
                {"name": "c-7", "received": {}, "resumed": ["e2"], "errors": ["live: x"]},
            ]
        },
        {
            "clients": [
                {
                    "name": "d-all",
                    "received": {"w": 99.5, "e1": 100.02, "e2": 100.2},
                    "resumed": [],
                    "errors": [],
                },
            ]
        },
    ]
    out = account(clients, rows, reports)
    assert out["complete_live"] == 2  # c-7 got e2 only in the replay
    assert out["complete_after_resume"] == 3
    assert (out["deliveries_expected"], out["deliveries_live"]) == (4, 3)
    assert sorted(round(v) for v in out["latencies"]) == [10, 20, 100]  # not the warm-up one
    assert out["errors"] == ["c-7: live: x"]


def test_percentile_interpolates_between_ranks():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_quantiles_keep_the_extremes_and_are_sorted():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    kept = quantiles(values, count=4)
    assert kept == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert quantiles([1.0, 1000.0], count=1000)[-1] == 1000.0
