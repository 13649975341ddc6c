"""The main navigation: every page a logged-in user can open, the current one marked."""

from django.urls import reverse

MAIN_NAVIGATION = (
    ("Dashboard", "dashboard"),
    ("Bots", "bots:list"),
    ("Positions", "trading:positions"),
    ("Trades", "trading:trades"),
    ("Reconciliation", "reconciliation:runs"),
    ("Backtests", "backtests:list"),
)


def main_navigation(request):
    if not request.user.is_authenticated:
        return {}
    entries = []
    for label, url_name in MAIN_NAVIGATION:
        url = reverse(url_name)
        current = request.path == url or (url != "/" and request.path.startswith(url))
        entries.append({"label": label, "url": url, "current": current})
    if request.user.is_staff:
        entries.append({"label": "Admin", "url": reverse("admin:index"), "current": False})
    return {"main_navigation": entries}
