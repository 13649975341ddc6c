"""Every JSON endpoint, under /api/ (login or bearer token required, errors as {"error": ...})."""

from django.urls import path

from accounts import api as accounts_api
from bots import api as bots_api
from reconciliation import api as reconciliation_api
from trading import api as trading_api

urlpatterns = [
    path("me", accounts_api.me, name="api-me"),
    path("account", accounts_api.account, name="api-account"),
    path("positions", trading_api.positions, name="api-positions"),
    path("positions/<int:pk>/close", trading_api.close_position, name="api-position-close"),
    path("bots", bots_api.bots, name="api-bots"),
    path("bots/<uuid:pk>", bots_api.bot, name="api-bot"),
    path("bots/<uuid:pk>/start", bots_api.bot_lifecycle, {"action": "start"}, name="api-bot-start"),
    path("bots/<uuid:pk>/pause", bots_api.bot_lifecycle, {"action": "pause"}, name="api-bot-pause"),
    path("bots/<uuid:pk>/stop", bots_api.bot_lifecycle, {"action": "stop"}, name="api-bot-stop"),
    path("account/reconcile", reconciliation_api.reconcile, name="api-account-reconcile"),
]
