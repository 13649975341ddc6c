"""Pushes to every open page: rendered partials sent over the WebSocket as htmx out-of-band swaps.

Each partial's top-level element carries an ``id`` (and optionally ``hx-swap-oob``); htmx's ws
extension swaps it into the page element with the same id. Call these from sync code only (views,
services, Celery tasks); inside a transaction use the ``*_on_commit`` forms so nobody sees data
that might still roll back.

Coalescing: inside ``with coalesced():`` (an engine batch, an order sync, a web request, a task)
pushes are collected instead of sent. Each fragment, named by its ``push`` key, keeps only its
latest version, and at the end of the block everything goes out in at most three messages, one
per kind of top-level element the HTML parser can hold together: lone table rows, ``<tbody>``
wrappers, and other elements (in that order, so a row replaced in place is there before an
insert guarded on its absence).
"""

import contextlib
import logging
import re
from collections.abc import Callable
from contextvars import ContextVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

UPDATES_GROUP = "updates"
TOAST_LEVELS = ("info", "success", "warning", "error")


_collected: ContextVar[dict | None] = ContextVar("live_collected", default=None)
_FIRST_TAG = re.compile(r"\s*<(\w+)")


@contextlib.contextmanager
def coalesced():
    """Collect the pushes made inside the block and send them, coalesced, when it ends."""
    if _collected.get() is not None:  # nested: the outer block sends
        yield
        return
    collected: dict = {}
    token = _collected.set(collected)
    try:
        yield
    finally:
        _collected.reset(token)
        _flush(collected)


def push(key: str, render: Callable[..., str | list[str]], **flags: bool) -> None:
    """Push the fragment ``render(**flags)`` renders; within a coalesced block only its latest
    version is sent, rendered at the end. A flag set by any version stays set (a row created
    and then changed in one tick is still inserted, with its latest content)."""
    collected = _collected.get()
    if collected is None:
        _send_rendered(key, render, flags)
        return
    if key in collected:
        earlier = collected[key][1]
        flags = {name: value or earlier.get(name, False) for name, value in flags.items()}
    collected[key] = (render, flags)


def push_each(group: str, item, render_many: Callable[[dict], list[str]], **flags: bool) -> None:
    """Push one fragment per item (a trade's row, a bot's card, by primary key) where
    ``render_many({item: flags, ...})`` reads and renders all items of the group at once, in
    the order they were first pushed: within a coalesced block one query for however many
    items, and each rendered from the database as it is when the block ends, so a long block
    never sends an older state than a shorter one that ended meanwhile."""
    collected = _collected.get()
    if collected is None:
        _send_rendered(group, lambda: render_many({item: flags}), {})
        return
    key = ("each", group)
    if key not in collected:
        collected[key] = (_RenderEach(render_many), {})
    items = collected[key][0].items
    earlier = items.get(item, {})
    items[item] = {name: value or earlier.get(name, False) for name, value in flags.items()}


class _RenderEach:
    def __init__(self, render_many):
        self.render_many, self.items = render_many, {}

    def __call__(self):
        return self.render_many(dict(self.items))


def pushes_sent() -> int:
    """Messages sent to the channel layer by this process (for the benchmark)."""
    return _sent_count


def _render(key, render, flags) -> list[str]:
    try:
        html = render(**flags)
    except Exception:
        logger.exception("Live update %s could not be rendered", key)
        return []
    return [html] if isinstance(html, str) else list(html)


def _send_rendered(key, render, flags) -> None:
    for html in _render(key, render, flags):
        _send(html)


def _flush(collected: dict) -> None:
    kinds: dict[str, list[str]] = {"tr": [], "tbody": [], "other": []}
    for key, (render, flags) in collected.items():
        for html in _render(key, render, flags):
            match = _FIRST_TAG.match(html)
            tag = match[1].lower() if match else ""
            kinds[tag if tag in ("tr", "tbody") else "other"].append(html)
    for parts in kinds.values():
        if parts:
            _send("".join(parts))


_sent_count = 0


def send_html(html: str) -> None:
    """Send ready-made OOB HTML to every connected page (collected inside ``coalesced()``)."""
    collected = _collected.get()
    if collected is not None:
        collected[object()] = (lambda: html, {})
        return
    _send(html)


def _send(html: str) -> None:
    """A push that fails is logged, not raised: the data is already saved and the next page
    load shows it."""
    global _sent_count
    _sent_count += 1
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
