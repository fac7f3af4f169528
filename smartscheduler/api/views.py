from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.throttling import ScopedRateThrottle

from smartscheduler.api.parsers import JSONParser


class ObtainTokenView(ObtainAuthToken):
    """`POST /api/auth/token` with `{"username", "password"}` returns `{"token"}`.

    Throttled per client address (scope `token`), against password guessing. It authenticates
    nobody: an `Authorization` header is ignored, so a stale token cannot turn the sign-in into
    a 401, and the throttle always counts by address (DRF counts signed-in users by user id).
    """

    authentication_classes = []
    parser_classes = [FormParser, MultiPartParser, JSONParser]  # ObtainAuthToken's, deep-JSON-safe
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"
