"""Role checks for the API. Roles are resolved once per request (see contractors.access)."""

from rest_framework.permissions import BasePermission

from contractors.access import Role, linked_contractor, roles_of


def request_roles(request) -> set[Role]:
    cached = getattr(request, "_smartscheduler_roles", None)
    if cached is None:
        cached = roles_of(request.user)
        request._smartscheduler_roles = cached
    return cached


def is_staff_or_dispatcher(request) -> bool:
    return bool(request_roles(request) & {Role.ADMIN, Role.DISPATCHER})


def own_contractor_id(request) -> int | None:
    """The contractor id of a contractor login (None for everyone else)."""
    if Role.CONTRACTOR not in request_roles(request):
        return None
    contractor = linked_contractor(request.user)
    return contractor.pk if contractor else None


class IsAdmin(BasePermission):
    message = "Only administrators may do this."

    def has_permission(self, request, view) -> bool:
        return Role.ADMIN in request_roles(request)


class IsDispatcher(BasePermission):
    """Dispatchers and administrators."""

    message = "Only dispatchers may do this."

    def has_permission(self, request, view) -> bool:
        return is_staff_or_dispatcher(request)


class IsDispatcherOrContractor(BasePermission):
    """Dispatchers and administrators, or a contractor login (which views narrow to its own)."""

    message = "Only dispatchers and contractors may read this."

    def has_permission(self, request, view) -> bool:
        return bool(request_roles(request))
