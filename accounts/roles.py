"""Giving a user one of the two roles (tradebots.permissions): the Traders group holds the trade
permission, the Viewers group none. A superuser is a trader whatever its groups; a user in
neither group is a viewer in effect."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from tradebots.permissions import TRADE_PERMISSION, TRADERS_GROUP, VIEWERS_GROUP

from .tokens import UnknownUser

TRADER = "trader"
VIEWER = "viewer"
ROLES = (TRADER, VIEWER)


def role_groups() -> dict[str, Group]:
    """The role's group for each role. The migration accounts.0002 creates them; they are made
    again here if someone deleted them."""
    app_label, codename = TRADE_PERMISSION.split(".")
    trade = Permission.objects.get(content_type__app_label=app_label, codename=codename)
    traders, _ = Group.objects.get_or_create(name=TRADERS_GROUP)
    traders.permissions.add(trade)
    viewers, _ = Group.objects.get_or_create(name=VIEWERS_GROUP)
    return {TRADER: traders, VIEWER: viewers}


@transaction.atomic
def set_role(user, role: str) -> None:
    """Put ``user`` in the group of ``role`` (trader or viewer) and out of the other one."""
    groups = role_groups()
    if role not in groups:
        raise ValueError(f"Unknown role {role!r}; use one of {', '.join(ROLES)}")
    user.groups.remove(*groups.values())
    user.groups.add(groups[role])


def set_role_by_username(username: str, role: str):
    user_model = get_user_model()
    try:
        user = user_model.objects.get(**{user_model.USERNAME_FIELD: username})
    except user_model.DoesNotExist:
        raise UnknownUser(f"No user named {username!r}") from None
    set_role(user, role)
    return user
