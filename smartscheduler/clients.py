"""The client address of a request, one rule for every place that counts per address (login
lockouts, the /metrics allow-list): REMOTE_ADDR, unless `NUM_PROXIES` trusted proxies in front
append to X-Forwarded-For, in which case the address the first of them saw. A client's own
X-Forwarded-For entries are never believed, so it cannot pick a new address per attempt.
"""

from django.conf import settings


def client_address(request) -> str:
    proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0
    remote = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return remote
