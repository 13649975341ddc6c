"""Conventions shared by every JSON endpoint under /api/."""

from functools import wraps

from django.http import JsonResponse

API_PREFIX = "/api/"


def is_api_request(request) -> bool:
    return request.path.startswith(API_PREFIX)


def json_error(message: str, status: int, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def api_not_found(request, exception=None):
    return json_error("Not found", 404)


def api_server_error(request):
    return json_error("Internal server error", 500)


def api_methods(*methods: str):
    """Allow only ``methods``; anything else gets a 405 JSON error naming what is allowed."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                response = json_error(
                    f"Method {request.method} not allowed; use {', '.join(methods)}", 405
                )
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
