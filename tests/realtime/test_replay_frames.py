"""A replay page's frames are written by PostgreSQL (events.envelope.FRAME_SQL, read by
realtime/consumers.py): each must be the JSON a frame of the event's envelope is, whatever its
payload holds and whatever its timestamp's precision and zone."""

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from events.envelope import envelope
from events.models import Event
from realtime import framecache
from realtime.consumers import _event_frames, frame_text

pytestmark = pytest.mark.django_db(transaction=True)  # read on the websocket threads

PAYLOADS = [
    {"jobId": 1, "updatedFields": ["notes"]},
    {"nested": {"list": [1, 2.5, None, True], "empty": {}}, "text": 'Zoë \u2603 "quoted"'},
    {"big": 12345678901234567890, "negative": -0.001, "unicode key é": "x"},
    {},
]
# A whole second, milliseconds, a microsecond short of the next second, under a millisecond;
# the last in another zone: each is written in UTC, to the millisecond, truncated.
MOMENTS = [
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 6, 1, 8, 0, 0, 999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
]


def test_replayed_frames_are_the_envelopes_frames_in_sequence_order():
    # Written as the bench's fill writes them (no post_save, so no schema check): the read
    # must not depend on what a payload holds.
    events = Event.objects.bulk_create(
        Event(
            sequence=100 - index,  # recorded newest first: the page's order is the sequences'
            type="JobUpdated",
            version=1 + index,
            aggregate_type="job",
            aggregate_id=str(index),
            payload=payload,
            groups=["dispatch/north", "contractor/7"][: 1 + index % 2],
            occurred_at=MOMENTS[index],
        )
        for index, payload in enumerate(PAYLOADS)
    )
    sequences = sorted(event.sequence for event in events)
    framecache.frames.clear()

    frames = asyncio.run(_event_frames([*sequences, 1_000], retried=False))  # 1000: none

    expected = [
        (event.sequence, frame_text({"kind": "event", "event": envelope(event)}))
        for event in sorted(Event.objects.all(), key=lambda event: event.sequence)
    ]
    assert [seq for seq, _ in frames] == [seq for seq, _ in expected]
    assert [json.loads(text) for _, text in frames] == [json.loads(text) for _, text in expected]
    # The same keys in the same order as envelope()'s (JSON objects read into dicts keep it).
    assert [list(json.loads(text)["event"]) for _, text in frames] == [
        list(json.loads(text)["event"]) for _, text in expected
    ]
    assert framecache.frames.get_many(sequences) == dict(frames)  # and kept for the next
