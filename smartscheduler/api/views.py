from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.throttling import ScopedRateThrottle


class ObtainTokenView(ObtainAuthToken):
    """`POST /api/auth/token` with `{"username", "password"}` returns `{"token"}`.

    Throttled per client address (scope `token`), against password guessing.
    """

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"
