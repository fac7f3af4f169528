"""The crash ledger's accounting (bench/crash.py): what committed and never reached the ledger
client is lost; a frame for an id already received is counted as received twice."""

from bench.crash import ledger, targets


def test_a_committed_event_never_received_is_lost_and_a_repeated_frame_counted():
    log = {"received": {"a": 1.0, "c": 2.0, "handler-event": 3.0}, "frames": 5}
    assert ledger(["a", "b", "c"], log) == {"lost": 1, "received_twice": 2}


def test_nothing_lost_when_every_committed_event_arrived_once():
    log = {"received": {"a": 1.0, "b": 2.0}, "frames": 2}
    assert ledger(["a", "b"], log) == {"lost": 0, "received_twice": 0}


def test_on_commit_has_no_worker_to_kill():
    assert targets("on_commit") == ("web",)
    assert targets("celery") == ("web", "worker")
