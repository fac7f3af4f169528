from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>` (SPEC); `Bearer <key>` is accepted too, as clients send it."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header.startswith("Bearer "):
            request.META["HTTP_AUTHORIZATION"] = "Token " + header[len("Bearer ") :]
        return super().authenticate(request)
