"""Regions: where jobs and contractors are, and which dispatchers watch them."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from contractors.models import (
    DEFAULT_REGION,
    Region,
)
from events.errors import Conflict, Invalid, NotFound


@transaction.atomic
def create_region(
    *, slug: str, name: str, center_lat: float, center_lng: float, radius_miles: float
) -> Region:
    if slug == DEFAULT_REGION:
        raise Invalid({"slug": f"'{DEFAULT_REGION}' is reserved for places no region covers."})
    if Region.objects.filter(slug=slug).exists():
        raise Conflict(f"Region '{slug}' already exists.", code="region_exists")
    if radius_miles <= 0:
        raise Invalid({"radiusMiles": "must be greater than 0."})
    return Region.objects.create(
        slug=slug,
        name=name,
        center_lat=center_lat,
        center_lng=center_lng,
        radius_miles=radius_miles,
    )


@transaction.atomic
def update_region(*, slug: str, name: str, watchers: list[AbstractBaseUser]) -> Region:
    """Rename a region and set the dispatchers who watch it.

    Its centre and radius stay: moving a region would re-derive the region of every job and
    contractor, which is not supported. Regions are not in the event catalog (no screen shows
    them live), so this records no event; open websocket streams keep the groups they joined.
    """
    region = Region.objects.select_for_update().filter(slug=slug).first()
    if region is None:
        raise NotFound(f"Region '{slug}' does not exist.")
    if region.name != name:
        region.name = name
        region.save(update_fields=["name"])
    region.watchers.set(watchers)
    return region
