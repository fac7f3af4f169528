"""Who is who: roles and the event groups each user may see.

Roles: admin (superuser, or staff outside the `dispatchers` group), dispatcher (member of the
`dispatchers` group; dispatchers are staff too, so they can use the Django admin within their
model permissions), contractor (a user linked to a contractor). A dispatcher linked to regions
watches those; linked to none, all of them.
"""

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from enum import StrEnum
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from contractors.models import DEFAULT_REGION, Contractor, Region
from contractors.tokens import live_tokens_of
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


class AccessState(NamedTuple):
    """What an open socket's right to stay open depends on (realtime.revocation): `credential`
    changes with the password (every sign-in is revoked then); `roles` with anything the role
    and stream policies read."""

    credential: str
    roles: tuple


def access_states(held: Sequence[tuple[int, str | None]]) -> list[AccessState | None]:
    """For each (user id, token id or None) an open socket holds: its current AccessState, or
    None when that sign-in is gone (user deleted or inactive, token revoked or expired). A few
    queries for the whole batch, whatever its size."""
    user_ids = {user_id for user_id, _ in held}
    users = {
        pk: (password, staff, superuser)
        for pk, password, staff, superuser in get_user_model()
        ._default_manager.filter(pk__in=user_ids, is_active=True)
        .values_list("pk", "password", "is_staff", "is_superuser")
    }
    memberships: dict[int, list[int]] = defaultdict(list)
    for user_id, group_id in (
        get_user_model()
        .groups.through.objects.filter(user_id__in=users)
        .values_list("user_id", "group_id")
    ):
        memberships[user_id].append(group_id)
    watches: dict[int, list[int]] = defaultdict(list)
    for user_id, region_id in Region.watchers.through.objects.filter(user_id__in=users).values_list(
        "user_id", "region_id"
    ):
        watches[user_id].append(region_id)
    linked = dict(
        Contractor.objects.filter(user_id__in=users, deleted_at__isnull=True).values_list(
            "user_id", "pk"
        )
    )
    live = live_tokens_of(users) if any(token for _, token in held) else set()
    states: list[AccessState | None] = []
    for user_id, token_id in held:
        if user_id not in users or (token_id is not None and token_id not in live):
            states.append(None)
            continue
        password, staff, superuser = users[user_id]
        roles = (
            staff,
            superuser,
            tuple(sorted(memberships[user_id])),
            tuple(sorted(watches[user_id])),
            linked.get(user_id),
        )
        credential = hashlib.sha256(password.encode()).hexdigest()
        states.append(AccessState(credential=credential, roles=roles))
    return states
