"""The two roles: viewers see everything and change nothing; traders (this permission, or a
superuser) create, change, start and stop bots, sell positions and run reconciliation.

Pages: views that change something are wrapped in ``trade_required``; templates show their
buttons and forms only where ``can_trade`` (the ``roles`` context processor) is not False.
Fragments pushed over the WebSocket are rendered without a request and go to every open page,
so they carry the controls inside ``.trade-only``, which viewers' pages hide (base.html).
"""

import functools

from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django_htmx.http import reswap

from . import live

TRADE_PERMISSION = "bots.trade"
TRADERS_GROUP = "Traders"
VIEWERS_GROUP = "Viewers"
REFUSED_MESSAGE = "Your account can view but not trade; ask an administrator for the trader role."


def can_trade(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(TRADE_PERMISSION))


def roles(request) -> dict:
    """Template context: ``can_trade`` for the logged-in user."""
    return {"can_trade": can_trade(request.user)}


def trade_required(view):
    """Refuse the view to viewers with 403: an htmx request gets an error toast (and no swap of
    its target), any other request the 403 page saying why."""

    @functools.wraps(view)
    def guarded(request, *args, **kwargs):
        if can_trade(request.user):
            return view(request, *args, **kwargs)
        if request.htmx:
            toast = HttpResponse(live.render_toast(REFUSED_MESSAGE, "error"), status=403)
            return reswap(toast, "none")
        raise PermissionDenied(REFUSED_MESSAGE)

    guarded.requires_trade = True  # survives the other decorators (functools.wraps copies it)
    return guarded
