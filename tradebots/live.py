"""Pushes to every open page: rendered partials sent over the WebSocket as htmx out-of-band swaps.

Each partial's top-level element carries an ``id`` (and optionally ``hx-swap-oob``); htmx's ws
extension swaps it into the page element with the same id. Call these from sync code only (views,
services, Celery tasks); inside a transaction use the ``*_on_commit`` forms so nobody sees data
that might still roll back.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

UPDATES_GROUP = "updates"
TOAST_LEVELS = ("info", "success", "warning", "error")


def send_html(html: str) -> None:
    """Send ready-made OOB HTML to every connected page. A push that fails is logged, not raised:
    the data is already saved and the next page load shows it."""
    try:
        async_to_sync(get_channel_layer().group_send)(
            UPDATES_GROUP, {"type": "live.html", "html": html}
        )
    except Exception:
        logger.exception("Live update could not be pushed")


def broadcast(template_name: str, context: dict | None = None) -> None:
    send_html(render_to_string(template_name, context or {}))


def broadcast_on_commit(template_name: str, context: dict | None = None) -> None:
    transaction.on_commit(lambda: broadcast(template_name, context))


def render_toast(message: str, level: str = "info") -> str:
    if level not in TOAST_LEVELS:
        raise ValueError(f"Unknown toast level {level!r}")
    return render_to_string("partials/toast.html", {"message": message, "level": level})


def toast(message: str, level: str = "info") -> None:
    send_html(render_toast(message, level))


def toast_on_commit(message: str, level: str = "info") -> None:
    transaction.on_commit(lambda: toast(message, level))
