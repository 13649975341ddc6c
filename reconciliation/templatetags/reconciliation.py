"""{% sync_panel %}: the dashboard's "Broker sync" card. It fetches its own data (the last run),
so whichever view renders the dashboard need not know about reconciliation."""

from django import template
from django.utils.dateparse import parse_datetime

from reconciliation import services

register = template.Library()


@register.inclusion_tag("reconciliation/partials/sync_panel.html", takes_context=True)
def sync_panel(context):
    return {
        "run": services.last_run(),
        "csrf_token": context.get("csrf_token"),
        "can_trade": context.get("can_trade"),
    }


@register.filter
def isotime(value):
    """A datetime stored as ISO text in a run's JSON, back as a datetime for |date."""
    return parse_datetime(value) if isinstance(value, str) else value


@register.filter
def kind_meaning(kind: str) -> str:
    return services.KIND_GUIDANCE[services.Kind(kind)][0]


@register.inclusion_tag("reconciliation/partials/kind_guide.html")
def kind_guide(discrepancies):
    """What each kind of discrepancy in the list means and what to do, once per kind."""
    present = {d["kind"] for d in discrepancies}
    return {
        "kinds": [
            {"label": services.KIND_LABELS[kind], "meaning": meaning, "action": action}
            for kind, (meaning, action) in services.KIND_GUIDANCE.items()
            if kind in present
        ]
    }
