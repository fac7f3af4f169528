"""The answer to a locked-out sign-in (django-axes' AXES_LOCKOUT_CALLABLE), the same on every
login path: 429 with Retry-After; JSON under /api/, a short page for /login/ and /admin/login/."""

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render

MESSAGE = "Too many failed sign-ins from this address; try again later."


def lockout_response(request, original_response=None, credentials=None):
    retry_after = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": MESSAGE, "code": "locked_out"}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": MESSAGE}, status=429)
    response["Retry-After"] = retry_after
    return response
