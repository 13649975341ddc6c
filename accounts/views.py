import math

from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render
from django.views.decorators.http import require_GET

from tradebots import health
from trading.engine import market_status
from trading.selectors import realized_pnl_series

from .services import account_summary, equity_series


@require_GET
def dashboard(request):
    return render(
        request,
        "accounts/dashboard.html",
        {
            "status": health.system_status(),
            "market": market_status(),
            "account": account_summary(),
            "pnl_series": realized_pnl_series(),
            "equity_series": equity_series(),
        },
    )


def login_locked_out(request, response, credentials):
    """django-axes' answer to a locked-out login (AXES_LOCKOUT_CALLABLE): the login page again,
    saying why and for how long; every attempt meanwhile restarts the cool-off."""
    minutes = math.ceil(get_cool_off(request).total_seconds() / 60)
    form = AuthenticationForm(request, initial={"username": request.POST.get("username", "")})
    context = {
        "form": form,
        "next": request.POST.get("next", ""),
        "locked_out": f"Too many failed attempts; try again in {minutes} "
        f"minute{'s' if minutes != 1 else ''}.",
    }
    status = settings.AXES_HTTP_RESPONSE_CODE
    return render(request, "registration/login.html", context, status=status)
