"""A replay page's frames are read as rows, not model instances (realtime/consumers.py): each
must be the very text a frame of the event's envelope is, whatever its payload holds."""

import asyncio
from datetime import UTC, datetime

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
            occurred_at=datetime(2026, 1, 2, 3, 4, 5, 678901 * (index % 2), tzinfo=UTC),
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
    assert frames == expected
    assert framecache.frames.get_many(sequences) == dict(expected)  # and kept for the next
