"""One place where domain errors become HTTP answers.

Invalid -> 400 with per-field messages, Forbidden -> 403, NotFound -> 404, Conflict -> 409 with
a `code`. A database error caused by input the validators let through (a value out of the
column's range) is a 400, never a 500. A database that went away in the middle of the request
(restarted, or the session terminated) is a 503 with Retry-After: the transaction rolled back,
so the client may simply retry.
"""

from django.db import DataError, InterfaceError, OperationalError
from django.http import JsonResponse
from django.views import defaults
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from events.errors import Conflict, DomainError, Forbidden, Invalid, NotFound


def exception_handler(exc, context):
    if isinstance(exc, Invalid):
        return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, NotFound):
        return Response({"detail": exc.message, "code": exc.code}, status=404)
    if isinstance(exc, Forbidden):
        return Response({"detail": exc.message, "code": exc.code}, status=403)
    if isinstance(exc, Conflict):
        return Response({"detail": exc.message, "code": exc.code}, status=409)
    if isinstance(exc, DomainError):
        return Response({"detail": exc.message, "code": exc.code}, status=400)
    if isinstance(exc, DataError):
        return Response({"detail": "A value is out of range.", "code": "invalid"}, status=400)
    if isinstance(exc, OperationalError | InterfaceError):
        return Response(
            {"detail": "The database is unavailable; retry shortly.", "code": "unavailable"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "1"},
        )
    return drf_exception_handler(exc, context)


def page_not_found(request, exception):
    """`handler404`: a URL under /api/ that matches no route (`/api/jobs/abc`) is JSON too."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)
