from django.contrib import admin

from events.access import visible_events
from events.admin_support import ReadOnlyAdmin
from events.models import Event, FailedDelivery, Subscriber


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "type", "aggregate", "occurred_at", "published_at"]
    list_filter = ["type", "aggregate_type"]
    search_fields = ["=aggregate_id", "=event_id"]
    date_hierarchy = "occurred_at"
    readonly_fields = [
        "sequence", "event_id", "type", "version", "aggregate_type", "aggregate_id", "payload",
        "groups", "occurred_at", "published_at",
    ]  # fmt: skip
    show_full_result_count = False

    def get_queryset(self, request):
        # The same visibility as `GET /api/events`: a region-limited dispatcher sees its regions.
        return visible_events(request.user)


@admin.register(Subscriber)
class SubscriberAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "position",
        "owner",
        "lease_expires_at",
        "progressed_at",
        "outage_since",
    ]
    readonly_fields = [*list_display, "outage_error"]


@admin.register(FailedDelivery)
class FailedDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["subscriber", "event", "attempts", "dead", "next_attempt_at", "last_failed_at"]
    list_filter = ["dead", "subscriber"]
    list_select_related = ["event"]
    readonly_fields = [*list_display, "first_failed_at", "last_error"]
