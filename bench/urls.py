"""The product's URLs plus one bench-only endpoint (bench/settings_bench.py; never in the
product's URLs): the framework's floor for the booking scenario."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from smartscheduler.urls import handler404  # noqa: F401
from smartscheduler.urls import urlpatterns as product_urlpatterns


class BareView(APIView):
    """An authenticated DRF endpoint that does nothing: the project's DRF defaults (token
    authentication, IsAuthenticated, its renderers and exception handler) on a POST with a JSON
    body like a booking's, and no database work beyond the token's lookup. The booking
    scenario's ratio divides by its peak rate, served by the same server in the same run."""

    def post(self, request, job_id: int) -> Response:
        return Response({"jobId": job_id, "received": sorted(request.data)}, status=201)


urlpatterns = [
    path("bench/bare/<int:job_id>/assign", BareView.as_view(), name="bench-bare"),
    *product_urlpatterns,
]
