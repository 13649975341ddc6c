"""The main navigation. An entry whose page does not exist yet is shown disabled, not as a dead
link; it lights up as soon as its URL name is registered."""

from django.urls import NoReverseMatch, reverse

MAIN_NAVIGATION = (
    ("Dashboard", "dashboard"),
    ("Bots", "bots:list"),
    ("Positions", "trading:positions"),
    ("Trades", "trading:trades"),
    ("Reconciliation", "reconciliation:runs"),
)


def main_navigation(request):
    if not request.user.is_authenticated:
        return {}
    entries = []
    for label, url_name in MAIN_NAVIGATION:
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            url = None
        current = url is not None and (
            request.path == url or (url != "/" and request.path.startswith(url))
        )
        entries.append({"label": label, "url": url, "current": current})
    if request.user.is_staff:
        entries.append({"label": "Admin", "url": reverse("admin:index"), "current": False})
    return {"main_navigation": entries}
