"""First-run set-up: an admin user so a new install can be logged into."""

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model

ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class AdminBootstrap:
    created: bool
    generated_password: str | None = None


def ensure_admin_user(password: str | None) -> AdminBootstrap:
    """Create the ``admin`` superuser when no superuser exists yet.

    Without ``password`` a random one is generated and returned, to be shown once.
    """
    user_model = get_user_model()
    if user_model.objects.filter(is_superuser=True).exists():
        return AdminBootstrap(created=False)
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(12)
    user_model.objects.create_superuser(username=ADMIN_USERNAME, email="", password=password)
    return AdminBootstrap(created=True, generated_password=generated)
