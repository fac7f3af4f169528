from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header

from contractors.tokens import authenticate_key


class BearerTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`; `Bearer <key>` is accepted too, as clients send it.

    The key is checked by `contractors.tokens.authenticate_key` (hashed, expiring, revocable
    knox tokens), the same check the websocket `?token=` uses. `request.auth` is the token row,
    so `POST /api/auth/logout` knows which one to revoke.
    """

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if len(parts) == 2 and parts[0].lower() == b"bearer":
            return self.authenticate_credentials(parts[1])
        return super().authenticate(request)

    def authenticate_credentials(self, token: bytes):
        try:
            key = token.decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        found = authenticate_key(key)
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return found


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme: `Authorization: Token <key>` (as DRF's tokens were)."""

    target_class = BearerTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix="Token"
        )
