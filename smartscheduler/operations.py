"""Who may read the operations endpoints' details.

`/metrics` (event volumes by type, relay internals) answers only operators: a request with
`Authorization: Bearer <METRICS_TOKEN>` when METRICS_TOKEN is set, otherwise a client whose
address (smartscheduler.clients) is in METRICS_ALLOWED_NETWORKS (default: this machine).
Anyone else gets a 404, as if there were nothing there. `/healthz` answers everyone up or down,
and the per-check details (which may name internal addresses) only to the same operators or a
signed-in admin.
"""

import ipaddress
from hmac import compare_digest

from django.conf import settings
from django.http import HttpResponseNotFound

from events.api.metrics import metrics_view
from smartscheduler import health
from smartscheduler.clients import client_address


def _bearer(request) -> str:
    scheme, _, credential = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""


def _from_allowed_network(request) -> bool:
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    for network in settings.METRICS_ALLOWED_NETWORKS:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


def is_operator(request) -> bool:
    if settings.METRICS_TOKEN:
        return compare_digest(_bearer(request).encode(), settings.METRICS_TOKEN.encode())
    return _from_allowed_network(request)


def metrics(request):
    if not is_operator(request):
        return HttpResponseNotFound("Not found.", content_type="text/plain")
    return metrics_view(request)


def healthz(request):
    user = getattr(request, "user", None)
    details = is_operator(request) or bool(user and user.is_active and user.is_superuser)
    return health.healthz(request, details=details)
