"""Every JSON endpoint, under /api/ (login or bearer token required, errors as {"error": ...})."""

from django.urls import path

from accounts import api as accounts_api

urlpatterns = [
    path("me", accounts_api.me, name="api-me"),
]
