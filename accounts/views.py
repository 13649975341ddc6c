from django.shortcuts import render
from django.views.decorators.http import require_GET

from tradebots import health
from trading.engine import market_status

from .services import account_summary


@require_GET
def dashboard(request):
    return render(
        request,
        "accounts/dashboard.html",
        {
            "status": health.system_status(),
            "market": market_status(),
            "account": account_summary(),
        },
    )
