from django.contrib import admin

from events.access import visible_events
from events.admin_support import ReadOnlyAdmin
from events.models import Event


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "type", "aggregate", "occurred_at", "status", "attempts"]
    list_filter = ["status", "type", "aggregate_type"]
    search_fields = ["=aggregate_id", "=event_id"]
    date_hierarchy = "occurred_at"
    readonly_fields = [
        "sequence", "event_id", "type", "version", "aggregate_type", "aggregate_id", "payload",
        "groups", "occurred_at", "status", "attempts", "available_at", "claimed_by",
        "lease_expires_at", "delivered_at", "last_error",
    ]  # fmt: skip
    show_full_result_count = False

    def get_queryset(self, request):
        # The same visibility as `GET /api/events`: a region-limited dispatcher sees its regions.
        return visible_events(request.user)
