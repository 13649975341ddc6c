"""Every JSON endpoint, under /api/: the NinjaAPI of tradebots.api with each app's router."""

from django.contrib.auth.decorators import login_not_required
from django.urls import include, path

from accounts.api import router as accounts_router
from backtests.api import router as backtests_router
from bots.api import router as bots_router
from reconciliation.api import router as reconciliation_router
from trading.api import router as trading_router

from .api import answer_in_json, api

for router in (
    accounts_router,
    bots_router,
    trading_router,
    reconciliation_router,
    backtests_router,
):
    api.add_router("", router)

api_patterns, api_app_name, api_namespace = api.urls
for pattern in api_patterns:
    # The API authenticates every operation itself (token or session, 401 in JSON) and the docs
    # views carry their own login check: the site-wide login redirect is not for them.
    pattern.callback = login_not_required(answer_in_json(pattern.callback))

urlpatterns = [path("", include((api_patterns, api_app_name), namespace=api_namespace))]
