"""Login accounts for the three roles (see `contractors.access`): dispatcher, contractor, admin.

Invariant: an account is created whole or not at all. The user, its role (the `dispatchers`
group and staff flag, or the superuser flags, or the link to a contractor), the regions a
dispatcher watches and the API token commit in one transaction; any bad input raises a domain
error (`events.errors`) before that transaction commits, so nothing is left behind. Linking a
contractor is a change to the contractor and goes through `link_user` (services.contractors),
which records its `ScheduleUpdated`.
"""

from collections.abc import Iterable
from typing import NamedTuple

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import AbstractUser, Group, Permission
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from contractors.access import DISPATCHERS_GROUP, Role
from contractors.models import Region
from contractors.services.contractors import link_user
from contractors.tokens import issue_token
from events.errors import Conflict, Invalid, NotFound

# What a dispatcher may do in the Django admin: (app label, model, actions). Looked up by
# content type rather than imported, so contractors does not depend on scheduling or events.
DISPATCHER_PERMISSIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("contractors", "contractor", ("view", "add", "change")),
    ("contractors", "workinghours", ("view", "add", "change")),
    ("contractors", "timeoff", ("view", "add", "change")),
    ("contractors", "region", ("view",)),
    ("contractors", "rating", ("view",)),
    ("scheduling", "job", ("view", "add", "change")),
    ("scheduling", "assignment", ("view", "add", "change")),
    ("events", "event", ("view",)),
)


class Account(NamedTuple):
    user: AbstractUser
    token_key: str


def dispatcher_permissions() -> list[Permission]:
    wanted = {
        (app_label, f"{action}_{model}")
        for app_label, model, actions in DISPATCHER_PERMISSIONS
        for action in actions
    }
    found = {
        (p.content_type.app_label, p.codename): p
        for p in Permission.objects.select_related("content_type").filter(
            content_type__app_label__in={app for app, _ in wanted},
            codename__in={codename for _, codename in wanted},
        )
    }
    missing = sorted(f"{app}.{codename}" for app, codename in wanted - found.keys())
    if missing:
        # Permissions are created by `migrate`; without them the group would be silently weaker.
        raise RuntimeError(f"Permissions missing (run migrate): {', '.join(missing)}")
    return [found[key] for key in sorted(wanted)]


def dispatchers_group() -> Group:
    """The `dispatchers` group, created if missing, always holding the dispatcher permissions."""
    group, _ = Group.objects.get_or_create(name=DISPATCHERS_GROUP)
    group.permissions.add(*dispatcher_permissions())
    return group


def _validate(
    *,
    username: str,
    role: str,
    password: str,
    regions: list[str],
    contractor_id: int | None,
    check_password: bool,
) -> None:
    user_model = get_user_model()
    errors: dict[str, list[str]] = {}
    if role not in {r.value for r in Role}:
        errors["role"] = [f"'{role}' is not one of {', '.join(Role)}."]
    if not username:
        errors["username"] = ["must not be empty."]
    else:
        try:
            user_model._meta.get_field(user_model.USERNAME_FIELD).run_validators(username)
        except ValidationError as exc:
            errors["username"] = list(exc.messages)
    if not password:
        errors["password"] = ["must not be empty."]
    elif check_password:
        try:
            password_validation.validate_password(
                password, user=user_model(**{user_model.USERNAME_FIELD: username})
            )
        except ValidationError as exc:
            errors["password"] = list(exc.messages)
    if regions and role != Role.DISPATCHER:
        errors["regions"] = ["only dispatchers watch regions."]
    if role == Role.CONTRACTOR and contractor_id is None:
        errors["contractorId"] = ["a contractor login needs the contractor's id."]
    if contractor_id is not None and role != Role.CONTRACTOR:
        errors["contractorId"] = ["only contractor logins are linked to a contractor."]
    if errors:
        raise Invalid(errors)


def _watch_regions(user: AbstractUser, slugs: list[str]) -> None:
    found = {region.slug: region for region in Region.objects.filter(slug__in=slugs)}
    unknown = [slug for slug in slugs if slug not in found]
    if unknown:
        raise Invalid({"regions": f"unknown region(s): {', '.join(unknown)}."})
    for slug in slugs:
        found[slug].watchers.add(user)


@transaction.atomic
def create_account(
    *,
    username: str,
    role: str,
    password: str,
    regions: Iterable[str] = (),
    contractor_id: int | None = None,
    check_password: bool = True,
) -> Account:
    """Create a login with its role and API token; returns (user, token key).

    `check_password=False` skips the AUTH_PASSWORD_VALIDATORS policy (the demo seed uses
    deliberately memorable passwords); operators' accounts are always checked.
    """
    slugs = list(dict.fromkeys(slug.strip() for slug in regions if slug.strip()))
    _validate(
        username=username,
        role=role,
        password=password,
        regions=slugs,
        contractor_id=contractor_id,
        check_password=check_password,
    )
    user_model = get_user_model()
    if user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).exists():
        raise Conflict(f"User '{username}' already exists.", code="username_taken")
    try:
        with transaction.atomic():
            user = user_model._default_manager.create_user(username=username, password=password)
    except IntegrityError as exc:  # a concurrent create with the same name won the race
        raise Conflict(f"User '{username}' already exists.", code="username_taken") from exc

    if role == Role.DISPATCHER:
        user.is_staff = True  # the Django admin, within the group's permissions
        user.save(update_fields=["is_staff"])
        user.groups.add(dispatchers_group())
        _watch_regions(user, slugs)
    elif role == Role.ADMIN:
        user.is_staff = True
        user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    else:
        try:
            link_user(contractor_id=contractor_id, user=user)
        except NotFound as exc:
            raise Invalid({"contractorId": exc.message}) from exc

    return Account(user=user, token_key=issue_token(user=user).key)
