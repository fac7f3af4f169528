"""API tokens (django-rest-knox): what a token is, how one is issued, checked and revoked.

Invariants:
- Only a SHA-512 digest of a token is stored (plus its first 15 characters, to find the row);
  the token itself is shown once, when issued.
- A token is good until `expiry` (issued + API_TOKEN_TTL_DAYS), while its user is active, and
  until it is revoked. A user may hold several (a device or an integration each), at most
  API_TOKENS_PER_USER: issuing one more revokes the oldest.
- Changing a user's password or deactivating the user revokes all of its tokens at once
  (`revoke_on_credential_change`, connected in `contractors.apps`, runs whichever way the user
  row is saved: the admin, `changepassword`, a service); open websockets follow within seconds
  (realtime.revocation).
Tokens are credentials, not domain state: issuing or revoking one records no event.
"""

import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta
from hmac import compare_digest

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from knox.crypto import hash_token
from knox.models import AuthToken
from knox.settings import CONSTANTS

# Longer than any token we issue (64 hex characters); longer input is not a token.
MAX_TOKEN_LENGTH = 128


@dataclass(frozen=True)
class IssuedToken:
    key: str  # the token itself: shown once, never stored
    expiry: datetime
    token: AuthToken


def token_ttl() -> timedelta:
    return timedelta(days=settings.API_TOKEN_TTL_DAYS)


@transaction.atomic
def issue_token(*, user: AbstractBaseUser) -> IssuedToken:
    """A new token for `user`, expiring after API_TOKEN_TTL_DAYS. Expired tokens of the user are
    removed, and past API_TOKENS_PER_USER the oldest live ones are revoked."""
    now = timezone.now()
    AuthToken.objects.filter(user=user, expiry__lte=now).delete()
    keep = max(settings.API_TOKENS_PER_USER - 1, 0)
    newest_first = AuthToken.objects.filter(user=user).order_by("-created", "digest")
    beyond = list(newest_first.values_list("digest", flat=True)[keep:])
    if beyond:
        AuthToken.objects.filter(digest__in=beyond).delete()
    token, key = AuthToken.objects.create(user=user, expiry=token_ttl())
    return IssuedToken(key=key, expiry=token.expiry, token=token)


def authenticate_key(key: str) -> tuple[AbstractBaseUser, AuthToken] | None:
    """The user and token a key stands for, or None: unknown, expired, revoked, or its user is
    inactive."""
    if not key or len(key) > MAX_TOKEN_LENGTH:
        return None
    try:
        digest = hash_token(key)
    except (TypeError, ValueError, binascii.Error):
        return None
    now = timezone.now()
    candidates = AuthToken.objects.select_related("user").filter(
        token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH]
    )
    for token in candidates:
        if compare_digest(digest, token.digest):
            if token.expiry is not None and token.expiry <= now:
                return None
            if not token.user.is_active:
                return None
            return token.user, token
    return None


def live_tokens_of(user_ids) -> set[str]:
    """The ids (digests) of these users' good tokens: not revoked, not expired. Asked by user
    (a short list of integers) rather than by digest (128 characters each)."""
    return set(
        AuthToken.objects.filter(user_id__in=user_ids, expiry__gt=timezone.now()).values_list(
            "digest", flat=True
        )
    )


def revoke_token(*, token_id: str) -> int:
    """Revoke one token (by id); returns 1, or 0 when it was already gone."""
    deleted, _ = AuthToken.objects.filter(digest=token_id).delete()
    return deleted


def revoke_tokens(*, user: AbstractBaseUser) -> int:
    """Revoke every token of `user`; returns how many there were."""
    deleted, _ = AuthToken.objects.filter(user=user).delete()
    return deleted


def prune_expired_tokens() -> int:
    deleted, _ = AuthToken.objects.filter(expiry__lte=timezone.now()).delete()
    return deleted


def revoke_on_credential_change(sender, instance, raw=False, update_fields=None, **kwargs):
    """pre_save of the user model: a new password, or deactivation, revokes every token."""
    if raw or instance.pk is None:
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return  # e.g. login's `last_login` update
    before = (
        get_user_model()
        ._default_manager.filter(pk=instance.pk)
        .values("password", "is_active")
        .first()
    )
    if before is None:
        return
    if before["password"] != instance.password or (before["is_active"] and not instance.is_active):
        AuthToken.objects.filter(user_id=instance.pk).delete()
