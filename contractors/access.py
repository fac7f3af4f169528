"""Who is who: roles and the event groups each user may see.

Roles: admin (superuser, or staff outside the `dispatchers` group), dispatcher (member of the
`dispatchers` group; dispatchers are staff too, so they can use the Django admin within their
model permissions), contractor (a user linked to a contractor). A dispatcher linked to regions
watches those; linked to none, all of them.
"""

from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from contractors.models import DEFAULT_REGION, Contractor, Region
from events.groups import contractor_group, dispatch_group

DISPATCHERS_GROUP = "dispatchers"


class Role(StrEnum):
    ADMIN = "admin"
    DISPATCHER = "dispatcher"
    CONTRACTOR = "contractor"


def roles_of(user: AbstractBaseUser | AnonymousUser | None) -> set[Role]:
    if user is None or not user.is_authenticated or not user.is_active:
        return set()
    roles: set[Role] = set()
    dispatcher = user.groups.filter(name=DISPATCHERS_GROUP).exists()
    if dispatcher:
        roles.add(Role.DISPATCHER)
    if user.is_superuser or (user.is_staff and not dispatcher):
        roles.add(Role.ADMIN)
    if linked_contractor(user) is not None:
        roles.add(Role.CONTRACTOR)
    return roles


def is_admin(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """The admin role (settings.WEBHOOKS_ADMIN_POLICY: events imports no app)."""
    return Role.ADMIN in roles_of(user)


def linked_contractor(user: AbstractBaseUser) -> Contractor | None:
    return Contractor.objects.filter(user=user, deleted_at__isnull=True).first()


def watched_regions(user: AbstractBaseUser) -> list[str] | None:
    """Region slugs a dispatcher watches; None means every region."""
    slugs = list(Region.objects.filter(watchers=user).values_list("slug", flat=True))
    return slugs or None


def visible_groups(user: AbstractBaseUser | AnonymousUser | None) -> set[str] | None:
    """Logical event groups the user may see: None = all, an empty set = none."""
    roles = roles_of(user)
    if Role.ADMIN in roles:
        return None
    groups: set[str] = set()
    if Role.DISPATCHER in roles:
        regions = watched_regions(user)
        if regions is None:
            return None
        groups |= {dispatch_group(slug) for slug in regions}
    if Role.CONTRACTOR in roles:
        contractor = linked_contractor(user)
        groups.add(contractor_group(contractor.pk))
    return groups


class StreamForbidden(PermissionError):
    """The user may not watch the stream asked for (websocket close code 4403)."""


def stream_groups(user, stream: str, regions: list[str] | None) -> set[str]:
    """The logical groups a websocket stream joins for `user`.

    `dispatch`: dispatchers and admins; the regions asked for (all permitted when none), each of
    which must be one the user watches. `contractor`: a contractor login, its own group only.
    """
    roles = roles_of(user)
    if stream == "contractor":
        contractor = linked_contractor(user) if Role.CONTRACTOR in roles else None
        if contractor is None:
            raise StreamForbidden("Only a contractor login has a contractor stream.")
        return {contractor_group(contractor.pk)}
    if stream != "dispatch" or not roles & {Role.ADMIN, Role.DISPATCHER}:
        raise StreamForbidden("Only dispatchers may watch dispatch streams.")
    watched = None if Role.ADMIN in roles else watched_regions(user)
    permitted = set(watched) if watched is not None else all_region_slugs()
    wanted = set(regions) if regions else permitted
    refused = wanted - permitted
    if refused:
        raise StreamForbidden(f"Not permitted to watch: {', '.join(sorted(refused))}.")
    return {dispatch_group(slug) for slug in wanted}


def all_region_slugs() -> set[str]:
    return set(Region.objects.values_list("slug", flat=True)) | {DEFAULT_REGION}
