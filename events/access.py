"""Which events a user may see, and pages of them at a cost that does not grow with the log.

`events` imports no app, so the policy is a setting (`EVENTS_VISIBILITY_POLICY`, a dotted path
to `f(user) -> set[str] | None`, None meaning all). A page for a set of groups reads each
group's `(group, sequence)` index from the cursor on, at most one page per group, and merges:
a range scan per group, never a scan of the log.
"""

from django.conf import settings
from django.db.models import Max, QuerySet
from django.utils.module_loading import import_string

from events.models import Event, EventGroup, PrunedThrough
from events.publisher import head


def visible_groups(user) -> set[str] | None:
    return import_string(settings.EVENTS_VISIBILITY_POLICY)(user)


def visible_events(user) -> QuerySet[Event]:
    """Published events the user may see (for admin lists and counts, not for paging)."""
    groups = visible_groups(user)
    published = Event.objects.exclude(sequence=None)
    if groups is None:
        return published
    return published.filter(id__in=EventGroup.objects.filter(group__in=groups).values("event_id"))


def pruned_through() -> int:
    """The highest sequence retention removed (0 if none)."""
    return PrunedThrough.objects.aggregate(top=Max("sequence"))["top"] or 0


class BeyondHorizon(Exception):
    """The cursor cannot be continued without a gap: events after it were removed by
    retention (`pruned`), or it is ahead of every published sequence (`ahead`)."""

    def __init__(self, after: int, *, pruned: bool) -> None:
        super().__init__(after)
        self.pruned = pruned


def check_cursor(after: int) -> None:
    """Raises BeyondHorizon for a cursor that cannot be continued without a gap (two index
    look-ups)."""
    if after == 0:
        return
    if after < pruned_through():
        raise BeyondHorizon(after, pruned=True)
    if after > head():
        raise BeyondHorizon(after, pruned=False)


def sequences_in_groups(
    groups: set[str], *, after: int, limit: int, event_type: str | None = None
) -> list[int]:
    """The first `limit` published sequences after `after` in any of `groups`.

    The groups are read one query each, so all are bounded by the head read first: a publish
    that lands between two of the queries cannot show in one group and not yet in another.
    """
    found: set[int] = set()
    end = head()
    for group in sorted(groups):
        rows = EventGroup.objects.filter(group=group, sequence__gt=after, sequence__lte=end)
        if event_type is not None:
            rows = rows.filter(type=event_type)
        found.update(rows.order_by("sequence").values_list("sequence", flat=True)[:limit])
    return sorted(found)[:limit]


def events_page(
    groups: set[str] | None,
    *,
    after: int,
    limit: int,
    event_type: str | None = None,
    aggregate: tuple[str, str] | None = None,
) -> list[Event]:
    """Up to `limit` published events after `after`, oldest first, in `groups` (None: all)."""
    events = Event.objects.filter(sequence__gt=after)
    if event_type is not None:
        events = events.filter(type=event_type)
    if aggregate is not None:
        # An aggregate has few events: its index narrows first, the groups filter the rest.
        events = events.filter(aggregate_type=aggregate[0], aggregate_id=aggregate[1])
        if groups is not None:
            events = events.filter(
                id__in=EventGroup.objects.filter(group__in=groups).values("event_id")
            )
    elif groups is not None:
        sequences = sequences_in_groups(groups, after=after, limit=limit, event_type=event_type)
        events = Event.objects.filter(sequence__in=sequences)
    return list(events.order_by("sequence")[:limit])
