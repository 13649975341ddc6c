from django.http import JsonResponse

from tradebots.api import api_methods

from .services import account_summary


@api_methods("GET")
def me(request):
    """Who the request is authenticated as: lets a script check its token."""
    user = request.user
    return JsonResponse(
        {
            "username": user.get_username(),
            "is_staff": user.is_staff,
            "is_superuser": user.is_superuser,
        }
    )


@api_methods("GET")
def account(request):
    """The broker's figures and our books; when the broker is unreachable, still 200, with
    the broker's figures null and ``error`` saying why."""
    return JsonResponse(account_summary().as_json())
