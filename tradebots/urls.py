from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("", include("accounts.urls")),
    path("bots/", include("bots.urls")),
    path("trading/", include("trading.urls")),
    path("reconciliation/", include("reconciliation.urls")),
    path("backtests/", include("backtests.urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon),
    path("system/status/", views.system_status, name="system-status"),
    path("system/ping-worker/", views.ping_worker_view, name="ping-worker"),
    path("api/", include("tradebots.api_urls")),
    path("admin/", admin.site.urls),
]

handler400 = "tradebots.views.bad_request"
handler403 = "tradebots.views.permission_denied"
handler404 = "tradebots.views.not_found"
handler500 = "tradebots.views.server_error"
