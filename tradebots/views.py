from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.defaults import bad_request as defaults_bad_request
from django.views.defaults import page_not_found
from django.views.defaults import permission_denied as defaults_permission_denied
from django.views.defaults import server_error as defaults_server_error
from kombu.exceptions import OperationalError

from . import health, live
from .api import api_not_found, api_server_error, is_api_request, json_error, request_too_large
from .tasks import ping_worker


@login_not_required
@require_GET
def favicon(request):
    """Pages name their icon; the admin's pages do not, and browsers then ask for this."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))


@login_not_required
@never_cache
@require_GET
def healthz(request):
    checks = {"database": health.check_database(), "redis": health.check_redis()}
    healthy = all(check.ok for check in checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        **{name: {"ok": check.ok, "detail": check.detail} for name, check in checks.items()},
    }
    return JsonResponse(body, status=200 if healthy else 503)


@require_GET
def system_status(request):
    return render(request, "partials/system_status.html", {"status": health.system_status()})


@require_POST
def ping_worker_view(request):
    try:
        ping_worker.delay(request.user.get_username())
    except OperationalError:
        return HttpResponse(live.render_toast("Could not reach the task queue (Redis).", "error"))
    return HttpResponse(live.render_toast("Ping sent; the worker's answer arrives live.", "info"))


def bad_request(request, exception):
    """Django's answer to a request it refuses outright (SuspiciousOperation), e.g. a body over
    DATA_UPLOAD_MAX_MEMORY_SIZE: that one is a 413, for pages and the API alike."""
    if isinstance(exception, RequestDataTooBig):
        if is_api_request(request):
            return request_too_large()
        return HttpResponse("Request body too large.", status=413, content_type="text/plain")
    if is_api_request(request):
        return json_error("Bad request", 400)
    return defaults_bad_request(request, exception)


def not_found(request, exception):
    if is_api_request(request):
        return api_not_found(request, exception)
    return page_not_found(request, exception)


def permission_denied(request, exception):
    if is_api_request(request):
        return json_error(str(exception) or "Forbidden", 403)
    return defaults_permission_denied(request, exception)


def server_error(request):
    if is_api_request(request):
        return api_server_error(request)
    return defaults_server_error(request)
