from django.contrib.auth import middleware as auth_middleware

from . import live
from .api import is_api_request, json_error
from .broker import interactive


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


class InteractiveBrokerMiddleware:
    """No page or API call waits long on a hung broker: every broker call a request makes uses
    the short interactive timeout, without retries; longer work belongs to a task."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with interactive():
            return self.get_response(request)
