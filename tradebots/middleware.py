from django.contrib.auth import middleware as auth_middleware

from accounts.tokens import user_for_token

from . import live
from .api import is_api_request, json_error

BEARER = "bearer "


class ApiTokenMiddleware:
    """Authenticate /api/ requests that carry ``Authorization: Bearer <token>``.

    A token request carries no session cookie an attacker could ride on, so it is exempt from
    CSRF; a wrong token is refused outright rather than falling back to the session.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        header = request.headers.get("Authorization", "")
        if is_api_request(request) and header.lower().startswith(BEARER):
            user = user_for_token(header[len(BEARER) :].strip())
            if user is None:
                return json_error("Invalid API token", 401)
            request.user = user
            request._dont_enforce_csrf_checks = True
        return self.get_response(request)


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    """Django's login requirement, answering API clients with 401 JSON instead of a redirect."""

    def handle_no_permission(self, request, view_func):
        if is_api_request(request):
            return json_error("Authentication required", 401)
        return super().handle_no_permission(request, view_func)


class CoalescedLiveUpdatesMiddleware:
    """A request's live pushes go out once it is answered: one message per kind, each fragment
    in its latest state, however many rows the request changed."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with live.coalesced():
            return self.get_response(request)
