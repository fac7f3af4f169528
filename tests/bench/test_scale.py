"""Scenario `scale`'s pure parts: the SQL that fills the log, the plans block of docs/events.md,
and the prune's per-batch times; and the latency scenario's reading of the relay's step lines."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bench.latency import step_counts, step_times
from bench.scale import (
    PLANS_BEGIN,
    PLANS_END,
    WITH_CONTRACTOR,
    batch_rates,
    event_select,
    plans_markdown,
    query_shape,
    write_plans,
)
from events.access import events_page
from events.models import Event, EventGroup
from events.publisher import head


@pytest.mark.django_db
def test_the_fill_writes_published_events_with_their_group_rows():
    total = 400
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO events_event (id, sequence, event_id, type, version, aggregate_type,"
            " aggregate_id, payload, groups, occurred_at, published_at)"
            + event_select(1, total, total)
        )
        cursor.execute(
            'INSERT INTO events_eventgroup (event_id, "group", sequence, type) '
            "SELECT e.id, grp, e.sequence, e.type FROM events_event e, "
            "jsonb_array_elements_text(e.groups) AS grp"
        )
    events = list(Event.objects.order_by("id"))
    assert [e.sequence for e in events] == list(range(1, total + 1))
    assert head() == total
    for event in events:
        region = f"dispatch/r{event.payload['region'][1:]}"
        if event.type in WITH_CONTRACTOR:
            assert event.groups == [region, f"contractor/{event.payload['contractorId']}"]
        else:
            assert event.groups == [region]
    assert EventGroup.objects.count() == sum(len(e.groups) for e in events)
    # The first 10% are past the 90-day horizon, the rest within it.
    horizon = timezone.now() - timedelta(days=90)
    old = [e.sequence for e in events if e.occurred_at < horizon]
    assert old == list(range(1, total // 10 + 1))
    # The readers find them: a region's page is its events, in order.
    page = events_page({"dispatch/r3"}, after=0, limit=1000)
    assert [e.sequence for e in page] == [e.sequence for e in events if "dispatch/r3" in e.groups]
    assert len(page) > 0


def test_query_shape_ignores_literals():
    one = "SELECT * FROM t WHERE name = 'a' AND sequence > 10 AND id IN (1, 2, 3)"
    two = "SELECT * FROM t WHERE name = 'b' AND sequence > 99 AND id IN (4, 5)"
    assert query_shape(one) == query_shape(two)
    assert query_shape(one) != query_shape("SELECT * FROM t WHERE name = 'a'")


PLANS = [
    {"read": "resume", "queries": [{"sql": "SELECT max(sequence) FROM e", "plan": "Result A"}]},
    {
        "read": "board",
        "queries": [
            {"sql": "SELECT max(sequence) FROM e", "plan": "Result A"},
            {"sql": "SELECT 1 FROM g WHERE x = 5", "plan": "Index Scan B"},
            {"sql": "SELECT 1 FROM g WHERE x = 6", "plan": "Index Scan B'"},
        ],
    },
]


def test_plans_markdown_shows_each_query_shape_once():
    text = plans_markdown(
        PLANS, events=10_000_000, date="2026-12-01", command="python -m bench scale"
    )
    assert "10,000,000 published events" in text
    assert text.count("Result A") == 1
    assert "the same plan as under 'resume'" in text
    assert "Index Scan B" in text and "Index Scan B'" not in text
    assert "WHERE x = 5` (2 times)" in text
    assert text.index("#### resume") < text.index("#### board")


def test_write_plans_replaces_only_the_generated_block(tmp_path):
    doc = tmp_path / "events.md"
    doc.write_text(f"before\n{PLANS_BEGIN}\nold plans\n{PLANS_END}\nafter\n")
    data = {
        "scenarios": {
            "scale": {
                "date": "2026-12-01 22:30 UTC",
                "command": "python -m bench scale",
                "extra": {"events": 10, "plans": PLANS},
            }
        }
    }
    assert write_plans(data, tmp_path)
    text = doc.read_text()
    assert text.startswith("before\n") and text.endswith(f"{PLANS_END}\nafter\n")
    assert "old plans" not in text and "Index Scan B" in text
    assert not write_plans({"scenarios": {}}, tmp_path)


def test_batch_rates_are_the_seconds_of_each_batch():
    assert batch_rates([[5000, 1.5], [10000, 2.5], [15000, 4.0]]) == [1.5, 1.0, 1.5]
    assert batch_rates([]) == []


def test_step_times_reads_one_subscribers_relay_step_lines():
    log = "\n".join(
        [
            "2026-12-01 INFO events.relay relay step subscriber=scheduling.rerank handled=12 "
            "failed=0 dead=0 position=40 ms=812.5 relay=h:1",
            "2026-12-01 INFO events.relay relay step subscriber=realtime.broadcast handled=3 "
            "failed=0 dead=0 position=40 ms=2.1 relay=h:1",
            "2026-12-01 WARNING events.relay subscriber events.bus cannot reach a store",
        ]
    )
    assert step_times(log, "scheduling.rerank") == [(12, 812.5)]
    assert step_times(log, "realtime.broadcast") == [(3, 2.1)]
    assert step_times(log, "events.bus") == []
    assert step_counts(log) == {"scheduling.rerank": 1, "realtime.broadcast": 1}
