"""Where a webhook may be sent: never to this machine or a private network unless allowed.

A URL is checked when an endpoint is saved and again before every attempt (DNS may have
changed since): every address its host resolves to must be public, unless the setting
WEBHOOKS_ALLOW_PRIVATE is true. Refused: loopback, link-local (cloud metadata services live
there), private, shared (100.64/10), unspecified, multicast and reserved ranges, in IPv4 and IPv6
(IPv4-mapped IPv6 addresses are checked as IPv4).
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class AddressRefused(Exception):
    pass


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressRefused(f"{host} does not resolve: {exc}") from exc
    return sorted({info[4][0] for info in infos})


def check_url(url: str) -> None:
    """Raise AddressRefused when `url` may not receive webhooks (see the module docstring)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("Use an http:// or https:// URL with a host.")
    if settings.WEBHOOKS_ALLOW_PRIVATE:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    refused = [a for a in resolve(parts.hostname, port) if not is_public(a)]
    if refused:
        raise AddressRefused(
            f"{parts.hostname} resolves to a loopback, link-local or private address "
            f"({', '.join(refused)}); set WEBHOOKS_ALLOW_PRIVATE=true to allow it."
        )
