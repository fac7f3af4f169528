from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from events.metrics import registry_with_event_log


def metrics_view(request):
    """`GET /metrics` in the Prometheus text format (no auth: scrape it from inside)."""
    return HttpResponse(
        generate_latest(registry_with_event_log()), content_type=CONTENT_TYPE_LATEST
    )
