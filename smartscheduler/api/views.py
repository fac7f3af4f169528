"""Signing in and out of the API.

`POST /api/auth/token` `{"username", "password"}` -> `{"token", "expiry"}`: a new token each
time (a device or an integration each), expiring after API_TOKEN_TTL_DAYS. The password is
checked by Django's `authenticate()` with the HTTP request, so django-axes counts a failure
here exactly as on /login/ and /admin/login/ and a locked-out address gets the same 429.
`POST /api/auth/logout` revokes the token the request carries.
"""

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from contractors.tokens import issue_token, revoke_token
from smartscheduler.api.authentication import BearerTokenAuthentication
from smartscheduler.api.parsers import JSONParser
from smartscheduler.lockout import lockout_response


class SignInSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


ISSUED = inline_serializer(
    "IssuedToken", {"token": serializers.CharField(), "expiry": serializers.DateTimeField()}
)


class ObtainTokenView(APIView):
    """It authenticates nobody: an `Authorization` header is ignored, so a stale token cannot
    turn the sign-in into a 401."""

    authentication_classes = []
    parser_classes = [FormParser, MultiPartParser, JSONParser]  # the JSON one deep-JSON-safe
    permission_classes = [AllowAny]
    serializer_class = SignInSerializer

    @extend_schema(
        request=SignInSerializer,
        responses={
            200: ISSUED,
            429: OpenApiResponse(description="Too many failed sign-ins from this address."),
        },
    )
    def post(self, request):
        form = SignInSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        http_request = request._request  # django-axes marks this one when it locks out
        user = authenticate(
            http_request,
            username=form.validated_data["username"],
            password=form.validated_data["password"],
        )
        if user is None:
            if getattr(http_request, "axes_locked_out", False):
                return lockout_response(http_request)
            raise ValidationError(
                {"non_field_errors": ["Unable to log in with provided credentials."]}
            )
        issued = issue_token(user=user)
        return Response({"token": issued.key, "expiry": issued.expiry})


class LogoutView(APIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        revoke_token(token_id=request.auth.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
