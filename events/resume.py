"""What a reconnecting websocket client missed.

A client says the last `sequence` it saw (S). Sequences are handed out at insert but commit,
and are delivered by several relays, in any order, so "everything after S" is not enough: an
event with a lower sequence may have committed, or been broadcast, after S reached the client.

Why the set below is complete: the client received S after S was recorded
(`occurred_at(S)`). An event E of its groups that it missed was broadcast after the client
dropped, so after `occurred_at(S)` (and `delivered_at(E)` is set only after E's broadcast
returned), or has not been broadcast yet (E is still pending). So the replay is every event of
the client's groups with

    sequence > S  OR  status != delivered  OR  delivered_at > occurred_at(S) - CLOCK_MARGIN

`CLOCK_MARGIN` absorbs clock differences between the hosts recording and relaying events. The
replay runs after the connection has joined its groups, so anything broadcast meanwhile arrives
live as well: duplicates are possible, gaps are not, and clients drop duplicates by `id`.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q

from events.models import DeliveryStatus, Event, EventGroup

CLOCK_MARGIN = timedelta(seconds=5)


class ResumeError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Replay:
    events: list[Event]
    through: int


def max_replay() -> int:
    return getattr(settings, "EVENTS_MAX_REPLAY", 5000)


def missed_events(groups: set[str], after: int) -> Replay:
    if after == 0:
        since = Q()
    else:
        anchor = Event.objects.filter(sequence=after).only("occurred_at").first()
        if anchor is None:
            raise ResumeError(
                "unknown_sequence",
                f"Sequence {after} is not in the event log (pruned or never issued); "
                "reload the page to start afresh.",
            )
        since = (
            Q(sequence__gt=after)
            | ~Q(status=DeliveryStatus.DELIVERED)
            | Q(delivered_at__gt=anchor.occurred_at - CLOCK_MARGIN)
        )
    limit = max_replay()
    events = list(
        Event.objects.filter(since)
        .filter(sequence__in=EventGroup.objects.filter(group__in=groups).values("event_id"))
        .order_by("sequence")[: limit + 1]
    )
    if len(events) > limit:
        raise ResumeError(
            "too_far_behind",
            f"More than {limit} events were missed; reload the page to start afresh.",
        )
    through = max([after, *(e.sequence for e in events)])
    return Replay(events=events, through=through)
