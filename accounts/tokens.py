"""API tokens: issuing them and resolving a presented token to its user."""

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from .models import ApiToken

# Touching last_used_at on every request would turn each API read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class UnknownUser(Exception):
    pass


def hash_token(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def create_api_token(username: str, name: str = "") -> str:
    """Create a token for ``username`` and return it; it cannot be recovered later."""
    user_model = get_user_model()
    try:
        user = user_model.objects.get(**{user_model.USERNAME_FIELD: username})
    except user_model.DoesNotExist:
        raise UnknownUser(f"No user named {username!r}") from None
    raw_token = secrets.token_urlsafe(32)
    ApiToken.objects.create(
        user=user, name=name, prefix=raw_token[:8], token_hash=hash_token(raw_token)
    )
    return raw_token


def user_for_token(raw_token: str):
    """The active user owning ``raw_token``, or None."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=hash_token(raw_token), user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
