from django.http import JsonResponse

from tradebots.api import api_methods


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
