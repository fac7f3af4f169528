"""Which timezone names a contractor may have, and the default for a base location.

Accepted: the IANA database's geographic names, `Area/Location` (`America/New_York`,
`Europe/Berlin`, `America/Argentina/Buenos_Aires`), plus `UTC` and `Etc/UTC`. Refused, although
Python's zoneinfo would load most of them: `localtime` (whatever the server's clock says),
POSIX-style and legacy rule names (`EST5EDT`, `CET`, `UTC+3`, `GMT-5`), the sign-inverted
`Etc/GMT+3` family, and the old country aliases (`US/Eastern`): each is either not a place or
easy to misread, and a contractor's hours are worked in a place.

A contractor created without a zone gets the zone of its base location, looked up offline
(timezonefinder's bundled boundary data); a point at sea, where only the nautical `Etc/GMT±N`
zones apply, falls back to UTC.
"""

from functools import cache
from zoneinfo import available_timezones

GEOGRAPHIC_AREAS = frozenset(
    {
        "Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe",
        "Indian", "Pacific",
    }
)  # fmt: skip
UTC_NAMES = frozenset({"UTC", "Etc/UTC"})
FALLBACK = "UTC"


@cache
def accepted_timezones() -> frozenset[str]:
    return frozenset(
        name
        for name in available_timezones()
        if name in UTC_NAMES or (name.split("/", 1)[0] in GEOGRAPHIC_AREAS and "/" in name)
    )


def is_accepted(name: str) -> bool:
    return name in accepted_timezones()


def problem_with(name: str) -> str | None:
    """None if `name` is accepted, else a message for the person who typed it."""
    if is_accepted(name):
        return None
    return (
        f"'{name}' is not a timezone name we accept: use an IANA Area/Location name such as "
        "'America/New_York' or 'Europe/Berlin' (or 'UTC'); leave it out to take the zone of "
        "the base location."
    )


@cache
def _finder():
    # Imported and built on first use: loading the boundary data takes about half a second.
    from timezonefinder import TimezoneFinder

    return TimezoneFinder()


def timezone_at(lat: float, lng: float) -> str:
    """The zone of the point, or UTC where no accepted zone covers it (at sea)."""
    name = _finder().timezone_at(lat=lat, lng=lng)
    return name if name and is_accepted(name) else FALLBACK
