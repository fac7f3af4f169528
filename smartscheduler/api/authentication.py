from rest_framework.authentication import TokenAuthentication, get_authorization_header


class BearerTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>` (docs/api.md); `Bearer <key>` is accepted too, as clients send
    it."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if len(parts) == 2 and parts[0].lower() == b"bearer":
            try:
                key = parts[1].decode()
            except UnicodeError:
                return None
            return self.authenticate_credentials(key)
        return super().authenticate(request)
