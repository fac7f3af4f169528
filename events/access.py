"""Which events a user may see. `events` imports no app, so the policy is a setting
(`EVENTS_VISIBILITY_POLICY`, a dotted path to `f(user) -> set[str] | None`, None meaning all)."""

from django.conf import settings
from django.db.models import QuerySet
from django.utils.module_loading import import_string

from events.models import Event, EventGroup


def visible_groups(user) -> set[str] | None:
    return import_string(settings.EVENTS_VISIBILITY_POLICY)(user)


def visible_events(user) -> QuerySet[Event]:
    groups = visible_groups(user)
    if groups is None:
        return Event.objects.all()
    return Event.objects.filter(
        sequence__in=EventGroup.objects.filter(group__in=groups).values("event_id")
    )
