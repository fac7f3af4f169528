"""What a reconnecting websocket client missed.

A client says the last `sequence` it saw (S). Sequences are given at publication, one
publishing transaction at a time (events.publisher), so every reader sees the published log as
a gap-free prefix: an event published after S reached the client has a sequence above S,
however late its transaction committed. The replay is therefore exactly the published events of
the client's groups with `sequence > S`, read per group from the `(group, sequence)` index, so a
resume costs the same at ten million events as at a thousand. The replay runs after the
connection has joined its groups, so an event published meanwhile arrives live as well:
duplicates are possible, gaps are not, and clients drop duplicates by `id`.
"""

from dataclasses import dataclass

from django.conf import settings

from events.access import BeyondHorizon, check_cursor, sequences_in_groups
from events.models import Event


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
    sequences = missed_sequences(groups, after)
    events = list(Event.objects.filter(sequence__in=sequences).order_by("sequence"))
    through = max([after, *(e.sequence for e in events)])
    return Replay(events=events, through=through)


def missed_sequences(groups: set[str], after: int) -> list[int]:
    """The sequences of `missed_events`, in order, without the events: a caller that sends
    them a page at a time reads them a page at a time."""
    try:
        check_cursor(after)
    except BeyondHorizon:
        raise ResumeError(
            "unknown_sequence",
            f"Sequence {after} is not in the event log (removed by retention, or never "
            "issued); reload the page to start afresh.",
        ) from None
    limit = max_replay()
    sequences = sequences_in_groups(groups, after=after, limit=limit + 1)
    if len(sequences) > limit:
        raise ResumeError(
            "too_far_behind",
            f"More than {limit} events were missed; reload the page to start afresh.",
        )
    return sequences
